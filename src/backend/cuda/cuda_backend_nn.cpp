// CudaBackend: matrix products and the fused ops (cross-entropy, norms, RoPE, SwiGLU,
// attention, AdamW). The argument rules shared with the CPU twin are checked by the entry points
// (backend/backend_contract.cpp); what is here is the GPU's own (index ranges, kernel choice).
#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/multi_tensor_table.h"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

namespace {

// A 1-D weight or bias in the compute type and contiguous, converted on the device if needed.
struct ComputeVector {
  const void* ptr = nullptr;
  Scratch storage;
};
ComputeVector compute_vector(const CudaContext& ctx, const Tensor& t, DType compute) {
  ComputeVector v;
  if (!t.defined()) return v;
  LF_ASSERT(t.dim() == 1);
  if (t.dtype() == compute && t.is_contiguous()) {
    v.ptr = t.data_ptr();
    return v;
  }
  v.storage = Scratch(ctx.device, size_t(t.numel()) * dtype_size(compute));
  Layout<2> L;
  const std::vector<int64_t> dense{1};
  LF_ASSERT(make_layout<2>(t.shape(), {&t.strides(), &dense}, L));
  launch_copy(ctx, t.dtype(), t.data_ptr(), compute, v.storage.get(), L);
  v.ptr = v.storage.get();
  return v;
}

AttnOperand operand(const Tensor& t) {
  if (!t.defined()) return {};
  return {t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

AttnParams make_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                          const AttentionArgs& args) {
  AttnParams p;
  p.nb = q.size(0);
  p.nt = q.size(1);
  p.nh = q.size(2);
  p.d = q.size(3);
  p.ns = k.size(1);
  p.nhkv = k.size(2);
  p.dv_dim = v.size(3);
  p.scale = args.scale != 0 ? args.scale : 1.0 / std::sqrt(double(std::max<int64_t>(p.d, 1)));
  p.causal = args.causal;
  p.q = operand(q);
  p.k = operand(k);
  p.v = operand(v);
  if (mask.defined()) {
    p.mask = mask.data_ptr();
    p.mask_sb = mask.stride(0);
    p.mask_sh = mask.stride(1);
    p.mask_st = mask.stride(2);
    p.mask_ss = mask.stride(3);
  }
  return p;
}

// The tensor-core kernels (attention_mma.cu) take bf16 / f16, head dim 64 or 128 with D == Dv, no
// mask, and operands whose base and strides are whole 16-byte chunks (cp.async copies 16 bytes).
bool aligned16(const AttnOperand& op) {
  return reinterpret_cast<uintptr_t>(op.base) % 16 == 0 && op.s0 % 8 == 0 && op.s1 % 8 == 0 && op.s2 % 8 == 0;
}
bool tensor_core_attention(DType t, const AttnParams& p, std::initializer_list<const AttnOperand*> ops) {
  if ((t != DType::BF16 && t != DType::F16) || p.mask || p.d != p.dv_dim || (p.d != 64 && p.d != 128)) return false;
  for (const AttnOperand* op : ops)
    if (!aligned16(*op)) return false;
  return true;
}

}  // namespace

// ---- matrix products ----

void CudaBackend::do_gemm(const GemmArgs& g) {
  const DType dt = g.a.dtype();
  activate();
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) {
    Tensor c = g.c.as_strided({g.batch, g.m, g.n}, {g.stride_c, g.ldc, 1}, g.c.offset());
    if (g.beta == 0) fill(c, 0.0);
    else unary(UnaryOp::Affine, c, c, g.beta, 0.0);
    if (g.has_epilogue()) apply_gemm_epilogue(*this, g);
    return;
  }
  bool epilogue_done = false;
  if (!gemm_cublas(ctx_, g, epilogue_done)) {
    const GemmParams p{g.a.data_ptr(), g.b.data_ptr(), g.c.data_ptr(), g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda,
                       g.ldb, g.ldc, g.batch, g.stride_a, g.stride_b, g.stride_c, g.alpha, g.beta};
    launch_gemm_fallback(ctx_, dt, g.c.dtype(), p);
  }
  if (g.has_epilogue() && !epilogue_done) apply_gemm_epilogue(*this, g);
}

void CudaBackend::do_grouped_gemm(const GroupedGemmArgs& g) {
  activate();
  const GroupedGemmParams p{.a = g.a.data_ptr(),
                            .b = g.b.data_ptr(),
                            .ends = g.ends.data_ptr(),
                            .c = g.c.data_ptr(),
                            .rows = g.a.size(0),
                            .k = g.a.size(1),
                            .n = g.weight_grad ? g.b.size(1) : g.c.size(1),
                            .groups = g.ends.numel(),
                            .ends_i64 = g.ends.dtype() == DType::I64,
                            .trans_b = g.trans_b,
                            .weight_grad = g.weight_grad};
  launch_grouped_gemm(ctx_, g.a.dtype(), p);
}

