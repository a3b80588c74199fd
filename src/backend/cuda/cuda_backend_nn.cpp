// CudaBackend: matrix products and the fused ops (cross-entropy, norms, RoPE, SwiGLU,
// attention, AdamW). Argument rules are the CPU twin's (backend/cpu/*.cpp), checked the same way.
#include <algorithm>
#include <cmath>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/multi_tensor_table.h"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

namespace {

// Statistics and the gradients of weights are f32, or f64 when the data is f64.
DType stat_dtype(DType t) { return t == DType::F64 ? DType::F64 : DType::F32; }

void check_stat(const Tensor& t, DType data, const char* what) {
  if (t.dtype() != stat_dtype(data) || !t.is_contiguous())
    throw_internal_error(__FILE__, __LINE__, "statistics tensor layout",
                         fmt::format("{} is {}, expected a contiguous {} tensor", what, t.str(),
                                     dtype_name(stat_dtype(data))));
}

void check_nn_dtype(DType t, const char* op) {
  LF_CHECK(t == DType::F64 || t == DType::F32 || t == DType::BF16 || t == DType::F16,
           "{}: dtype {} is not supported (expected f64, f32, bf16 or f16)", op, dtype_name(t));
}

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

void check_norm_args(const Tensor& x, const Tensor& y, const Tensor& weight, const Tensor& bias) {
  LF_ASSERT(x.dim() >= 1 && x.is_contiguous() && y.is_contiguous() && y.shape() == x.shape() &&
            y.dtype() == x.dtype());
  LF_ASSERT(!weight.defined() || (weight.dim() == 1 && weight.numel() == x.size(-1)));
  LF_ASSERT(!bias.defined() || (bias.dim() == 1 && bias.numel() == x.size(-1)));
}

AttnOperand operand(const Tensor& t) {
  if (!t.defined()) return {};
  return {t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

AttnParams make_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                          const AttentionArgs& args) {
  LF_ASSERT(q.dim() == 4 && k.dim() == 4 && v.dim() == 4);
  LF_ASSERT(k.dtype() == q.dtype() && v.dtype() == q.dtype());
  AttnParams p;
  p.nb = q.size(0);
  p.nt = q.size(1);
  p.nh = q.size(2);
  p.d = q.size(3);
  p.ns = k.size(1);
  p.nhkv = k.size(2);
  p.dv_dim = v.size(3);
  LF_ASSERT(k.size(0) == p.nb && v.size(0) == p.nb && v.size(1) == p.ns && v.size(2) == p.nhkv);
  LF_ASSERT(k.size(3) == p.d && p.nhkv > 0 && p.nh % p.nhkv == 0);
  LF_ASSERT((p.d <= 1 || (q.stride(3) == 1 && k.stride(3) == 1)) && (p.dv_dim <= 1 || v.stride(3) == 1));
  p.scale = args.scale != 0 ? args.scale : 1.0 / std::sqrt(double(std::max<int64_t>(p.d, 1)));
  p.causal = args.causal;
  p.q = operand(q);
  p.k = operand(k);
  p.v = operand(v);
  if (mask.defined()) {
    LF_ASSERT(mask.dim() == 4 && mask.dtype() == stat_dtype(q.dtype()));
    LF_ASSERT(mask.shape() == Shape({p.nb, p.nh, p.nt, p.ns}));
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

void CudaBackend::gemm(const GemmArgs& g) {
  const DType dt = g.a.dtype();
  LF_ASSERT(g.b.dtype() == dt);
  LF_CHECK(is_floating(dt), "matmul: dtype {} is not a floating type", dtype_name(dt));
  check_device("matmul", {&g.a, &g.b, &g.c});
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) {
    Tensor c = g.c.as_strided({g.batch, g.m, g.n}, {g.stride_c, g.ldc, 1}, g.c.offset());
    if (g.beta == 0) fill(c, 0.0);
    else unary(UnaryOp::Affine, c, c, g.beta, 0.0);
    if (g.has_epilogue()) apply_gemm_epilogue(*this, g);
    return;
  }
  if (dt == DType::F64) LF_ASSERT(g.c.dtype() == DType::F64);
  if (g.has_epilogue()) {
    LF_ASSERT(g.batch == 1);
    LF_ASSERT(!g.gelu_tanh_grad || (!g.bias_grad.defined() && !g.bias.defined() && g.pre_gelu.defined()));
    check_device("matmul", {&g.bias, &g.pre_gelu, &g.bias_grad});
  }
  bool epilogue_done = false;
  if (!gemm_cublas(ctx_, g, epilogue_done)) {
    const GemmParams p{g.a.data_ptr(), g.b.data_ptr(), g.c.data_ptr(), g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda,
                       g.ldb, g.ldc, g.batch, g.stride_a, g.stride_b, g.stride_c, g.alpha, g.beta};
    launch_gemm_fallback(ctx_, dt, g.c.dtype(), p);
  }
  if (g.has_epilogue() && !epilogue_done) apply_gemm_epilogue(*this, g);
}

// ---- cross-entropy ----

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,
                                        const Tensor& loss, const Tensor& lse) {
  LF_ASSERT(logits.dim() == 2 && logits.is_contiguous() && targets.is_contiguous());
  LF_ASSERT(targets.numel() == logits.size(0) && loss.numel() == logits.size(0) && lse.numel() == logits.size(0));
  check_device("cross_entropy", {&logits, &targets, &loss, &lse});
  check_nn_dtype(logits.dtype(), "cross_entropy");
  check_stat(loss, logits.dtype(), "cross_entropy loss");
  check_stat(lse, logits.dtype(), "cross_entropy lse");
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

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                         const Tensor& dloss, const CrossEntropyArgs& args, const Tensor& dlogits) {
  LF_ASSERT(logits.dim() == 2 && logits.is_contiguous() && targets.is_contiguous() && dlogits.is_contiguous());
  LF_ASSERT(dlogits.shape() == logits.shape() && dlogits.dtype() == logits.dtype());
  check_device("cross_entropy_backward", {&logits, &targets, &lse, &dloss, &dlogits});
  check_nn_dtype(logits.dtype(), "cross_entropy_backward");
  check_stat(lse, logits.dtype(), "cross_entropy lse");
  check_stat(dloss, logits.dtype(), "cross_entropy dloss");
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

// The optional operands of the fused residual add: x's layout when defined; sum comes with residual.
void check_residual_args(const Tensor& x, const Tensor& residual, const Tensor& sum) {
  LF_ASSERT(residual.defined() == sum.defined());
  if (residual.defined()) {
    check_norm_args(x, residual, Tensor(), Tensor());
    check_norm_args(x, sum, Tensor(), Tensor());
  }
}

void* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

}  // namespace

void CudaBackend::rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                   const Tensor& y, const Tensor& sum, const Tensor& rstd) {
  check_norm_args(x, y, weight, Tensor());
  check_residual_args(x, residual, sum);
  check_device("rms_norm", {&x, &residual, &weight, &y, &sum, &rstd});
  check_nn_dtype(x.dtype(), "rms_norm");
  check_stat(rstd, x.dtype(), "rms_norm rstd");
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const ComputeVector w = compute_vector(ctx_, weight, stat_dtype(x.dtype()));
  launch_rms_norm_forward(ctx_, x.dtype(), x.data_ptr(), ptr_or_null(residual), w.ptr, eps, y.data_ptr(),
                          ptr_or_null(sum), rstd.data_ptr(), n, c);
}

void CudaBackend::rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dy,
                                    const Tensor& dsum, const Tensor& dx, const Tensor& dweight) {
  check_norm_args(x, dx, weight, Tensor());
  check_norm_args(x, dy, weight, Tensor());
  if (dsum.defined()) check_norm_args(x, dsum, weight, Tensor());
  check_device("rms_norm_backward", {&x, &weight, &rstd, &dy, &dsum, &dx, &dweight});
  check_nn_dtype(x.dtype(), "rms_norm_backward");
  check_stat(rstd, x.dtype(), "rms_norm rstd");
  if (dweight.defined()) check_stat(dweight, x.dtype(), "rms_norm dweight");
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const ComputeVector w = compute_vector(ctx_, weight, stat_dtype(x.dtype()));
  launch_rms_norm_backward(ctx_, x.dtype(), x.data_ptr(), w.ptr, rstd.data_ptr(), dy.data_ptr(), ptr_or_null(dsum),
                           dx.data_ptr(), ptr_or_null(dweight), n, c);
}

