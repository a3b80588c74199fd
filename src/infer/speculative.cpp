#include "infer/speculative.h"

#include <algorithm>
#include <cmath>

#include "core/random_kernels.h"
#include "ops/ops.h"

namespace lmforge::infer {

namespace {

bool is_greedy(const SamplingOptions& o) { return o.temperature == 0 || o.top_k == 1; }

// The lowest id among the maxima, as TokenSampler's greedy choice.
uint32_t argmax(std::span<const float> logits) {
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return uint32_t(best);
}

// One uniform draw in [0, 1) from `gen` (one Philox block, as TokenSampler draws).
double uniform(Generator& gen) {
  const uint4x32 w = rng::philox_block(gen.seed(), gen.advance(1));
  return rng::uniform_f64(rng::join64(w.v[0], w.v[1]), 0.0, 1.0);
}

// The id whose cumulative weight first exceeds u · Σ weights (weights >= 0, Σ > 0).
uint32_t sample_from(const std::vector<double>& weights, double u) {
  double total = 0;
  for (double w : weights) total += w;
  const double target = u * total;
  double cum = 0;
  size_t last = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0) continue;
    cum += weights[i];
    last = i;
    if (target < cum) return uint32_t(i);
  }
  return uint32_t(last);  // u · Σ rounded up to Σ: the last token with weight
}

}  // namespace

