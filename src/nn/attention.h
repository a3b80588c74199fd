// Causal self-attention: MHA (n_kv_heads = n_heads), GQA (a divisor), MQA (1), with optional
// QK-norm and rotary or no positions (learned positions are added to the embeddings instead).
//
//   x [B, T, C] -> q [B, T, H, D], k, v [B, T, Hkv, D]      (q_proj, k_proj, v_proj)
//   qk_norm: RMSNorm over D of every query and key head     (q_norm, k_norm; weights [D])
//   rope: rotate q, k by their positions (half-split pairs, as HF Llama)
//   attention (fused op; query heads share key/value heads in groups of H/Hkv)
//   [B, T, H·D] -> [B, T, C]                                 (o_proj)
//
// With a slotted cache (nn/kv_cache.h: SlotRows) each row of x continues its own slot's sequence
// at its own position: RoPE, the cache write and the attention run row by row.
//
// SequenceMixer is the interface a block holds, so other mixers (Multi-head Latent Attention)
// can take this one's place with their own cache layout.
#pragma once

#include <array>

#include "nn/kv_cache.h"
#include "nn/layers.h"

namespace lmforge::nn {

class SequenceMixer : public Module {
 public:
  // x [B, T, C] -> [B, T, C]. position_offset: the position of x's first step. With a cache,
  // the new steps' keys/values are stored at [position_offset, position_offset + T) and the
  // queries attend to [0, position_offset + T).
  virtual Tensor forward(const Tensor& x, int64_t position_offset, LayerKVCache* cache) const = 0;
  virtual LayerKVCache make_cache(int64_t batch, int64_t capacity) const = 0;
};

class Attention : public SequenceMixer {
 public:
  Attention(const ModelConfig& config, TensorOptions opt);
  Tensor forward(const Tensor& x, int64_t position_offset, LayerKVCache* cache) const override;
  LayerKVCache make_cache(int64_t batch, int64_t capacity) const override;

 private:
  // q [B, T, H, D], k, v [B, T, Hkv, D] before RoPE, for a cache with slot_rows: -> [B, T, H·D].
  Tensor slotted_attention(Tensor q, Tensor k, const Tensor& v, const LayerKVCache& cache) const;
  Tensor device_position_attention(Tensor q, Tensor k, const Tensor& v, const LayerKVCache& cache) const;
  // The weights [q; k; v] stacked along out: made per call while gradients are recorded; without
  // them (evaluation, decoding) kept and remade only when one of the three weights has changed,
  // so a decode step does not copy the projections' weights again.
  Tensor stacked_qkv_weight() const;

  int64_t n_heads_, n_kv_heads_, head_dim_;
  bool rope_;
  double rope_theta_;
  TensorOptions opt_;
  Linear *q_proj_, *k_proj_, *v_proj_, *o_proj_;
  Norm *q_norm_ = nullptr, *k_norm_ = nullptr;
  struct StackedWeight {
    Tensor w;
    std::array<const void*, 3> data{};
    std::array<uint64_t, 3> version{};
  };
  mutable StackedWeight stacked_;
};

}  // namespace lmforge::nn
