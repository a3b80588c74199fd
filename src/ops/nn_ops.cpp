// Fused neural-network ops: each validates its arguments, lays the inputs out as its kernel needs
// (backend/backend.h), allocates the outputs, calls the kernel, and records one backward node
// that calls the matching backward kernel. Forward and backward sit side by side.
//
// Statistics the kernels save for backward (cross-entropy lse, norm mean/rstd, attention lse) are
// f32, or f64 when the data is f64, so that f64 gradient checks see f64 arithmetic throughout.
#include "ops/nn_ops.h"

#include <cmath>

#include "autograd/function.h"
#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {

namespace {

// Leading dims of `shape` (all but the last).
Shape leading(const Shape& shape) { return Shape(shape.begin(), shape.end() - (shape.empty() ? 0 : 1)); }

void check_floating(const Tensor& t, const char* op, const char* arg) {
  LF_CHECK(t.defined(), "{}: {} is undefined", op, arg);
  LF_CHECK(is_floating(t.dtype()), "{}: {} must be a floating tensor, got {}", op, arg, t.str());
}

void check_device(const Tensor& a, const Tensor& b, const char* op, const char* arg_a, const char* arg_b) {
  if (!b.defined()) return;
  LF_CHECK(a.device() == b.device(), "{}: {} is on {} but {} is on {}", op, arg_a, a.device().str(), arg_b,
           b.device().str());
}

// A gradient made contiguous in dtype `dt` (the kernels take dy in the data's dtype).
Tensor grad_as(const Tensor& g, DType dt) { return contiguous(cast(g, dt)); }

// Keeps a tensor whose last dim is contiguous as is (the kernels take any other strides).
Tensor last_dim_contiguous(const Tensor& t) {
  return (t.dim() == 0 || t.size(-1) <= 1 || t.stride(-1) == 1) ? t : contiguous(t);
}

// q [B, T, H, D], k and v [B, T, Hkv, D] read from one fused projection [B, T, (H + 2·Hkv)·D]
// (q, k, v side by side in every row, as nn/attention.cpp makes them): their gradients are put at
// the same places of one new buffer, so the projection's backward takes it whole
// (split_last's backward concatenates adjacent views without copying). False, leaving the
// outputs alone, for any other layout.
bool fused_qkv_gradients(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& dq, Tensor& dk, Tensor& dv) {
  if (!q.shares_storage(k) || !q.shares_storage(v) || k.size(1) != q.size(1) || v.size(3) != q.size(3)) return false;
  const int64_t b = q.size(0), t = q.size(1), d = q.size(3);
  const int64_t qw = q.size(2) * d, kw = k.size(2) * d, w = qw + 2 * kw;
  for (const Tensor* x : {&q, &k, &v})
    if (x->stride(3) != 1 || x->stride(2) != d || x->stride(1) != w || x->stride(0) != t * w) return false;
  if (k.offset() != q.offset() + qw || v.offset() != k.offset() + kw) return false;
  const Tensor g = Tensor::empty({b, t, w}, q.dtype(), q.device());
  dq = g.as_strided(q.shape(), q.strides(), g.offset());
  dk = g.as_strided(k.shape(), k.strides(), g.offset() + qw);
  dv = g.as_strided(v.shape(), v.strides(), g.offset() + qw + kw);
  return true;
}

}  // namespace

// ---- cross-entropy ----

