// Autoregressive generation with a KV cache: the prompt is run once (prefill), then each new
// token is one forward step of length 1 that reads the cached keys and values.
//
// Generation stops after max_new_tokens, at the end-of-text token (when given), or when the
// context is full. Utf8Stream turns the tokens' bytes into printable text as they come, holding
// back a multi-byte character until it is complete.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "infer/sampling.h"
#include "nn/transformer.h"

namespace lmforge::infer {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  SamplingOptions sampling{};
  uint64_t seed = 0;
  std::optional<uint32_t> stop_token = std::nullopt;  // usually the end-of-text id
  // On a GPU, replay one recorded CUDA graph per new token instead of launching its kernels
  // (infer/decode_graph.h; experimental, off by default); the tokens are the same either way.
  bool cuda_graph = false;
};

// prompt: at least one id (a prompt longer than the context keeps its last context_length - 1
// ids). on_token is called with each new id as soon as it is chosen. Returns the new ids.
std::vector<uint32_t> generate(const nn::Transformer& model, std::span<const uint32_t> prompt,
                               const GenerateOptions& options,
                               const std::function<void(uint32_t)>& on_token = nullptr);

// `ids` as the model's token input: int64 [rows, ids.size() / rows] on `device`.
Tensor ids_tensor(std::span<const uint32_t> ids, Device device, int64_t rows = 1);

// Logits [V] of the last position for `ids` run through the model step by step with a KV
// cache, prefill first (exposed for tests comparing it with a full forward).
std::vector<std::vector<float>> incremental_logits(const nn::Transformer& model, std::span<const uint32_t> ids,
                                                   int64_t prefill);

class Utf8Stream {
 public:
  // Appends bytes; returns the text that is complete (whole UTF-8 characters; invalid bytes
  // become U+FFFD).
  std::string push(std::string_view bytes);
  // What is left, incomplete sequences as U+FFFD.
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace lmforge::infer
