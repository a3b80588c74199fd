// tokenizer.json read by the cursor (tokenizer/hf_json_file.cpp): keys in any order, merges
// before the vocab, escaped keys, repeated keys at every level, and which error a file with
// several faults gets (a syntax error anywhere before any check of the content).
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "tokenizer/byte_unicode.h"
#include "tokenizer/tokenizer.h"
#include "bpe_trainer_test_util.h"

namespace lmforge::tok {
namespace {

class TokenizerJsonOrder : public ::testing::Test {
 protected:
  std::string write(const std::string& content) { return dir_.file("t" + std::to_string(n_++) + ".json", content); }
  // The Error message of loading `content` ("" if it loads).
  std::string error_of(const std::string& content) {
    const std::string p = write(content);
    try {
      Tokenizer::load_tokenizer_json(p);
    } catch (const Error& e) {
      std::string m = e.what();
      if (m.starts_with(p)) m.replace(0, p.size(), "F");  // the path, shortened
      return m;
    }
    return "";
  }
  const testing::ScratchDir dir_{"tok_json_order"};
  int n_ = 0;
};

// The 256 byte tokens as vocab entries ("key":id, separated by commas).
std::string byte_entries() {
  std::string vocab;
  for (int b = 0; b < 256; ++b) {
    std::string key = bytes_to_byte_level(std::string(1, static_cast<char>(b)));
    if (b == '"' || b == '\\') key.insert(key.begin(), '\\');
    if (b) vocab += ",";
    vocab.append("\"").append(key).append("\":").append(std::to_string(b));
  }
  return vocab;
}

// The parts of a small BPE file: 256 bytes, "ab" = 256, "abc" = 257, " a" = 258 (key "Ġa"),
// <|endoftext|> = 259.
const std::string kAdded = R"("added_tokens":[{"id":259,"content":"<|endoftext|>","special":true}])";
const std::string kPre = R"("pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true})";
std::string vocab_part() { return "\"vocab\":{" + byte_entries() + ",\"ab\":256,\"abc\":257,\"\xC4\xA0" "a\":258}"; }
const std::string kMerges = R"("merges":["a b","ab c","Ġ a"])";

void expect_the_small_tokenizer(const Tokenizer& t) {
  EXPECT_EQ(t.vocab_size(), 260u);
  // Hand-merged: "abc" + "ab" + " a" + "c"; the special token is cut out first.
  EXPECT_EQ(t.encode_ordinary("abcab ac"), (std::vector<uint32_t>{257, 256, 258, 'c'}));
  EXPECT_EQ(t.encode("ab<|endoftext|>", SpecialPolicy::all()), (std::vector<uint32_t>{256, 259}));
  EXPECT_EQ(t.merges(), (std::vector<std::pair<uint32_t, uint32_t>>{{'a', 'b'}, {256, 'c'}, {0x20, 'a'}}));
}

TEST_F(TokenizerJsonOrder, KeysInAnyOrderGiveTheSameTokenizer) {
  const std::string model_vm = R"("model":{"type":"BPE",)" + vocab_part() + "," + kMerges + "}";
  const std::string model_mv = R"("model":{)" + kMerges + "," + vocab_part() + R"(,"ignore_merges":false,"type":"BPE"})";
  const std::vector<std::string> files = {
      "{" + kAdded + "," + kPre + "," + model_vm + "}",
      "{" + model_vm + "," + kPre + "," + kAdded + "}",   // model first, added tokens last
      "{" + model_mv + "," + kAdded + "," + kPre + "}",   // merges before the vocab
      "{\n  " + kPre + ",\n  \"decoder\": {\"x\": [1, {\"y\": null}]},\n  " + model_mv + ",\n  " + kAdded + "\n}\n",
  };
  for (const auto& f : files) {
    SCOPED_TRACE(f.substr(0, 60));
    expect_the_small_tokenizer(Tokenizer::load_tokenizer_json(write(f)));
  }
}

TEST_F(TokenizerJsonOrder, EscapedKeysAndMergesAreDecoded) {
  // "Ġa" spelled \u0120a, and the merge as an array with the same escape; "a" as \u0061.
  std::string vocab = vocab_part();
  vocab.replace(vocab.find("\"\xC4\xA0" "a\""), 5, "\"\\u0120a\"");
  const std::string f = "{" + kAdded + "," + kPre + R"(,"model":{"type":"BPE",)" + vocab +
                        R"(,"merges":["\u0061 b",["ab","c"],["\u0120","a"]]}})";
  expect_the_small_tokenizer(Tokenizer::load_tokenizer_json(write(f)));
}

TEST_F(TokenizerJsonOrder, WordLevelReadsNoMerges) {
  const std::string f = "{" + kPre + R"(,"model":{"type":"WordLevel","unk_token":"[UNK]","vocab":{"[UNK]":0,"a":1,)"
                        R"("b":2,"ab":3}}})";
  const Tokenizer t = Tokenizer::load_tokenizer_json(write(f));
  EXPECT_EQ(t.unknown_id(), 0u);
  // GPT-2 pieces: "ab", " b" (not a token: unknown), "a".
  EXPECT_EQ(t.encode_ordinary("ab b"), (std::vector<uint32_t>{3, 0}));
}

