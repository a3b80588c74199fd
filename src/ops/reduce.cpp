// Reductions and row-wise normalisers (softmax, log_softmax, logsumexp, cumsum) with backward.
#include "ops/reduce.h"

#include <algorithm>
#include <cmath>

#include "autograd/function.h"
#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {

namespace {

struct ReduceLayout {
  Tensor x;  // contiguous, viewed as [outer, r, inner]
  int64_t outer = 1, r = 1, inner = 1;
  Shape out_shape;       // keepdim=false
  Shape keep_shape;      // keepdim=true
};

std::vector<bool> reduced_mask(const Tensor& x, const Shape& dims) {
  std::vector<bool> red(x.dim(), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, x.dim(), "reduction dim");
    LF_CHECK(x.dim() > 0 || w == 0, "reduction dim out of range");
    if (x.dim() > 0) red[w] = true;
  }
  return red;
}

ReduceLayout layout_for(const Tensor& x0, const Shape& dims) {
  ReduceLayout L;
  std::vector<bool> red = reduced_mask(x0, dims);
  for (int64_t i = 0; i < x0.dim(); ++i) {
    if (!red[i]) L.out_shape.push_back(x0.size(i));
    L.keep_shape.push_back(red[i] ? 1 : x0.size(i));
  }
  // Reduced dims forming one block in a contiguous tensor need no copy.
  int64_t first = -1, last = -1;
  for (int64_t i = 0; i < x0.dim(); ++i)
    if (red[i]) { if (first < 0) first = i; last = i; }
  bool block = first >= 0;
  for (int64_t i = first; block && i <= last; ++i) block = red[i];
  Tensor x = x0.detach();
  if (first < 0) {  // reduce nothing (0-d input or no dims)
    L.x = contiguous(x);
    L.outer = x.numel();
    return L;
  }
  if (!block) {
    Shape order;
    for (int64_t i = 0; i < x.dim(); ++i) if (!red[i]) order.push_back(i);
    for (int64_t i = 0; i < x.dim(); ++i) if (red[i]) order.push_back(i);
    x = permute(x, order);
    int64_t nred = 0;
    for (bool b : red) nred += b;
    first = x.dim() - nred;
    last = x.dim() - 1;
  }
  L.x = contiguous(x);
  for (int64_t i = 0; i < L.x.dim(); ++i) {
    if (i < first) L.outer *= L.x.size(i);
    else if (i <= last) L.r *= L.x.size(i);
    else L.inner *= L.x.size(i);
  }
  return L;
}

Tensor reduce_forward(ReduceOp op, const Tensor& x, const Shape& dims, bool keepdim, DType out_dtype) {
  ReduceLayout L = layout_for(x, dims);
  Tensor out = Tensor::empty(keepdim ? L.keep_shape : L.out_shape, out_dtype, x.device());
  if (out.numel() == 0) return out;
  if (L.r == 0) {
    LF_CHECK(op == ReduceOp::Sum || op == ReduceOp::SumSquares, "max/min over an empty dimension of {}", x.str());
    backend_for(x).fill(out, 0.0);
    return out;
  }
  backend_for(x).reduce(op, L.x, out, L.outer, L.r, L.inner);
  return out;
}

Tensor float_in(const Tensor& x) { return is_floating(x.dtype()) ? x : cast(x, DType::F32); }

// Dim list helpers.
int64_t count_reduced(const Tensor& x, const Shape& dims) {
  int64_t n = 1;
  std::vector<bool> red = reduced_mask(x, dims);
  for (int64_t i = 0; i < x.dim(); ++i) if (red[i]) n *= x.size(i);
  return n;
}

Shape keep_shape_of(const Tensor& x, const Shape& dims) {
  std::vector<bool> red = reduced_mask(x, dims);
  Shape s;
  for (int64_t i = 0; i < x.dim(); ++i) s.push_back(red[i] ? 1 : x.size(i));
  return s;
}