std::vector<double> target_distribution(std::span<const float> logits, const SamplingOptions& o) {
  LF_CHECK(!logits.empty(), "sampling from an empty row of logits");
  const int64_t v = int64_t(logits.size());
  std::vector<double> p(size_t(v), 0.0);
  if (is_greedy(o)) {
    p[argmax(logits)] = 1.0;
    return p;
  }
  // Candidates ordered by (logit descending, id ascending), as TokenSampler orders them.
  std::vector<std::pair<float, int64_t>> cand(static_cast<size_t>(v));
  for (int64_t i = 0; i < v; ++i) cand[size_t(i)] = {logits[size_t(i)], i};
  const int64_t k = o.top_k > 0 ? std::min(o.top_k, v) : v;
  std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<double> w(static_cast<size_t>(k));
  double total = 0;
  for (int64_t i = 0; i < k; ++i)
    total += w[size_t(i)] = std::exp((double(cand[size_t(i)].first) - double(cand[0].first)) / o.temperature);
  int64_t keep = k;
  if (o.top_p < 1) {
    double cum = 0;
    for (int64_t i = 0; i < k; ++i) {
      cum += w[size_t(i)] / total;
      if (cum >= o.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double kept = 0;
  for (int64_t i = 0; i < keep; ++i) kept += w[size_t(i)];
  for (int64_t i = 0; i < keep; ++i) p[size_t(cand[size_t(i)].second)] = w[size_t(i)] / kept;
  return p;
}

std::vector<uint32_t> generate_speculative(const nn::Transformer& model0, std::span<const uint32_t> prompt,
                                           const GenerateOptions& options,
                                           const std::function<void(uint32_t)>& on_token, SpeculativeStats* stats) {
  auto& model = const_cast<nn::Transformer&>(model0);
  const nn::ModelConfig& c = model.config();
  LF_CHECK(c.mtp_depth > 0, "speculative decoding drafts with the model's multi-token prediction modules, but this "
           "model has model.mtp_depth = 0 (train it with model.mtp_depth > 0)");
  LF_CHECK(!prompt.empty(), "generate: the prompt has no tokens");
  LF_CHECK(options.max_new_tokens >= 0, "--max-new-tokens must be >= 0, got {}", options.max_new_tokens);
  options.sampling.validate();
  const int64_t ctx = c.context_length;
  if (int64_t(prompt.size()) >= ctx) prompt = prompt.subspan(prompt.size() - size_t(ctx - 1));
  const int64_t p_len = int64_t(prompt.size());
  // generate() makes max_new_tokens, or until it has chosen the token after position
  // context_length - 1: context_length - P + 1 tokens.
  const int64_t limit = std::min<int64_t>(options.max_new_tokens, ctx - p_len + 1);
  SpeculativeStats counts;
  std::vector<uint32_t> out;
  if (limit <= 0) {
    if (stats) *stats = counts;
    return out;
  }
  const bool was_training = model.training();
  model.set_training(false);
  NoGradGuard no_grad;
  const bool greedy = is_greedy(options.sampling);
  Generator gen(options.seed);
  const auto& modules = model.mtp_modules();
  const int64_t depth = int64_t(modules.size());
  const Device device = model.device();
  const int64_t vocab = c.vocab_size;

  // A round at position n verifies up to n + d <= P + limit - 2 (d <= tokens left - 1), within
  // the context; the modules write positions below n.
  const int64_t capacity = std::min<int64_t>(ctx, p_len + limit);
  nn::KVCache cache = model.make_cache(1, capacity);
  std::vector<nn::LayerKVCache> module_cache;
  for (const nn::MtpModule* m : modules) module_cache.push_back(m->mixer().make_cache(1, capacity));
  // hidden[k]: h^k at each position (k = 0: the main model's stream before its final norm), the
  // input of module k + 1. module_length[k]: the positions module k + 1's cache and hidden[k + 1]
  // hold computed from chosen tokens only.
  std::vector<Tensor> hidden;
  for (int64_t k = 0; k < depth; ++k)
    hidden.push_back(zeros({1, capacity, c.d_model}, model.activation_dtype(), device));
  std::vector<int64_t> module_length(size_t(depth), 0);

  std::vector<uint32_t> seq(prompt.begin(), prompt.end());  // every chosen token; seq[n] is the next input
  bool done = false;
  const auto emit = [&](uint32_t id) {
    out.push_back(id);
    seq.push_back(id);
    if (on_token) on_token(id);
    done = (options.stop_token && id == *options.stop_token) || int64_t(out.size()) == limit;
  };
  const auto choose = [&](std::span<const float> logits) {
    return greedy ? argmax(logits) : sample_from(target_distribution(logits, options.sampling), uniform(gen));
  };

  // Prefill: the prompt's positions, and the first token.
  {
    const nn::Transformer::LogitsAndStream f = model.forward_with_stream(ids_tensor(seq, device), &cache);
    Tensor rows = hidden[0].narrow(1, 0, p_len);
    copy_(rows, f.stream);
    emit(choose(to_vector<float>(f.logits.narrow(1, p_len - 1, 1))));
  }
  int64_t n = p_len;  // positions in the main cache
  std::vector<std::vector<double>> draft_dist(static_cast<size_t>(depth));
  while (!done) {
    const int64_t d = std::min<int64_t>(depth, limit - int64_t(out.size()) - 1);
    // 1. Draft: module k at positions [module_length[k - 1], n), the last one proposing token n + k.
    std::vector<uint32_t> draft;
    for (int64_t k = 1; k <= d; ++k) {
      const size_t ki = size_t(k - 1);
      const int64_t start = module_length[ki], m = n - start;
      std::vector<uint32_t> next(static_cast<size_t>(m));  // token t + k for t in [start, n)
      for (int64_t i = 0; i < m; ++i) {
        const int64_t at = start + i + k;
        next[size_t(i)] = at <= n ? seq[size_t(at)] : draft[size_t(at - n - 1)];
      }
      const nn::MtpModule::Output o = modules[ki]->forward(
          hidden[ki].narrow(1, start, m), model.token_embeddings(ids_tensor(next, device)), start, &module_cache[ki]);
      if (k < depth) {
        Tensor rows = hidden[ki + 1].narrow(1, start, m);
        copy_(rows, o.hidden);
      }
      module_length[ki] = std::max<int64_t>(0, n - k + 1);  // position t used token t + k <= n: chosen
      const std::vector<float> logits = to_vector<float>(model.logits_of(o.head_input.narrow(1, m - 1, 1)));
      if (greedy) {
        draft.push_back(argmax(logits));
      } else {
        draft_dist[ki] = target_distribution(logits, options.sampling);
        draft.push_back(sample_from(draft_dist[ki], uniform(gen)));
      }
    }
    // 2. Verify tokens n .. n + d in one forward.
    std::vector<uint32_t> block{seq[size_t(n)]};
    block.insert(block.end(), draft.begin(), draft.end());
    const nn::Transformer::LogitsAndStream v = model.forward_with_stream(ids_tensor(block, device), &cache);
    const std::vector<float> logits = to_vector<float>(v.logits);  // [(d + 1) · V]
    const auto row = [&](int64_t i) { return std::span<const float>(logits).subspan(size_t(i * vocab), size_t(vocab)); };
    // 3. Accept the longest acceptable prefix, then the correction or the bonus token.
    int64_t accepted = 0;
    bool rejected = false;
    while (accepted < d && !done) {
      const uint32_t x = draft[size_t(accepted)];
      if (greedy) {
        const uint32_t target = argmax(row(accepted));
        if (target != x) {
          emit(target);
          rejected = true;
          break;
        }
      } else {
        const std::vector<double> p = target_distribution(row(accepted), options.sampling);
        const std::vector<double>& q = draft_dist[size_t(accepted)];
        // Keep x with probability min(1, p(x) / q(x)); q(x) > 0 since x was drawn from q.
        if (!(uniform(gen) * q[x] < p[x])) {
          std::vector<double> residual(p.size());
          double mass = 0;
          for (size_t j = 0; j < p.size(); ++j) mass += residual[j] = std::max(0.0, p[j] - q[j]);
          emit(sample_from(mass > 0 ? residual : p, uniform(gen)));
          rejected = true;
          break;
        }
      }
      emit(x);
      ++accepted;
    }
    if (!rejected && !done) emit(choose(row(accepted)));
    ++counts.rounds;
    counts.drafted += d;
    counts.accepted += accepted;
    // Keep the positions whose inputs were chosen (token n and the accepted drafts).
    Tensor rows = hidden[0].narrow(1, n, accepted + 1);
    copy_(rows, v.stream.narrow(1, 0, accepted + 1));
    n += accepted + 1;
    cache.length = n;
  }
  model.set_training(was_training);
  if (stats) *stats = counts;
  return out;
}

}  // namespace lmforge::infer
