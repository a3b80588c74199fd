#include "nn/attention.h"

#include "autograd/function.h"
#include "ops/ops.h"

namespace lmforge::nn {

namespace {

// The parts' gradients as one tensor of `shape` when they already are adjacent views of one
// contiguous buffer (the attention backward writes them so: ops/nn_ops.cpp), else undefined.
Tensor adjacent_parts(const TensorList& grads, const Shape& shape) {
  const int64_t w = shape.back();
  int64_t at = grads.empty() ? 0 : grads[0].offset();
  for (const Tensor& g : grads) {
    if (!g.defined() || !g.shares_storage(grads[0]) || g.offset() != at || g.dim() != int64_t(shape.size())) return {};
    int64_t stride = 1;
    for (int64_t d = g.dim() - 1; d >= 0; --d) {
      if (d < g.dim() - 1 && g.size(d) != shape[size_t(d)]) return {};
      if (g.size(d) != 1 && g.stride(d) != stride) return {};
      stride *= d == g.dim() - 1 ? w : g.size(d);
    }
    at += g.size(-1);
  }
  if (at != grads[0].offset() + w) return {};
  return grads[0].as_strided(shape, contiguous_strides(shape), grads[0].offset());
}

// Splits the last dim of x into views of the given sizes. One backward node concatenates the
// parts' gradients (zeros for a part that got none): a single copy, where separate narrow()
// views would each zero-fill and copy a full-size gradient and then add them up; none when the
// gradients are adjacent views of one buffer already.
TensorList split_last(const Tensor& x, const std::vector<int64_t>& sizes) {
  const Tensor xd = x.detach();
  TensorList parts;
  int64_t at = 0;
  for (int64_t s : sizes) {
    parts.push_back(xd.narrow(-1, at, s));
    at += s;
  }
  if (any_requires_grad({x}))
    record_op("split_last", {x}, parts, [sizes, shape = x.shape(), dt = x.dtype(), dev = x.device()](
                                            BackwardContext& ctx) -> TensorList {
      TensorList grads;
      for (size_t i = 0; i < sizes.size(); ++i) {
        Tensor g = ctx.grad(i);
        if (!g.defined()) {
          Shape s = shape;
          s.back() = sizes[i];
          g = zeros(s, dt, dev);
        }
        grads.push_back(g);
      }
      if (Tensor whole = adjacent_parts(grads, shape); whole.defined()) return {whole};
      return {cat(grads, -1)};
    });
  return parts;
}

}  // namespace

Attention::Attention(const ModelConfig& c, TensorOptions opt)
    : n_heads_(c.n_heads),
      n_kv_heads_(c.n_kv_heads),
      head_dim_(c.head_dim),
      rope_(c.position == PositionKind::Rope),
      rope_theta_(c.rope_theta),
      opt_(opt) {
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  q_proj_ = register_module("q_proj", std::make_unique<Linear>(c.d_model, q_dim, c.bias, ParamKind::Matrix, opt));
  k_proj_ = register_module("k_proj", std::make_unique<Linear>(c.d_model, kv_dim, c.bias, ParamKind::Matrix, opt));
  v_proj_ = register_module("v_proj", std::make_unique<Linear>(c.d_model, kv_dim, c.bias, ParamKind::Matrix, opt));
  o_proj_ = register_module("o_proj",
                            std::make_unique<Linear>(q_dim, c.d_model, c.bias, ParamKind::ResidualMatrix, opt));
  if (c.qk_norm) {
    q_norm_ = register_module("q_norm", std::make_unique<Norm>(NormKind::RmsNorm, c.head_dim, false, c.norm_eps, opt));
    k_norm_ = register_module("k_norm", std::make_unique<Norm>(NormKind::RmsNorm, c.head_dim, false, c.norm_eps, opt));
  }
}

LayerKVCache Attention::make_cache(int64_t batch, int64_t capacity) const {
  const DType dt = compute_dtype().value_or(opt_.dtype);  // keys and values are computed in it
  return {zeros({batch, capacity, n_kv_heads_, head_dim_}, dt, opt_.device),
          zeros({batch, capacity, n_kv_heads_, head_dim_}, dt, opt_.device)};
}

Tensor Attention::slotted_attention(Tensor q, Tensor k, const Tensor& v, const LayerKVCache& cache) const {
  // Row by row: each row has its own position and its own slot's keys, and computing it alone
  // keeps its result independent of the other rows in the batch.
  NoGradGuard no_grad;
  const SlotRows& rows = *cache.slot_rows;
  const int64_t b = q.size(0), t = q.size(1);
  LF_CHECK(int64_t(rows.slots.size()) == b && int64_t(rows.positions.size()) == b,
           "attention: {} slotted rows given for a batch of {}", rows.slots.size(), b);
  TensorList out;
  for (int64_t r = 0; r < b; ++r) {
    const int64_t slot = rows.slots[size_t(r)], pos = rows.positions[size_t(r)];
    LF_CHECK(slot >= 0 && slot < cache.k.size(0), "attention: slot {} is outside the cache's {} slots", slot,
             cache.k.size(0));
    LF_CHECK(pos >= 0 && pos + t <= cache.k.size(1), "attention: slot {} holds {} positions but {} are needed", slot,
             cache.k.size(1), pos + t);
    Tensor qr = q.narrow(0, r, 1), kr = k.narrow(0, r, 1);
    if (rope_) {
      const RopeOptions ro{.theta = rope_theta_, .position_offset = pos};
      qr = rope(qr, ro);
      kr = rope(kr, ro);
    }
    const Tensor k_slot = cache.k.narrow(0, slot, 1), v_slot = cache.v.narrow(0, slot, 1);
    Tensor k_new = k_slot.narrow(1, pos, t), v_new = v_slot.narrow(1, pos, t);
    copy_(k_new, kr);
    copy_(v_new, v.narrow(0, r, 1));
    out.push_back(attention(qr, k_slot.narrow(1, 0, pos + t), v_slot.narrow(1, 0, pos + t), {.causal = true}));
  }
  return cat(out, 0).reshape({b, t, n_heads_ * head_dim_});  // [B, T, H·D]
}

Tensor Attention::device_position_attention(Tensor q, Tensor k, const Tensor& v, const LayerKVCache& cache) const {
  // Every position comes from device memory: RoPE at cache.positions, the new keys and values
  // written there, attention over the whole cache up to cache.key_lengths. Nothing here depends
  // on the position on the host, so a captured step replays at any position.
  NoGradGuard no_grad;
  LF_CHECK(!cache.slot_rows, "attention: slotted rows and device positions cannot be combined");
  const int64_t b = q.size(0), t = q.size(1);
  LF_CHECK(cache.k.size(0) == b, "attention: the KV cache was made for batch {} but the input has batch {}",
           cache.k.size(0), b);
  if (rope_) {
    const RopeOptions ro{.theta = rope_theta_, .positions = cache.positions};
    q = rope(q, ro);
    k = rope(k, ro);
  }
  copy_rows_at_(cache.k, k, cache.positions);
  copy_rows_at_(cache.v, v, cache.positions);
  const Tensor y = attention(q, cache.k, cache.v, {.causal = true, .key_lengths = cache.key_lengths});
  return y.reshape({b, t, n_heads_ * head_dim_});
}

Tensor Attention::stacked_qkv_weight() const {
  const Tensor ws[3] = {q_proj_->compute_weight(), k_proj_->compute_weight(), v_proj_->compute_weight()};
  if (GradMode::is_enabled()) {
    stacked_ = {};  // training: nothing kept beside the weights
    return cat({ws[0], ws[1], ws[2]}, 0);
  }
  bool fresh = stacked_.w.defined();
  for (int i = 0; i < 3 && fresh; ++i)
    fresh = stacked_.data[size_t(i)] == ws[i].data_ptr() && stacked_.version[size_t(i)] == ws[i].version();
  if (!fresh) {
    stacked_.w = cat({ws[0], ws[1], ws[2]}, 0);
    for (int i = 0; i < 3; ++i) {
      stacked_.data[size_t(i)] = ws[i].data_ptr();
      stacked_.version[size_t(i)] = ws[i].version();
    }
  }
  return stacked_.w;
}

Tensor Attention::forward(const Tensor& x, int64_t position_offset, LayerKVCache* cache) const {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t qd = n_heads_ * head_dim_, kvd = n_kv_heads_ * head_dim_;
  // One GEMM for the three projections: the weights [q; k; v] stacked along out (a copy of the
  // weights only), so x is read once forward and dx is one GEMM backward instead of three GEMMs
  // and two adds. q, k, v are strided views of the result.
  TensorList qkv;
  if (q_proj_->quantized_weight() || FixedOrderLinearScope::active()) {
    // Quantized projections (inference) run their own dequantising GEMMs: stacking them would
    // need a dense copy of the weights. So do fixed-order (batch-invariant) ones.
    qkv = {q_proj_->forward(x), k_proj_->forward(x), v_proj_->forward(x)};
  } else {
    const Tensor w = stacked_qkv_weight();  // [qd + 2·kvd, C]
    const Tensor bias = q_proj_->bias().defined()
                            ? cat({q_proj_->compute_bias(), k_proj_->compute_bias(), v_proj_->compute_bias()}, 0)
                            : Tensor();
    qkv = split_last(linear(x, w, bias), {qd, kvd, kvd});  // [B, T, qd + 2·kvd] -> 3 views
  }
  Tensor q = qkv[0].view({b, t, n_heads_, head_dim_});     // [B, T, H, D]
  Tensor k = qkv[1].view({b, t, n_kv_heads_, head_dim_});  // [B, T, Hkv, D]
  Tensor v = qkv[2].view({b, t, n_kv_heads_, head_dim_});  // [B, T, Hkv, D]
  if (q_norm_) {
    q = q_norm_->forward(q);
    k = k_norm_->forward(k);
  }
  if (cache && cache->positions.defined()) return o_proj_->forward(device_position_attention(q, k, v, *cache));
  if (rope_ && !(cache && cache->slot_rows)) {  // slotted rows are rotated by their own positions
    const RopeOptions ro{.theta = rope_theta_, .position_offset = position_offset};
    q = rope(q, ro);
    k = rope(k, ro);
  }
  if (cache && cache->slot_rows) return o_proj_->forward(slotted_attention(q, k, v, *cache));
  if (cache) {
    const int64_t end = position_offset + t;
    LF_CHECK(end <= cache->k.size(1), "attention: the KV cache holds {} positions but {} are needed",
             cache->k.size(1), end);
    LF_CHECK(cache->k.size(0) == b, "attention: the KV cache was made for batch {} but the input has batch {}",
             cache->k.size(0), b);
    {
      NoGradGuard no_grad;
      Tensor k_slot = cache->k.narrow(1, position_offset, t), v_slot = cache->v.narrow(1, position_offset, t);
      copy_(k_slot, k);
      copy_(v_slot, v);
    }
    k = cache->k.narrow(1, 0, end);  // [B, S, Hkv, D], S = end
    v = cache->v.narrow(1, 0, end);
  }
  Tensor y = attention(q, k, v, {.causal = true});  // [B, T, H, D]
  return o_proj_->forward(y.reshape({b, t, n_heads_ * head_dim_}));
}

}  // namespace lmforge::nn
