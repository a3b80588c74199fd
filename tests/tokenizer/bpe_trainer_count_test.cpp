// Counting pre-tokenized pieces: the map, cutting at special tokens and safe splits, streaming
// files in blocks, thread-count independence.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/bpe_trainer_count.h"
#include "tokenizer/bpe_trainer_reference.h"
#include "bpe_trainer_test_util.h"

namespace lmforge::tok {
namespace {

namespace fs = std::filesystem;
using testing::simple_split_fn;

std::vector<std::pair<std::string, uint64_t>> sorted(const PieceCounts& pc) {
  std::vector<std::pair<std::string, uint64_t>> v;
  for (size_t i = 0; i < pc.size(); ++i) v.emplace_back(std::string(pc.piece(i)), pc.count(i));
  std::sort(v.begin(), v.end());
  return v;
}

TEST(TrainerCount, PieceCountsAddFindMerge) {
  PieceCounts a, b;
  for (int i = 0; i < 20000; ++i) a.add(fmt::format("w{}", i % 5000));
  a.add(std::string("\0\xff", 2), 7);
  a.add("");
  EXPECT_EQ(a.size(), 5002u);
  EXPECT_EQ(a.find("w42"), 4u);
  EXPECT_EQ(a.find(std::string("\0\xff", 2)), 7u);
  EXPECT_EQ(a.find(""), 1u);
  EXPECT_FALSE(a.find("w5000").has_value());
  b.add("w42", 10);
  b.add("new", 3);
  a.merge_from(b);
  EXPECT_EQ(a.find("w42"), 14u);
  EXPECT_EQ(a.find("new"), 3u);
  EXPECT_EQ(a.total_count(), 20000u + 7 + 1 + 13);
}

TEST(TrainerCount, SplitAtSpecialTokens) {
  std::vector<std::string> segs;
  auto collect = [&](std::string_view s) { segs.emplace_back(s); };
  const std::vector<std::string> specials = {"<|a|>", "<|a|>x", "<|b|>"};
  EXPECT_EQ(split_at_special_tokens("x<|a|>xy<|b|><|b|>z<|a|>", specials, collect), 4u);
  EXPECT_EQ(segs, (std::vector<std::string>{"x", "y", "z"}));  // "<|a|>x" is longer than "<|a|>"
  segs.clear();
  EXPECT_EQ(split_at_special_tokens("plain", {}, collect), 0u);
  EXPECT_EQ(segs, std::vector<std::string>{"plain"});
}

TEST(TrainerCount, SafeSplits) {
  const std::vector<std::string> none;
  EXPECT_TRUE(is_safe_split("ab.\nCd", 4, none));
  EXPECT_FALSE(is_safe_split("ab \nCd", 4, none));    // whitespace before the line break
  EXPECT_FALSE(is_safe_split("ab\n\nCd", 4, none));   // a blank line
  EXPECT_FALSE(is_safe_split("ab.\n1d", 4, none));    // not a letter after it
  EXPECT_FALSE(is_safe_split("ab.\n/d", 4, none));    // o200k's [\r\n/]* could continue
  EXPECT_FALSE(is_safe_split("a\xc2\x85\nb", 4, none));  // non-ASCII before (U+0085 is \s)
  EXPECT_FALSE(is_safe_split("x.\nHuman", 3, {".\nH"}));  // inside a special token
  EXPECT_TRUE(is_safe_split("x.\nHuman", 3, {"<|endoftext|>"}));
  const std::string t = "aa\nbb\n\ncc.\ndd";
  EXPECT_EQ(next_safe_split(t, 0, none), 3u);
  EXPECT_EQ(next_safe_split(t, 4, none), 11u);
  EXPECT_EQ(prev_safe_split(t, t.size() - 1, none), 11u);
  EXPECT_EQ(prev_safe_split(t, 10, none), 3u);
  EXPECT_EQ(next_safe_split("no breaks", 0, none), std::string_view::npos);
}

TEST(TrainerCount, TextCountsMatchTheReferenceForAnyThreadsAndChunks) {
  std::string text;
  for (int i = 0; i < 30; ++i) text += testing::random_words_corpus(100 + i, 300) + "<|endoftext|>";
  text += testing::unicode_corpus(9, 500);
  const std::vector<std::string> specials = {"<|endoftext|>"};
  const auto ref = reference_count_pieces(text, simple_split_fn(), specials);
  for (int threads : {1, 2, 3}) {
    for (size_t chunk : {size_t{1}, size_t{50}, size_t{1000}, size_t{1} << 20}) {
      CountStats st;
      const PieceCounts pc = count_pieces_in_text(
          text, simple_split_fn(), {.n_threads = threads, .special_tokens = specials, .chunk_bytes = chunk}, &st);
      ASSERT_EQ(sorted(pc), ref) << threads << " threads, chunk " << chunk;
      EXPECT_EQ(st.special_tokens, 30u);
      EXPECT_EQ(st.bytes, text.size());
      EXPECT_EQ(st.text_bytes, text.size() - 30 * 13);
    }
  }
}

TEST(TrainerCount, StreamedFilesMatchTheReference) {
  const testing::ScratchDir dir("trainer_count");
  const std::string t1 = testing::random_words_corpus(1, 5000) + "<|endoftext|>" + testing::random_words_corpus(2, 50);
  const std::string t2 = testing::unicode_corpus(4, 800);
  const std::vector<std::string> files = {dir.file("a.txt", t1), dir.file("b.txt", t2)};
  const std::vector<std::string> specials = {"<|endoftext|>"};
  auto ref = reference_count_pieces(t1, simple_split_fn(), specials);
  for (const auto& [w, c] : reference_count_pieces(t2, simple_split_fn(), specials)) {
    auto it = std::find_if(ref.begin(), ref.end(), [&w = w](const auto& x) { return x.first == w; });
    if (it == ref.end()) {
      ref.emplace_back(w, c);
    } else {
      it->second += c;
    }
  }
  std::sort(ref.begin(), ref.end());
  for (int threads : {1, 2}) {
    for (size_t block : {size_t{64}, size_t{1000}, size_t{1} << 20}) {
      CountStats st;
      const PieceCounts pc = count_pieces_in_files(
          files, simple_split_fn(),
          {.n_threads = threads, .special_tokens = specials, .block_bytes = block, .chunk_bytes = 100}, &st);
      ASSERT_EQ(sorted(pc), ref) << threads << " threads, block " << block;
      EXPECT_EQ(st.bytes, t1.size() + t2.size());
      EXPECT_EQ(st.forced_splits, 0u);
    }
  }
}

TEST(TrainerCount, FilesAreSeparateDocuments) {
  const testing::ScratchDir dir("trainer_count");
  const std::vector<std::string> files = {dir.file("a.txt", "abc"), dir.file("b.txt", "def")};
  const PieceCounts pc = count_pieces_in_files(files, simple_split_fn(), {});
  EXPECT_EQ(sorted(pc), (std::vector<std::pair<std::string, uint64_t>>{{"abc", 1}, {"def", 1}}));
}

TEST(TrainerCount, TextWithoutSafeSplitsIsCutWhenTooLong) {
  const testing::ScratchDir dir("trainer_count");
  std::string line;
  for (int i = 0; i < 2000; ++i) line += "word ";
  const std::string path = dir.file("one_line.txt", line);
  CountStats st;
  CountOptions co;
  co.block_bytes = 512;
  co.max_block_bytes = 2048;
  const PieceCounts pc = count_pieces_in_files({path}, simple_split_fn(), co, &st);
  EXPECT_GT(st.forced_splits, 0u);
  EXPECT_EQ(st.bytes, line.size());
  EXPECT_EQ(pc.total_count() > 0, true);
}

TEST(TrainerCount, MissingFileIsAnErrorNamingIt) {
  try {
    count_pieces_in_files({"/nonexistent/corpus.txt"}, simple_split_fn(), {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/corpus.txt"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lmforge::tok
