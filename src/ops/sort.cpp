// topk / sort / argsort along a dimension (stable: ties keep the lower index first).
#include "ops/sort.h"

#include "autograd/function.h"
#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {

namespace {
std::pair<Tensor, Tensor> select_along(const Tensor& x, int64_t k, int64_t dim, bool largest, bool full_sort, const char* name) {
  dim = wrap_dim(dim, std::max<int64_t>(x.dim(), 1));
  Tensor x1 = x.dim() == 0 ? reshape(x.detach(), {1}) : x.detach();
  const int64_t n = x1.size(dim);
  LF_CHECK(k >= 0 && k <= n, "{}: k = {} out of range for dimension {} of size {}", name, k, dim, n);
  Tensor xl = contiguous(dim == x1.dim() - 1 ? x1 : transpose(x1, dim, -1));
  Shape out_shape = xl.shape();
  out_shape.back() = k;
  Tensor values = Tensor::empty(out_shape, x.dtype(), x.device());
  Tensor indices = Tensor::empty(out_shape, DType::I64, x.device());
  if (values.numel() > 0) {
    if (full_sort) backend_for(x).sort_last(xl, largest, values, indices);
    else backend_for(x).topk_last(xl, k, largest, values, indices);
  }
  if (dim != x1.dim() - 1) {
    values = transpose(values, dim, -1);
    indices = transpose(indices, dim, -1);
  }
  if (x.dim() == 0) {
    values = reshape(values, {});
    indices = reshape(indices, {});
  }
  if (any_requires_grad({x}))
    record_op(name, {x}, {values}, [shape = x.shape(), dt = x.dtype(), dim, si = SavedTensor(indices)](BackwardContext& ctx) -> TensorList {
      Tensor g = zeros(shape, dt, ctx.grad().device());
      if (shape.empty()) return {reshape(ctx.grad(), {})};
      return {scatter_add(g, dim, si.get(), ctx.grad())};
    });
  return {values, indices};
}
}  // namespace

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  return select_along(x, k, dim, largest, false, "topk");
}

std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending) {
  const int64_t d = wrap_dim(dim, std::max<int64_t>(x.dim(), 1));
  return select_along(x, x.dim() ? x.size(d) : 1, dim, descending, true, "sort");
}

Tensor argsort(const Tensor& x, int64_t dim, bool descending) { return sort(x.detach(), dim, descending).second; }

}  // namespace lmforge
