// Multi-threaded encoding gives exactly the single-thread ids.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "tokenizer_test_util.h"

namespace lmforge::tok {
namespace {

using testing::encoding;

// Corpus-like text: prose, code, numbers, whitespace runs, and the cut-point traps (a space or
// punctuation before "\n", "\n/" for o200k, "\n" + digit).
std::string corpus_like(size_t target) {
  std::mt19937_64 rng(99);
  static const char* lines[] = {
      "The quick brown fox jumps over the lazy dog.",
      "int main(int argc, char** argv) { return 0; }",
      "    indented line with trailing spaces   ",
      "x = [1, 2, 3]  # comment",
      "/path/to/file.txt",
      "12345 67890 3.14159",
      "naïve café — “quoted” text; don't won't I'M",
      "日本語のテキストと中文",
      "emoji 😀👍🏽 and flags 🇺🇸",
      "",
      "\t\ttabs\tand\r\nCRLF",
      "!!!",
      "<|endoftext|>",
  };
  std::string s;
  while (s.size() < target) {
    s += lines[rng() % (sizeof(lines) / sizeof(lines[0]))];
    s += (rng() % 7 == 0) ? " \n" : "\n";
  }
  return s;
}

class TokenizerParallel : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerParallel, ThreadedEqualsSingleThread) {
  const Tokenizer& tok = encoding(GetParam());
  const std::string text = corpus_like(3 << 20);
  SpecialPolicy as_text;
  as_text.disallowed_as_text = true;
  const auto one = tok.encode(text, as_text);
  for (unsigned t : {2u, 3u, 8u}) EXPECT_EQ(tok.encode_parallel(text, t, as_text), one) << t << " threads";
  const auto with_specials = tok.encode(text, SpecialPolicy::all());
  EXPECT_EQ(tok.encode_parallel(text, 4, SpecialPolicy::all()), with_specials);
  EXPECT_THROW(tok.encode_parallel(text, 4), Error);  // the special text is not allowed by default
}

TEST_P(TokenizerParallel, BatchEqualsOneByOne) {
  const Tokenizer& tok = encoding(GetParam());
  std::vector<std::string> docs;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 300; ++i) docs.push_back(testing::random_unicode(rng, rng() % 3000));
  std::vector<std::string_view> views(docs.begin(), docs.end());
  const auto out = tok.encode_batch(views, 3);
  ASSERT_EQ(out.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(out[i], tok.encode_ordinary(docs[i])) << i;
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerParallel, ::testing::Values("r50k_base", "cl100k_base", "o200k_base"));

TEST_P(TokenizerParallel, ChunksInOrderEqualOneEncode) {
  const Tokenizer& tok = encoding(GetParam());
  const std::string text = corpus_like(9 << 20);  // more than two chunks of the 4 MiB cap
  const auto one = tok.encode(text, SpecialPolicy::all());
  for (unsigned threads : {1u, 3u}) {
    std::mutex mu;
    std::map<size_t, std::vector<uint32_t>> chunks;
    const size_t n = tok.encode_chunks(text, threads, SpecialPolicy::all(), [&](size_t i, std::vector<uint32_t>& ids) {
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_TRUE(chunks.emplace(i, std::move(ids)).second) << "chunk " << i << " twice";
    });
    EXPECT_GE(n, 3u) << threads << " threads";
    ASSERT_EQ(chunks.size(), n);
    std::vector<uint32_t> joined;
    for (const auto& [i, ids] : chunks) joined.insert(joined.end(), ids.begin(), ids.end());
    EXPECT_EQ(joined, one) << threads << " threads";
  }
  // A disallowed special token in a later chunk: the Error names its offset in the whole text.
  try {
    tok.encode_chunks(text, 2, {}, [](size_t, std::vector<uint32_t>&) {});
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    const size_t at = text.find("<|endoftext|>");
    EXPECT_NE(std::string(e.what()).find("byte offset " + std::to_string(at)), std::string::npos) << e.what();
  }
  // Text the pattern cannot cut, or a short one, is one chunk.
  size_t calls = 0;
  EXPECT_EQ(tok.encode_chunks("hello world", 4, {}, [&](size_t i, std::vector<uint32_t>& ids) {
    ++calls;
    EXPECT_EQ(i, 0u);
    EXPECT_EQ(ids, tok.encode("hello world"));
  }), 1u);
  EXPECT_EQ(calls, 1u);
}

TEST(TokenizerParallelCuts, RuleRejectsUnsafePositions) {
  const Pretokenizer p = Pretokenizer::named("r50k_base");
  EXPECT_TRUE(p.is_cut_point("foo\nbar", 4));
  EXPECT_FALSE(p.is_cut_point("foo \nbar", 5));  // r50k splits " \n" as " ", "\n" only before text
  EXPECT_FALSE(p.is_cut_point("foo\n bar", 4));
  EXPECT_FALSE(p.is_cut_point("foo\n/bar", 4));
  EXPECT_FALSE(Pretokenizer::regex("[a-z]+").is_cut_point("foo\nbar", 4));
  // The trap, encoded both ways.
  const Tokenizer& tok = encoding("r50k_base");
  std::string text;
  for (int i = 0; i < 40000; ++i) text += "foo \nbar\n";
  EXPECT_EQ(tok.encode_parallel(text, 4), tok.encode(text));
}

}  // namespace
}  // namespace lmforge::tok
