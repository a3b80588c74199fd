// File formats: tokenizer.json and .tiktoken written and read back, HF variants, bad files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tokenizer/byte_unicode.h"
#include "tokenizer_test_util.h"

namespace lmforge::tok {
namespace {

namespace fs = std::filesystem;
using testing::encoding;
using testing::golden;

// A file name in a directory of this process, removed when the test binary exits.
std::string temp_path(const std::string& name) {
  struct TempDir {
    fs::path dir = fs::temp_directory_path() / ("lmforge_tok_test_" + std::to_string(::getpid()));
    TempDir() { fs::create_directories(dir); }
    ~TempDir() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  };
  static const TempDir tmp;
  return (tmp.dir / name).string();
}

void write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

// Expects load(path) to throw an Error whose message holds every one of `parts`.
void expect_load_error(const std::string& path, std::vector<std::string> parts, std::string_view pattern = "") {
  try {
    Tokenizer::load(path, pattern);
    ADD_FAILURE() << "expected an Error loading " << path;
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

class TokenizerFormats : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerFormats, TokenizerJsonRoundTripKeepsIds) {
  const Tokenizer& tok = encoding(GetParam());
  const std::string path = temp_path(GetParam() + ".json");
  tok.save_tokenizer_json(path);
  const Tokenizer back = Tokenizer::load(path);
  EXPECT_EQ(back.merge_rule(), MergeRule::MergeList);
  EXPECT_TRUE(back.whole_piece_lookup());
  EXPECT_EQ(back.pretokenizer().name(), GetParam());  // the known pattern gets the scanner back
  EXPECT_EQ(back.vocab_size(), tok.vocab_size());
  EXPECT_EQ(back.special_tokens(), tok.special_tokens());
  for (const auto& c : golden(GetParam())) ASSERT_EQ(back.encode_ordinary(c.text), c.ids) << "line " << c.line;
  for (const auto& c : golden(GetParam(), true)) ASSERT_EQ(back.encode(c.text, SpecialPolicy::all()), c.ids);
  // Written again, the file is the same (merges and vocab survive the round trip).
  const std::string again = temp_path(GetParam() + ".again.json");
  back.save_tokenizer_json(again);
  std::ifstream a(path), b(again);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b)));
}

TEST_P(TokenizerFormats, TiktokenRoundTripIsByteIdentical) {
  const Tokenizer& tok = encoding(GetParam());
  const std::string path = temp_path("copy.tiktoken");
  tok.save_tiktoken(path);
  std::ifstream a(testing::tokenizers_dir() + "/" + GetParam() + ".tiktoken"), b(path);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b)));
  const Tokenizer back = Tokenizer::load(path, GetParam());
  for (const auto& c : golden(GetParam())) ASSERT_EQ(back.encode_ordinary(c.text), c.ids) << "line " << c.line;
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerFormats, ::testing::Values("r50k_base", "cl100k_base", "o200k_base"));

// A small byte-level BPE in HF form: merges as "a b" strings or as arrays mean the same.
std::string small_hf_json(bool array_merges, const std::string& pre_tokenizer) {
  std::string vocab;
  for (int b = 0; b < 256; ++b) {
    std::string key = bytes_to_byte_level(std::string(1, static_cast<char>(b)));
    if (b == '"' || b == '\\') key.insert(key.begin(), '\\');  // they stand for themselves
    vocab.append("\"").append(key).append("\":").append(std::to_string(b)).append(",");
  }
  vocab += "\"ab\":256,\"abc\":257,\"\xC4\xA0" "a\":258";  // "ab", "abc", " a"
  const std::string merges = array_merges ? R"([["a","b"],["ab","c"],["Ġ","a"]])" : R"(["a b","ab c","Ġ a"])";
  return R"({"version":"1.0","added_tokens":[{"id":259,"content":"<|endoftext|>","special":true}],"normalizer":null,)"
         R"("pre_tokenizer":)" + pre_tokenizer + R"(,"model":{"type":"BPE","vocab":{)" + vocab + R"(},"merges":)" +
         merges + "}}";
}

TEST(TokenizerHfJson, MergeFormsAndPreTokenizers) {
  const std::string byte_level = R"({"type":"ByteLevel","add_prefix_space":false,"use_regex":true})";
  for (bool arrays : {false, true}) {
    const std::string path = temp_path(arrays ? "arrays.json" : "strings.json");
    write(path, small_hf_json(arrays, byte_level));
    const Tokenizer tok = Tokenizer::load(path);
    EXPECT_EQ(tok.pretokenizer().name(), "r50k_base");  // ByteLevel's own regex is GPT-2's
    EXPECT_EQ(tok.n_merges(), 3u);
    EXPECT_EQ(tok.encode("abc ab a", SpecialPolicy::all()), (std::vector<uint32_t>{257, ' ', 256, 258}));
    EXPECT_EQ(tok.encode("abc<|endoftext|>", SpecialPolicy::all()), (std::vector<uint32_t>{257, 259}));
  }
  const std::string split =
      R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[a-z]+"},"behavior":"Isolated",)"
      R"("invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]})";
  write(temp_path("split.json"), small_hf_json(true, split));
  const Tokenizer tok = Tokenizer::load(temp_path("split.json"));
  EXPECT_EQ(tok.pretokenizer().name(), "regex");
  EXPECT_EQ(tok.pretokenizer().pattern(), "[a-z]+");
  EXPECT_EQ(tok.encode("abc a"), (std::vector<uint32_t>{257, ' ', 'a'}));
  // add_prefix_space adds one space before each stretch of text.
  write(temp_path("prefix.json"), small_hf_json(true, R"({"type":"ByteLevel","add_prefix_space":true})"));
  const Tokenizer prefixed = Tokenizer::load(temp_path("prefix.json"));
  EXPECT_TRUE(prefixed.add_prefix_space());
  EXPECT_EQ(prefixed.encode("a"), (std::vector<uint32_t>{258}));
}

