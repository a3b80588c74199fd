// Byte-level BPE training.
//
// Vocabulary layout (what the trained ids mean):
//   ids 0..255              the single bytes, id == byte value;
//   ids 256..256+M-1        the merged tokens, in the order they were learned (id == rank);
//   the next K ids          the special tokens, in the order given (so with the default single
//                           special, <|endoftext|> is the last id, as in GPT-2).
// vocab_size = 256 + M + K; a vocab_size below 256 + K is rejected naming that minimum. If the
// corpus runs out of pairs first, M is smaller and the specials follow the last merge.
//
// The rule. Each step merges the adjacent pair (a, b) with the highest count, where a pair's
// count is the number of adjacent positions holding it, summed over all pieces with their
// multiplicity. Ties go to the lexicographically GREATER pair, comparing (bytes(a), bytes(b))
// as a tuple of unsigned byte strings: first bytes(a) against bytes(a') (a proper prefix is
// smaller), then bytes(b) against bytes(b'). A merge replaces the occurrences left to right
// without overlap ("aaa" with (a, a) becomes [aa, a]). The result depends only on the multiset
// of pieces: never on the thread count, the hash-map order or the order of files.
//
// One token per byte string: a span of a word that ends up as one token never had a merge
// cross its edges, so its segmentation at every step is that of the span alone, a function of
// its bytes; hence two different pairs never spell the same bytes, and every merge adds one id
// (as in tiktoken's rank files). Both trainers still check, and would reuse the existing id.
//
// The algorithm (the classic fast one, as in sentencepiece and HF tokenizers): pieces become
// words of u32 symbols stored back to back in one array; a pair table keeps each pair's exact
// count and a postings list of the words that may hold it; a max-heap with lazy deletion holds
// (count, pair) entries, each an upper bound of the pair's current count. A merge rewrites only
// the words in its postings list and changes only the counts of the pairs next to each
// occurrence. Words of one symbol, which hold no pair, are left out. A naive twin
// (trainer_reference.h) recounts every pair after each merge; tests demand equal merges.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/bpe_trainer_count.h"

namespace lmforge::tok {

struct BpeMerge {
  uint32_t left = 0;
  uint32_t right = 0;
  uint32_t result = 0;  // id of bytes(left) + bytes(right)
  uint64_t count = 0;   // the pair's count when it was merged
  bool operator==(const BpeMerge&) const = default;
};

// What training learned, before special tokens are appended.
struct BpeModel {
  std::vector<std::string> tokens;  // id -> bytes: 256 single bytes, then the new tokens
  std::vector<BpeMerge> merges;     // in order; merges.size() >= tokens.size() - 256
  uint64_t input_bytes = 0;         // bytes of all counted pieces (with multiplicity)
  uint64_t output_tokens = 0;       // tokens those pieces become after all merges
  double bytes_per_token() const {
    return output_tokens > 0 ? static_cast<double>(input_bytes) / static_cast<double>(output_tokens) : 0.0;
  }
};

// Total order of the tie rule: is (la, ra) < (lb, rb) as tuples of unsigned byte strings?
bool pair_bytes_less(const std::string& la, const std::string& ra, const std::string& lb, const std::string& rb);

struct MergeOptions {
  size_t n_new_tokens = 0;  // stop after this many new ids (or when no pair is left)
  bool progress = false;
};

// The fast trainer's merge phase.
BpeModel learn_merges(const PieceCounts& pieces, const MergeOptions& options);

// Everything at once: files -> pieces -> merges.
struct TrainerOptions {
  size_t vocab_size = 32000;
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  int n_threads = 1;
  bool progress = false;
  CountOptions count;  // block and chunk sizes (its n_threads, specials and progress are set here)
};

struct TrainerReport {
  CountStats count;
  size_t distinct_pieces = 0;
  size_t n_merges = 0;
  size_t n_new_tokens = 0;
  double merge_seconds = 0;
  double merges_per_second = 0;
  double bytes_per_token = 0;  // on the training text, specials excluded
};

// Smallest accepted vocab_size for the given number of special tokens.
inline size_t min_vocab_size(size_t n_special_tokens) { return 256 + n_special_tokens; }

// Checks vocab_size and the special tokens (non-empty, distinct); throws Error naming the minimum.
void check_trainer_options(const TrainerOptions& options);

BpeModel train_bpe(const std::vector<std::string>& paths, const SplitFn& split, const TrainerOptions& options,
                   TrainerReport* report = nullptr);

}  // namespace lmforge::tok
