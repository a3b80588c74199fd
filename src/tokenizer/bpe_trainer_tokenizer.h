// BPE training glue: a pattern name or regex -> the Pretokenizer that counting uses, and a
// trained BpeModel -> a Tokenizer (tiktoken-style ranks: id == rank; specials after the last
// merge), which writes tokenizer.json and .tiktoken files.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/bpe_trainer.h"

namespace lmforge::tok {

// The default pre-tokenization pattern of training: o200k_base (handles camelCase words,
// contractions and digit groups of three, and is the newest OpenAI pattern).
inline constexpr std::string_view kDefaultTrainPattern = "o200k_base";

// A word of [A-Za-z0-9_] must be a known encoding name (r50k_base, gpt2, cl100k_base,
// o200k_base); anything else is a regex. Throws Error naming the known names on a typo.
Pretokenizer pretokenizer_for_pattern(std::string_view name_or_regex);

SplitFn split_fn(const Pretokenizer& pretokenizer);

// Tokens by rank plus the specials, in order, right after them.
Tokenizer tokenizer_from_model(const BpeModel& model, const std::vector<std::string>& special_tokens,
                               const Pretokenizer& pretokenizer);

struct TrainedTokenizer {
  Tokenizer tokenizer;
  BpeModel model;
  TrainerReport report;
};

TrainedTokenizer train_tokenizer(const std::vector<std::string>& paths, const TrainerOptions& options,
                                 std::string_view pattern = kDefaultTrainPattern);

}  // namespace lmforge::tok
