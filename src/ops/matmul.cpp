// Matrix products with torch.matmul semantics. Transposed operands reach the GEMM as
// trans flags with their leading dimension, never as copies; leading dims of the left operand
// fold into M when the right operand is a plain matrix (the Linear-layer case: one big GEMM).
#include "ops/matmul.h"

#include "autograd/function.h"
#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {

namespace {

// How a [.., rows, cols] operand is read: row-major with leading dimension `ld`, or transposed.
struct MatrixLayout {
  bool ok = false, trans = false;
  int64_t ld = 0;
};

MatrixLayout matrix_layout(const Tensor& t) {
  const int64_t rows = t.size(-2), cols = t.size(-1), sr = t.stride(-2), sc = t.stride(-1);
  if ((sc == 1 || cols == 1) && (sr >= std::max<int64_t>(cols, 1) || rows == 1))
    return {true, false, rows == 1 ? std::max<int64_t>(cols, 1) : sr};
  if ((sr == 1 || rows == 1) && (sc >= std::max<int64_t>(rows, 1) || cols == 1))
    return {true, true, cols == 1 ? std::max<int64_t>(rows, 1) : sc};
  return {};
}

// Single stride over the (broadcast) batch dims of t, if they collapse into one.
bool batch_stride(const Tensor& t, int64_t nbatch, int64_t& stride) {
  stride = 0;
  bool any = false;
  int64_t expect = 0;
  for (int64_t i = nbatch - 1; i >= 0; --i) {
    if (t.size(i) == 1) continue;
    if (!any) {
      stride = t.stride(i);
      expect = t.stride(i) * t.size(i);
      any = true;
    } else {
      if (t.stride(i) != expect) return false;
      expect = t.stride(i) * t.size(i);
    }
  }
  return true;
}

// out [batch..., m, n] = a [batch..., m, k] @ b [batch..., k, n], a and b already broadcast.
Tensor gemm_forward(Tensor a, Tensor b, DType dt) {
  const int64_t nb = a.dim() - 2;
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = Tensor::empty(out_shape, dt, a.device());
  MatrixLayout la = matrix_layout(a), lb = matrix_layout(b);
  int64_t sa = 0, sb = 0;
  if (!la.ok || !batch_stride(a, nb, sa)) { a = contiguous(a); la = matrix_layout(a); batch_stride(a, nb, sa); }
  if (!lb.ok || !batch_stride(b, nb, sb)) { b = contiguous(b); lb = matrix_layout(b); batch_stride(b, nb, sb); }
  int64_t batch = 1;
  for (int64_t i = 0; i < nb; ++i) batch *= out_shape[i];
  GemmArgs g{.a = a, .b = b, .c = out, .trans_a = la.trans, .trans_b = lb.trans, .m = m, .n = n, .k = k,
             .lda = la.ld, .ldb = lb.ld, .ldc = std::max<int64_t>(n, 1), .batch = batch,
             .stride_a = batch > 1 ? sa : 0, .stride_b = batch > 1 ? sb : 0, .stride_c = m * n};
  backend_for(a).gemm(g);
  return out;
}

// a [..., k] as one [rows, k] matrix: a strided view when its rows are evenly spaced, else a
// contiguous copy.
Tensor fold_rows(const Tensor& a) {
  Shape lead(a.shape().begin(), a.shape().end() - 1);
  const int64_t rows = shape_numel(lead);
  bool foldable = a.stride(-1) == 1 || a.size(-1) == 1;
  int64_t expect = a.stride(-2);
  for (int64_t i = a.dim() - 2; i >= 0 && foldable; --i) {
    if (a.size(i) == 1) continue;
    foldable = a.stride(i) == expect;
    expect = a.stride(i) * a.size(i);
  }
  return foldable ? a.as_strided({rows, a.size(-1)}, {a.stride(-2), 1}, a.offset())
                  : contiguous(a).view({rows, a.size(-1)});
}

Tensor matmul_nd(const Tensor& a0, const Tensor& b0) {
  LF_CHECK(a0.device() == b0.device(), "matmul: operands on different devices ({} and {})", a0.str(), b0.str());
  LF_CHECK(a0.dtype() == b0.dtype(), "matmul: dtype mismatch ({} and {}); cast one operand first", a0.str(), b0.str());
  LF_CHECK(is_floating(a0.dtype()), "matmul: dtype {} is not a floating type", dtype_name(a0.dtype()));
  LF_CHECK(a0.size(-1) == b0.size(-2), "matmul: inner dimensions differ: a {} and b {} ({} vs {})", shape_str(a0.shape()),
           shape_str(b0.shape()), a0.size(-1), b0.size(-2));
  Tensor a = a0.detach(), b = b0.detach();
  if (b.dim() == 2 && a.dim() > 2) {
    // Fold a's leading dims into M when its rows are evenly strided.
    Shape lead(a.shape().begin(), a.shape().end() - 1);
    Tensor out = gemm_forward(fold_rows(a), b, a.dtype());
    Shape out_shape = lead;
    out_shape.push_back(b.size(-1));
    return out.view(out_shape);
  }
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape ea = batch, eb = batch;
  ea.push_back(a.size(-2)); ea.push_back(a.size(-1));
  eb.push_back(b.size(-2)); eb.push_back(b.size(-1));
  return gemm_forward(expand(a, ea), expand(b, eb), a.dtype());
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  LF_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have at least one dimension, got {} and {}",
           a.str(), b.str());
  if (a.dim() == 1 && b.dim() == 1) return reshape(matmul(unsqueeze(a, 0), unsqueeze(b, 1)), {});
  if (a.dim() == 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(matmul(a, unsqueeze(b, 1)), -1);
  Tensor out = matmul_nd(a, b);
  if (any_requires_grad({a, b}))
    record_op("matmul", {a, b}, {out}, [sa = SavedTensor(a), sb = SavedTensor(b)](BackwardContext& ctx) -> TensorList {
      TensorList g(2);
      const Tensor &A = sa.get(), &B = sb.get();
      const Tensor& G = ctx.grad();
      if (ctx.needs_input_grad(0)) g[0] = sum_to(matmul(G, transpose(B, -1, -2)), A.shape());
      if (ctx.needs_input_grad(1)) {
        if (B.dim() == 2 && A.dim() > 2) {
          // dW = sum over rows of A^T G: one GEMM over the folded rows.
          const int64_t k = A.size(-1), n = G.size(-1);
          Tensor a2 = reshape(A, {-1, k}), g2 = reshape(G, {-1, n});
          g[1] = matmul(transpose(a2, 0, 1), g2);
        } else {
          g[1] = sum_to(matmul(transpose(A, -1, -2), G), B.shape());
        }
      }
      return g;
    });
  return out;
}

namespace {

void check_linear(const char* op, const Tensor& x, const Tensor& w, const Tensor& b) {
  LF_CHECK(w.dim() == 2, "{}: weight must be [out, in], got {}", op, w.str());
  LF_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "{}: input {} has {} features but weight {} expects {}", op,
           x.str(), x.dim() >= 1 ? x.size(-1) : 0, w.str(), w.size(1));
  if (b.defined())
    LF_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "{}: bias {} does not match weight {}", op, b.str(), w.str());
}

