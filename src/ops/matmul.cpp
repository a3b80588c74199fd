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
    const int64_t rows = shape_numel(lead);
    Tensor a2;
    Shape st;
    bool foldable = a.stride(-1) == 1 || a.size(-1) == 1;
    int64_t expect = a.stride(-2);
    for (int64_t i = a.dim() - 2; i >= 0 && foldable; --i) {
      if (a.size(i) == 1) continue;
      foldable = a.stride(i) == expect;
      expect = a.stride(i) * a.size(i);
    }
    a2 = foldable ? a.as_strided({rows, a.size(-1)}, {a.stride(-2), 1}, a.offset()) : contiguous(a).view({rows, a.size(-1)});
    Tensor out = gemm_forward(a2, b, a.dtype());
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

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  LF_CHECK(w.dim() == 2, "linear: weight must be [out, in], got {}", w.str());
  LF_CHECK(x.size(-1) == w.size(1), "linear: input {} has {} features but weight {} expects {}", x.str(), x.size(-1),
           w.str(), w.size(1));
  Tensor y = matmul(x, transpose(w, 0, 1));
  if (b.defined()) {
    LF_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: bias {} does not match weight {}", b.str(), w.str());
    y = add(y, b);
  }
  return y;
}

}  // namespace lmforge
