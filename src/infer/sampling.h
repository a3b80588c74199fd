// Choosing the next token from a row of logits: greedy, temperature, top-k, top-p (nucleus).
//
//   temperature 0   the argmax (the lowest id among equal maxima)
//   otherwise       softmax(logits / temperature), restricted to the top_k largest (0: all),
//                   then to the smallest set of most likely tokens whose probability reaches
//                   top_p (1: all), renormalised, and sampled with one uniform draw
//
// Candidates are ordered by (logit descending, id ascending), so top_k = 1 is the argmax and
// every result is a pure function of the logits and the generator's state.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "core/random_kernels.h"

namespace lmforge::infer {

struct SamplingOptions {
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  // Error naming the flag (--temperature, --top-k, --top-p) when out of range.
  void validate() const;
};

class TokenSampler {
 public:
  TokenSampler(SamplingOptions options, uint64_t seed);
  // logits [V] -> token id
  int64_t sample(std::span<const float> logits);
  const Generator& generator() const { return gen_; }

 private:
  SamplingOptions options_;
  Generator gen_;
  std::vector<std::pair<float, int64_t>> candidates_;
  std::vector<double> probs_;
};

}  // namespace lmforge::infer
