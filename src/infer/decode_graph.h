// One decode step (one new token per row) captured once as a CUDA graph and replayed for every
// later step, so a step costs one graph launch instead of a few hundred kernel launches and the
// host work between them. At batch 1 on a GPU, decoding is otherwise bound by those launches.
//
// The step runs with the cache in device-position mode (nn::KVCache::positions): RoPE, the cache
// writes and attention read each row's position from device memory, so the graph recorded at one
// position is right at every other. Tokens and positions are copied into fixed device buffers
// before each replay; the logits come back in a fixed tensor the graph writes.
//
// The first step runs the model directly (it also warms the allocator's cache and the kernels'
// one-time setup, and checks the token ids), then records the same step; every later step
// replays. Where recording fails (the CPU, a model whose step waits for the device), steps run
// the model directly and `reason()` says why: results are the same either way. Models with
// learned position embeddings decode with host positions (the plain KV-cache forward).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "backend/backend.h"
#include "nn/transformer.h"

namespace lmforge::infer {

class DecodeGraph {
 public:
  // `cache` (batch B) must outlive this object; it is switched to device positions and its
  // `length` kept by step(). use_graph = false runs every step directly (for comparisons).
  DecodeGraph(const nn::Transformer& model, nn::KVCache& cache, bool use_graph = true);
  ~DecodeGraph();
  DecodeGraph(const DecodeGraph&) = delete;
  DecodeGraph& operator=(const DecodeGraph&) = delete;

  // Appends tokens[b] to row b at position cache.length (every row at the same position) and
  // returns the logits [B, 1, V] on the model's device, valid until the next step.
  const Tensor& step(std::span<const int64_t> tokens);

  bool replaying() const { return graph_ != nullptr; }
  // Why steps run directly ("" while a graph is used or not yet tried).
  const std::string& reason() const { return reason_; }

 private:
  const nn::Transformer& model_;
  nn::KVCache& cache_;
  bool use_graph_;
  bool device_positions_;  // the model reads positions from device memory (RoPE models)
  Tensor ids_, positions_;        // device buffers the step reads: i64 [B, 1], i32 [B]
  Tensor host_ids_, host_positions_;
  Tensor direct_logits_;          // the output of a step run directly
  Tensor graph_logits_;           // the output the graph writes
  std::unique_ptr<CapturedWork> graph_;
  std::string reason_;
};

}  // namespace lmforge::infer
