#include "ops/grouped_matmul.h"

#include "autograd/function.h"
#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {

namespace {

// out [M, cols] = a's segments times b[g]ᵀ (trans_b, b [G, cols, K]) or b[g] (b [G, K, cols]).
Tensor segment_products(const Tensor& a, const Tensor& b, const Tensor& ends, bool trans_b) {
  const Tensor ac = contiguous(a), bc = contiguous(b);
  Tensor out = Tensor::empty({ac.size(0), trans_b ? bc.size(1) : bc.size(2)}, ac.dtype(), ac.device());
  const GroupedGemmArgs args{.a = ac, .b = bc, .ends = ends, .c = out, .trans_b = trans_b, .weight_grad = false};
  backend_for(ac).grouped_gemm(args);
  return out;
}

}  // namespace

Tensor grouped_matmul(const Tensor& x0, const Tensor& w0, const Tensor& ends0) {
  LF_CHECK(x0.defined() && w0.defined() && ends0.defined(), "grouped_matmul: x, w and ends must be defined");
  LF_CHECK(x0.dim() == 2, "grouped_matmul: x must be [M, K], got shape {}", shape_str(x0.shape()));
  LF_CHECK(w0.dim() == 3 && w0.size(2) == x0.size(1), "grouped_matmul: w must be [G, N, K] with K = {} (x's "
           "columns), got shape {}", x0.size(1), shape_str(w0.shape()));
  LF_CHECK(ends0.dim() == 1 && ends0.size(0) == w0.size(0), "grouped_matmul: ends must be [G] with G = {}, got "
           "shape {}", w0.size(0), shape_str(ends0.shape()));
  LF_CHECK(ends0.dtype() == DType::I64 || ends0.dtype() == DType::I32, "grouped_matmul: ends must be i64 or i32, "
           "got {}", dtype_name(ends0.dtype()));
  LF_CHECK(is_floating(x0.dtype()) && x0.dtype() == w0.dtype(), "grouped_matmul: x and w must share one floating "
           "dtype, got {} and {}", dtype_name(x0.dtype()), dtype_name(w0.dtype()));
  LF_CHECK(x0.device() == w0.device() && x0.device() == ends0.device(), "grouped_matmul: x, w and ends must be on "
           "one device, got {}, {} and {}", x0.device().str(), w0.device().str(), ends0.device().str());
  const Tensor ends = contiguous(ends0);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = segment_products(x0.detach(), w0.detach(), ends, /*trans_b=*/true);
  }
  if (any_requires_grad({x0, w0}))
    record_op("grouped_matmul", {x0, w0}, {out},
              [sx = SavedTensor(x0), sw = SavedTensor(w0), se = SavedTensor(ends)](BackwardContext& ctx) -> TensorList {
                const Tensor x = sx.get(), w = sw.get(), ends = se.get();
                const Tensor dy = contiguous(ctx.grad());
                TensorList grads(2);
                // dx[m] = dy[m] · w[g(m)]
                if (ctx.needs_input_grad(0)) grads[0] = segment_products(dy, w, ends, /*trans_b=*/false);
                // dw[g] = dy_gᵀ · x_g
                if (ctx.needs_input_grad(1)) {
                  Tensor dw = Tensor::empty(w.shape(), w.dtype(), w.device());
                  const GroupedGemmArgs args{
                      .a = dy, .b = contiguous(x), .ends = ends, .c = dw, .trans_b = false, .weight_grad = true};
                  backend_for(dy).grouped_gemm(args);
                  grads[1] = dw;
                }
                return grads;
              });
  return out;
}

}  // namespace lmforge
