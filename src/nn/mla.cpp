#include "nn/mla.h"

#include <cmath>

#include "ops/ops.h"

namespace lmforge::nn {

MultiHeadLatentAttention::MultiHeadLatentAttention(const ModelConfig& c, TensorOptions opt)
    : n_heads_(c.n_heads),
      nope_(c.qk_nope_head_dim),
      rope_dim_(c.qk_rope_head_dim),
      v_dim_(c.v_head_dim),
      kv_rank_(c.kv_lora_rank),
      rope_theta_(c.rope_theta),
      scale_(1.0 / std::sqrt(double(c.qk_nope_head_dim + c.qk_rope_head_dim))),
      opt_(opt) {
  LF_ASSERT(c.is_mla() && c.kv_lora_rank > 0 && c.qk_nope_head_dim > 0 && c.qk_rope_head_dim > 0 && c.v_head_dim > 0,
            "MultiHeadLatentAttention needs a resolved MLA config");
  const int64_t d = c.d_model, q_dim = c.n_heads * (nope_ + rope_dim_);
  // Registration order fixes the parameter order: HF DeepseekV3Attention's.
  if (c.q_lora_rank > 0) {
    q_a_proj_ = register_module("q_a_proj", std::make_unique<Linear>(d, c.q_lora_rank, c.bias, ParamKind::Matrix, opt));
    q_a_layernorm_ = register_module(
        "q_a_layernorm", std::make_unique<Norm>(NormKind::RmsNorm, c.q_lora_rank, false, kLatentNormEps, opt));
    q_b_proj_ = register_module("q_b_proj", std::make_unique<Linear>(c.q_lora_rank, q_dim, false, ParamKind::Matrix, opt));
  } else {
    q_proj_ = register_module("q_proj", std::make_unique<Linear>(d, q_dim, c.bias, ParamKind::Matrix, opt));
  }
  kv_a_proj_with_mqa_ = register_module(
      "kv_a_proj_with_mqa", std::make_unique<Linear>(d, kv_rank_ + rope_dim_, c.bias, ParamKind::Matrix, opt));
  kv_a_layernorm_ = register_module("kv_a_layernorm",
                                    std::make_unique<Norm>(NormKind::RmsNorm, kv_rank_, false, kLatentNormEps, opt));
  kv_b_proj_ = register_module(
      "kv_b_proj", std::make_unique<Linear>(kv_rank_, c.n_heads * (nope_ + v_dim_), false, ParamKind::Matrix, opt));
  o_proj_ = register_module(
      "o_proj", std::make_unique<Linear>(c.n_heads * v_dim_, d, c.bias, ParamKind::ResidualMatrix, opt));
}

LayerKVCache MultiHeadLatentAttention::make_cache(int64_t batch, int64_t capacity) const {
  const DType dt = compute_dtype().value_or(opt_.dtype);  // latents and keys are computed in it
  Tensor rows = zeros({batch, capacity, kv_rank_ + rope_dim_}, dt, opt_.device);
  Tensor k_pe = rows.narrow(2, kv_rank_, rope_dim_);
  return {.k = std::move(rows), .v = std::move(k_pe)};
}

MultiHeadLatentAttention::Projected MultiHeadLatentAttention::project(const Tensor& x) const {
  const int64_t b = x.size(0), t = x.size(1);
  const Tensor q = q_proj_ ? q_proj_->forward(x) : q_b_proj_->forward(q_a_layernorm_->forward(q_a_proj_->forward(x)));
  const TensorList qs = split(q.view({b, t, n_heads_, nope_ + rope_dim_}), {nope_, rope_dim_}, -1);
  const TensorList kv = split(kv_a_proj_with_mqa_->forward(x), {kv_rank_, rope_dim_}, -1);  // [B, T, r], [B, T, rope]
  return {.q_nope = qs[0], .q_pe = qs[1], .latent = kv_a_layernorm_->forward(kv[0]), .k_pe = kv[1].unsqueeze(2)};
}

Tensor MultiHeadLatentAttention::expanded_attention(const Projected& p, int64_t position_offset) const {
  const int64_t b = p.latent.size(0), t = p.latent.size(1);
  const RopeOptions ro{.theta = rope_theta_, .position_offset = position_offset, .interleaved = true};
  const Tensor q_pe = rope(p.q_pe, ro), k_pe = rope(p.k_pe, ro);  // [B, T, H, rope], [B, T, 1, rope]
  const TensorList kv = split(kv_b_proj_->forward(p.latent).view({b, t, n_heads_, nope_ + v_dim_}), {nope_, v_dim_}, -1);
  const Tensor q = cat({p.q_nope, q_pe}, -1);                                            // [B, T, H, qk]
  const Tensor k = cat({kv[0], k_pe.expand({b, t, n_heads_, rope_dim_})}, -1);           // [B, T, H, qk]
  const Tensor y = attention(q, k, kv[1], {.scale = scale_, .causal = true});          // [B, T, H, dv]
  return y.reshape({b, t, n_heads_ * v_dim_});
}

Tensor MultiHeadLatentAttention::cached_attention(const Projected& p, int64_t position, const Tensor& cache_rows,
                                                 const LayerKVCache* device_positions) const {
  NoGradGuard no_grad;
  const int64_t b = p.latent.size(0), t = p.latent.size(1), h = n_heads_, end = position + t;
  const bool on_device = device_positions != nullptr;
  const RopeOptions ro{.theta = rope_theta_,
                       .position_offset = on_device ? 0 : position,
                       .interleaved = true,
                       .positions = on_device ? device_positions->positions : Tensor()};
  const Tensor q_pe = rope(p.q_pe, ro);
  if (on_device) {
    // Positions in device memory (a captured decode step): written where they point.
    copy_rows_at_(cache_rows.narrow(2, 0, kv_rank_), p.latent, ro.positions);
    copy_rows_at_(cache_rows.narrow(2, kv_rank_, rope_dim_), rope(p.k_pe, ro).view({b, t, rope_dim_}), ro.positions);
  } else {
    const Tensor rows = cache_rows.narrow(1, position, t);  // [B, T, r + rope]
    Tensor latent_slot = rows.narrow(2, 0, kv_rank_), k_pe_slot = rows.narrow(2, kv_rank_, rope_dim_);
    copy_(latent_slot, p.latent);
    copy_(k_pe_slot, rope(p.k_pe, ro).view({b, t, rope_dim_}));
  }
  // kv_b_proj's weight [H·(nope + dv), r] as W_uk [H, nope, r] and W_uv [H, dv, r].
  const Tensor w = kv_b_proj_->compute_weight().view({h, nope_ + v_dim_, kv_rank_});
  const Tensor w_uk = w.narrow(1, 0, nope_), w_uv = w.narrow(1, nope_, v_dim_);
  // q_nope · W_uk per head: [H, B·T, nope] x [H, nope, r] -> [H, B·T, r] -> [B, T, H, r]
  const Tensor q_latent = matmul(p.q_nope.permute({2, 0, 1, 3}).reshape({h, b * t, nope_}), w_uk)
                              .view({h, b, t, kv_rank_})
                              .permute({1, 2, 0, 3});
  const Tensor q = cat({q_latent, q_pe}, -1);                      // [B, T, H, r + rope]
  const Tensor seen = (on_device ? cache_rows : cache_rows.narrow(1, 0, end)).unsqueeze(2);  // [B, S, 1, r + rope]
  const Tensor y_latent =
      attention(q, seen, seen.narrow(3, 0, kv_rank_),
                {.scale = scale_, .causal = true,
                 .key_lengths = on_device ? device_positions->key_lengths : Tensor()});
  // Per head W_uv · y: [H, B·T, r] x [H, r, dv] -> [H, B·T, dv] -> [B, T, H·dv]
  const Tensor y = matmul(y_latent.permute({2, 0, 1, 3}).reshape({h, b * t, kv_rank_}), w_uv.transpose(1, 2));
  return y.view({h, b, t, v_dim_}).permute({1, 2, 0, 3}).reshape({b, t, h * v_dim_});
}

Tensor MultiHeadLatentAttention::forward(const Tensor& x, int64_t position_offset, LayerKVCache* cache) const {
  const int64_t b = x.size(0), t = x.size(1);
  const Projected p = project(x);
  if (!cache) return o_proj_->forward(expanded_attention(p, position_offset));
  if (cache->positions.defined()) {
    LF_CHECK(!cache->slot_rows, "attention: slotted rows and device positions cannot be combined");
    LF_CHECK(cache->k.size(0) == b, "attention: the KV cache was made for batch {} but the input has batch {}",
             cache->k.size(0), b);
    return o_proj_->forward(cached_attention(p, 0, cache->k, cache));
  }
  const int64_t capacity = cache->k.size(1);
  if (cache->slot_rows) {
    // Row by row: each row has its own position and its own slot, and computing it alone keeps
    // its result independent of the other rows in the batch.
    const SlotRows& rows = *cache->slot_rows;
    LF_CHECK(int64_t(rows.slots.size()) == b && int64_t(rows.positions.size()) == b,
             "attention: {} slotted rows given for a batch of {}", rows.slots.size(), b);
    TensorList out;
    for (int64_t r = 0; r < b; ++r) {
      const int64_t slot = rows.slots[size_t(r)], pos = rows.positions[size_t(r)];
      LF_CHECK(slot >= 0 && slot < cache->k.size(0), "attention: slot {} is outside the cache's {} slots", slot,
               cache->k.size(0));
      LF_CHECK(pos >= 0 && pos + t <= capacity, "attention: slot {} holds {} positions but {} are needed", slot,
               capacity, pos + t);
      const Projected row{.q_nope = p.q_nope.narrow(0, r, 1), .q_pe = p.q_pe.narrow(0, r, 1),
                          .latent = p.latent.narrow(0, r, 1), .k_pe = p.k_pe.narrow(0, r, 1)};
      out.push_back(cached_attention(row, pos, cache->k.narrow(0, slot, 1)));
    }
    return o_proj_->forward(cat(out, 0));
  }
  LF_CHECK(position_offset + t <= capacity, "attention: the KV cache holds {} positions but {} are needed", capacity,
           position_offset + t);
  LF_CHECK(cache->k.size(0) == b, "attention: the KV cache was made for batch {} but the input has batch {}",
           cache->k.size(0), b);
  return o_proj_->forward(cached_attention(p, position_offset, cache->k));
}

}  // namespace lmforge::nn