void CudaBackend::do_gemm_quantized(const QuantizedGemmArgs& g) {
  activate();
  LF_ASSERT(g.x.dim() == 2 && g.weight.dim() == 2 && g.out.dim() == 2);
  LF_ASSERT(g.x.is_contiguous() && g.weight.is_contiguous() && g.out.is_contiguous());
  LF_ASSERT(!g.scale.defined() || (g.scale.dtype() == DType::F32 && g.scale.is_contiguous() && g.group_size > 0 &&
                                   g.x.size(1) % g.group_size == 0));
  LF_ASSERT(!g.bias.defined() || (g.bias.dtype() == g.x.dtype() && g.bias.is_contiguous()));
  const int64_t k = g.x.size(1);
  const QuantizedGemmParams p{.x = g.x.data_ptr(),
                              .weight = g.weight.data_ptr(),
                              .scale = g.scale.defined() ? static_cast<const float*>(g.scale.data_ptr()) : nullptr,
                              .bias = g.bias.defined() ? g.bias.data_ptr() : nullptr,
                              .out = g.out.data_ptr(),
                              .m = g.x.size(0),
                              .n = g.weight.size(0),
                              .k = k,
                              .group_size = g.scale.defined() ? g.group_size : std::max<int64_t>(k, 1)};
  launch_gemm_quantized(ctx_, g.x.dtype(), g.weight.dtype(), p);
}

// ---- cross-entropy ----

void CudaBackend::do_cross_entropy_forward(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,
                                           const Tensor& loss, const Tensor& lse) {
  activate();
  const int64_t n = logits.size(0), v = logits.size(1);
  // Targets: every one in [0, V) or ignore_index. Checked before any work, as on the CPU.
  if (!index_known_valid(targets, v, args.ignore_index)) {
    launch_check_targets(ctx_, targets.dtype(), targets.data_ptr(), n, v, args.ignore_index);
    if (const int64_t pos = ctx_.take_error_position(); pos >= 0) {
      int64_t t = 0;
      LF_CUDA_CHECK(cudaMemcpy(&t, static_cast<const char*>(targets.data_ptr()) + pos * targets.element_size(),
                               targets.element_size(), cudaMemcpyDeviceToHost));
      if (targets.element_size() == 4) t = static_cast<int32_t>(t);
      throw Error(fmt::format("cross_entropy: target {} at row {} is out of range for {} classes (expected 0..{} "
                              "or ignore_index {})", t, pos, v, v - 1, args.ignore_index));
    }
    remember_valid_index(targets, v, args.ignore_index);
  }
  launch_cross_entropy_forward(ctx_, logits.dtype(), targets.dtype(), logits.data_ptr(), targets.data_ptr(), n, v,
                               args, loss.data_ptr(), lse.data_ptr());
}

void CudaBackend::do_cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                            const Tensor& dloss, const CrossEntropyArgs& args, const Tensor& dlogits) {
  activate();
  const int64_t n = logits.size(0), v = logits.size(1);
  if (!index_known_valid(targets, v, args.ignore_index)) {
    launch_check_targets(ctx_, targets.dtype(), targets.data_ptr(), n, v, args.ignore_index);
    if (const int64_t pos = ctx_.take_error_position(); pos >= 0)
      throw Error(fmt::format("cross_entropy backward: target at row {} is out of range for {} classes", pos, v));
    remember_valid_index(targets, v, args.ignore_index);
  }
  launch_cross_entropy_backward(ctx_, logits.dtype(), targets.dtype(), logits.data_ptr(), targets.data_ptr(),
                                lse.data_ptr(), dloss.data_ptr(), n, v, args, dlogits.data_ptr());
}

// ---- norms ----

namespace {

void* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

}  // namespace

void CudaBackend::do_rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                      const Tensor& y, const Tensor& sum, const Tensor& rstd) {
  activate();
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const ComputeVector w = compute_vector(ctx_, weight, stat_dtype(x.dtype()));
  launch_rms_norm_forward(ctx_, x.dtype(), x.data_ptr(), ptr_or_null(residual), w.ptr, eps, y.data_ptr(),
                          ptr_or_null(sum), rstd.data_ptr(), n, c);
}

void CudaBackend::do_rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dy,
                                       const Tensor& dsum, const Tensor& dx, const Tensor& dweight) {
  activate();
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const ComputeVector w = compute_vector(ctx_, weight, stat_dtype(x.dtype()));
  launch_rms_norm_backward(ctx_, x.dtype(), x.data_ptr(), w.ptr, rstd.data_ptr(), dy.data_ptr(), ptr_or_null(dsum),
                           dx.data_ptr(), ptr_or_null(dweight), n, c);
}