Tensor cross_entropy(const Tensor& logits0, const Tensor& targets0, const CrossEntropyOptions& opt) {
  check_floating(logits0, "cross_entropy", "logits");
  LF_CHECK(logits0.dim() >= 1, "cross_entropy: logits must be [N, V], got a 0-d tensor");
  LF_CHECK(targets0.defined() && (targets0.dtype() == DType::I64 || targets0.dtype() == DType::I32),
           "cross_entropy: targets must be an i64 or i32 tensor, got {}",
           targets0.defined() ? targets0.str() : std::string("undefined"));
  check_device(logits0, targets0, "cross_entropy", "logits", "targets");
  const Shape lead = leading(logits0.shape());
  LF_CHECK(targets0.shape() == lead, "cross_entropy: targets have shape {} but logits of shape {} need targets "
           "of shape {}", shape_str(targets0.shape()), shape_str(logits0.shape()), shape_str(lead));
  LF_CHECK(opt.label_smoothing >= 0 && opt.label_smoothing <= 1,
           "cross_entropy: label_smoothing must be in [0, 1], got {}", opt.label_smoothing);
  LF_CHECK(opt.z_loss >= 0, "cross_entropy: z_loss must be >= 0, got {}", opt.z_loss);
  const int64_t n = shape_numel(lead), v = logits0.size(-1);
  LF_CHECK(v > 0 || n == 0, "cross_entropy: logits of shape {} have no classes", shape_str(logits0.shape()));

  const Tensor logits = contiguous(logits0.detach()).reshape({n, v});
  const Tensor targets = contiguous(targets0.detach()).reshape({n});
  const DType sd = stat_dtype(logits.dtype());
  const Device dev = logits.device();
  const CrossEntropyArgs args{.ignore_index = opt.ignore_index, .label_smoothing = opt.label_smoothing,
                              .z_loss = opt.z_loss};
  Tensor loss = Tensor::empty({n}, sd, dev), lse = Tensor::empty({n}, sd, dev);
  backend_for(logits).cross_entropy_forward(logits, targets, args, loss, lse);

  using Reduction = CrossEntropyOptions::Reduction;
  Tensor out, denom;  // denom: the number of counted targets, at least 1 (mean only)
  {
    NoGradGuard no_grad;
    if (opt.reduction == Reduction::None) {
      out = loss.reshape(lead);
    } else {
      out = sum(loss);
      if (opt.reduction == Reduction::Mean) {
        Tensor counted = ne(targets, full({}, double(opt.ignore_index), targets.dtype(), dev));
        denom = maximum(sum(cast(counted, sd)), scalar_tensor(1.0, sd, dev));
        out = div(out, denom);
      }
      if (opt.z_loss_part) {
        // z · Σ lse² over the counted rows, reduced as the loss is.
        Tensor counted = cast(ne(targets, full({}, double(opt.ignore_index), targets.dtype(), dev)), sd);
        Tensor z = mul(sum(mul(mul(lse, lse), counted)), opt.z_loss);
        *opt.z_loss_part = opt.reduction == Reduction::Mean ? div(z, denom) : z;
      }
    }
  }
  if (any_requires_grad({logits0}))
    record_op("cross_entropy", {logits0}, {out},
              [sl = SavedTensor(logits), st = SavedTensor(targets), sse = SavedTensor(lse), denom, args, n,
               reduction = opt.reduction, shape = logits0.shape()](BackwardContext& ctx) -> TensorList {
                const Tensor& lg = sl.get();
                const DType sd = stat_dtype(lg.dtype());
                Tensor dloss;  // [N]
                const Tensor g = cast(ctx.grad(), sd);
                if (reduction == Reduction::None) dloss = contiguous(g).reshape({n});
                else if (reduction == Reduction::Sum) dloss = contiguous(expand(g.reshape({1}), {n}));
                else dloss = contiguous(expand(div(g, denom).reshape({1}), {n}));
                // When this node holds the only reference to the logits (the usual case: the model
                // keeps no logits for the loss), their gradient overwrites them: the backward
                // kernels read each element before writing it, and at the loss the logits are the
                // largest tensor of a step. The version bump makes any later reader fail loudly.
                const bool reuse = lg.storage().use_count() == 1 && lg.is_contiguous();
                Tensor dlogits = reuse ? lg : Tensor::empty(lg.shape(), lg.dtype(), lg.device());
                backend_for(lg).cross_entropy_backward(lg, st.get(), sse.get(), dloss, args, dlogits);
                if (reuse) dlogits.bump_version();
                return {dlogits.reshape(shape)};
              });
  return out;
}

// ---- RMSNorm / LayerNorm over the last dim, optionally after a residual add ----

