// Indexing ops: embedding, index_select, gather, scatter_add, cat/stack/split/chunk.
#include "ops/index.h"

#include "autograd/function.h"
#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {

namespace {

void check_index(const Tensor& idx, const char* op, const Tensor& x) {
  LF_CHECK(idx.dtype() == DType::I64 || idx.dtype() == DType::I32, "{}: index must be i64 or i32, got {}", op,
           idx.str());
  LF_CHECK(idx.device() == x.device(), "{}: index on {} but input on {}", op, idx.device().str(), x.device().str());
}

struct DimSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
DimSplit split_at(const Shape& s, int64_t dim) {
  DimSplit d;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    if (i < dim) d.outer *= s[i];
    else if (i == dim) d.n = s[i];
    else d.inner *= s[i];
  }
  return d;
}

// grad [outer, m, inner] summed into zeros of `shape` at rows `index` along dim.
Tensor index_add_into_zeros(const Shape& shape, DType dt, int64_t dim, const Tensor& index, const Tensor& grad) {
  Tensor out = zeros(shape, dt, grad.device());
  DimSplit d = split_at(shape, dim);
  Tensor g = contiguous(cast(grad, dt));
  backend_for(out).index_add(out, contiguous(index), g, d.outer, d.n, d.inner);
  return out;
}

}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_index(index, "index_select", x);
  LF_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got {}", index.str());
  dim = wrap_dim(dim, x.dim());
  Tensor xc = contiguous(x.detach());
  Tensor ic = contiguous(index.detach());
  DimSplit d = split_at(x.shape(), dim);
  Shape out_shape = x.shape();
  out_shape[dim] = ic.numel();
  Tensor out = Tensor::empty(out_shape, x.dtype(), x.device());
  if (out.numel() > 0 || ic.numel() > 0) backend_for(x).index_select(xc, ic, out, d.outer, d.n, d.inner);
  if (any_requires_grad({x}))
    record_op("index_select", {x}, {out}, [shape = x.shape(), dt = x.dtype(), dim, si = SavedTensor(ic)](BackwardContext& ctx) -> TensorList {
      return {index_add_into_zeros(shape, dt, dim, si.get(), ctx.grad())};
    });
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  LF_CHECK(weight.dim() == 2, "embedding: weight must be [vocab, channels], got {}", weight.str());
  check_index(ids, "embedding", weight);
  Tensor flat = reshape(ids.detach(), {ids.numel()});
  Tensor rows;
  try {
    rows = index_select(weight, 0, flat);
  } catch (const Error& e) {
    throw Error(fmt::format("embedding: {} (vocabulary size {})", e.what(), weight.size(0)));
  }
  Shape out_shape = ids.shape();
  out_shape.push_back(weight.size(1));
  return reshape(rows, out_shape);
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_index(index, "gather", x);
  dim = wrap_dim(dim, x.dim());
  LF_CHECK(index.dim() == x.dim(), "gather: index {} must have as many dimensions as input {}", index.str(), x.str());
  for (int64_t i = 0; i < x.dim(); ++i)
    LF_CHECK(i == dim || index.size(i) == x.size(i), "gather: index {} and input {} differ in dimension {}",
             shape_str(index.shape()), shape_str(x.shape()), i);
  Tensor xc = contiguous(x.detach()), ic = contiguous(index.detach());
  DimSplit d = split_at(x.shape(), dim);
  Tensor out = Tensor::empty(index.shape(), x.dtype(), x.device());
  if (out.numel() > 0) backend_for(x).gather(xc, ic, out, d.outer, d.n, d.inner);
  if (any_requires_grad({x}))
    record_op("gather", {x}, {out}, [shape = x.shape(), dt = x.dtype(), dim, si = SavedTensor(ic)](BackwardContext& ctx) -> TensorList {
      Tensor g = zeros(shape, dt, ctx.grad().device());
      return {scatter_add(g, dim, si.get(), ctx.grad())};
    });
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  check_index(index, "scatter_add", x);
  dim = wrap_dim(dim, x.dim());
  LF_CHECK(index.shape() == src.shape(), "scatter_add: index {} and src {} must have the same shape", index.str(),
           src.str());
  LF_CHECK(index.dim() == x.dim(), "scatter_add: index {} must have as many dimensions as input {}", index.str(), x.str());
  for (int64_t i = 0; i < x.dim(); ++i)
    LF_CHECK(i == dim || index.size(i) == x.size(i), "scatter_add: index {} and input {} differ in dimension {}",
             shape_str(index.shape()), shape_str(x.shape()), i);
  Tensor out = clone(x.detach());
  Tensor ic = contiguous(index.detach());
  DimSplit d = split_at(x.shape(), dim);
  if (src.numel() > 0)
    backend_for(x).scatter_add(out, ic, contiguous(cast(src.detach(), x.dtype())), d.outer, d.n, d.inner);
  if (any_requires_grad({x, src}))
    record_op("scatter_add", {x, src}, {out}, [dim, si = SavedTensor(ic), ds = src.dtype()](BackwardContext& ctx) -> TensorList {
      TensorList g(2);
      if (ctx.needs_input_grad(0)) g[0] = ctx.grad();
      if (ctx.needs_input_grad(1)) g[1] = cast(gather(ctx.grad(), dim, si.get()), ds);
      return g;
    });
  return out;
}