void CudaBackend::layer_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight,
                                     const Tensor& bias, double eps, const Tensor& y, const Tensor& sum,
                                     const Tensor& mean, const Tensor& rstd) {
  check_norm_args(x, y, weight, bias);
  check_residual_args(x, residual, sum);
  check_device("layer_norm", {&x, &residual, &weight, &bias, &y, &sum, &mean, &rstd});
  check_nn_dtype(x.dtype(), "layer_norm");
  check_stat(mean, x.dtype(), "layer_norm mean");
  check_stat(rstd, x.dtype(), "layer_norm rstd");
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const ComputeVector w = compute_vector(ctx_, weight, stat_dtype(x.dtype()));
  const ComputeVector b = compute_vector(ctx_, bias, stat_dtype(x.dtype()));
  launch_layer_norm_forward(ctx_, x.dtype(), x.data_ptr(), ptr_or_null(residual), w.ptr, b.ptr, eps, y.data_ptr(),
                            ptr_or_null(sum), mean.data_ptr(), rstd.data_ptr(), n, c);
}

void CudaBackend::layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                      const Tensor& dy, const Tensor& dsum, const Tensor& dx, const Tensor& dweight,
                                      const Tensor& dbias) {
  check_norm_args(x, dx, weight, Tensor());
  check_norm_args(x, dy, weight, Tensor());
  if (dsum.defined()) check_norm_args(x, dsum, weight, Tensor());
  check_device("layer_norm_backward", {&x, &weight, &mean, &rstd, &dy, &dsum, &dx, &dweight, &dbias});
  check_nn_dtype(x.dtype(), "layer_norm_backward");
  check_stat(mean, x.dtype(), "layer_norm mean");
  check_stat(rstd, x.dtype(), "layer_norm rstd");
  if (dweight.defined()) check_stat(dweight, x.dtype(), "layer_norm dweight");
  if (dbias.defined()) check_stat(dbias, x.dtype(), "layer_norm dbias");
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const ComputeVector w = compute_vector(ctx_, weight, stat_dtype(x.dtype()));
  launch_layer_norm_backward(ctx_, x.dtype(), x.data_ptr(), w.ptr, mean.data_ptr(), rstd.data_ptr(), dy.data_ptr(),
                             ptr_or_null(dsum), dx.data_ptr(), ptr_or_null(dweight), ptr_or_null(dbias), n,
                             c);
}