namespace {

void check_norm_param(const Tensor& x, const Tensor& p, const char* op, const char* arg) {
  if (!p.defined()) return;
  check_floating(p, op, arg);
  check_device(x, p, op, "x", arg);
  LF_CHECK(p.dim() == 1 && p.size(0) == x.size(-1), "{}: {} has shape {} but x's last dim is {} (x has shape {})",
           op, arg, shape_str(p.shape()), x.size(-1), shape_str(x.shape()));
}

enum class NormOp { Rms, Layer };

// The four norm ops in one: validates, runs the forward kernel and records one node whose inputs
// are (x, residual, weight, bias) and whose outputs are (sum, y) with a residual, else (y).
AddNorm norm_op(NormOp kind, const Tensor& x0, const Tensor& residual0, const Tensor& weight, const Tensor& bias,
                double eps) {
  const bool layer = kind == NormOp::Layer, fused = residual0.defined();
  const char* op = layer ? (fused ? "add_layer_norm" : "layer_norm") : (fused ? "add_rms_norm" : "rms_norm");
  check_floating(x0, op, "x");
  LF_CHECK(x0.dim() >= 1, "{}: x must have at least one dimension, got {}", op, x0.str());
  if (fused) {
    check_floating(residual0, op, "residual");
    check_device(x0, residual0, op, "x", "residual");
    LF_CHECK(residual0.shape() == x0.shape(), "{}: x has shape {} but residual has shape {} (they must match: the "
             "add does not broadcast)", op, shape_str(x0.shape()), shape_str(residual0.shape()));
    LF_CHECK(residual0.dtype() == x0.dtype(), "{}: x is {} but residual is {} (cast one of them)", op,
             dtype_name(x0.dtype()), dtype_name(residual0.dtype()));
  }
  check_norm_param(x0, weight, op, "weight");
  check_norm_param(x0, bias, op, "bias");
  LF_CHECK(eps >= 0, "{}: eps must be >= 0, got {}", op, eps);
  const int64_t c = x0.size(-1), n = shape_numel(leading(x0.shape()));
  const Tensor x = contiguous(x0.detach()).reshape({n, c});
  const Tensor residual = fused ? contiguous(residual0.detach()).reshape({n, c}) : Tensor();
  const Device dev = x.device();
  const DType sd = stat_dtype(x.dtype());
  Tensor y = Tensor::empty({n, c}, x.dtype(), dev);
  Tensor sum = fused ? Tensor::empty({n, c}, x.dtype(), dev) : Tensor();
  Tensor mean = layer ? Tensor::empty({n}, sd, dev) : Tensor(), rstd = Tensor::empty({n}, sd, dev);
  Backend& be = backend_for(x);
  if (layer) be.layer_norm_forward(x, residual, weight, bias, eps, y, sum, mean, rstd);
  else be.rms_norm_forward(x, residual, weight, eps, y, sum, rstd);
  AddNorm out{.sum = fused ? sum.reshape(x0.shape()) : Tensor(), .y = y.reshape(x0.shape())};
  if (!any_requires_grad({x0, residual0, weight, bias})) return out;
  record_op(op, {x0, residual0, weight, bias}, fused ? TensorList{out.sum, out.y} : TensorList{out.y},
            [layer, fused, sx = SavedTensor(fused ? sum : x), sw = SavedTensor(weight), sm = SavedTensor(mean),
             sr = SavedTensor(rstd), bias_dtype = bias.defined() ? bias.dtype() : DType::F32,
             shape = x0.shape()](BackwardContext& ctx) -> TensorList {
              const Tensor& x = sx.get();  // the normalised [N, C] rows: the sum when fused
              const Tensor& w = sw.get();
              const DType dt = x.dtype(), sd = stat_dtype(dt);
              const Tensor dsum_in = fused ? ctx.grad(0) : Tensor(), dy_in = ctx.grad(fused ? 1 : 0);
              TensorList g(4);
              Tensor dx;
              if (!dy_in.defined()) {
                // Only the sum's gradient arrived: it is x's and residual's as it is.
                dx = cast(dsum_in, dt);
              } else {
                const Tensor dy = grad_as(dy_in, dt).reshape(x.shape());
                const Tensor dsum = dsum_in.defined() ? grad_as(dsum_in, dt).reshape(x.shape()) : Tensor();
                dx = Tensor::empty(x.shape(), dt, x.device());
                Tensor dw = ctx.needs_input_grad(2) ? Tensor::empty({x.size(1)}, sd, x.device()) : Tensor();
                Tensor db = ctx.needs_input_grad(3) ? Tensor::empty({x.size(1)}, sd, x.device()) : Tensor();
                Backend& be = backend_for(x);
                if (layer) be.layer_norm_backward(x, w, sm.get(), sr.get(), dy, dsum, dx, dw, db);
                else be.rms_norm_backward(x, w, sr.get(), dy, dsum, dx, dw);
                dx = dx.reshape(shape);
                // A bf16 / f16 weight (usually the compute copy of an f32 master) gets its f32
                // gradient as it is: a round trip through its dtype would cost two casts and a
                // rounding; the leaf's accumulator casts once if it is a low-precision leaf.
                const auto stat_grad = [](const Tensor& t, DType want) {
                  return want == DType::BF16 || want == DType::F16 ? t : cast(t, want);
                };
                if (dw.defined()) g[2] = stat_grad(dw, w.dtype());
                if (db.defined()) g[3] = stat_grad(db, bias_dtype);
              }
              // x and residual get the same tensor, as add() gives its two inputs: the tape never
              // writes into a gradient it passes on (it sums out of place, and a leaf copies a
              // gradient whose storage anything else holds).
              if (ctx.needs_input_grad(0)) g[0] = dx;
              if (ctx.needs_input_grad(1)) g[1] = dx;
              return g;
            });
  return out;
}

}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  return norm_op(NormOp::Rms, x, Tensor(), weight, Tensor(), eps).y;
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  return norm_op(NormOp::Layer, x, Tensor(), weight, bias, eps).y;
}

