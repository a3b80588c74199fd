// Self-speculative decoding: the model's multi-token prediction modules (nn/mtp.h) draft the
// next tokens, the main model verifies them in one forward, and the longest acceptable prefix of
// the draft is kept. The output follows the main model alone:
//
//   greedy (temperature 0 or top_k 1)  token for token the output of generate() (infer/generate.h):
//       a draft token is kept only when it is the main model's argmax at its position, and the
//       first mismatch is replaced by that argmax. (The verification runs D + 1 positions in one
//       forward where generate() runs one: the two round the same sums through differently sized
//       matrix products, so logits agree to rounding, and only a tie within rounding could break
//       the equality.)
//   sampling  speculative sampling (Leviathan et al. 2023; Chen et al. 2023): draft token x,
//       drawn from the draft distribution q, is kept with probability min(1, p(x) / q(x)); on a
//       rejection the token is drawn from norm(max(0, p - q)) and the round ends; when every draft
//       is kept, one more token is drawn from p. Every token is then distributed exactly as p,
//       the distribution TokenSampler draws from (infer/sampling.h: temperature, top-k, top-p);
//       q is the same transformation of the module's logits. The random draws differ from
//       generate()'s, so the sampled text is a different draw from the same distribution.
//
// One round, with the main model's KV cache holding positions [0, n) and token n chosen:
//   1. draft: module k (k = 1..d, d = min(D, tokens still to make - 1)) runs at position n - 1 on
//      h^{k-1}_{n-1} and token n + k - 1 (a draft for k > 1) and proposes token n + k. Each module
//      keeps its own KV cache and first catches up on the positions it has not seen: module k's
//      cache and hidden states are kept only up to position n - k, the last computed from chosen
//      tokens alone; later ones are recomputed next round.
//   2. verify: the main model runs tokens n .. n + d at positions n .. n + d (one forward with
//      the cache), giving the target distribution at each position.
//   3. accept a prefix as above, emit the kept and the corrected (or bonus) token, and roll the
//      main cache back to the positions whose input tokens were kept (KVCache::length).
// Stopping is generate()'s: max_new_tokens, the stop token (also inside an accepted draft: the
// tokens after it are dropped), or the end of the context.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "infer/generate.h"

namespace lmforge::infer {

struct SpeculativeStats {
  int64_t rounds = 0;    // verification forwards of the main model (after the prompt's prefill)
  int64_t drafted = 0;   // draft tokens proposed
  int64_t accepted = 0;  // draft tokens kept
  double acceptance_rate() const { return drafted > 0 ? double(accepted) / double(drafted) : 0.0; }
};

// generate()'s contract with speculative decoding; `stats`, when given, receives the counts.
// Error naming model.mtp_depth when the model has no MTP modules.
std::vector<uint32_t> generate_speculative(const nn::Transformer& model, std::span<const uint32_t> prompt,
                                           const GenerateOptions& options,
                                           const std::function<void(uint32_t)>& on_token = nullptr,
                                           SpeculativeStats* stats = nullptr);

// The distribution TokenSampler draws from for `logits` [V] (infer/sampling.h), as
// probabilities [V]: one-hot on the argmax when greedy, else the softmax at the temperature
// restricted to the top_k, then to the top_p nucleus, renormalised.
std::vector<double> target_distribution(std::span<const float> logits, const SamplingOptions& options);

}  // namespace lmforge::infer