// Moves `dim` last and makes the tensor contiguous: [rows, n] for the row-wise kernels.
Tensor dim_last(const Tensor& x, int64_t dim) {
  return contiguous(dim == x.dim() - 1 ? x : transpose(x, dim, -1));
}
Tensor undo_dim_last(const Tensor& y, int64_t dim, int64_t ndim) {
  return dim == ndim - 1 ? y : transpose(y, dim, -1);
}

}  // namespace

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  const DType dt = is_floating(x.dtype()) ? x.dtype() : DType::I64;
  Tensor out = reduce_forward(ReduceOp::Sum, x, dims, keepdim, dt);
  if (any_requires_grad({x}))
    record_op("sum", {x}, {out}, [shape = x.shape(), keep = keep_shape_of(x, dims)](BackwardContext& ctx) -> TensorList {
      return {expand(reshape(ctx.grad(), keep), shape)};
    });
  return out;
}

Tensor mean(const Tensor& x0, const Shape& dims, bool keepdim) {
  Tensor x = float_in(x0);
  const int64_t n = count_reduced(x, dims);
  return mul(sum(x, dims, keepdim), n ? 1.0 / static_cast<double>(n) : std::nan(""));
}

namespace {
Tensor extreme(ReduceOp op, const Tensor& x0, const Shape& dims, bool keepdim, const char* name) {
  Tensor x = x0;
  Tensor out = reduce_forward(op, x, dims, keepdim, x.dtype());
  if (any_requires_grad({x}))
    record_op(name, {x}, {out}, [sx = SavedTensor(x), so = SavedTensor(out), keep = keep_shape_of(x, dims), dims](BackwardContext& ctx) -> TensorList {
      const Tensor& X = sx.get();
      Tensor y = reshape(so.get(), keep);
      Tensor hit = cast(eq(X, y), X.dtype());
      Tensor count = sum(hit, dims, true);
      return {mul(div(hit, count), reshape(ctx.grad(), keep))};
    });
  return out;
}
}  // namespace

Tensor amax(const Tensor& x, const Shape& dims, bool keepdim) { return extreme(ReduceOp::Max, x, dims, keepdim, "amax"); }
Tensor amin(const Tensor& x, const Shape& dims, bool keepdim) { return extreme(ReduceOp::Min, x, dims, keepdim, "amin"); }

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  dim = wrap_dim(dim, x.dim());
  ReduceLayout L = layout_for(x, {dim});
  LF_CHECK(L.r > 0, "argmax over an empty dimension of {}", x.str());
  Tensor out = Tensor::empty(keepdim ? L.keep_shape : L.out_shape, DType::I64, x.device());
  backend_for(x).argmax(L.x, out, L.outer, L.r, L.inner);
  return out;
}

std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  dim = wrap_dim(dim, x.dim());
  Tensor idx = argmax(x, dim, true);
  Tensor values = gather(x, dim, idx);
  if (!keepdim) {
    values = squeeze(values, dim);
    idx = squeeze(idx, dim);
  }
  return {values, idx};
}

Tensor var(const Tensor& x0, const Shape& dims, int64_t correction, bool keepdim) {
  Tensor x = float_in(x0);
  const int64_t n = count_reduced(x, dims);
  Tensor centered = sub(x, mean(x, dims, true));
  return mul(sum(square(centered), dims, keepdim), 1.0 / static_cast<double>(std::max<int64_t>(n - correction, 0)));
}

Tensor logsumexp(const Tensor& x0, int64_t dim, bool keepdim) {
  Tensor x = float_in(x0);
  dim = wrap_dim(dim, x.dim());
  Tensor xl = dim_last(x.detach(), dim);
  Shape rows_shape(xl.shape().begin(), xl.shape().end() - 1);
  Tensor out = Tensor::empty(rows_shape, x.dtype(), x.device());
  backend_for(x).logsumexp_last(xl, out);
  Shape keep = keep_shape_of(x, {dim});
  Tensor result = keepdim ? reshape(out.detach(), keep) : out;
  if (any_requires_grad({x}))
    record_op("logsumexp", {x}, {result}, [sx = SavedTensor(x), so = SavedTensor(out), keep](BackwardContext& ctx) -> TensorList {
      // d lse / dx = softmax(x)
      Tensor p = exp(sub(sx.get(), reshape(so.get(), keep)));
      return {mul(p, reshape(ctx.grad(), keep))};
    });
  return result;
}

