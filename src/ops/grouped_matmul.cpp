#include "ops/grouped_matmul.h"

#include <vector>

#include "autograd/function.h"
#include "ops/ops.h"

namespace lmforge {

namespace {

// The segment ends on the host, checked: non-decreasing, within [0, rows].
std::vector<int64_t> host_ends(const Tensor& ends, int64_t rows) {
  const std::vector<int64_t> e = to_vector<int64_t>(cast(ends, DType::I64));
  int64_t prev = 0;
  for (size_t g = 0; g < e.size(); ++g) {
    LF_CHECK(e[g] >= prev && e[g] <= rows, "grouped_matmul: ends[{}] = {} is outside [{}, {}] (ends must be "
             "non-decreasing and at most the {} rows of x)", g, e[g], prev, rows, rows);
    prev = e[g];
  }
  return e;
}

// out [M, cols]: each segment's rows times w[g]ᵀ (transpose) or w[g]; rows past the last end 0.
Tensor segment_products(const Tensor& x, const Tensor& w, const std::vector<int64_t>& ends, bool transpose_w) {
  const int64_t cols = transpose_w ? w.size(1) : w.size(2);
  Tensor out = zeros({x.size(0), cols}, x.dtype(), x.device());
  int64_t start = 0;
  for (size_t g = 0; g < ends.size(); ++g) {
    const int64_t n = ends[g] - start;
    if (n > 0) {
      const Tensor wg = select(w, 0, int64_t(g));  // [N, K]
      Tensor dst = narrow(out, 0, start, n);
      copy_(dst, matmul(narrow(x, 0, start, n), transpose_w ? transpose(wg, 0, 1) : wg));
    }
    start = ends[g];
  }
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
  const std::vector<int64_t> ends = host_ends(ends0, x0.size(0));
  Tensor out;
  {
    NoGradGuard no_grad;
    out = segment_products(x0.detach(), w0.detach(), ends, /*transpose_w=*/true);
  }
  if (any_requires_grad({x0, w0}))
    record_op("grouped_matmul", {x0, w0}, {out},
              [sx = SavedTensor(x0), sw = SavedTensor(w0), ends](BackwardContext& ctx) -> TensorList {
                const Tensor x = sx.get().detach(), w = sw.get().detach();
                const Tensor dy = contiguous(ctx.grad());
                TensorList grads(2);
                if (ctx.needs_input_grad(0)) grads[0] = segment_products(dy, w, ends, /*transpose_w=*/false);
                if (ctx.needs_input_grad(1)) {
                  Tensor dw = zeros(w.shape(), w.dtype(), w.device());
                  int64_t start = 0;
                  for (size_t g = 0; g < ends.size(); ++g) {
                    const int64_t n = ends[g] - start;
                    if (n > 0) {
                      Tensor dst = select(dw, 0, int64_t(g));
                      copy_(dst, matmul(transpose(narrow(dy, 0, start, n), 0, 1), narrow(x, 0, start, n)));
                    }
                    start = ends[g];
                  }
                  grads[1] = dw;
                }
                return grads;
              });
  return out;
}

}  // namespace lmforge