AddNorm add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps) {
  LF_CHECK(residual.defined(), "add_rms_norm: residual is undefined (use rms_norm for the norm alone)");
  return norm_op(NormOp::Rms, x, residual, weight, Tensor(), eps);
}

AddNorm add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                       double eps) {
  LF_CHECK(residual.defined(), "add_layer_norm: residual is undefined (use layer_norm for the norm alone)");
  return norm_op(NormOp::Layer, x, residual, weight, bias, eps);
}

// ---- rotary position embedding ----

Tensor rope(const Tensor& x0, const RopeOptions& opt) {
  check_floating(x0, "rope", "x");
  LF_CHECK(x0.dim() == 4, "rope: x must be [B, T, H, D], got shape {}", shape_str(x0.shape()));
  LF_CHECK(x0.size(3) % 2 == 0, "rope: head dim D = {} must be even (x has shape {})", x0.size(3),
           shape_str(x0.shape()));
  LF_CHECK(opt.theta > 0, "rope: theta must be > 0, got {}", opt.theta);
  LF_CHECK(opt.position_offset >= 0, "rope: position_offset must be >= 0, got {}", opt.position_offset);
  if (opt.positions.defined()) {
    check_device(x0, opt.positions, "rope", "x", "positions");
    LF_CHECK(opt.positions.dtype() == DType::I32 && opt.positions.dim() == 1 && opt.positions.size(0) == x0.size(0),
             "rope: positions must be i32 [{}], got {}", x0.size(0), opt.positions.str());
    LF_CHECK(opt.position_offset == 0, "rope: give positions or position_offset, not both");
  }
  const Tensor positions = opt.positions.defined() ? opt.positions.contiguous() : Tensor();
  const Tensor x = last_dim_contiguous(x0.detach());
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x).rope(x, out, opt.theta, opt.position_offset, opt.interleaved, /*inverse=*/false, positions);
  if (any_requires_grad({x0}))
    record_op("rope", {x0}, {out}, [opt, positions, dt = x.dtype()](BackwardContext& ctx) -> TensorList {
      const Tensor g = last_dim_contiguous(cast(ctx.grad(), dt));
      Tensor dx = Tensor::empty(g.shape(), dt, g.device());
      backend_for(g).rope(g, dx, opt.theta, opt.position_offset, opt.interleaved, /*inverse=*/true, positions);
      return {dx};
    });
  return out;
}

// ---- SwiGLU ----