namespace {
Tensor softmax_impl(const Tensor& x0, int64_t dim, bool log) {
  Tensor x = float_in(x0);
  dim = wrap_dim(dim, x.dim());
  if (x.dim() == 0) x = reshape(x, {1});
  Tensor xl = dim_last(x.detach(), dim);
  Tensor yl = Tensor::empty(xl.shape(), xl.dtype(), xl.device());
  if (yl.numel() > 0) backend_for(x).softmax_forward(xl, yl, log);
  Tensor y = undo_dim_last(yl, dim, x.dim());
  if (x0.dim() == 0) y = reshape(y, {});
  if (any_requires_grad({x}))
    record_op(log ? "log_softmax" : "softmax", {x}, {y}, [syl = SavedTensor(yl), dim, log, nd = x.dim(), sh = x0.shape()](BackwardContext& ctx) -> TensorList {
      const Tensor& Y = syl.get();
      Tensor g = ctx.grad().dim() == 0 ? reshape(ctx.grad(), {1}) : ctx.grad();
      Tensor gl = dim_last(g, dim);
      if (gl.dtype() != Y.dtype()) gl = cast(gl, Y.dtype());
      Tensor dxl = Tensor::empty(Y.shape(), Y.dtype(), Y.device());
      if (dxl.numel() > 0) backend_for(Y).softmax_backward(Y, gl, dxl, log);
      return {reshape(undo_dim_last(dxl, dim, nd), sh)};
    });
  return y;
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

namespace {
Tensor flip_last(const Tensor& x) {
  const int64_t n = x.size(-1);
  return index_select(x, -1, arange(n, DType::I64, x.device(), static_cast<double>(n - 1), -1.0));
}
}  // namespace

Tensor cumsum(const Tensor& x, int64_t dim) {
  dim = wrap_dim(dim, x.dim());
  if (x.dim() == 0) return clone(x);
  Tensor xl = dim_last(x.detach(), dim);
  Tensor yl = Tensor::empty(xl.shape(), xl.dtype(), xl.device());
  if (yl.numel() > 0) backend_for(x).cumsum_last(xl, yl);
  Tensor y = undo_dim_last(yl, dim, x.dim());
  if (any_requires_grad({x}))
    record_op("cumsum", {x}, {y}, [dim](BackwardContext& ctx) -> TensorList {
      // Gradient: reversed cumulative sum of the incoming gradient.
      Tensor g = transpose(ctx.grad(), dim, -1);
      Tensor r = flip_last(cumsum(flip_last(g), -1));
      return {transpose(r, dim, -1)};
    });
  return y;
}

double sum_of_squares(const Tensor& x) {
  Tensor xc = contiguous(x.detach());
  Tensor out = Tensor::empty({}, DType::F64, x.device());
  if (xc.numel() == 0) return 0.0;
  backend_for(x).reduce(ReduceOp::SumSquares, xc, out, 1, xc.numel(), 1);
  return out.item();
}

Tensor sum_of_squares_tensor(const TensorList& xs, Device device) {
  TensorList cs;
  for (const Tensor& x : xs) {
    if (!x.defined()) continue;
    LF_CHECK(is_floating(x.dtype()), "sum_of_squares: tensors must be floating, got {}", x.str());
    LF_CHECK(cs.empty() || x.device() == cs[0].device(), "sum_of_squares: tensors on {} and {}",
             cs[0].device().str(), x.device().str());
    cs.push_back(x.is_contiguous() ? x : contiguous(x.detach()));  // read only: no new handle needed
  }
  if (cs.empty()) return zeros({}, DType::F64, device);
  Tensor out = Tensor::empty({}, DType::F64, cs[0].device());
  backend_for(cs[0]).multi_sum_of_squares(cs, out);
  return out;
}

double sum_of_squares(const TensorList& xs) { return sum_of_squares_tensor(xs, Device::cpu()).item(); }

}  // namespace lmforge
