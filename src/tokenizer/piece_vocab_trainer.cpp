// Piece-level vocabularies: count the pieces, keep the most frequent.
#include "tokenizer/piece_vocab_trainer.h"

#include <algorithm>
#include <numeric>
#include <unordered_set>

#include "core/error.h"
#include "tokenizer/bpe_trainer_tokenizer.h"

namespace lmforge::tok {

void check_piece_vocab_options(const PieceVocabOptions& o) {
  std::unordered_set<std::string> seen;
  for (const std::string& s : o.special_tokens) {
    LF_CHECK(!s.empty(), "a special token is empty");
    LF_CHECK(seen.insert(s).second, "special token '{}' is given twice", s);
    LF_CHECK(s != kUnknownToken, "special token '{}' is the unknown token, which piece-level tokenizers add "
             "themselves", s);
  }
  const size_t minimum = o.special_tokens.size() + 2;
  LF_CHECK(o.vocab_size >= minimum, "vocab_size {} is too small: {} special token{} + the unknown token {} + at "
           "least one ordinary token need {}", o.vocab_size, o.special_tokens.size(),
           o.special_tokens.size() == 1 ? "" : "s", kUnknownToken, minimum);
  LF_CHECK(o.vocab_size < (size_t{1} << 31), "vocab_size {} does not fit 31 bits", o.vocab_size);
}

Tokenizer piece_tokenizer_from_counts(const PieceCounts& counts, const PieceVocabOptions& options,
                                      const Pretokenizer& pretokenizer, PieceVocabReport* report) {
  check_piece_vocab_options(options);
  std::vector<size_t> order(counts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Most frequent first; equal counts by their bytes (unsigned), a total order.
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (counts.count(a) != counts.count(b)) return counts.count(a) > counts.count(b);
    const std::string_view pa = counts.piece(a), pb = counts.piece(b);
    return std::lexicographical_compare(pa.begin(), pa.end(), pb.begin(), pb.end(),
                                        [](char x, char y) { return uint8_t(x) < uint8_t(y); });
  });
  const size_t n_tokens = std::min(order.size(), options.vocab_size - options.special_tokens.size() - 1);
  TokenizerSpec spec;
  spec.tokens.reserve(n_tokens);
  for (size_t i = 0; i < n_tokens; ++i) spec.tokens.emplace_back(std::string(counts.piece(order[i])), uint32_t(i));
  uint32_t next = uint32_t(n_tokens);
  for (const std::string& s : options.special_tokens) spec.specials.push_back({s, next++});
  spec.specials.push_back({std::string(kUnknownToken), next});
  spec.unknown_token = kUnknownToken;
  spec.pretokenizer = pretokenizer;
  spec.source = "trained piece vocabulary";
  if (report) {
    report->distinct_pieces = counts.size();
    report->pieces = counts.total_count();
    report->unknown_pieces = 0;
    for (size_t i = n_tokens; i < order.size(); ++i) report->unknown_pieces += counts.count(order[i]);
  }
  return Tokenizer::build(std::move(spec));
}

TrainedPieceTokenizer train_piece_tokenizer(const std::vector<std::string>& paths, const PieceVocabOptions& options,
                                            const Pretokenizer& pretokenizer) {
  check_piece_vocab_options(options);
  CountOptions co;
  co.n_threads = options.n_threads;
  co.special_tokens = options.special_tokens;
  co.progress = options.progress;
  PieceVocabReport report;
  const PieceCounts counts = count_pieces_in_files(paths, split_fn(pretokenizer), co, &report.count);
  Tokenizer tokenizer = piece_tokenizer_from_counts(counts, options, pretokenizer, &report);
  return {std::move(tokenizer), report};
}

}  // namespace lmforge::tok
