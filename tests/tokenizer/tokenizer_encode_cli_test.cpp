// `lmforge tokenizer encode` as a user runs it (the binary of this build; skipped where it was
// not built): the text and --binary outputs hold the ids Tokenizer::encode gives, on any thread
// count, for a file (mapped) and for standard input; an error writes no output.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/file_util.h"
#include "tokenizer_test_util.h"

namespace lmforge::tok {
namespace {

namespace fs = std::filesystem;

class TokenizerEncodeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(binary())) GTEST_SKIP() << binary() << " is not built";
    dir_ = fs::temp_directory_path() / ("lmforge_tok_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static std::string binary() { return std::string(LMFORGE_BINARY_DIR) + "/lmforge"; }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Runs `lmforge tokenizer encode --tokenizer cl100k_base.tiktoken ARGS`; the exit status.
  int encode(const std::string& args) const {
    const std::string cmd = fmt::format("{} tokenizer encode --tokenizer {}/cl100k_base.tiktoken {} 2> {}", binary(),
                                        testing::tokenizers_dir(), args, path("stderr.txt"));
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }
  fs::path dir_;
};

// Ids from the text output, parsed independently of the command's formatting code.
std::vector<uint32_t> parse_text_ids(const std::string& s) {
  std::istringstream in(s);
  std::vector<uint32_t> ids;
  for (uint32_t id; in >> id;) ids.push_back(id);
  return ids;
}

std::vector<uint32_t> parse_binary_ids(const std::string& s) {
  std::vector<uint32_t> ids(s.size() / 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data() + 4 * i);
    ids[i] = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
  }
  return ids;
}

TEST_F(TokenizerEncodeCli, OutputsHoldTheLibraryIdsOnAnyThreadCount) {
  // Big enough for several chunks (64 KiB at least each): code-like and prose-like lines.
  std::mt19937_64 rng(3);
  std::string text;
  while (text.size() < (600u << 10)) {
    text += testing::random_unicode(rng, rng() % 200);
    text += rng() % 3 ? "\n" : "  int x = f(y);\n";
  }
  std::ofstream(path("in.txt"), std::ios::binary) << text;
  SpecialPolicy as_text;
  as_text.disallowed_as_text = true;
  const std::vector<uint32_t> want = testing::encoding("cl100k_base").encode(text, as_text);
  for (const char* threads : {"1", "2", "0"}) {
    SCOPED_TRACE(threads);
    ASSERT_EQ(encode(fmt::format("--ordinary --threads {} --input {} --output {}", threads, path("in.txt"),
                                 path("ids.txt"))), 0) << read_file(path("stderr.txt"));
    const std::string out = read_file(path("ids.txt"));
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(out.back(), '\n');
    EXPECT_EQ(out.find("  "), std::string::npos);  // one space between ids
    EXPECT_EQ(parse_text_ids(out), want);
    ASSERT_EQ(encode(fmt::format("--ordinary --binary --threads {} --input {} --output {}", threads, path("in.txt"),
                                 path("ids.bin"))), 0) << read_file(path("stderr.txt"));
    EXPECT_EQ(parse_binary_ids(read_file(path("ids.bin"))), want);
  }
  // Standard input is read, not mapped: the same ids.
  ASSERT_EQ(encode(fmt::format("--ordinary --binary < {} > {}", path("in.txt"), path("stdin.bin"))), 0);
  EXPECT_EQ(parse_binary_ids(read_file(path("stdin.bin"))), want);
  // An empty input: an empty line.
  std::ofstream(path("empty.txt"), std::ios::binary).close();
  ASSERT_EQ(encode(fmt::format("--input {} --output {}", path("empty.txt"), path("empty_ids.txt"))), 0);
  EXPECT_EQ(read_file(path("empty_ids.txt")), "\n");
}

TEST_F(TokenizerEncodeCli, ADisallowedSpecialTokenIsAnErrorAndWritesNothing) {
  std::string text(300u << 10, 'a');
  for (size_t i = 1000; i < text.size(); i += 1000) text[i] = '\n';
  const size_t at = text.size() - 5000;
  text.replace(at, 13, "<|endoftext|>");
  std::ofstream(path("in.txt"), std::ios::binary) << text;
  EXPECT_NE(encode(fmt::format("--threads 2 --input {} --output {}", path("in.txt"), path("ids.txt"))), 0);
  const std::string err = read_file(path("stderr.txt"));
  EXPECT_NE(err.find("<|endoftext|>"), std::string::npos) << err;
  EXPECT_NE(err.find("byte offset " + std::to_string(at)), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(path("ids.txt")));
}

}  // namespace
}  // namespace lmforge::tok