Tensor swiglu(const Tensor& gate0, const Tensor& up0) {
  check_floating(gate0, "swiglu", "gate");
  check_floating(up0, "swiglu", "up");
  check_device(gate0, up0, "swiglu", "gate", "up");
  LF_CHECK(gate0.shape() == up0.shape(), "swiglu: gate has shape {} but up has shape {} (they must match)",
           shape_str(gate0.shape()), shape_str(up0.shape()));
  LF_CHECK(gate0.dtype() == up0.dtype(), "swiglu: gate is {} but up is {} (cast one of them)",
           dtype_name(gate0.dtype()), dtype_name(up0.dtype()));
  // A backend without the fused kernel for this dtype (fp8 everywhere): silu(gate)·up from the
  // elementwise ops, each rounding to the dtype, and their own backward.
  if (!backend_for(gate0).supports(Kernel::swiglu_forward, gate0.dtype())) return mul(silu(gate0), up0);
  const Tensor gate = contiguous(gate0.detach()), up = contiguous(up0.detach());
  Tensor out = Tensor::empty(gate.shape(), gate.dtype(), gate.device());
  backend_for(gate).swiglu_forward(gate, up, out);
  if (any_requires_grad({gate0, up0}))
    record_op("swiglu", {gate0, up0}, {out},
              [sg = SavedTensor(gate), su = SavedTensor(up)](BackwardContext& ctx) -> TensorList {
                const Tensor &g = sg.get(), &u = su.get();
                const Tensor dout = grad_as(ctx.grad(), g.dtype());
                Tensor dg = Tensor::empty(g.shape(), g.dtype(), g.device());
                Tensor du = Tensor::empty(g.shape(), g.dtype(), g.device());
                backend_for(g).swiglu_backward(g, u, dout, dg, du);
                TensorList grads(2);
                if (ctx.needs_input_grad(0)) grads[0] = dg;
                if (ctx.needs_input_grad(1)) grads[1] = du;
                return grads;
              });
  return out;
}

// ---- dropout ----

// Composite (mul by a constant keep/(1-p) tensor): the tape holds one mul node whose backward
// multiplies by the same mask.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  check_floating(x, "dropout", "x");
  LF_CHECK(p >= 0 && p <= 1, "dropout: p must be in [0, 1], got {}", p);
  if (!training || p == 0) return x;
  Tensor scale;
  {
    NoGradGuard no_grad;
    if (p == 1) {
      scale = zeros(x.shape(), x.dtype(), x.device());
    } else {
      Tensor keep = bernoulli(x.shape(), 1.0 - p, gen, x.device());
      scale = mul(cast(keep, x.dtype()), 1.0 / (1.0 - p));
    }
  }
  return mul(x, scale);
}

// ---- attention ----