// dW = dzᵀ·x (dz [rows, n] contiguous, x [rows, k]), with db = Σ_rows dz from the same GEMM call
// when db_out is given: the bias gradient comes from the GEMM's epilogue where the backend fuses
// it, instead of another pass over dz.
// Without a bias gradient, a bf16 / f16 dW is produced in f32, rounded nowhere: the weight is then
// usually the compute copy of an f32 master weight, whose gradient it becomes without a cast (a
// bf16 / f16 weight's own gradient is rounded once, as the GEMM would have). With one, dW keeps dz's
// dtype: the fused bias-gradient epilogue wants C in the inputs' dtype.
Tensor weight_grad(const Tensor& dz, const Tensor& x, Tensor* db_out) {
  const int64_t rows = dz.size(0), n = dz.size(1), k = x.size(1);
  Tensor xb = x;
  MatrixLayout lb = matrix_layout(xb);
  if (!lb.ok) { xb = contiguous(xb); lb = matrix_layout(xb); }
  const bool reduced = dz.dtype() == DType::BF16 || dz.dtype() == DType::F16;
  Tensor dw = Tensor::empty({n, k}, reduced && !db_out ? DType::F32 : dz.dtype(), dz.device());
  GemmArgs g{.a = dz, .b = xb, .c = dw, .trans_a = true, .trans_b = lb.trans, .m = n, .n = k, .k = rows,
             .lda = std::max<int64_t>(n, 1), .ldb = lb.ld, .ldc = std::max<int64_t>(k, 1)};
  if (db_out) {
    *db_out = Tensor::empty({n}, dz.dtype(), dz.device());
    g.bias_grad = *db_out;
  }
  backend_for(dz).gemm(g);
  return dw;
}

