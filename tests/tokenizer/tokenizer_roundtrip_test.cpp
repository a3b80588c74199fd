// Round trips, decode modes, long repetitive inputs, and the BPE paths against each other.
#include <gtest/gtest.h>

#include "tokenizer_test_util.h"

namespace lmforge::tok {
namespace {

using testing::encoding;

class TokenizerRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerRoundTrip, RandomBytes) {
  const Tokenizer& tok = encoding(GetParam());
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) {
    const std::string s = testing::random_bytes(rng, rng() % 200);
    EXPECT_EQ(tok.decode(tok.encode_ordinary(s), DecodeMode::Bytes), s) << "case " << i;
  }
}

TEST_P(TokenizerRoundTrip, RandomUnicode) {
  const Tokenizer& tok = encoding(GetParam());
  std::mt19937_64 rng(11);
  for (int i = 0; i < 1000; ++i) {
    const std::string s = testing::random_unicode(rng, rng() % 120);
    const auto ids = tok.encode_ordinary(s);
    EXPECT_EQ(tok.decode(ids), s) << "case " << i;
    EXPECT_EQ(tok.decode(ids, DecodeMode::Lossy), s);
  }
}

TEST_P(TokenizerRoundTrip, LongRepetitiveInputs) {
  const Tokenizer& tok = encoding(GetParam());
  for (const std::string& s : {std::string(100000, 'a'), std::string(100000, ' '), std::string(100000, '1'),
                               std::string(50000, '\n'), [] {
                                 std::string t;
                                 for (int i = 0; i < 20000; ++i) t += "ab";
                                 return t;
                               }(),
                               [] {
                                 std::string t;
                                 for (int i = 0; i < 10000; ++i) t += "\xF0\x9F\x98\x80";  // emoji
                                 return t;
                               }()}) {
    const auto ids = tok.encode_ordinary(s);
    EXPECT_LE(ids.size(), s.size());  // r50k has no token of two spaces
    EXPECT_EQ(tok.decode(ids), s);
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerRoundTrip, ::testing::Values("r50k_base", "cl100k_base", "o200k_base"));

// Both merge loops (the heap for long pieces, the flat loop for short ones) against a naive
// reference written from tiktoken's description: merge the lowest-ranked adjacent pair, the
// leftmost on a tie.
std::vector<uint32_t> naive_bpe(const Tokenizer& tok, const std::string& piece) {
  if (auto id = tok.token_id(piece)) return {*id};
  std::vector<std::string> parts;
  for (char c : piece) parts.emplace_back(1, c);
  while (parts.size() > 1) {
    size_t best = 0;
    uint32_t best_rank = UINT32_MAX;
    for (size_t i = 0; i + 1 < parts.size(); ++i)
      if (auto r = tok.token_id(parts[i] + parts[i + 1]); r && *r < best_rank) {
        best_rank = *r;
        best = i;
      }
    if (best_rank == UINT32_MAX) break;
    parts[best] += parts[best + 1];
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  std::vector<uint32_t> ids;
  for (const auto& p : parts) ids.push_back(*tok.token_id(p));
  return ids;
}

TEST(TokenizerBpe, HeapPathEqualsNaiveReference) {
  const Tokenizer& tok = encoding("cl100k_base");
  std::mt19937_64 rng(3);
  const char* alphabet = "abcdeilnorstu";
  for (int i = 0; i < 200; ++i) {
    std::string piece;
    const size_t n = 65 + rng() % 400;  // longer than the flat loop's limit
    for (size_t k = 0; k < n; ++k) piece += alphabet[rng() % 13];
    ASSERT_EQ(tok.encode_ordinary(piece), naive_bpe(tok, piece)) << piece;
  }
  for (int i = 0; i < 500; ++i) {
    std::string piece;
    const size_t n = 2 + rng() % 60;
    for (size_t k = 0; k < n; ++k) piece += alphabet[rng() % 13];
    ASSERT_EQ(tok.encode_ordinary(piece), naive_bpe(tok, piece)) << piece;
  }
}

TEST(TokenizerDecode, StrictNamesTheOffsetLossyReplaces) {
  const Tokenizer& tok = encoding("cl100k_base");
  const std::string bad = "ok \xE2\x82 then \xFF end";
  const auto ids = tok.encode_ordinary(bad);
  EXPECT_EQ(tok.decode(ids, DecodeMode::Bytes), bad);
  try {
    tok.decode(ids);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(tok.decode(ids, DecodeMode::Lossy), "ok \xEF\xBF\xBD then \xEF\xBF\xBD end");
}

TEST(TokenizerDecode, IdOutOfRangeIsNamed) {
  const Tokenizer& tok = encoding("cl100k_base");
  for (uint32_t id : {100256u, 100277u, 4000000000u}) {
    const std::vector<uint32_t> ids = {9906, id};
    try {
      tok.decode(ids);
      FAIL() << "expected an Error for " << id;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("token id " + std::to_string(id)), std::string::npos) << e.what();
    }
    EXPECT_THROW(tok.token_bytes(id), Error);
  }
}

TEST(TokenizerByteLevel, BytesAndSpecials) {
  const Tokenizer tok = Tokenizer::byte_level({"<|endoftext|>"});
  EXPECT_EQ(tok.vocab_size(), 257u);
  EXPECT_EQ(tok.eot_id(), 256u);
  EXPECT_EQ(tok.encode("hi"), (std::vector<uint32_t>{'h', 'i'}));
  EXPECT_EQ(tok.encode("a<|endoftext|>", SpecialPolicy::all()), (std::vector<uint32_t>{'a', 256}));
  std::mt19937_64 rng(5);
  const std::string s = testing::random_bytes(rng, 1000);
  EXPECT_EQ(tok.decode(tok.encode_ordinary(s), DecodeMode::Bytes), s);
}

}  // namespace
}  // namespace lmforge::tok
