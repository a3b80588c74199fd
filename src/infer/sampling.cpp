#include "infer/sampling.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lmforge::infer {

void SamplingOptions::validate() const {
  LF_CHECK(temperature >= 0 && std::isfinite(temperature), "--temperature must be >= 0, got {}", temperature);
  LF_CHECK(top_k >= 0, "--top-k must be >= 0 (0: no limit), got {}", top_k);
  LF_CHECK(top_p > 0 && top_p <= 1, "--top-p must be in (0, 1], got {}", top_p);
}

TokenSampler::TokenSampler(SamplingOptions options, uint64_t seed) : options_(options), gen_(seed) {
  options_.validate();
}

int64_t TokenSampler::sample(std::span<const float> logits) {
  LF_CHECK(!logits.empty(), "sampling from an empty row of logits");
  const int64_t v = int64_t(logits.size());
  auto better = [](const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (options_.temperature == 0 || options_.top_k == 1) {
    int64_t best = 0;
    for (int64_t i = 1; i < v; ++i)
      if (logits[size_t(i)] > logits[size_t(best)]) best = i;
    return best;
  }
  candidates_.resize(size_t(v));
  for (int64_t i = 0; i < v; ++i) candidates_[size_t(i)] = {logits[size_t(i)], i};
  const int64_t k = options_.top_k > 0 ? std::min(options_.top_k, v) : v;
  std::partial_sort(candidates_.begin(), candidates_.begin() + k, candidates_.end(), better);
  candidates_.resize(size_t(k));
  // Softmax in f64 over the candidates (sorted, so the first is the maximum). The difference to
  // the maximum is divided by the temperature, never multiplied by its inverse: for a
  // temperature near 0 (1e-320 has no finite inverse) the maximum's term stays exp(0) = 1 and
  // every smaller logit's goes to exp(-inf) = 0, so the result approaches the argmax.
  probs_.resize(size_t(k));
  const double t = options_.temperature, top = double(candidates_[0].first);
  double total = 0;
  for (int64_t i = 0; i < k; ++i)
    total += probs_[size_t(i)] = std::exp((double(candidates_[size_t(i)].first) - top) / t);
  int64_t keep = k;
  if (options_.top_p < 1) {
    double cum = 0;
    for (int64_t i = 0; i < k; ++i) {
      cum += probs_[size_t(i)] / total;
      if (cum >= options_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double kept_total = 0;
  for (int64_t i = 0; i < keep; ++i) kept_total += probs_[size_t(i)];
  const uint4x32 w = rng::philox_block(gen_.seed(), gen_.advance(1));
  const double u = rng::uniform_f64(rng::join64(w.v[0], w.v[1]), 0.0, kept_total);
  double cum = 0;
  for (int64_t i = 0; i < keep; ++i) {
    cum += probs_[size_t(i)];
    if (u < cum) return candidates_[size_t(i)].second;
  }
  return candidates_[size_t(keep - 1)].second;
}

}  // namespace lmforge::infer