TEST_F(TokenizerJsonOrder, RepeatedKeysAtEveryLevel) {
  const std::string model = R"("model":{"type":"BPE",)" + vocab_part() + "," + kMerges + "}";
  auto file = [&](const std::string& extra_top, const std::string& m) {
    return "{" + kAdded + "," + kPre + "," + m + extra_top + "}";
  };
  const std::string tail = "; one of them would be dropped";
  EXPECT_EQ(error_of(file(",\"version\":\"1\",\"version\":\"2\"", model)),
            "F: key 'version' appears twice in the top-level object" + tail);
  std::string m = model;
  m.insert(m.find("\"vocab\""), "\"dropout\":null,\"dropout\":null,");
  EXPECT_EQ(error_of(file("", m)), "F: key 'dropout' appears twice in 'model'" + tail);
  m = model;
  m.insert(m.find("\"ab\":256"), "\"abc\":300,");
  EXPECT_EQ(error_of(file("", m)), "F: key 'abc' appears twice in 'vocab'" + tail);
  m = model;
  m.insert(m.find("\"type\":\"BPE\""), "\"type\":\"BPE\",");
  EXPECT_EQ(error_of(file("", m)), "F: key 'type' appears twice in 'model'" + tail);
  // Inside the small parts: the pre-tokenizer, an added token, an unread key.
  std::string f = file("", model);
  f.replace(f.find("\"use_regex\":true"), 16, "\"use_regex\":true,\"use_regex\":false");
  EXPECT_EQ(error_of(f), "F: key 'use_regex' appears twice in 'pre_tokenizer'" + tail);
  f = file("", model);
  f.replace(f.find("\"special\":true"), 14, "\"special\":true,\"id\":259");
  EXPECT_EQ(error_of(f), "F: key 'id' appears twice in 'added_tokens'" + tail);
  EXPECT_EQ(error_of(file(",\"post_processor\":{\"a\":[{\"b\":1},{\"c\":1,\"c\":2}]}", model)),
            "F: key 'c' appears twice in 'b'" + tail);
  // A merge that is an object with a repeated key (and would be no merge at all).
  m = model;
  m.replace(m.find("\"Ġ a\""), 6, "{\"k\":1,\"k\":2}");
  EXPECT_EQ(error_of(file("", m)), "F: key 'k' appears twice in 'merges'" + tail);
}

TEST_F(TokenizerJsonOrder, SyntaxErrorsComeBeforeContentErrors) {
  // A bad vocab value (content) early, a syntax error at the very end.
  std::string m = R"("model":{"type":"BPE",)" + vocab_part() + "," + kMerges + "}";
  m.replace(m.find("\"ab\":256"), 8, "\"ab\":\"x\"");
  const std::string f = "{" + kAdded + "," + kPre + "," + m + "\n,\n  \"x\": tru}";
  EXPECT_EQ(error_of(f).rfind("F:3:11: not valid JSON: ", 0), 0u) << error_of(f);
  // Without the syntax error, the content error.
  EXPECT_EQ(error_of("{" + kAdded + "," + kPre + "," + m + "}"),
            "F: model.vocab['ab'] must be a token id (a non-negative integer)");
}

TEST_F(TokenizerJsonOrder, VocabErrorsNameTheFirstKeyInKeyOrder) {
  // As a JSON object held as a sorted map is walked: "aa" before "zz", wherever they stand.
  const std::string model_head = R"("model":{"type":"BPE","vocab":{)" + byte_entries();
  EXPECT_EQ(error_of("{" + kPre + "," + model_head + R"(,"zz":"x","yy":300,"aa":-1},"merges":[]}})"),
            "F: model.vocab['aa'] must be a token id (a non-negative integer)");
  // Byte 7's key is U+0107, which sorts after "zz".
  EXPECT_EQ(error_of("{" + kPre + "," + model_head + R"(,"zz":7},"merges":[]}})"),
            "F: model.vocab: id 7 is given to both 'zz' and '\xC4\x87'");
  EXPECT_EQ(error_of("{" + kPre + "," + model_head + R"(,"zz":301,"yy":300,"bb":300},"merges":[]}})"),
            "F: model.vocab: id 300 is given to both 'bb' and 'yy'");
}

TEST_F(TokenizerJsonOrder, MergeErrorsNameTheMerge) {
  auto with_merges = [&](const std::string& merges) {
    return error_of("{" + kPre + R"(,"model":{"merges":)" + merges + "," + vocab_part() + "}}");
  };
  EXPECT_EQ(with_merges(R"(["a b","a  b"])"), "F: model.merges[1]: 'a  b' is not two tokens separated by one space");
  EXPECT_EQ(with_merges(R"([["a","b","c"]])"), "F: model.merges[0] must be \"a b\" or [\"a\", \"b\"]");
  EXPECT_EQ(with_merges(R"([["a",1]])"), "F: model.merges[0] must be \"a b\" or [\"a\", \"b\"]");
  EXPECT_EQ(with_merges(R"(["a b","qq b"])"), "F: model.merges[1]: 'qq' is not in model.vocab");
  EXPECT_EQ(with_merges(R"(["b a"])"), "F: model.merges[0]: 'b' + 'a' = 'ba' is not in model.vocab");
  EXPECT_EQ(with_merges(R"({"a":"b"})"), "F: model.merges must be an array");
}

}  // namespace
}  // namespace lmforge::tok
