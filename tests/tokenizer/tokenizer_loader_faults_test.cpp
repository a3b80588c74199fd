// Tokenizer files that used to load with a silent loss or a wrong id: a key given twice, ids far
// beyond the vocabulary, an added-token id past 2^32; and a failed save that left its temporary
// file behind.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/tokenizer.h"
#include "train/disk_full.h"

namespace lmforge::tok {
namespace {

namespace fs = std::filesystem;

class TokenizerLoaderFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_tok_faults_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// 256 byte tokens, "ab" = 256, the merge a + b, then `extra_vocab` (",\"k\":id" entries) and one
// added token with id `eot_id`.
std::string hf_json(const std::string& extra_vocab = "", const std::string& eot_id = "257") {
  std::string vocab;
  for (int b = 0; b < 256; ++b) {
    std::string key = bytes_to_byte_level(std::string(1, static_cast<char>(b)));
    if (b == '"' || b == '\\') key.insert(key.begin(), '\\');
    vocab.append("\"").append(key).append("\":").append(std::to_string(b)).append(",");
  }
  vocab += "\"ab\":256" + extra_vocab;
  return R"({"added_tokens":[{"id":)" + eot_id + R"(,"content":"<|endoftext|>","special":true}],"normalizer":null,)"
         R"("pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},)"
         R"("model":{"type":"BPE","vocab":{)" + vocab + R"(},"merges":["a b"]}})";
}

std::string load_error(const std::string& p, const std::string& content) {
  std::ofstream(p, std::ios::binary) << content;
  try {
    Tokenizer::load(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_F(TokenizerLoaderFaults, TheBaseFileLoads) {
  std::ofstream(path("ok.json"), std::ios::binary) << hf_json();
  const Tokenizer t = Tokenizer::load(path("ok.json"));
  EXPECT_EQ(t.vocab_size(), 258u);
  EXPECT_EQ(t.encode_ordinary("ab"), (std::vector<uint32_t>{256}));
}

TEST_F(TokenizerLoaderFaults, AKeyGivenTwiceIsAnError) {
  // "a" again with another id: a JSON parser keeps the last one, and byte 'a' (97) vanished.
  std::string e = load_error(path("dup.json"), hf_json(",\"a\":257", "258"));
  EXPECT_NE(e.find(path("dup.json")), std::string::npos) << e;
  EXPECT_NE(e.find("key 'a' appears twice in 'vocab'"), std::string::npos) << e;
  // A duplicate key anywhere, e.g. in the model object.
  std::string s = hf_json();
  s.replace(s.find("\"type\":\"BPE\""), 12, "\"type\":\"BPE\",\"type\":\"BPE\"");
  e = load_error(path("dup2.json"), s);
  EXPECT_NE(e.find("key 'type' appears twice in 'model'"), std::string::npos) << e;
}

TEST_F(TokenizerLoaderFaults, IdsFarBeyondTheVocabularyAreErrors) {
  // 188189 in a 259-token vocabulary made a 188190-id tokenizer.
  std::string e = load_error(path("far.json"), hf_json(",\"abab\":188189"));
  EXPECT_NE(e.find("188189"), std::string::npos) << e;
  EXPECT_NE(e.find("far beyond"), std::string::npos) << e;
  e = load_error(path("far_added.json"), hf_json("", "188189"));
  EXPECT_NE(e.find("added_tokens[0]"), std::string::npos) << e;
  EXPECT_NE(e.find("188189"), std::string::npos) << e;
  // 2^32 + 5 was read as 5 (and then clashed with byte 5, or silently became id 5).
  e = load_error(path("wrap.json"), hf_json("", "4294967301"));
  EXPECT_NE(e.find("4294967301"), std::string::npos) << e;
}

TEST_F(TokenizerLoaderFaults, AFailedSaveLeavesNoTemporaryFile) {
  std::ofstream(path("ok.json"), std::ios::binary) << hf_json();
  const Tokenizer t = Tokenizer::load(path("ok.json"));
  {
    test::DiskFullAfter full(1000);  // the file is about 3 kB
    EXPECT_THROW(t.save_tokenizer_json(path("out.json")), Error);
  }
  EXPECT_FALSE(fs::exists(path("out.json.tmp")));
  EXPECT_FALSE(fs::exists(path("out.json")));
  // A directory in the way of the rename.
  fs::create_directories(path("taken.json"));
  EXPECT_THROW(t.save_tokenizer_json(path("taken.json")), Error);
  EXPECT_FALSE(fs::exists(path("taken.json.tmp")));
  t.save_tokenizer_json(path("out.json"));
  EXPECT_EQ(Tokenizer::load(path("out.json")).vocab_size(), 258u);
}

}  // namespace
}  // namespace lmforge::tok