// ---- RoPE, SwiGLU ----

void CudaBackend::rope(const Tensor& x, const Tensor& out, double theta, int64_t position_offset, bool interleaved,
                       bool inverse) {
  LF_ASSERT(x.dim() == 4 && out.shape() == x.shape() && out.dtype() == x.dtype());
  LF_ASSERT(x.size(3) % 2 == 0 && (x.size(3) <= 1 || (x.stride(3) == 1 && out.stride(3) == 1)));
  check_device("rope", {&x, &out});
  check_nn_dtype(x.dtype(), "rope");
  if (x.numel() == 0) return;
  const RopeParams p{x.data_ptr(), out.data_ptr(), x.size(0), x.size(1), x.size(2), x.size(3), x.stride(0),
                     x.stride(1), x.stride(2), out.stride(0), out.stride(1), out.stride(2), theta, position_offset,
                     interleaved, inverse};
  launch_rope(ctx_, x.dtype(), p);
}

void CudaBackend::swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) {
  LF_ASSERT(gate.is_contiguous() && up.is_contiguous() && out.is_contiguous());
  LF_ASSERT(gate.shape() == up.shape() && out.shape() == gate.shape());
  LF_ASSERT(gate.dtype() == up.dtype() && out.dtype() == gate.dtype());
  check_device("swiglu", {&gate, &up, &out});
  launch_swiglu_forward(ctx_, gate.dtype(), gate.data_ptr(), up.data_ptr(), out.data_ptr(), gate.numel());
}