// The gradients of a linear layer's weight (grads[wi] = dzᵀ·x) and bias (grads[bi] = Σ_rows dz),
// each when the node wants it; one GEMM for both when both are wanted. dz [rows, n] contiguous.
void weight_and_bias_grads(const BackwardContext& ctx, const Tensor& dz, const Tensor& x, size_t wi, size_t bi,
                           TensorList& grads) {
  if (ctx.needs_input_grad(wi) && ctx.needs_input_grad(bi)) {
    grads[wi] = weight_grad(dz, x, &grads[bi]);
    return;
  }
  if (ctx.needs_input_grad(wi)) grads[wi] = weight_grad(dz, x, nullptr);
  if (ctx.needs_input_grad(bi)) grads[bi] = sum(dz, {0});
}

// out [rows, n] = x2·wᵀ + b (x2 [rows, k] detached, w [n, k], b [n] or undefined), then tanh-GELU
// when `gelu`, the value before it going to `pre` when that is defined: ONE GEMM whose epilogue
// adds the bias and applies the GELU (fused by the backend where it can).
Tensor linear_gemm(const Tensor& x2, const Tensor& w, const Tensor& b, bool gelu, const Tensor& pre) {
  const int64_t rows = x2.size(0), n = w.size(0), k = w.size(1);
  Tensor a = x2, wt = transpose(w.detach(), 0, 1);
  MatrixLayout la = matrix_layout(a), lb = matrix_layout(wt);
  if (!la.ok) { a = contiguous(a); la = matrix_layout(a); }
  if (!lb.ok) { wt = contiguous(wt); lb = matrix_layout(wt); }
  Tensor out = Tensor::empty({rows, n}, x2.dtype(), x2.device());
  GemmArgs g{.a = a, .b = wt, .c = out, .trans_a = la.trans, .trans_b = lb.trans, .m = rows, .n = n, .k = k,
             .lda = la.ld, .ldb = lb.ld, .ldc = std::max<int64_t>(n, 1)};
  g.bias = b.defined() ? contiguous(b.detach()) : Tensor();
  g.gelu_tanh = gelu;
  g.pre_gelu = pre;
  backend_for(x2).gemm(g);
  return out;
}

void check_fusable(const char* name, const Tensor& x, const Tensor& w, const Tensor& b) {
  LF_CHECK(x.device() == w.device() && (!b.defined() || b.device() == w.device()),
           "{}: operands on different devices ({}, {})", name, x.str(), w.str());
  LF_CHECK(x.dtype() == w.dtype() && (!b.defined() || b.dtype() == w.dtype()),
           "{}: input {}, weight {} and bias must share a dtype; cast first", name, x.str(), w.str());
  LF_CHECK(is_floating(x.dtype()), "{}: dtype {} is not a floating type", name, dtype_name(x.dtype()));
}

// y = x·wᵀ + b, then tanh-GELU when `gelu`, as ONE GEMM whose epilogue adds the bias and applies
// the GELU (fused by the backend where it can): the output is written once instead of three
// times. Backward: dz = gelu'(z)·dy from the saved pre-activation z, then dx = dz·w,
// dw = dzᵀ·x, db = Σ_rows dz.
Tensor linear_fused(const char* name, const Tensor& x, const Tensor& w, const Tensor& b, bool gelu) {
  check_fusable(name, x, w, b);
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  const int64_t n = w.size(0), rows = shape_numel(out_shape);
  out_shape.push_back(n);
  const Tensor x2 = fold_rows(x.detach());
  Tensor pre = gelu && any_requires_grad({x, w, b}) ? Tensor::empty({rows, n}, x.dtype(), x.device()) : Tensor();
  Tensor y = linear_gemm(x2, w, b, gelu, pre).view(out_shape);
  if (any_requires_grad({x, w, b}))
    record_op(name, {x, w, b}, {y},
              [sx = SavedTensor(x2), sw = SavedTensor(w), pre, x_shape = x.shape(), n](BackwardContext& ctx) -> TensorList {
                TensorList grads(3);
                Tensor dz = reshape(ctx.grad(), {-1, n});
                if (pre.defined()) {
                  Tensor d = Tensor::empty(pre.shape(), pre.dtype(), pre.device());
                  const Tensor g = dz.dtype() == pre.dtype() ? dz : cast(dz, pre.dtype());
                  backend_for(pre).binary(BinaryOp::GeluTanhBackward, pre, g, d);
                  dz = d;
                }
                if (ctx.needs_input_grad(0)) grads[0] = reshape(matmul(dz, sw.get()), x_shape);
                weight_and_bias_grads(ctx, contiguous(dz), sx.get(), 1, 2, grads);
                return grads;
              });
  return y;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_linear("linear", x, w, b);
  // One GEMM (the bias, if any, in its epilogue). Its backward takes dW straight from dzᵀ·x: in f32
  // for bf16 / f16 operands without a bias, which is what an f32 master weight's gradient needs
  // (through matmul it would be a rounded, transposed product converted afterwards).
  if ((!b.defined() || b.dtype() == x.dtype()) && x.dtype() == w.dtype() && x.dim() >= 2 && x.numel() > 0)
    return linear_fused("linear", x, w, b, false);
  Tensor y = matmul(x, transpose(w, 0, 1));
  return b.defined() ? add(y, b) : y;
}