TEST(TokenizerHfJson, MalformedFilesNameFileAndKey) {
  const std::string bl = R"({"type":"ByteLevel"})";
  const std::string p = temp_path("bad.json");
  write(p, "{\n  \"model\": {\n    \"vocab\": [1, 2,, ]\n  }\n}");
  expect_load_error(p, {p, ":3:"});
  write(p, R"({"pre_tokenizer":{"type":"ByteLevel"}})");
  expect_load_error(p, {p, "model"});
  std::string s = small_hf_json(false, bl);
  s.replace(s.find("\"ab c\""), 6, "\"ab zz\"");
  write(p, s);
  expect_load_error(p, {p, "model.merges[1]", "zz"});
  s = small_hf_json(false, bl);
  s.replace(s.find("\"ab\":256"), 8, "\"ab\":\"x\"");
  write(p, s);
  expect_load_error(p, {p, "model.vocab['ab']"});
  write(p, small_hf_json(false, R"({"type":"Whitespace"})"));
  expect_load_error(p, {p, "pre_tokenizer", "Whitespace"});
  s = small_hf_json(false, bl);
  s.replace(s.find("\"normalizer\":null"), 17, R"("normalizer":{"type":"NFC"})");
  write(p, s);
  expect_load_error(p, {p, "normalizer", "NFC"});
  s = small_hf_json(false, bl);
  s.replace(s.find("\"ab\":256"), 8, "\"a\xE2\x82\xAC\":256");  // a character outside the byte map
  write(p, s);
  expect_load_error(p, {p, "model.vocab", "U+20AC"});
}

TEST(TokenizerTiktoken, MalformedFilesNameFileAndLine) {
  const std::string p = temp_path("bad.tiktoken");
  write(p, "IQ== 0\nIg== 1\n@@@ 2\n");
  expect_load_error(p, {p + ":3:", "base64"}, "r50k_base");
  write(p, "IQ== 0\nIg== x1\n");
  expect_load_error(p, {p + ":2:", "rank"}, "r50k_base");
  write(p, "IQ== 0\nIg== 0\n");
  expect_load_error(p, {p + ":2:", "rank 0", "line 1"}, "r50k_base");
  write(p, "IQ== 0\nIQ== 1\n");
  expect_load_error(p, {p + ":2:", "line 1"}, "r50k_base");
  write(p, "IQ==0\n");
  expect_load_error(p, {p + ":1:"}, "r50k_base");
  write(p, "");
  expect_load_error(p, {p, "empty"}, "r50k_base");
  write(p, "IQ== 50256\n");  // rank collides with the special token
  expect_load_error(p, {p, "50256"}, "r50k_base");
  // No pattern, and a name that says nothing.
  write(p, "IQ== 0\n");
  expect_load_error(p, {p, "--pattern"});
  expect_load_error(p, {"unknown pattern name 'p50k'"}, "p50k");
  expect_load_error(temp_path("missing.tiktoken"), {"missing.tiktoken"}, "r50k_base");
}

TEST(TokenizerTiktoken, PatternFromFileNameAndContentDetection) {
  const std::string named = temp_path("cl100k_base-copy.tiktoken");
  encoding("cl100k_base").save_tiktoken(named);
  EXPECT_EQ(Tokenizer::load(named).pretokenizer().name(), "cl100k_base");
  const std::string no_ext = temp_path("tokjson");
  encoding("r50k_base").save_tokenizer_json(no_ext);
  EXPECT_EQ(Tokenizer::load(no_ext).merge_rule(), MergeRule::MergeList);
}

TEST(TokenizerFromMerges, TrainedStyleVocabularyRoundTrips) {
  // Bytes, then merges in order (id == rank), then the specials, as the trainer lays them out.
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  for (const char* t : {"th", " t", " th", "he", " the", "in", "ing"}) tokens.emplace_back(t);
  const Tokenizer tok = Tokenizer::from_merges(tokens, {"<|endoftext|>"}, Pretokenizer::named("cl100k_base"));
  EXPECT_EQ(tok.vocab_size(), 264u);
  EXPECT_EQ(tok.eot_id(), 263u);
  const std::string text = "the thing in the thin ring";
  const auto ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.encode(" the"), (std::vector<uint32_t>{260}));
  const std::string path = temp_path("trained.json");
  tok.save_tokenizer_json(path);
  const Tokenizer back = Tokenizer::load(path);
  EXPECT_EQ(back.encode(text), ids);
  EXPECT_EQ(back.eot_id(), 263u);
  EXPECT_THROW(Tokenizer::from_merges({"a", "a"}, {}, Pretokenizer()), Error);
  EXPECT_THROW(Tokenizer::from_merges({"a", ""}, {}, Pretokenizer()), Error);
}

}  // namespace
}  // namespace lmforge::tok