void CudaBackend::swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                                  const Tensor& dup) {
  LF_ASSERT(gate.is_contiguous() && up.is_contiguous() && dout.is_contiguous() && dgate.is_contiguous() &&
            dup.is_contiguous());
  LF_ASSERT(gate.shape() == up.shape() && dout.shape() == gate.shape() && dgate.shape() == gate.shape() &&
            dup.shape() == gate.shape());
  LF_ASSERT(gate.dtype() == up.dtype() && dout.dtype() == gate.dtype() && dgate.dtype() == gate.dtype() &&
            dup.dtype() == gate.dtype());
  check_device("swiglu_backward", {&gate, &up, &dout, &dgate, &dup});
  launch_swiglu_backward(ctx_, gate.dtype(), gate.data_ptr(), up.data_ptr(), dout.data_ptr(), dgate.data_ptr(),
                         dup.data_ptr(), gate.numel());
}

// ---- attention ----

void CudaBackend::attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                    const AttentionArgs& args, const Tensor& out, const Tensor& lse) {
  check_nn_dtype(q.dtype(), "attention");
  check_device("attention", {&q, &k, &v, &mask, &out, &lse});
  AttnParams p = make_attention(q, k, v, mask, args);
  LF_ASSERT(out.dtype() == q.dtype() && out.shape() == Shape({p.nb, p.nt, p.nh, p.dv_dim}));
  LF_ASSERT(p.dv_dim <= 1 || out.stride(3) == 1);
  check_stat(lse, q.dtype(), "attention lse");
  LF_ASSERT(lse.numel() == p.nb * p.nh * p.nt);
  p.out = operand(out);
  p.lse = lse.data_ptr();
  if (tensor_core_attention(q.dtype(), p, {&p.q, &p.k, &p.v, &p.out})) launch_attention_mma_forward(ctx_, q.dtype(), p);
  else launch_attention_forward(ctx_, q.dtype(), p);
}

void CudaBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                     const Tensor& out, const Tensor& lse, const Tensor& dout,
                                     const AttentionArgs& args, const Tensor& dq, const Tensor& dk,
                                     const Tensor& dv) {
  check_nn_dtype(q.dtype(), "attention_backward");
  check_device("attention_backward", {&q, &k, &v, &mask, &out, &lse, &dout, &dq, &dk, &dv});
  AttnParams p = make_attention(q, k, v, mask, args);
  LF_ASSERT(out.dtype() == q.dtype() && dout.dtype() == q.dtype() && out.shape() == dout.shape());
  LF_ASSERT(out.shape() == Shape({p.nb, p.nt, p.nh, p.dv_dim}));
  LF_ASSERT(dq.shape() == q.shape() && dk.shape() == k.shape() && dv.shape() == v.shape());
  LF_ASSERT(dq.dtype() == q.dtype() && dk.dtype() == q.dtype() && dv.dtype() == q.dtype());
  LF_ASSERT(p.dv_dim <= 1 || (out.stride(3) == 1 && dout.stride(3) == 1 && dv.stride(3) == 1));
  LF_ASSERT(p.d <= 1 || (dq.stride(3) == 1 && dk.stride(3) == 1));
  check_stat(lse, q.dtype(), "attention lse");
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

// ---- optimizer ----

void CudaBackend::adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                             const Tensor& exp_avg_sq, const AdamWArgs& args) {
  LF_ASSERT(param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous());
  LF_ASSERT(grad.numel() == param.numel() && exp_avg.numel() == param.numel() &&
            exp_avg_sq.numel() == param.numel());
  LF_CHECK(param.dtype() == DType::F64 || param.dtype() == DType::F32 || param.dtype() == DType::BF16 ||
               param.dtype() == DType::F16,
           "adamw_step: parameter dtype {} is not supported (expected f32, f64, bf16 or f16)",
           dtype_name(param.dtype()));
  check_device("adamw_step", {&param, &grad, &exp_avg, &exp_avg_sq});
  check_stat(exp_avg, param.dtype(), "adamw exp_avg");
  check_stat(exp_avg_sq, param.dtype(), "adamw exp_avg_sq");
  LF_CHECK(grad.dtype() == param.dtype() || grad.dtype() == DType::F32,
           "adamw_step: gradient dtype {} does not match parameter dtype {} (expected {} or f32)",
           dtype_name(grad.dtype()), dtype_name(param.dtype()), dtype_name(param.dtype()));
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

void CudaBackend::adamw_multi_step(const std::vector<AdamWTensor>& tensors, const AdamWArgs& args0) {
  // f32 parameters with f32 gradients (every master weight) go into one launch; anything else
  // takes the single-tensor kernel, its compute copy written by a cast.
  AdamWArgs args = args0;
  const double* clip_norm_sq = nullptr;
  if (args.clip_norm_sq.defined()) {
    check_device("adamw_multi_step", {&args.clip_norm_sq});
    LF_CHECK(args.clip_norm_sq.dtype() == DType::F64 && args.clip_norm_sq.numel() == 1,
             "adamw_multi_step: clip_norm_sq must be an f64 scalar, got {}", args.clip_norm_sq.str());
    const bool one_launch = std::all_of(tensors.begin(), tensors.end(), [](const AdamWTensor& t) {
      return t.param.dtype() == DType::F32 && t.grad.dtype() == DType::F32;
    });
    if (one_launch) {
      clip_norm_sq = static_cast<const double*>(args.clip_norm_sq.data_ptr());
      args.clip_norm_sq = Tensor();
    } else if (!resolve_clip_on_host(args)) {  // the single-tensor kernels take it from the host
      return;
    }
  }
  std::vector<MultiTensorEntry> entries;
  for (const AdamWTensor& t : tensors) {
    AdamWArgs a = args;
    a.weight_decay = t.weight_decay;
    if (t.compute_copy.defined()) {
      LF_ASSERT(t.compute_copy.is_contiguous() && t.compute_copy.numel() == t.param.numel());
      LF_CHECK(t.compute_copy.dtype() == DType::BF16 || t.compute_copy.dtype() == DType::F16,
               "adamw_multi_step: compute copy dtype {} is not supported (expected bf16 or f16)",
               dtype_name(t.compute_copy.dtype()));
    }
    if (t.param.dtype() != DType::F32 || t.grad.dtype() != DType::F32) {
      adamw_step(t.param, t.grad, t.exp_avg, t.exp_avg_sq, a);
      if (t.compute_copy.defined()) copy(t.param, t.compute_copy);
      continue;
    }
    LF_ASSERT(t.param.is_contiguous() && t.grad.is_contiguous() && t.exp_avg.is_contiguous() &&
              t.exp_avg_sq.is_contiguous());
    LF_ASSERT(t.grad.numel() == t.param.numel() && t.exp_avg.numel() == t.param.numel() &&
              t.exp_avg_sq.numel() == t.param.numel());
    check_device("adamw_multi_step", {&t.param, &t.grad, &t.exp_avg, &t.exp_avg_sq, &t.compute_copy});
    check_stat(t.exp_avg, DType::F32, "adamw exp_avg");
    check_stat(t.exp_avg_sq, DType::F32, "adamw exp_avg_sq");
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
  launch_adamw_multi(ctx_, table, int64_t(entries.size()), n_chunks, args, clip_norm_sq);
}

void CudaBackend::multi_sum_of_squares(const std::vector<Tensor>& tensors, const Tensor& out) {
  LF_ASSERT(out.dtype() == DType::F64 && out.numel() == 1);
  check_device("multi_sum_of_squares", {&out});
  std::vector<MultiTensorEntry> entries;
  std::vector<Tensor> f32_copies;  // f64 (or other) tensors summed as f32 copies
  for (const Tensor& t0 : tensors) {
    LF_ASSERT(t0.is_contiguous());
    check_device("multi_sum_of_squares", {&t0});
    LF_CHECK(is_floating(t0.dtype()), "multi_sum_of_squares: tensors must be floating, got {}", t0.str());
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
