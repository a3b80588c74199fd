#include "infer/generate.h"

#include "infer/decode_graph.h"
#include "ops/ops.h"

namespace lmforge::infer {

namespace {

// Logits of the last time step of logits [1, T, V] as host floats.
std::vector<float> last_logits(const Tensor& logits) {
  const int64_t t = logits.size(1);
  return to_vector<float>(logits.narrow(1, t - 1, 1));
}

// Length of the UTF-8 sequence led by byte c (0: not a lead byte).
int utf8_length(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}

}  // namespace

std::vector<uint32_t> generate(const nn::Transformer& model0, std::span<const uint32_t> prompt,
                               const GenerateOptions& options, const std::function<void(uint32_t)>& on_token) {
  auto& model = const_cast<nn::Transformer&>(model0);
  LF_CHECK(!prompt.empty(), "generate: the prompt has no tokens");
  LF_CHECK(options.max_new_tokens >= 0, "--max-new-tokens must be >= 0, got {}", options.max_new_tokens);
  const int64_t ctx = model.config().context_length;
  if (int64_t(prompt.size()) >= ctx) prompt = prompt.subspan(prompt.size() - size_t(ctx - 1));
  const bool was_training = model.training();
  model.set_training(false);
  NoGradGuard no_grad;
  TokenSampler sampler(options.sampling, options.seed);
  // max_new_tokens is capped at the context before the addition, so a huge value cannot overflow.
  const int64_t capacity = std::min<int64_t>(ctx, int64_t(prompt.size()) + std::min(options.max_new_tokens, ctx));
  nn::KVCache cache = model.make_cache(1, std::max<int64_t>(capacity, int64_t(prompt.size())));
  std::vector<float> logits = last_logits(model.forward(ids_tensor(prompt, model.device()), &cache));
  // One-token steps: recorded once as a CUDA graph on the GPU and replayed (decode_graph.h).
  DecodeGraph decoder(model, cache, options.cuda_graph);
  std::vector<uint32_t> out;
  while (int64_t(out.size()) < options.max_new_tokens) {
    const uint32_t id = uint32_t(sampler.sample(logits));
    out.push_back(id);
    if (on_token) on_token(id);
    if (options.stop_token && id == *options.stop_token) break;
    if (cache.length >= cache.capacity) break;  // the context is full
    if (int64_t(out.size()) == options.max_new_tokens) break;
    const int64_t step[1] = {int64_t(id)};
    logits = last_logits(decoder.step(step));
  }
  model.set_training(was_training);
  return out;
}

Tensor ids_tensor(std::span<const uint32_t> ids, Device device, int64_t rows) {
  std::vector<int64_t> v(ids.begin(), ids.end());
  return from_vector<int64_t>(v, {rows, int64_t(v.size()) / rows}, device);
}

std::vector<std::vector<float>> incremental_logits(const nn::Transformer& model, std::span<const uint32_t> ids,
                                                   int64_t prefill) {
  NoGradGuard no_grad;
  LF_CHECK(prefill >= 1 && prefill <= int64_t(ids.size()), "incremental_logits: bad prefill {}", prefill);
  nn::KVCache cache = model.make_cache(1, int64_t(ids.size()));
  std::vector<std::vector<float>> out;
  Tensor logits = model.forward(ids_tensor(ids.subspan(0, size_t(prefill)), model.device()), &cache);
  for (int64_t t = 0; t < prefill; ++t) out.push_back(to_vector<float>(logits.narrow(1, t, 1)));
  for (size_t i = size_t(prefill); i < ids.size(); ++i)
    out.push_back(last_logits(model.forward(ids_tensor(ids.subspan(i, 1), model.device()), &cache)));
  return out;
}

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const unsigned char c = static_cast<unsigned char>(pending_[i]);
    const int n = utf8_length(c);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (i + size_t(n) > pending_.size()) {
      // Incomplete: keep it if the bytes so far are valid continuations.
      bool ok = true;
      for (size_t k = i + 1; k < pending_.size(); ++k) ok &= (static_cast<unsigned char>(pending_[k]) & 0xC0) == 0x80;
      if (ok) break;
    }
    bool valid = i + size_t(n) <= pending_.size();
    for (int k = 1; valid && k < n; ++k) valid = (static_cast<unsigned char>(pending_[i + size_t(k)]) & 0xC0) == 0x80;
    if (valid && n == 3) {
      const unsigned char c1 = static_cast<unsigned char>(pending_[i + 1]);
      valid = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
    }
    if (valid && n == 4) {
      const unsigned char c1 = static_cast<unsigned char>(pending_[i + 1]);
      valid = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (!valid) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(pending_, i, size_t(n));
    i += size_t(n);
  }
  pending_.erase(0, i);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out = pending_.empty() ? "" : "\xEF\xBF\xBD";  // an incomplete character
  pending_.clear();
  return out;
}

}  // namespace lmforge::infer
