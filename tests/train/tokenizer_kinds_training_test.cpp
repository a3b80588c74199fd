// A tiny run with each tokenizer kind (byte, char, word, bpe): the tokenizer is trained and saved
// as tokenizer.json, the corpus tokenized into shards next to it, and training finds the file
// there and reports a finite bits per byte at its final evaluation. Bits per byte count the
// text's bytes: with the byte tokenizer every predicted id but the end-of-text one is one byte.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "data/corpus_tokenize.h"
#include "tokenizer/bpe_trainer_tokenizer.h"
#include "tokenizer/piece_vocab_trainer.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

class TokenizerKindsTraining : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    root_ = test::temp_dir("tokenizer_kinds_" + GetParam());
    fs::remove_all(root_);
    fs::create_directories(root_ + "/data");
    // Paragraphs of a small vocabulary, so that char and word have few unknown pieces.
    std::string text;
    const char* const words[] = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "café"};
    for (int p = 0; p < 60; ++p) {
      for (int w = 0; w < 40; ++w) text += std::string(w ? " " : "") + words[(p * 7 + w * w) % 10];
      text += ".\n\n";
    }
    corpus_ = root_ + "/corpus.txt";
    std::ofstream(corpus_, std::ios::binary) << text;
  }
  void TearDown() override { fs::remove_all(root_); }

  tok::Tokenizer train_tokenizer_of_kind(const std::string& kind) {
    if (kind == "byte") return tok::Tokenizer::byte_level({"<|endoftext|>"});
    if (kind == "char")
      return tok::train_piece_tokenizer({corpus_}, {.vocab_size = 24}, tok::pretokenizer_for_pattern(tok::kCharPattern))
          .tokenizer;
    if (kind == "word")
      return tok::train_piece_tokenizer({corpus_}, {.vocab_size = 16}, tok::pretokenizer_for_pattern("o200k_base"))
          .tokenizer;
    tok::TrainerOptions o;
    o.vocab_size = 280;
    return tok::train_tokenizer({corpus_}, o).tokenizer;
  }

  std::string root_, corpus_;
};

TEST_P(TokenizerKindsTraining, TrainsAndEvaluatesWithBitsPerByte) {
  const tok::Tokenizer tokenizer = train_tokenizer_of_kind(GetParam());
  const std::string data = root_ + "/data";
  tokenizer.save_tokenizer_json(data + "/tokenizer.json");
  data::TokenizeOptions o;
  o.inputs = {corpus_};
  o.output_dir = data;
  o.val_fraction = 0.2;
  o.documents = data::DocumentMode::Paragraph;
  const data::TokenizeSummary s = data::tokenize_corpus(tok::Tokenizer::load(data + "/tokenizer.json"), o);
  ASSERT_GT(s.val_tokens, 100u);

  RunConfig c = test::tiny_run(data, root_ + "/run");
  c.model.vocab_size = int64_t(tokenizer.vocab_size());
  c.train.steps = 3;
  c.eval.every = 0;
  c.checkpoint.every = 0;
  const TrainSummary r = run_training(c, {.quiet = true});
  ASSERT_TRUE(r.val_loss.has_value());
  ASSERT_TRUE(r.val_bits_per_byte.has_value());
  EXPECT_TRUE(std::isfinite(*r.val_bits_per_byte));
  EXPECT_GT(*r.val_bits_per_byte, 0.0);
  if (GetParam() == "byte") {
    // bits/byte = loss / ln 2 · tokens / bytes, and the bytes are the tokens less the end-of-text
    // ids, one per validation document (each id is predicted except the shard's first).
    const double tokens = double(s.val_tokens - 1), bytes = double(s.val_tokens - s.val_documents);
    EXPECT_NEAR(*r.val_bits_per_byte, *r.val_loss / std::log(2.0) * tokens / bytes, 1e-9 * *r.val_bits_per_byte);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, TokenizerKindsTraining, ::testing::Values("byte", "char", "word", "bpe"));

}  // namespace
}  // namespace lmforge::train
