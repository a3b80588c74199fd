// Multi-head Latent Attention (DeepSeek-V2/V3), selected by model.attention = "mla": keys and
// values are made per head from one small latent per token, so the KV cache holds the latent and
// one shared RoPE key instead of every head's keys and values.
//
// Sizes: H = n_heads, nope = qk_nope_head_dim, rope = qk_rope_head_dim, qk = nope + rope,
// dv = v_head_dim, r = kv_lora_rank, rq = q_lora_rank. As HF transformers' DeepseekV3Attention:
//
//   q = q_proj(x)                          rq = 0    [B, T, H·qk]
//     = q_b_proj(q_a_layernorm(q_a_proj(x)))          (q_a_proj [rq, C], q_b_proj [H·qk, rq])
//   q -> per head q_nope [nope], q_pe [rope]
//   kv_a_proj_with_mqa(x) -> latent [r] (then kv_a_layernorm), k_pe [rope] (one for all heads)
//   kv_b_proj(latent) -> per head k_nope [nope], v [dv]              (kv_b_proj [H·(nope + dv), r])
//   q_pe, k_pe rotated by position, interleaved pairs (2i, 2i + 1): what HF's
//     apply_rotary_pos_emb_interleave computes (it de-interleaves and then rotates half-split,
//     which permutes q_pe and k_pe alike and so leaves every q·k score the same)
//   attention of q = [q_nope, q_pe] and k = [k_nope, k_pe] (causal, scale 1/sqrt(qk)) over v
//   o_proj [C, H·dv]
//
// The softmax scale is the plain 1/sqrt(qk): DeepSeek-V3 multiplies it by a YaRN mscale² only
// under rope_scaling, which this toolkit has none of. The two latent norms are RMSNorms with
// eps 1e-6 whatever model.norm_eps is, as HF builds them. With model.bias, the projections
// from x (q_proj or q_a_proj, kv_a_proj_with_mqa) and o_proj have biases, the up-projections
// (q_b_proj, kv_b_proj) none, as DeepSeek-V3's attention_bias.
//
// Training (no cache) expands the latent to per-head keys and values and runs the fused attention
// op, which takes a value head dim other than the q/k head dim directly: nothing is padded.
//
// Inference with a cache keeps per position only [latent (r) | RoPE'd k_pe (rope)]: LayerKVCache
// k is [B, capacity, r + rope] and v a view of its last rope columns (nn/kv_cache.h). Decoding
// never expands the cache: kv_b_proj's key half W_uk [H, nope, r] is absorbed into the query
// (q_nope · W_uk, a query in latent space) and its value half W_uv [H, dv, r] is applied after
// attention over the latents. That is one attention op with a single key/value head:
//   q' = [q_nope·W_uk, q_pe] [B, T, H, r + rope],  k' = cache [B, S, 1, r + rope],
//   v' = latent part of the cache [B, S, 1, r],    y = (attention(q', k', v') · W_uvᵀ) per head
// which is the expanded attention's result by associativity (equal up to rounding). A prefill
// through a cache takes this path too, so every cached step computes alike. Slotted decoding
// (nn/kv_cache.h: SlotRows) runs it row by row, each row at its own slot and position.
#pragma once

#include "nn/attention.h"

namespace lmforge::nn {

class MultiHeadLatentAttention : public SequenceMixer {
 public:
  // The RMSNorm epsilon of q_a_layernorm and kv_a_layernorm (HF DeepseekV3RMSNorm's default).
  static constexpr double kLatentNormEps = 1e-6;

  MultiHeadLatentAttention(const ModelConfig& config, TensorOptions opt);
  Tensor forward(const Tensor& x, int64_t position_offset, LayerKVCache* cache) const override;
  // k: [batch, capacity, kv_lora_rank + qk_rope_head_dim] in the compute dtype; v: the view of
  // its last qk_rope_head_dim columns.
  LayerKVCache make_cache(int64_t batch, int64_t capacity) const override;

 private:
  // x's projections before RoPE: q_nope [B, T, H, nope], q_pe [B, T, H, rope],
  // latent [B, T, r] (normalised), k_pe [B, T, 1, rope].
  struct Projected {
    Tensor q_nope, q_pe, latent, k_pe;
  };
  Projected project(const Tensor& x) const;
  // Training and uncached inference: keys and values expanded per head. -> [B, T, H·dv]
  Tensor expanded_attention(const Projected& p, int64_t position_offset) const;
  // Writes the new steps' latents and RoPE'd keys at [position, position + T) of `cache_rows`
  // ([B, capacity, r + rope]) and attends over [0, position + T) with the absorbed projections.
  // p's tensors have batch B = cache_rows.size(0). -> [B, T, H·dv]. With `device_positions` (the
  // layer's cache in device-position mode) `position` is ignored: rows are written at its
  // positions and attend over its key_lengths, both read from device memory.
  Tensor cached_attention(const Projected& p, int64_t position, const Tensor& cache_rows,
                          const LayerKVCache* device_positions = nullptr) const;

  int64_t n_heads_, nope_, rope_dim_, v_dim_, kv_rank_;
  double rope_theta_, scale_;
  TensorOptions opt_;
  Linear *q_proj_ = nullptr, *q_a_proj_ = nullptr, *q_b_proj_ = nullptr;
  Norm* q_a_layernorm_ = nullptr;
  Linear* kv_a_proj_with_mqa_;
  Norm* kv_a_layernorm_;
  Linear *kv_b_proj_, *o_proj_;
};

}  // namespace lmforge::nn
