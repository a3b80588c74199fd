// The slow twin of the BPE trainer (trainer.h): after every merge it recounts all pairs of all
// words from scratch and picks the best by scanning them, so its only logic is the rule itself.
// Tests demand that the fast trainer learns exactly the same merges. Quadratic: for tests only.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/bpe_trainer.h"

namespace lmforge::tok {

// Same contract as learn_merges: words with their counts in, merges out.
BpeModel reference_learn_merges(const std::vector<std::pair<std::string, uint64_t>>& words, size_t n_new_tokens);

// Counts pieces the obvious way: cut the whole text at special tokens, split each segment,
// count in a std::map. For checking count_pieces_in_*.
std::vector<std::pair<std::string, uint64_t>> reference_count_pieces(std::string_view text, const SplitFn& split,
                                                                     const std::vector<std::string>& special_tokens);

}  // namespace lmforge::tok