void CudaBackend::do_layer_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight,
                                        const Tensor& bias, double eps, const Tensor& y, const Tensor& sum,
                                        const Tensor& mean, const Tensor& rstd) {
  activate();
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const ComputeVector w = compute_vector(ctx_, weight, stat_dtype(x.dtype()));
  const ComputeVector b = compute_vector(ctx_, bias, stat_dtype(x.dtype()));
  launch_layer_norm_forward(ctx_, x.dtype(), x.data_ptr(), ptr_or_null(residual), w.ptr, b.ptr, eps, y.data_ptr(),
                            ptr_or_null(sum), mean.data_ptr(), rstd.data_ptr(), n, c);
}

void CudaBackend::do_layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                         const Tensor& dy, const Tensor& dsum, const Tensor& dx, const Tensor& dweight,
                                         const Tensor& dbias) {
  activate();
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const ComputeVector w = compute_vector(ctx_, weight, stat_dtype(x.dtype()));
  launch_layer_norm_backward(ctx_, x.dtype(), x.data_ptr(), w.ptr, mean.data_ptr(), rstd.data_ptr(), dy.data_ptr(),
                             ptr_or_null(dsum), dx.data_ptr(), ptr_or_null(dweight), ptr_or_null(dbias), n,
                             c);
}

// ---- RoPE, SwiGLU ----

void CudaBackend::do_rope(const Tensor& x, const Tensor& out, double theta, int64_t position_offset, bool interleaved,
                          bool inverse, const Tensor& positions) {
  activate();
  if (x.numel() == 0) return;
  const RopeParams p{x.data_ptr(), out.data_ptr(), x.size(0), x.size(1), x.size(2), x.size(3), x.stride(0),
                     x.stride(1), x.stride(2), out.stride(0), out.stride(1), out.stride(2), theta, position_offset,
                     interleaved, inverse,
                     positions.defined() ? static_cast<const int32_t*>(positions.data_ptr()) : nullptr};
  launch_rope(ctx_, x.dtype(), p);
}

void CudaBackend::do_swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) {
  activate();
  launch_swiglu_forward(ctx_, gate.dtype(), gate.data_ptr(), up.data_ptr(), out.data_ptr(), gate.numel());
}

void CudaBackend::do_swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                                     const Tensor& dup) {
  activate();
  launch_swiglu_backward(ctx_, gate.dtype(), gate.data_ptr(), up.data_ptr(), dout.data_ptr(), dgate.data_ptr(),
                         dup.data_ptr(), gate.numel());
}

// ---- attention ----

void CudaBackend::do_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                       const AttentionArgs& args, const Tensor& out, const Tensor& lse) {
  activate();
  AttnParams p = make_attention(q, k, v, mask, args);
  p.out = operand(out);
  p.lse = lse.data_ptr();
  const int32_t* key_len =
      args.key_lengths.defined() ? static_cast<const int32_t*>(args.key_lengths.data_ptr()) : nullptr;
  if ((key_len || ctx_.split_kv_decode) && launch_attention_decode(ctx_, q.dtype(), p, key_len)) return;
  LF_CHECK(!key_len, "attention: key_lengths is taken for decoding shapes only (at most {} query steps and {} query "
           "heads per key/value head); got q {}", kAttentionDecodeMaxRows, kAttentionDecodeMaxRowsPerGroup, q.str());
  if (tensor_core_attention(q.dtype(), p, {&p.q, &p.k, &p.v, &p.out})) launch_attention_mma_forward(ctx_, q.dtype(), p);
  else launch_attention_forward(ctx_, q.dtype(), p);
}

void CudaBackend::do_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                        const Tensor& out, const Tensor& lse, const Tensor& dout,
                                        const AttentionArgs& args, const Tensor& dq, const Tensor& dk,
                                        const Tensor& dv) {
  activate();
  AttnParams p = make_attention(q, k, v, mask, args);
  p.out = operand(out);
  p.dout = operand(dout);
  p.dq = operand(dq);
  p.dk = operand(dk);
  p.dv = operand(dv);
  p.lse = lse.data_ptr();
  if (tensor_core_attention(q.dtype(), p, {&p.q, &p.k, &p.v, &p.out, &p.dout, &p.dq, &p.dk, &p.dv}))
    launch_attention_mma_backward(ctx_, q.dtype(), p);
  else launch_attention_backward(ctx_, q.dtype(), p);
}

void CudaBackend::do_copy_rows_at(const Tensor& src, const Tensor& dst, const Tensor& positions) {
  activate();
  const int64_t nb = src.size(0), nt = src.size(1);
  if (nb * nt == 0 || src.numel() == 0) return;
  launch_copy_rows_at(ctx_, src.element_size(), src.data_ptr(), dst.data_ptr(),
                      static_cast<const int32_t*>(positions.data_ptr()), nb, nt, dst.size(1), src.numel() / (nb * nt),
                      src.stride(0), src.stride(1), dst.stride(0), dst.stride(1));
}

