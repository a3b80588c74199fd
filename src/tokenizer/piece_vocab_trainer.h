// Piece-level vocabularies: the baselines of `lmforge tokenizer train --kind char|word`.
//
//  * char: the pieces are Unicode characters (one code point each; a run of invalid UTF-8
//    bytes is one piece), pre-tokenizer kCharPattern.
//  * word: the pieces are those of BPE's pre-tokenizer (the same regex, o200k_base by default):
//    words with their leading space, numbers, punctuation runs and whitespace runs. Not a
//    whitespace split: the pieces keep every byte of the text, so a text whose words are all in
//    the vocabulary decodes back exactly.
//
// The vocabulary is the vocab_size - specials - 1 most frequent pieces of the corpus (ties by
// their bytes, so the result never depends on the thread count or the file order), ids 0, 1, ...
// by falling count; then the special tokens, then kUnknownToken, which every other piece
// becomes (Tokenizer: TokenizerSpec::unknown_token). The OOV rate is the fraction of the
// corpus's pieces (characters or words) that are not in the vocabulary.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe_trainer_count.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::tok {

inline constexpr std::string_view kUnknownToken = "<|unk|>";
// One character per piece, in PCRE2 and in HF tokenizers' Oniguruma alike.
inline constexpr std::string_view kCharPattern = "[\\s\\S]";

struct PieceVocabOptions {
  size_t vocab_size = 0;  // ordinary tokens + special tokens + the unknown token
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  int n_threads = 1;
  bool progress = false;
};

struct PieceVocabReport {
  CountStats count;
  uint64_t distinct_pieces = 0;
  uint64_t pieces = 0;          // pieces of the corpus (with multiplicity)
  uint64_t unknown_pieces = 0;  // of those, the ones not in the vocabulary
  double oov_rate() const { return pieces ? static_cast<double>(unknown_pieces) / static_cast<double>(pieces) : 0.0; }
};

struct TrainedPieceTokenizer {
  Tokenizer tokenizer;
  PieceVocabReport report;
};

// Checks vocab_size (room for one ordinary token besides the specials and the unknown token)
// and the special tokens (non-empty, distinct, none spelled like the unknown token).
void check_piece_vocab_options(const PieceVocabOptions& options);

// The tokenizer of the counted pieces (report: distinct_pieces, pieces, unknown_pieces filled).
Tokenizer piece_tokenizer_from_counts(const PieceCounts& counts, const PieceVocabOptions& options,
                                      const Pretokenizer& pretokenizer, PieceVocabReport* report = nullptr);

TrainedPieceTokenizer train_piece_tokenizer(const std::vector<std::string>& paths, const PieceVocabOptions& options,
                                            const Pretokenizer& pretokenizer);

}  // namespace lmforge::tok