// The mask is a constant: no gradient flows to it (a learned bias would go through the
// composite matmul/softmax path instead).
Tensor attention(const Tensor& q0, const Tensor& k0, const Tensor& v0, const AttentionOptions& opt,
                 const Tensor& mask0) {
  check_floating(q0, "attention", "q");
  check_floating(k0, "attention", "k");
  check_floating(v0, "attention", "v");
  LF_CHECK(q0.dim() == 4, "attention: q must be [B, T, H, D], got shape {}", shape_str(q0.shape()));
  LF_CHECK(k0.dim() == 4, "attention: k must be [B, S, Hkv, D], got shape {}", shape_str(k0.shape()));
  LF_CHECK(v0.dim() == 4, "attention: v must be [B, S, Hkv, Dv], got shape {}", shape_str(v0.shape()));
  check_device(q0, k0, "attention", "q", "k");
  check_device(q0, v0, "attention", "q", "v");
  LF_CHECK(q0.dtype() == k0.dtype() && q0.dtype() == v0.dtype(), "attention: q, k, v must share a dtype, got {}, {}, {}",
           dtype_name(q0.dtype()), dtype_name(k0.dtype()), dtype_name(v0.dtype()));
  const int64_t b = q0.size(0), t = q0.size(1), h = q0.size(2), d = q0.size(3);
  const int64_t s = k0.size(1), hkv = k0.size(2), dv = v0.size(3);
  LF_CHECK(k0.size(0) == b && v0.size(0) == b, "attention: batch sizes differ: q {}, k {}, v {}",
           shape_str(q0.shape()), shape_str(k0.shape()), shape_str(v0.shape()));
  LF_CHECK(v0.size(1) == s && v0.size(2) == hkv, "attention: k has shape {} but v has shape {} (S and Hkv must match)",
           shape_str(k0.shape()), shape_str(v0.shape()));
  LF_CHECK(k0.size(3) == d, "attention: q has head dim {} but k has {} (q {}, k {})", d, k0.size(3),
           shape_str(q0.shape()), shape_str(k0.shape()));
  LF_CHECK(d > 0, "attention: head dim must be > 0 (q has shape {})", shape_str(q0.shape()));
  LF_CHECK(hkv > 0 && h % hkv == 0, "attention: q has {} heads, which is not a multiple of k/v's {} heads "
           "(q {}, k {})", h, hkv, shape_str(q0.shape()), shape_str(k0.shape()));
  const DType dt = q0.dtype(), sd = stat_dtype(dt);
  const Device dev = q0.device();

  Tensor mask;
  if (mask0.defined()) {
    LF_CHECK(is_floating(mask0.dtype()), "attention: mask must be an additive floating mask (0 where allowed, "
             "-inf where not), got {}; turn a bool mask into one with where(mask, 0, -inf)", mask0.str());
    check_device(q0, mask0, "attention", "q", "mask");
    const Shape full_shape{b, h, t, s};
    bool ok = mask0.dim() <= 4;
    for (int64_t i = 0; ok && i < mask0.dim(); ++i) {
      const int64_t m = mask0.size(mask0.dim() - 1 - i), f = full_shape[3 - i];
      ok = m == f || m == 1;
    }
    LF_CHECK(ok, "attention: mask of shape {} does not broadcast to [B, H, T, S] = {}", shape_str(mask0.shape()),
             shape_str(full_shape));
    NoGradGuard no_grad;
    mask = expand(cast(mask0.detach(), sd), full_shape);
  }

  if (opt.key_lengths.defined()) {
    check_device(q0, opt.key_lengths, "attention", "q", "key_lengths");
    LF_CHECK(opt.key_lengths.dtype() == DType::I32 && opt.key_lengths.dim() == 1 && opt.key_lengths.size(0) == b,
             "attention: key_lengths must be i32 [{}], got {}", b, opt.key_lengths.str());
    LF_CHECK(!mask.defined(), "attention: key_lengths and a mask cannot be combined");
    LF_CHECK(!any_requires_grad({q0, k0, v0}), "attention: key_lengths is for inference; it has no gradient (run "
             "under NoGradGuard)");
  }
  const AttentionArgs args{.scale = opt.scale, .causal = opt.causal,
                           .key_lengths = opt.key_lengths.defined() ? opt.key_lengths.contiguous() : Tensor()};
  const Tensor q = last_dim_contiguous(q0.detach()), k = last_dim_contiguous(k0.detach()),
               v = last_dim_contiguous(v0.detach());
  Tensor out = Tensor::empty({b, t, h, dv}, dt, dev), lse = Tensor::empty({b, h, t}, sd, dev);
  backend_for(q).attention_forward(q, k, v, mask, args, out, lse);
  if (any_requires_grad({q0, k0, v0}))
    record_op("attention", {q0, k0, v0}, {out},
              [sq = SavedTensor(q), sk = SavedTensor(k), sv = SavedTensor(v), sm = SavedTensor(mask),
               so = SavedTensor(out), sl = SavedTensor(lse), args](BackwardContext& ctx) -> TensorList {
                const Tensor &q = sq.get(), &k = sk.get(), &v = sv.get();
                const Tensor dout = grad_as(ctx.grad(), q.dtype());
                Tensor dq, dk, dv;
                if (!fused_qkv_gradients(q, k, v, dq, dk, dv)) {
                  dq = Tensor::empty(q.shape(), q.dtype(), q.device());
                  dk = Tensor::empty(k.shape(), k.dtype(), k.device());
                  dv = Tensor::empty(v.shape(), v.dtype(), v.device());
                }
                backend_for(q).attention_backward(q, k, v, sm.get(), so.get(), sl.get(), dout, args, dq, dk, dv);
                TensorList g(3);
                if (ctx.needs_input_grad(0)) g[0] = dq;
                if (ctx.needs_input_grad(1)) g[1] = dk;
                if (ctx.needs_input_grad(2)) g[2] = dv;
                return g;
              });
  return out;
}

}  // namespace lmforge
