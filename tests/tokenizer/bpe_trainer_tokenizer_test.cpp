// Trained models as Tokenizers: id layout, encoding equals the trained segmentation, files
// round trip, thread count and patterns.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tokenizer/bpe_trainer_reference.h"
#include "tokenizer/bpe_trainer_tokenizer.h"
#include "bpe_trainer_test_util.h"

namespace lmforge::tok {
namespace {

namespace fs = std::filesystem;

class TrainerTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_trainer_tok_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    text_ = testing::random_words_corpus(3, 20000, "abcdefghijklmnopqrstuvwxyzABCDEF") +
            testing::unicode_corpus(8, 3000) + "<|endoftext|>" + testing::repetitive_corpus();
    path_ = (dir_ / "corpus.txt").string();
    std::ofstream(path_, std::ios::binary) << text_;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string text_;
  std::string path_;
};

TEST_F(TrainerTokenizerTest, IdLayoutAndSpecialsAtTheEnd) {
  TrainerOptions o;
  o.vocab_size = 1000;
  o.special_tokens = {"<|endoftext|>", "<|pad|>"};
  const TrainedTokenizer t = train_tokenizer({path_}, o);
  EXPECT_EQ(t.tokenizer.vocab_size(), 1000u);
  EXPECT_EQ(t.tokenizer.eot_id(), 998u);
  EXPECT_EQ(t.tokenizer.special_id("<|pad|>"), 999u);
  for (uint32_t b = 0; b < 256; ++b) EXPECT_EQ(t.tokenizer.token_bytes(b), std::string(1, static_cast<char>(b)));
  for (size_t i = 0; i < t.model.merges.size(); ++i) EXPECT_EQ(t.model.merges[i].result, 256 + i);
  EXPECT_EQ(t.report.n_merges, 742u);
  EXPECT_EQ(t.report.count.special_tokens, 1u);
}

TEST_F(TrainerTokenizerTest, EncodingTheTrainingTextGivesTheTrainedSegmentation) {
  for (const char* pattern : {"o200k_base", "cl100k_base", "r50k_base"}) {
    SCOPED_TRACE(pattern);
    TrainerOptions o;
    o.vocab_size = 2000;
    const TrainedTokenizer t = train_tokenizer({path_}, o, pattern);
    uint64_t n = 0;
    split_at_special_tokens(text_, o.special_tokens,
                            [&](std::string_view seg) { n += t.tokenizer.encode_ordinary(seg).size(); });
    EXPECT_EQ(n, t.model.output_tokens);
    EXPECT_EQ(t.model.input_bytes, text_.size() - 13);
    EXPECT_EQ(t.tokenizer.decode(t.tokenizer.encode_ordinary(text_), DecodeMode::Bytes), text_);
  }
}

TEST_F(TrainerTokenizerTest, SavedFilesLoadWithTheSameIds) {
  TrainerOptions o;
  o.vocab_size = 1500;
  const TrainedTokenizer t = train_tokenizer({path_}, o);
  const std::string json = (dir_ / "tokenizer.json").string(), tik = (dir_ / "tokenizer.tiktoken").string();
  t.tokenizer.save_tokenizer_json(json);
  t.tokenizer.save_tiktoken(tik);
  const std::vector<uint32_t> ids = t.tokenizer.encode(text_, SpecialPolicy::all());
  EXPECT_EQ(Tokenizer::load(json).encode(text_, SpecialPolicy::all()), ids);
  EXPECT_EQ(Tokenizer::load(tik, "o200k_base").encode_ordinary(text_), t.tokenizer.encode_ordinary(text_));
}

TEST_F(TrainerTokenizerTest, ThreadCountAndBlockSizeDoNotChangeTheVocabulary) {
  std::vector<std::string> first;
  for (int threads : {1, 2, 4}) {
    TrainerOptions o;
    o.vocab_size = 1200;
    o.n_threads = threads;
    o.count.block_bytes = threads == 4 ? 4096 : size_t{32} << 20;
    o.count.chunk_bytes = threads == 1 ? 1 << 20 : 512;
    const TrainedTokenizer t = train_tokenizer({path_, path_}, o);
    if (first.empty()) first = t.model.tokens;
    EXPECT_EQ(t.model.tokens, first) << threads;
  }
}

TEST_F(TrainerTokenizerTest, Patterns) {
  TrainerOptions o;
  o.vocab_size = 400;
  EXPECT_NO_THROW(train_tokenizer({path_}, o, R"(\p{L}+|\p{N}+|\s+|[^\s\p{L}\p{N}]+)"));
  try {
    train_tokenizer({path_}, o, "o200k");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("o200k_base"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTokenizerTest, SafeSplitsNeverChangeTheRealPatternsPieces) {
  // Line breaks next to every kind of character the patterns treat specially.
  std::string tricky;
  const char* const kEnds[] = {".", "'", "x", "9", " ", "\t", "\r", "/", "'s", "\xc2\xa0", "\xe3\x80\x80", "\xc3\xa9", "-"};
  const char* const kStarts[] = {"Abc", "abc", "/x", "9", " ", "\n", "'S", "\xc3\xa9t\xc3\xa9", "Z"};
  for (const char* e : kEnds) {
    for (const char* b : kStarts) tricky += std::string("w") + e + "\n" + b + " ";
  }
  const std::string text = tricky + text_;
  const std::string file = (dir_ / "tricky.txt").string();
  std::ofstream(file, std::ios::binary) << text;
  for (const char* name : {"o200k_base", "cl100k_base", "r50k_base"}) {
    SCOPED_TRACE(name);
    const Pretokenizer pt = pretokenizer_for_pattern(name);
    const auto expected = reference_count_pieces(text, split_fn(pt), {"<|endoftext|>"});
    CountOptions co;
    co.n_threads = 2;
    co.special_tokens = {"<|endoftext|>"};
    co.block_bytes = 300;
    co.chunk_bytes = 7;
    const PieceCounts pc = count_pieces_in_files({file}, split_fn(pt), co);
    std::vector<std::pair<std::string, uint64_t>> got;
    for (size_t i = 0; i < pc.size(); ++i) got.emplace_back(std::string(pc.piece(i)), pc.count(i));
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, expected);
    // The pre-tokenizer's own analysis agrees that each safe split is a cut point.
    for (size_t p = next_safe_split(text, 1, {}); p != std::string_view::npos; p = next_safe_split(text, p + 1, {})) {
      ASSERT_TRUE(pt.is_cut_point(text, p)) << "at " << p << ": " << text.substr(p > 10 ? p - 10 : 0, 20);
    }
  }
}

}  // namespace
}  // namespace lmforge::tok
