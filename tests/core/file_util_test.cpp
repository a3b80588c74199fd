// Whole-file helpers: atomic replacement (no temporary left behind, the old file kept on failure),
// reading, mappings, and errors that name the path.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "core/file_util.h"
#include "test_util.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;
using test::error_of;

class FileUtil : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_file_util_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(FileUtil, AtomicWriteReplacesAndLeavesNoTemporary) {
  const std::string p = path("a.json");
  write_file_atomic(p, "first");
  write_file_atomic(p, "second, longer");
  EXPECT_EQ(read_file(p), "second, longer");
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

TEST_F(FileUtil, AtomicWriteOverADirectoryFailsAndCleansUp) {
  const std::string p = path("taken");
  fs::create_directories(fs::path(p) / "inside");
  const std::string message = error_of([&] { write_file_atomic(p, "x"); });
  EXPECT_NE(message.find("cannot rename"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_TRUE(fs::is_directory(p));
}

TEST_F(FileUtil, ReadNamesWhatItCouldNotRead) {
  const std::string missing = path("missing.toml");
  EXPECT_NE(error_of([&] { read_file(missing, "config file"); }).find("cannot open config file " + missing),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_file(dir_.string(), "tokenizer file"); })
                .find(dir_.string() + " is a directory, not a tokenizer file"),
            std::string::npos);
  // Bytes come back as written, a NUL and a long run included.
  std::string bytes(200000, 'z');
  bytes[7] = '\0';
  write_file_synced(path("b.bin"), bytes);
  EXPECT_EQ(read_file(path("b.bin")), bytes);
}

TEST_F(FileUtil, MapsWholeFilesAndEmptyOnes) {
  write_file_synced(path("m.bin"), "mapped");
  const auto m = map_file(path("m.bin"));
  ASSERT_EQ(m->size, 6u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data), m->size), "mapped");
  write_file_synced(path("empty.bin"), "");
  const auto e = map_file(path("empty.bin"));
  EXPECT_EQ(e->size, 0u);
  EXPECT_EQ(e->data, nullptr);
  EXPECT_NE(error_of([&] { map_file(path("nope"), "shard"); }).find("cannot open shard " + path("nope")),
            std::string::npos);
}

}  // namespace
}  // namespace lmforge
