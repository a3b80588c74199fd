// metrics.jsonl: on resume the history is cut back atomically to the checkpoint's step (torn
// lines dropped, the kept lines byte for byte), and a failed write is an Error naming the file,
// never a silent loss.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "nn/model_test_util.h"
#include "train/disk_full.h"
#include "core/file_util.h"
#include "train/metrics.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = dir_ + "/metrics.jsonl";
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write_raw(const std::string& text) { std::ofstream(path_, std::ios::binary) << text; }
  std::string dir_, path_;
};

constexpr const char* kHistory =
    "{\"step\":1,\"loss\":3.5}\n"
    "{\"step\":2,\"loss\":3.25}\n"
    "{\"step\":2,\"event\":\"checkpoint\",\"path\":\"c/step_2\"}\n"
    "{\"step\":3,\"loss\":3.0}\n"
    "{\"step\":4,\"event\":\"checkpoint\",\"path\":\"c/step_4\"}\n"
    "{\"step\":5,\"lo";  // torn by a kill

TEST_F(MetricsTest, ResumeCutsBackToTheCheckpointAndAppends) {
  write_raw(kHistory);
  {
    MetricsLog log(path_, 3);
    EXPECT_TRUE(log.has_event(2, "checkpoint"));
    EXPECT_FALSE(log.has_event(4, "checkpoint"));  // after the cut
    EXPECT_FALSE(log.has_event(3, "checkpoint"));
    log.write({{"step", 4}, {"loss", 2.75}});
  }
  EXPECT_EQ(read_file(path_),
            "{\"step\":1,\"loss\":3.5}\n{\"step\":2,\"loss\":3.25}\n"
            "{\"step\":2,\"event\":\"checkpoint\",\"path\":\"c/step_2\"}\n{\"step\":3,\"loss\":3.0}\n"
            "{\"step\":4,\"loss\":2.75}\n");
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));
  // A fresh log starts an empty file.
  { MetricsLog fresh(path_, -1); }
  EXPECT_EQ(read_file(path_), "");
}

TEST_F(MetricsTest, AFailedCutLeavesTheHistoryAsItWas) {
  // Rewriting 120 bytes of kept lines fails at 40: the old file must survive whole (it used to
  // be truncated first and then rewritten, so a failure or a kill in between emptied it).
  write_raw(kHistory);
  {
    test::DiskFullAfter full(40);
    EXPECT_THROW(MetricsLog(path_, 3), Error);
  }
  EXPECT_EQ(read_file(path_), kHistory);
  EXPECT_FALSE(fs::exists(path_ + ".tmp"));
}

TEST_F(MetricsTest, AFailedWriteIsAnErrorNamingTheFile) {
  MetricsLog log(path_, -1);
  test::DiskFullAfter full(200);
  std::string error;
  int written = 0;
  for (int i = 0; i < 100 && error.empty(); ++i) {
    try {
      log.write({{"step", i}, {"loss", 1.0 / (i + 1)}});
      ++written;
    } catch (const Error& e) {
      error = e.what();
    }
  }
  ASSERT_FALSE(error.empty()) << "200 bytes took " << written << " lines without an error";
  EXPECT_NE(error.find(path_), std::string::npos) << error;
  EXPECT_GT(written, 2);
  // Nothing more is appended after a failure (the file may end in a partial line).
  EXPECT_THROW(log.write({{"step", 1000}}), Error);
  // Every line written before the failure is there, complete.
  std::ifstream in(path_);
  std::string line;
  int complete = 0;
  while (std::getline(in, line) && !in.eof()) ++complete;
  EXPECT_EQ(complete, written);
}

}  // namespace
}  // namespace lmforge::train
