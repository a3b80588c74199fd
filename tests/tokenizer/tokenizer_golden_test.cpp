// Ids identical to tiktoken's on every golden string of the three OpenAI encodings.
#include <gtest/gtest.h>

#include "tokenizer_test_util.h"

namespace lmforge::tok {
namespace {

using testing::encoding;
using testing::golden;

class TokenizerGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerGolden, OrdinaryIdsMatchTiktoken) {
  const Tokenizer& tok = encoding(GetParam());
  const auto cases = golden(GetParam());
  ASSERT_EQ(cases.size(), 584u);
  size_t failures = 0;
  for (const auto& c : cases) {
    const auto ids = tok.encode_ordinary(c.text);
    if (ids != c.ids && ++failures <= 5) ADD_FAILURE() << GetParam() << " golden line " << c.line << ": " << c.text;
    EXPECT_EQ(tok.decode(ids), c.text) << "line " << c.line;
  }
  EXPECT_EQ(failures, 0u);
}

TEST_P(TokenizerGolden, AllSpecialsAllowedMatchTiktoken) {
  const Tokenizer& tok = encoding(GetParam());
  const auto cases = golden(GetParam(), true);
  ASSERT_EQ(cases.size(), 4u);
  for (const auto& c : cases) {
    EXPECT_EQ(tok.encode(c.text, SpecialPolicy::all()), c.ids) << "line " << c.line << ": " << c.text;
    EXPECT_EQ(tok.decode(c.ids), c.text);
  }
}

TEST_P(TokenizerGolden, EncodeWithoutSpecialTextEqualsOrdinary) {
  // encode() with the default policy only differs from encode_ordinary by raising on special
  // text; on strings without any it gives the same ids.
  const Tokenizer& tok = encoding(GetParam());
  for (const auto& c : golden(GetParam())) {
    if (c.text.find("<|") != std::string::npos) continue;
    EXPECT_EQ(tok.encode(c.text), c.ids) << "line " << c.line;
  }
}

TEST_P(TokenizerGolden, VocabularyShape) {
  const Tokenizer& tok = encoding(GetParam());
  const std::map<std::string, std::pair<size_t, size_t>> expect = {
      {"r50k_base", {50257, 50256}}, {"cl100k_base", {100277, 100256}}, {"o200k_base", {200019, 199998}}};
  EXPECT_EQ(tok.vocab_size(), expect.at(GetParam()).first);
  EXPECT_EQ(tok.n_ordinary_tokens(), expect.at(GetParam()).second);
  EXPECT_EQ(tok.pretokenizer().name(), GetParam());
  EXPECT_TRUE(tok.pretokenizer().uses_scanner());
  EXPECT_EQ(tok.eot_id(), GetParam() == "r50k_base" ? 50256u : GetParam() == "cl100k_base" ? 100257u : 199999u);
  EXPECT_EQ(tok.merge_rule(), MergeRule::Ranks);
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerGolden, ::testing::Values("r50k_base", "cl100k_base", "o200k_base"));

TEST(TokenizerGoldenAlias, Gpt2IsR50k) {
  const Tokenizer tok = Tokenizer::load(testing::tokenizers_dir() + "/r50k_base.tiktoken", "gpt2");
  EXPECT_EQ(tok.pretokenizer().name(), "r50k_base");
  for (const auto& c : golden("r50k_base")) ASSERT_EQ(tok.encode_ordinary(c.text), c.ids) << c.line;
}

}  // namespace
}  // namespace lmforge::tok
