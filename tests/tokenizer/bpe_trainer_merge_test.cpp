// The fast BPE merge phase against its naive twin, and the tie rule.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/bpe_trainer_reference.h"
#include "bpe_trainer_test_util.h"

namespace lmforge::tok {
namespace {

using testing::simple_split_fn;

std::vector<std::pair<std::string, uint64_t>> to_vector(const PieceCounts& pc) {
  std::vector<std::pair<std::string, uint64_t>> v;
  for (size_t i = 0; i < pc.size(); ++i) v.emplace_back(std::string(pc.piece(i)), pc.count(i));
  std::sort(v.begin(), v.end());
  return v;
}

PieceCounts from_vector(const std::vector<std::pair<std::string, uint64_t>>& v) {
  PieceCounts pc;
  for (const auto& [w, c] : v) pc.add(w, c);
  return pc;
}

std::string merge_text(const BpeModel& m, const BpeMerge& x) {
  return "(" + m.tokens[x.left] + "|" + m.tokens[x.right] + ")x" + std::to_string(x.count);
}

// Learns with both trainers and demands identical merges, tokens and compression.
void expect_same_as_reference(const std::string& text, size_t n_new, const std::vector<std::string>& specials = {}) {
  const auto words = reference_count_pieces(text, simple_split_fn(), specials);
  const BpeModel ref = reference_learn_merges(words, n_new);
  CountOptions co{.n_threads = 2, .special_tokens = specials, .chunk_bytes = 97};
  const PieceCounts pieces = count_pieces_in_text(text, simple_split_fn(), co);
  ASSERT_EQ(to_vector(pieces), words);
  const BpeModel fast = learn_merges(pieces, {.n_new_tokens = n_new});
  ASSERT_EQ(fast.merges.size(), ref.merges.size());
  for (size_t i = 0; i < ref.merges.size(); ++i) {
    ASSERT_EQ(fast.merges[i], ref.merges[i]) << "merge " << i << ": fast " << merge_text(fast, fast.merges[i])
                                             << " reference " << merge_text(ref, ref.merges[i]);
  }
  EXPECT_EQ(fast.tokens, ref.tokens);
  EXPECT_EQ(fast.input_bytes, ref.input_bytes);
  EXPECT_EQ(fast.output_tokens, ref.output_tokens);
}

TEST(TrainerMerge, MatchesReferenceOnRandomWords) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(seed);
    expect_same_as_reference(testing::random_words_corpus(seed, 3000), 300);
  }
}

TEST(TrainerMerge, MatchesReferenceOnLargeAlphabet) {
  expect_same_as_reference(testing::random_words_corpus(7, 4000, "abcdefghijklmnopqrstuvwxyzABCDEFGH"), 400);
}

TEST(TrainerMerge, MatchesReferenceOnRepetitiveText) {
  // Runs out of pairs: every word collapses into one token.
  expect_same_as_reference(testing::repetitive_corpus(), 1000);
}

TEST(TrainerMerge, MatchesReferenceOnUnicode) {
  expect_same_as_reference(testing::unicode_corpus(5, 2000), 300);
}

TEST(TrainerMerge, MatchesReferenceOnTieHeavyCorpus) {
  for (uint32_t seed : {11u, 12u}) {
    SCOPED_TRACE(seed);
    expect_same_as_reference(testing::tie_heavy_corpus(seed, 1500), 400);
  }
}

TEST(TrainerMerge, MatchesReferenceWithSpecialTokens) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += testing::random_words_corpus(i, 50) + "<|endoftext|>";
  expect_same_as_reference(text, 200, {"<|endoftext|>"});
}

TEST(TrainerMerge, MatchesReferenceOnManySmallCorpora) {
  // Small random corpora over two or three letters: long runs, overlaps and ties everywhere.
  for (uint32_t seed = 0; seed < 300; ++seed) {
    std::mt19937 rng(seed);
    std::vector<std::pair<std::string, uint64_t>> words;
    const int n_letters = 2 + static_cast<int>(seed % 2);
    for (int i = 0; i < 12; ++i) {
      std::string w;
      const int len = 2 + static_cast<int>(rng() % 9);
      for (int k = 0; k < len; ++k) w += static_cast<char>('a' + rng() % n_letters);
      words.emplace_back(w, 1 + rng() % 5);
    }
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end(),
                            [](const auto& x, const auto& y) { return x.first == y.first; }),
                words.end());
    const BpeModel ref = reference_learn_merges(words, 40);
    const BpeModel fast = learn_merges(from_vector(words), {.n_new_tokens = 40});
    ASSERT_EQ(fast.merges, ref.merges) << "seed " << seed;
    ASSERT_EQ(fast.tokens, ref.tokens) << "seed " << seed;
    ASSERT_EQ(fast.output_tokens, ref.output_tokens) << "seed " << seed;
  }
}

