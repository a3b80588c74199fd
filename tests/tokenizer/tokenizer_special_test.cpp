// Special tokens: allowed sets, disallowed text, and no merging across a special.
#include <gtest/gtest.h>

#include "tokenizer_test_util.h"

namespace lmforge::tok {
namespace {

using testing::encoding;

TEST(TokenizerSpecial, DisallowedSpecialIsAnErrorNamingIt) {
  const Tokenizer& tok = encoding("cl100k_base");
  try {
    tok.encode("hello <|endoftext|> world");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("<|endoftext|>"), std::string::npos) << msg;
    EXPECT_NE(msg.find("byte offset 6"), std::string::npos) << msg;
  }
  // Allowing a different special does not allow this one.
  EXPECT_THROW(tok.encode("a<|endoftext|>", SpecialPolicy::only({"<|fim_prefix|>"})), Error);
}

TEST(TokenizerSpecial, OrdinaryAndAsTextTreatItAsText) {
  const Tokenizer& tok = encoding("cl100k_base");
  const std::string text = "x<|endoftext|>y";
  const auto plain = tok.encode_ordinary(text);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), tok.eot_id()), 0);
  SpecialPolicy as_text;
  as_text.disallowed_as_text = true;
  EXPECT_EQ(tok.encode(text, as_text), plain);
  EXPECT_EQ(tok.decode(plain), text);
}

TEST(TokenizerSpecial, AllowedListSplitsOnlyThose) {
  const Tokenizer& tok = encoding("cl100k_base");
  const std::string text = "a<|fim_prefix|>b<|endoftext|>c";
  SpecialPolicy p = SpecialPolicy::only({"<|endoftext|>"});
  p.disallowed_as_text = true;
  const auto ids = tok.encode(text, p);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 100257u), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 100258u), 0);
  const auto all = tok.encode(text, SpecialPolicy::all());
  EXPECT_EQ(std::count(all.begin(), all.end(), 100258u), 1);
  EXPECT_EQ(tok.decode(all), text);
  EXPECT_THROW(tok.encode(text, SpecialPolicy::only({"<|nope|>"})), Error);
}

TEST(TokenizerSpecial, NeverMergedAcross) {
  const Tokenizer& tok = encoding("r50k_base");
  // " hello" is one token; with a special in between, both sides are encoded on their own.
  const auto ids = tok.encode(" hel<|endoftext|>lo", SpecialPolicy::all());
  std::vector<uint32_t> expect = tok.encode_ordinary(" hel");
  expect.push_back(50256);
  const auto tail = tok.encode_ordinary("lo");
  expect.insert(expect.end(), tail.begin(), tail.end());
  EXPECT_EQ(ids, expect);
}

TEST(TokenizerSpecial, PolicyParse) {
  EXPECT_EQ(SpecialPolicy::parse("all").allowed, SpecialPolicy::Allowed::All);
  EXPECT_EQ(SpecialPolicy::parse("none").allowed, SpecialPolicy::Allowed::None);
  const auto p = SpecialPolicy::parse("<|a|>,<|b|>");
  EXPECT_EQ(p.allowed, SpecialPolicy::Allowed::List);
  EXPECT_EQ(p.list, (std::vector<std::string>{"<|a|>", "<|b|>"}));
}

TEST(TokenizerSpecial, LongestSpecialWinsAtAPosition) {
  const Tokenizer tok = Tokenizer::byte_level({"<|a|>", "<|a|>x"});
  EXPECT_EQ(tok.encode("<|a|>xy", SpecialPolicy::all()), (std::vector<uint32_t>{257, 'y'}));
  EXPECT_EQ(tok.encode("<|a|>y", SpecialPolicy::all()), (std::vector<uint32_t>{256, 'y'}));
}

TEST(TokenizerSpecial, LookupsAndEot) {
  const Tokenizer& tok = encoding("o200k_base");
  EXPECT_EQ(tok.special_id("<|endofprompt|>"), 200018u);
  EXPECT_FALSE(tok.special_id("<|fim_prefix|>").has_value());
  EXPECT_TRUE(tok.is_special(199999));
  EXPECT_FALSE(tok.is_special(0));
  EXPECT_FALSE(tok.has_id(199998));
  const Tokenizer none = Tokenizer::byte_level();
  EXPECT_THROW(none.eot_id(), Error);
}

}  // namespace
}  // namespace lmforge::tok