// ---- optimizer ----

void CudaBackend::do_adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                                const Tensor& exp_avg_sq, const AdamWArgs& args) {
  activate();
  launch_adamw(ctx_, param.dtype(), grad.dtype(), param.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(),
               exp_avg_sq.data_ptr(), param.numel(), args);
}

namespace {
MultiTensorKind multi_tensor_kind(DType t) {
  switch (t) {
    case DType::F32: return MultiTensorKind::F32;
    case DType::BF16: return MultiTensorKind::BF16;
    case DType::F16: return MultiTensorKind::F16;
    default: return MultiTensorKind::None;
  }
}
}  // namespace

void CudaBackend::do_adamw_multi_step(const std::vector<AdamWTensor>& tensors, const AdamWArgs& args0) {
  // f32 parameters with f32 gradients (every master weight) go into one launch; anything else
  // takes the single-tensor kernel, its compute copy written by a cast.
  activate();
  AdamWArgs args = args0;
  const double* device_grad_scale = nullptr;
  if (args.device_grad_scale.defined()) {
    const bool one_launch = std::all_of(tensors.begin(), tensors.end(), [](const AdamWTensor& t) {
      return t.param.dtype() == DType::F32 && t.grad.dtype() == DType::F32;
    });
    if (one_launch) {
      device_grad_scale = static_cast<const double*>(args.device_grad_scale.data_ptr());
    } else {
      // The single-tensor kernels take the multiplier from the host: one wait.
      args.grad_scale = args.device_grad_scale.item();
      if (!std::isfinite(args.grad_scale)) return;  // a non-finite gradient norm: no update
    }
    args.device_grad_scale = Tensor();
  }
  std::vector<MultiTensorEntry> entries;
  for (const AdamWTensor& t : tensors) {
    if (t.param.dtype() != DType::F32 || t.grad.dtype() != DType::F32) {
      AdamWArgs a = args;
      a.weight_decay = t.weight_decay;
      adamw_step(t.param, t.grad, t.exp_avg, t.exp_avg_sq, a);
      if (t.compute_copy.defined()) copy(t.param, t.compute_copy);
      continue;
    }
    if (t.param.numel() == 0) continue;
    entries.push_back({.param = t.param.data_ptr(), .x = t.grad.data_ptr(),
                       .exp_avg = static_cast<float*>(t.exp_avg.data_ptr()),
                       .exp_avg_sq = static_cast<float*>(t.exp_avg_sq.data_ptr()),
                       .copy = t.compute_copy.defined() ? t.compute_copy.data_ptr() : nullptr, .n = t.param.numel(),
                       .weight_decay = t.weight_decay, .x_kind = MultiTensorKind::F32,
                       .copy_kind = t.compute_copy.defined() ? multi_tensor_kind(t.compute_copy.dtype())
                                                             : MultiTensorKind::None});
  }
  if (entries.empty()) return;
  if (!adamw_table_) adamw_table_ = std::make_shared<MultiTensorTable>(ctx_);
  int64_t n_chunks = 0;
  const void* table = adamw_table_->upload(entries, n_chunks);
  launch_adamw_multi(ctx_, table, int64_t(entries.size()), n_chunks, args, device_grad_scale);
}

void CudaBackend::do_multi_sum_of_squares(const std::vector<Tensor>& tensors, const Tensor& out) {
  activate();
  std::vector<MultiTensorEntry> entries;
  std::vector<Tensor> f32_copies;  // f64 (or other) tensors summed as f32 copies
  for (const Tensor& t0 : tensors) {
    if (t0.numel() == 0) continue;
    Tensor t = t0;
    if (multi_tensor_kind(t.dtype()) == MultiTensorKind::None) {
      t = Tensor::empty(t0.shape(), DType::F32, t0.device());
      copy(t0, t);
      f32_copies.push_back(t);
    }
    entries.push_back({.x = t.data_ptr(), .n = t.numel(), .x_kind = multi_tensor_kind(t.dtype())});
  }
  if (!sum_of_squares_table_) sum_of_squares_table_ = std::make_shared<MultiTensorTable>(ctx_);
  int64_t n_chunks = 0;
  const void* table = entries.empty() ? nullptr : sum_of_squares_table_->upload(entries, n_chunks);
  Scratch partials(ctx_.device, size_t(n_chunks) * sizeof(float));
  launch_multi_sum_of_squares(ctx_, table, int64_t(entries.size()), n_chunks, partials.get<float>(),
                              static_cast<double*>(out.data_ptr()));
}

}  // namespace lmforge::cuda
