// The tokenizer baselines of `tokenizer train --kind byte|char|word`: the vocabulary is the most
// frequent characters / words (hand-counted corpora), unknown pieces become <|unk|> at the OOV
// rate counted by hand, encoding and decoding, and each kind loads back from its tokenizer.json
// with the same ids. A tiny training run and its evaluation with each kind are in
// tests/train/tokenizer_kinds_training_test.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/file_util.h"
#include "tokenizer/bpe_trainer_tokenizer.h"
#include "tokenizer/piece_vocab_trainer.h"
#include "bpe_trainer_test_util.h"

namespace lmforge::tok {
namespace {

namespace fs = std::filesystem;

size_t count_id(const std::vector<uint32_t>& ids, uint32_t id) { return size_t(std::count(ids.begin(), ids.end(), id)); }

TEST(PieceVocab, CharKeepsTheMostFrequentCharactersAndCountsTheRestAsUnknown) {
  // a x4, ' ' x3, b x3, c x2, é x1: 13 characters. Room for 3 tokens (5 ids - <|endoftext|> - <|unk|>):
  // a, then the tie ' ' / b in byte order.
  const testing::ScratchDir dir("piece_vocab");
  const std::string corpus = dir.file("c.txt", "aaaa bbb cc\xC3\xA9 ");
  const TrainedPieceTokenizer t = train_piece_tokenizer({corpus}, {.vocab_size = 5}, pretokenizer_for_pattern(kCharPattern));
  const Tokenizer& tok = t.tokenizer;
  EXPECT_EQ(tok.vocab_size(), 5u);
  EXPECT_EQ(tok.token_bytes(0), "a");
  EXPECT_EQ(tok.token_bytes(1), " ");
  EXPECT_EQ(tok.token_bytes(2), "b");
  EXPECT_EQ(tok.special_id("<|endoftext|>"), 3u);
  ASSERT_EQ(tok.unknown_id(), 4u);
  EXPECT_EQ(t.report.pieces, 13u);
  EXPECT_EQ(t.report.unknown_pieces, 3u);  // c, c, é
  EXPECT_DOUBLE_EQ(t.report.oov_rate(), 3.0 / 13.0);
  // Encoding the corpus gives the same rate; é (two bytes) is one unknown character.
  const std::vector<uint32_t> ids = tok.encode(read_file(corpus));
  EXPECT_EQ(ids.size(), 13u);
  EXPECT_EQ(count_id(ids, 4), 3u);
  EXPECT_EQ(tok.encode("ab c\xC3\xA9"), (std::vector<uint32_t>{0, 2, 1, 4, 4}));
  EXPECT_EQ(tok.decode(tok.encode("ab c\xC3\xA9")), "ab <|unk|><|unk|>");
  EXPECT_EQ(tok.decode(tok.encode("ba ab")), "ba ab");  // known characters round-trip
  // Special-token text is cut out of the corpus, not counted.
  EXPECT_EQ(tok.encode("a<|endoftext|>b", SpecialPolicy::all()), (std::vector<uint32_t>{0, 3, 2}));
}

TEST(PieceVocab, WordUsesThePretokenizersPieces) {
  // o200k pieces: "the", " cat", " the", " dog", " the", " cat", " a": " cat" x2, " the" x2,
  // then one each of " a", " dog", "the". Room for 3 tokens: " cat", " the", " a" (ties in byte order).
  const testing::ScratchDir dir("piece_vocab");
  const std::string corpus = dir.file("w.txt", "the cat the dog the cat a");
  const TrainedPieceTokenizer t = train_piece_tokenizer({corpus}, {.vocab_size = 5}, pretokenizer_for_pattern("o200k_base"));
  const Tokenizer& tok = t.tokenizer;
  EXPECT_EQ(tok.token_bytes(0), " cat");
  EXPECT_EQ(tok.token_bytes(1), " the");
  EXPECT_EQ(tok.token_bytes(2), " a");
  ASSERT_EQ(tok.unknown_id(), 4u);
  EXPECT_EQ(t.report.pieces, 7u);
  EXPECT_EQ(t.report.unknown_pieces, 2u);
  EXPECT_EQ(tok.encode("the cat sat"), (std::vector<uint32_t>{4, 0, 4}));
  EXPECT_EQ(tok.decode(tok.encode(" the cat")), " the cat");
  EXPECT_EQ(tok.decode(tok.encode("the cat")), "<|unk|> cat");
}

// " ab" is spelled " a" + "b", both tokens too: a word is still looked up whole, never merged.
TEST(PieceVocab, AWordSpelledByTwoOtherWordsStaysOneToken) {
  const testing::ScratchDir dir("piece_vocab");
  const std::string corpus = dir.file("ab.txt", "b a ab");
  const Tokenizer tok =
      train_piece_tokenizer({corpus}, {.vocab_size = 5}, pretokenizer_for_pattern("o200k_base")).tokenizer;
  EXPECT_EQ(tok.token_bytes(0), " a");
  EXPECT_EQ(tok.token_bytes(1), " ab");
  EXPECT_EQ(tok.token_bytes(2), "b");
  EXPECT_EQ(tok.encode("b a ab ba"), (std::vector<uint32_t>{2, 0, 1, 4}));
}

TEST(PieceVocab, ASmallCorpusGivesASmallerVocabularyAndOptionsAreChecked) {
  const testing::ScratchDir dir("piece_vocab");
  const std::string corpus = dir.file("s.txt", "abab");
  const TrainedPieceTokenizer t = train_piece_tokenizer({corpus}, {.vocab_size = 100}, pretokenizer_for_pattern(kCharPattern));
  EXPECT_EQ(t.tokenizer.vocab_size(), 4u);  // a, b, <|endoftext|>, <|unk|>
  EXPECT_EQ(t.report.unknown_pieces, 0u);
  EXPECT_THROW(check_piece_vocab_options({.vocab_size = 2}), Error);
  EXPECT_THROW(check_piece_vocab_options({.vocab_size = 10, .special_tokens = {"<|unk|>"}}), Error);
}

// Each kind saved as tokenizer.json loads back as the same tokenizer: same ids on mixed text
// (invalid UTF-8 included), same unknown id, same vocabulary.
TEST(PieceVocab, EveryKindLoadsBackFromItsTokenizerJson) {
  const testing::ScratchDir dir("piece_vocab");
  std::mt19937 rng(5);
  std::string text = "The quick brown fox, naïve café — 123 jumps.\n\tOver the lazy dog! ";
  for (int i = 0; i < 200; ++i) text += static_cast<char>(rng() % 256);
  const std::string corpus = dir.file("k.txt", "The quick brown fox jumps over the lazy dog. The dog sleeps, café.");
  std::vector<std::pair<std::string, Tokenizer>> kinds;
  kinds.emplace_back("byte", Tokenizer::byte_level({"<|endoftext|>"}));
  kinds.emplace_back("char", train_piece_tokenizer({corpus}, {.vocab_size = 20}, pretokenizer_for_pattern(kCharPattern)).tokenizer);
  kinds.emplace_back("word", train_piece_tokenizer({corpus}, {.vocab_size = 10}, pretokenizer_for_pattern("o200k_base")).tokenizer);
  for (const auto& [kind, tok] : kinds) {
    SCOPED_TRACE(kind);
    const std::string path = dir.path + "/" + kind + ".json";
    tok.save_tokenizer_json(path);
    const Tokenizer back = Tokenizer::load(path);
    EXPECT_EQ(back.vocab_size(), tok.vocab_size());
    EXPECT_EQ(back.unknown_id(), tok.unknown_id());
    EXPECT_EQ(back.special_tokens(), tok.special_tokens());
    for (uint32_t id = 0; id < tok.vocab_size(); ++id) EXPECT_EQ(back.token_bytes(id), tok.token_bytes(id)) << id;
    EXPECT_EQ(back.encode(text), tok.encode(text));
    if (kind == "byte") {
      EXPECT_EQ(back.decode(back.encode(text), DecodeMode::Bytes), text);  // exact round trip
      EXPECT_EQ(back.encode(text).size(), text.size());
    } else {
      EXPECT_GT(count_id(back.encode(text), *back.unknown_id()), 0u);
    }
  }
}

TEST(PieceVocab, AWordLevelFileWithoutItsUnknownTokenIsRefused) {
  const testing::ScratchDir dir("piece_vocab");
  const std::string path = dir.file("bad.json", R"({"model":{"type":"WordLevel","vocab":{"a":0},"unk_token":"<unk>"},
    "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}})");
  try {
    Tokenizer::load(path);
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.unk_token '<unk>' is not in model.vocab"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lmforge::tok