Tensor cat(const TensorList& xs, int64_t dim) {
  LF_CHECK(!xs.empty(), "cat: no tensors given");
  const Tensor& first = xs[0];
  dim = wrap_dim(dim, first.dim());
  Shape shape = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    LF_CHECK(t.dim() == first.dim(), "cat: tensor {} is {} but tensor 0 is {}", i, t.str(), first.str());
    LF_CHECK(t.dtype() == first.dtype() && t.device() == first.device(), "cat: tensor {} is {} but tensor 0 is {}", i,
             t.str(), first.str());
    for (int64_t d = 0; d < t.dim(); ++d)
      LF_CHECK(d == dim || t.size(d) == shape[d], "cat: tensor {} has shape {}, tensor 0 has {} (dimension {} differs)",
               i, shape_str(t.shape()), shape_str(shape), d);
    total += t.size(dim);
  }
  shape[dim] = total;
  Tensor out = Tensor::empty(shape, first.dtype(), first.device());
  Shape sizes;
  int64_t at = 0;
  for (const Tensor& t : xs) {
    Tensor part = out.as_strided(t.shape(), out.strides(), out.offset() + at * out.stride(dim));
    backend_for(out).copy(t, part);
    sizes.push_back(t.size(dim));
    at += t.size(dim);
  }
  if (any_requires_grad(xs))
    record_op("cat", xs, {out}, [sizes, dim](BackwardContext& ctx) -> TensorList { return split(ctx.grad(), sizes, dim); });
  return out;
}

Tensor stack(const TensorList& xs, int64_t dim) {
  LF_CHECK(!xs.empty(), "stack: no tensors given");
  dim = wrap_dim(dim, xs[0].dim() + 1);
  TensorList u;
  for (size_t i = 0; i < xs.size(); ++i) {
    LF_CHECK(xs[i].shape() == xs[0].shape(), "stack: tensor {} has shape {}, tensor 0 has {}", i,
             shape_str(xs[i].shape()), shape_str(xs[0].shape()));
    u.push_back(unsqueeze(xs[i], dim));
  }
  return cat(u, dim);
}

TensorList split(const Tensor& x, const Shape& sizes, int64_t dim) {
  dim = wrap_dim(dim, x.dim());
  int64_t total = 0;
  for (int64_t s : sizes) {
    LF_CHECK(s >= 0, "split: negative size {}", s);
    total += s;
  }
  LF_CHECK(total == x.size(dim), "split: sizes {} sum to {} but dimension {} of {} has size {}", shape_str(sizes), total,
           dim, x.str(), x.size(dim));
  TensorList out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(narrow(x, dim, at, s));
    at += s;
  }
  return out;
}

TensorList chunk(const Tensor& x, int64_t n, int64_t dim) {
  dim = wrap_dim(dim, x.dim());
  LF_CHECK(n > 0 && x.size(dim) % n == 0, "chunk: dimension {} of size {} does not split into {} equal parts", dim,
           x.size(dim), n);
  return split(x, Shape(n, x.size(dim) / n), dim);
}

void copy_rows_at_(const Tensor& dst, const Tensor& src, const Tensor& positions) {
  LF_CHECK(src.dim() >= 2 && dst.dim() == src.dim() && src.size(0) == dst.size(0),
           "copy_rows_at_: src {} and dst {} must be [B, T, ...] and [B, S, ...]", src.str(), dst.str());
  for (int64_t i = 2; i < src.dim(); ++i)
    LF_CHECK(src.size(i) == dst.size(i), "copy_rows_at_: src {} and dst {} differ after the second dim", src.str(),
             dst.str());
  LF_CHECK(src.device() == dst.device() && positions.device() == dst.device(),
           "copy_rows_at_: dst is on {}, src on {}, positions on {}", dst.device().str(), src.device().str(),
           positions.device().str());
  LF_CHECK(positions.dtype() == DType::I32 && positions.dim() == 1 && positions.size(0) == src.size(0),
           "copy_rows_at_: positions must be i32 [{}], got {}", src.size(0), positions.str());
  LF_CHECK(!(GradMode::is_enabled() && dst.requires_grad()), "copy_rows_at_: dst {} requires grad", dst.str());
  NoGradGuard no_grad;
  // Each (b, t) row contiguous in src: a copy where it is not (the contract wants one block per row).
  Tensor s = src.dtype() == dst.dtype() ? src.detach() : cast(src.detach(), dst.dtype());
  if (!s.is_contiguous_from(2)) s = s.contiguous();
  backend_for(dst).copy_rows_at(s, dst, positions.contiguous());
  dst.bump_version();
}

}  // namespace lmforge