TEST(TrainerMerge, TieGoesToTheGreaterPair) {
  // Equal counts: (c, d) > (a, b).
  BpeModel m = learn_merges(from_vector({{"ab", 1}, {"cd", 1}}), {.n_new_tokens = 2});
  ASSERT_EQ(m.merges.size(), 2u);
  EXPECT_EQ(m.tokens[m.merges[0].result], "cd");
  EXPECT_EQ(m.tokens[m.merges[1].result], "ab");
  // Bytes compare unsigned: 0xff > 'a'.
  m = learn_merges(from_vector({{"ab", 1}, {"\xff\x01", 1}}), {.n_new_tokens = 1});
  EXPECT_EQ(m.tokens[m.merges[0].result], "\xff\x01");
  // Same left: the right side decides.
  m = learn_merges(from_vector({{"ab", 1}, {"ac", 1}}), {.n_new_tokens = 1});
  EXPECT_EQ(m.tokens[m.merges[0].result], "ac");
  // Left "ab" > left "a" (a proper prefix is smaller), even though "x" > "y" is false here:
  // (a,b) x4 first; then (ab, y) and (a, x) both count 1; (ab, y) wins.
  m = learn_merges(from_vector({{"ab", 3}, {"aby", 1}, {"ax", 1}}), {.n_new_tokens = 3});
  ASSERT_EQ(m.merges.size(), 3u);
  EXPECT_EQ(m.tokens[m.merges[0].result], "ab");
  EXPECT_EQ(m.tokens[m.merges[1].result], "aby");
  EXPECT_EQ(m.tokens[m.merges[2].result], "ax");
  // Higher counts always win over the tie rule.
  m = learn_merges(from_vector({{"ab", 2}, {"cd", 1}}), {.n_new_tokens = 1});
  EXPECT_EQ(m.tokens[m.merges[0].result], "ab");
}

TEST(TrainerMerge, PairOrderIsATupleOfUnsignedByteStrings) {
  EXPECT_TRUE(pair_bytes_less("a", "b", "a", "c"));
  EXPECT_FALSE(pair_bytes_less("a", "c", "a", "b"));
  EXPECT_TRUE(pair_bytes_less("a", "zzz", "ab", "a"));   // left decides first; prefix is smaller
  EXPECT_TRUE(pair_bytes_less("ab", "c", "abc", ""));    // tuples, not concatenations
  EXPECT_TRUE(pair_bytes_less("\x7f", "a", "\x80", "a"));  // unsigned
  EXPECT_FALSE(pair_bytes_less("a", "b", "a", "b"));
}

TEST(TrainerMerge, OverlappingRunsMergeLeftToRight) {
  // "aaa": (a,a) x2 -> [aa, a]; then (aa, a) -> "aaa".
  const BpeModel m = learn_merges(from_vector({{"aaa", 1}}), {.n_new_tokens = 5});
  ASSERT_EQ(m.merges.size(), 2u);
  EXPECT_EQ(m.merges[0].count, 2u);
  EXPECT_EQ(m.tokens[m.merges[1].left], "aa");
  EXPECT_EQ(m.tokens[m.merges[1].right], "a");
  EXPECT_EQ(m.output_tokens, 1u);
}

TEST(TrainerMerge, ThreadCountDoesNotChangeTheResult) {
  const std::string text = testing::random_words_corpus(21, 20000) + testing::unicode_corpus(3, 3000);
  std::vector<BpeMerge> first;
  for (int threads : {1, 2, 3, 4}) {
    for (size_t chunk : {size_t{61}, size_t{4096}, size_t{1} << 20}) {
      CountOptions co;
      co.n_threads = threads;
      co.chunk_bytes = chunk;
      const BpeModel m = learn_merges(count_pieces_in_text(text, simple_split_fn(), co), {.n_new_tokens = 500});
      if (first.empty()) first = m.merges;
      ASSERT_EQ(m.merges, first) << threads << " threads, chunks of " << chunk;
    }
  }
}

TEST(TrainerMerge, VocabSizeBelowTheMinimumIsRejected) {
  TrainerOptions o;
  o.special_tokens = {"<|endoftext|>", "<|pad|>"};
  o.vocab_size = 257;
  try {
    check_trainer_options(o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("minimum is 258"), std::string::npos) << e.what();
  }
  o.vocab_size = 258;
  EXPECT_NO_THROW(check_trainer_options(o));
  o.special_tokens = {"<|a|>", "<|a|>"};
  EXPECT_THROW(check_trainer_options(o), Error);
}

TEST(TrainerMerge, StopsWhenNoPairIsLeft) {
  const BpeModel m = learn_merges(from_vector({{"abc", 5}, {"d", 100}}), {.n_new_tokens = 100});
  EXPECT_EQ(m.merges.size(), 2u);
  EXPECT_EQ(m.tokens.size(), 258u);
  EXPECT_EQ(m.input_bytes, 115u);
  EXPECT_EQ(m.output_tokens, 105u);
}

}  // namespace
}  // namespace lmforge::tok