Tensor linear_gelu(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_linear("linear_gelu", x, w, b);
  if ((!b.defined() || b.dtype() == x.dtype()) && x.dtype() == w.dtype() && x.dim() >= 2 && x.numel() > 0)
    return linear_fused("linear_gelu", x, w, b, true);
  return gelu(linear(x, w, b), GeluApprox::Tanh);
}

Tensor gelu_mlp(const Tensor& x, const Tensor& w_up, const Tensor& b_up, const Tensor& w_down,
                const Tensor& b_down) {
  check_linear("gelu_mlp", x, w_up, b_up);
  LF_CHECK(w_down.dim() == 2 && w_down.size(1) == w_up.size(0),
           "gelu_mlp: the down projection {} must take the up projection's {} outputs", w_down.str(), w_up.size(0));
  const bool same = x.dtype() == w_up.dtype() && x.dtype() == w_down.dtype() &&
                    (!b_up.defined() || b_up.dtype() == x.dtype()) && (!b_down.defined() || b_down.dtype() == x.dtype());
  if (!same || x.dim() < 2 || x.numel() == 0) return linear(linear_gelu(x, w_up, b_up), w_down, b_down);
  check_fusable("gelu_mlp", x, w_up, b_up);
  check_fusable("gelu_mlp", x, w_down, b_down);
  const bool grad = any_requires_grad({x, w_up, b_up, w_down, b_down});
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  const int64_t hidden = w_up.size(0), n = w_down.size(0), rows = shape_numel(out_shape);
  out_shape.push_back(n);
  const Tensor x2 = fold_rows(x.detach());
  const Tensor pre = grad ? Tensor::empty({rows, hidden}, x.dtype(), x.device()) : Tensor();
  const Tensor act = linear_gemm(x2, w_up, b_up, true, pre);
  Tensor y = linear_gemm(act, w_down, b_down, false, Tensor()).view(out_shape);
  if (grad)
    record_op("gelu_mlp", {x, w_up, b_up, w_down, b_down}, {y},
              [sx = SavedTensor(x2), swu = SavedTensor(w_up), swd = SavedTensor(w_down), act, pre, hidden, n,
               x_shape = x.shape()](BackwardContext& ctx) -> TensorList {
                TensorList grads(5);
                Tensor dy = contiguous(reshape(ctx.grad(), {-1, n}));
                if (dy.dtype() != act.dtype()) dy = cast(dy, act.dtype());
                weight_and_bias_grads(ctx, dy, act, 3, 4, grads);  // the down projection
                if (!ctx.needs_input_grad(0) && !ctx.needs_input_grad(1) && !ctx.needs_input_grad(2)) return grads;
                // dz = gelu'(pre)·(dy·w_down) in one GEMM (GemmArgs::gelu_tanh_grad); the up
                // projection's bias gradient then comes with its weight gradient.
                const Tensor& wd = swd.get();
                Tensor wdc = wd;
                MatrixLayout lb = matrix_layout(wdc);
                if (!lb.ok) { wdc = contiguous(wdc); lb = matrix_layout(wdc); }
                const int64_t rows = dy.size(0);
                Tensor dz = Tensor::empty({rows, hidden}, act.dtype(), act.device());
                GemmArgs g{.a = dy, .b = wdc, .c = dz, .trans_a = false, .trans_b = lb.trans, .m = rows, .n = hidden,
                           .k = n, .lda = std::max<int64_t>(n, 1), .ldb = lb.ld, .ldc = std::max<int64_t>(hidden, 1)};
                g.gelu_tanh_grad = true;
                g.pre_gelu = pre;
                backend_for(dz).gemm(g);
                weight_and_bias_grads(ctx, dz, sx.get(), 1, 2, grads);
                if (ctx.needs_input_grad(0)) grads[0] = reshape(matmul(dz, swu.get()), x_shape);
                return grads;
              });
  return y;
}

}  // namespace lmforge
