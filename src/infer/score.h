// Log-likelihood scoring: per-token log-probabilities of a sequence, and multiple-choice
// evaluation by the length-normalised log-likelihood of each option.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "nn/transformer.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::infer {

// log p(ids[i] | ids[0..i)) for i = 1 .. n-1 (n-1 values; the first token has no prefix).
// Needs n - 1 <= context_length; Error otherwise. Ids must be below the vocabulary size.
std::vector<double> score_tokens(const nn::Transformer& model, std::span<const int64_t> ids);

struct ChoiceItem {
  std::string context;
  std::vector<std::string> options;
  int64_t answer = 0;
};

// One JSON object per line: {"context": str, "options": [str, ...], "answer": int}. Blank lines
// are skipped; anything else malformed is an Error naming the file and line.
std::vector<ChoiceItem> read_choices_jsonl(const std::string& path);

enum class LengthNorm { Tokens, Bytes, None };

struct ChoiceResult {
  int64_t n_items = 0;
  int64_t n_correct = 0;
  double accuracy = 0;
  std::vector<int64_t> predictions;  // the chosen option of each item
};

// Each option is scored as the log-likelihood of its tokens after the context's
// (encode(context) then encode(option)), divided by its length in tokens or bytes; the highest
// wins (ties: the first). An empty context starts from the end-of-text token when the
// tokenizer has one. Too-long inputs keep their last context_length + 1 tokens.
ChoiceResult evaluate_choices(const nn::Transformer& model, const tok::Tokenizer& tokenizer,
                              const std::vector<ChoiceItem>& items, LengthNorm norm = LengthNorm::Tokens);

}  // namespace lmforge::infer
