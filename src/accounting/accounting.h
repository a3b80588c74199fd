// What a run will cost before it starts: parameters by component, FLOPs per token (every matmul
// 2·m·n·k, plus attention's score and value products), memory by kind and dtype, and the
// predicted step time at a given peak. The trainer logs the measured step time and peak memory
// next to these predictions; MFU divides achieved FLOP/s by a peak measured on this machine
// or given in the config (accounting/matmul_peak.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "accounting/matmul_peak.h"
#include "core/device.h"
#include "core/dtype.h"
#include "nn/model_config.h"

namespace lmforge::accounting {

struct Component {
  std::string name;
  int64_t count = 0;   // parameters, or bytes, or FLOPs per token
};

struct ParameterCount {
  std::vector<Component> components;  // nn::parameter_breakdown's groups
  int64_t total = 0;
  int64_t matmul = 0;  // weights used in matmuls: the N of 6·N (LM head included, embeddings and norms excluded)
  // What one token's forward reads (Mixture of Experts: top_k of the routed experts; dense
  // models: the same as total and matmul).
  int64_t active = 0;
  int64_t active_matmul = 0;
};
ParameterCount count_parameters(const nn::ModelConfig& config);

struct FlopCount {
  std::vector<Component> forward_per_token;  // by component
  double forward_per_token_total = 0;
  double backward_per_token_total = 0;       // 2 × forward for every matmul
  double training_per_token = 0;             // forward + backward
  // The conventional estimate 6·N + 12·L·H·hd·T, for comparison with other tools.
  double six_n_plus_attention = 0;
};
// Attention is counted over the full window of `seq_len` keys per query (the usual convention:
// a causal kernel skips about half of that work).
FlopCount count_flops(const nn::ModelConfig& config, int64_t seq_len);

struct MemoryOptions {
  int64_t micro_batch_size = 8;
  int64_t seq_len = 0;                 // 0: context_length
  DType param_dtype = DType::F32;      // master weights
  DType compute_dtype = DType::F32;    // activations (bf16/f16 under mixed precision)
  bool training = true;                // false: parameters only (+ a forward's transient)
  bool recompute_blocks = false;       // activation recomputation (nn::Transformer::set_recompute_blocks)
};

struct MemoryEstimate {
  std::vector<Component> by_kind;      // bytes: parameters, gradients, optimizer states, compute copy, activations, logits
  int64_t total = 0;                   // predicted peak bytes
};
MemoryEstimate estimate_memory(const nn::ModelConfig& config, const MemoryOptions& opt);

// A human-readable report: parameters, FLOPs, memory, and the predicted step time when
// peak_flops > 0.
std::string format_report(const nn::ModelConfig& config, const MemoryOptions& opt, int64_t tokens_per_step,
                          int64_t steps, double peak_flops);

// The KV cache of incremental decoding (nn/kv_cache.h), what each layer's make_cache() allocates
// per position: keys and values, 2·n_kv_heads·head_dim elements (MHA, GQA, MQA), or Multi-head
// Latent Attention's latent and shared RoPE key, kv_lora_rank + qk_rope_head_dim elements; each
// in `dtype`, the dtype inference computes in.
struct KVCacheSize {
  std::string layout;               // e.g. "MHA: 2 × 8 heads × 64", "MLA: latent 512 + RoPE key 64"
  int64_t bytes_per_token_per_layer = 0;
  int64_t bytes_per_token = 0;      // all layers
  // Self-speculative decoding (infer/speculative.h) also caches each multi-token prediction
  // module's block, which has a layer's layout: (n_layers + mtp_depth) layers.
  int64_t bytes_per_token_speculative = 0;
};
KVCacheSize kv_cache_size(const nn::ModelConfig& config, DType dtype);

// How many cached tokens fit in `memory_bytes` once the weights (in `dtype`, embeddings and
// every layer) are resident: the longest context of one sequence, and how many sequences of
// the model's full context_length fit side by side.
struct KVCacheFit {
  int64_t weight_bytes = 0;
  int64_t cache_bytes = 0;          // memory_bytes - weight_bytes, or 0 when the weights do not fit
  int64_t tokens = 0;               // cache_bytes / bytes_per_token
  int64_t full_context_sequences = 0;
};
KVCacheFit kv_cache_fit(const nn::ModelConfig& config, DType dtype, int64_t memory_bytes);
// The KV-cache lines of `lmforge account`; memory_bytes 0 leaves out the fit.
std::string format_kv_cache_report(const nn::ModelConfig& config, DType dtype, int64_t memory_bytes);

std::string human_bytes(double bytes);
std::string human_count(double n);

}  // namespace lmforge::accounting
