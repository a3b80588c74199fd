// Views and layout: reshape/view, permute/transpose, narrow/slice/select, expand,
// squeeze/unsqueeze, contiguous/clone, and the broadcasting helpers. Views share storage; the
// backward of each maps the gradient back to the input's shape.
#include "ops/view.h"

#include <numeric>

#include "autograd/function.h"
#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {

namespace {

Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Tensor& t) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      LF_CHECK(infer < 0, "{}: only one dimension may be -1 in {}", op, shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      LF_CHECK(out[i] >= 0, "{}: invalid size {} in {}", op, out[i], shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    LF_CHECK(known != 0 && numel % known == 0, "{}: shape {} is invalid for {} with {} elements", op,
             shape_str(shape), t.str(), numel);
    out[infer] = numel / known;
  }
  LF_CHECK(shape_numel(out) == numel, "{}: shape {} is invalid for {} with {} elements", op, shape_str(shape),
           t.str(), numel);
  return out;
}

// Strides for viewing `t` as `shape` without a copy, if possible (PyTorch's computeStride).
bool view_strides(const Tensor& t, const Shape& shape, Shape& out) {
  const Shape& os = t.shape();
  const Shape& ost = t.strides();
  out.assign(shape.size(), 0);
  if (t.numel() == 0 || t.is_contiguous()) {
    out = contiguous_strides(shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = ost.empty() ? 1 : ost.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(os.size()) - 1; d >= 0; --d) {
    tensor_numel *= os[d];
    if (d == 0 || (os[d - 1] != 1 && ost[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = ost[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return false;
  return true;
}

Tensor make_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset, const char* name,
                 BackwardFn bw) {
  Tensor out = t.as_strided(shape, strides, offset);
  if (any_requires_grad({t})) record_op(name, {t}, {out}, std::move(bw));
  return out;
}

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    LF_CHECK(da == db || da == 1 || db == 1, "{}: shapes {} and {} cannot be broadcast together (dimension {}: "
             "{} vs {})", op, shape_str(a), shape_str(b), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const int64_t lead = t.dim() - static_cast<int64_t>(shape.size());
  LF_ASSERT(lead >= 0, "sum_to {} -> {}", t.str(), shape_str(shape));
  Shape dims;
  for (int64_t i = 0; i < t.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && t.size(i) != 1)) dims.push_back(i);
  Tensor s = dims.empty() ? t : sum(t, dims, /*keepdim=*/true);
  return reshape(s, shape);
}

Tensor view(const Tensor& t, const Shape& shape_in) {
  Shape shape = infer_shape(shape_in, t.numel(), "view", t);
  Shape strides;
  LF_CHECK(view_strides(t, shape, strides), "view: {} with strides {} cannot be viewed as {} without a copy; use "
           "reshape", t.str(), shape_str(t.strides()), shape_str(shape));
  Shape in_shape = t.shape();
  return make_view(t, shape, strides, t.offset(), "view",
                   [in_shape](BackwardContext& ctx) -> TensorList { return {reshape(ctx.grad(), in_shape)}; });
}

Tensor reshape(const Tensor& t, const Shape& shape_in) {
  Shape shape = infer_shape(shape_in, t.numel(), "reshape", t);
  Shape strides;
  if (view_strides(t, shape, strides)) return view(t, shape);
  return view(contiguous(t), shape);
}

Tensor flatten(const Tensor& t, int64_t start, int64_t end) {
  if (t.dim() == 0) return reshape(t, {1});
  start = wrap_dim(start, t.dim());
  end = wrap_dim(end, t.dim());
  Shape s;
  for (int64_t i = 0; i < start; ++i) s.push_back(t.size(i));
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= t.size(i);
  s.push_back(m);
  for (int64_t i = end + 1; i < t.dim(); ++i) s.push_back(t.size(i));
  return reshape(t, s);
}

Tensor permute(const Tensor& t, const Shape& order) {
  LF_CHECK(static_cast<int64_t>(order.size()) == t.dim(), "permute: order {} has {} entries for {}",
           shape_str(order), order.size(), t.str());
  Shape shape(order.size()), strides(order.size()), inverse(order.size());
  std::vector<bool> seen(order.size(), false);
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t d = wrap_dim(order[i], t.dim(), "permute dim");
    LF_CHECK(!seen[d], "permute: dimension {} repeated in {}", d, shape_str(order));
    seen[d] = true;
    shape[i] = t.size(d);
    strides[i] = t.stride(d);
    inverse[d] = static_cast<int64_t>(i);
  }
  return make_view(t, shape, strides, t.offset(), "permute",
                   [inverse](BackwardContext& ctx) -> TensorList { return {permute(ctx.grad(), inverse)}; });
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  Shape order(t.dim());
  std::iota(order.begin(), order.end(), 0);
  if (t.dim() == 0) return t;
  std::swap(order[wrap_dim(d0, t.dim())], order[wrap_dim(d1, t.dim())]);
  return permute(t, order);
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  dim = wrap_dim(dim, t.dim());
  const int64_t n = t.size(dim);
  if (start < 0) start += n;
  LF_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [{}, {}) out of bounds for dimension {} "
           "of size {} in {}", start, start + length, dim, n, t.str());
  Shape shape = t.shape();
  shape[dim] = length;
  Shape in_shape = t.shape();
  return make_view(t, shape, t.strides(), t.offset() + start * t.stride(dim), "narrow",
                   [in_shape, dim, start, length](BackwardContext& ctx) -> TensorList {
                     Tensor g = zeros(in_shape, ctx.grad().dtype(), ctx.grad().device());
                     Tensor part = narrow(g, dim, start, length);
                     copy_(part, ctx.grad());
                     return {g};
                   });
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step) {
  dim = wrap_dim(dim, t.dim());
  LF_CHECK(step > 0, "slice: step must be positive, got {}", step);
  const int64_t n = t.size(dim);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  if (step == 1) return narrow(t, dim, start, end - start);
  Shape shape = t.shape(), strides = t.strides();
  shape[dim] = (end - start + step - 1) / step;
  strides[dim] *= step;
  Shape in_shape = t.shape();
  return make_view(t, shape, strides, t.offset() + start * t.stride(dim), "slice",
                   [in_shape, dim, start, end, step](BackwardContext& ctx) -> TensorList {
                     Tensor g = zeros(in_shape, ctx.grad().dtype(), ctx.grad().device());
                     Tensor part = slice(g, dim, start, end, step);
                     copy_(part, ctx.grad());
                     return {g};
                   });
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  dim = wrap_dim(dim, t.dim());
  const int64_t n = t.size(dim);
  if (index < 0) index += n;
  LF_CHECK(index >= 0 && index < n, "select: index {} out of range for dimension {} of size {}", index, dim, n);
  return squeeze(narrow(t, dim, index, 1), dim);
}

Tensor expand(const Tensor& t, const Shape& shape_in) {
  const int64_t nd = static_cast<int64_t>(shape_in.size());
  LF_CHECK(nd >= t.dim(), "expand: target {} has fewer dimensions than {}", shape_str(shape_in), t.str());
  Shape shape(nd), strides(nd);
  const int64_t lead = nd - t.dim();
  for (int64_t i = 0; i < nd; ++i) {
    if (i < lead) {
      LF_CHECK(shape_in[i] >= 0, "expand: size -1 not allowed for a new leading dimension in {}", shape_str(shape_in));
      shape[i] = shape_in[i];
      strides[i] = 0;
      continue;
    }
    const int64_t have = t.size(i - lead);
    const int64_t want = shape_in[i] == -1 ? have : shape_in[i];
    LF_CHECK(have == want || have == 1, "expand: {} cannot be expanded to {} (dimension {}: {} vs {})", t.str(),
             shape_str(shape_in), i, have, want);
    shape[i] = want;
    strides[i] = have == want ? t.stride(i - lead) : 0;
  }
  if (shape == t.shape()) return t;
  Shape in_shape = t.shape();
  return make_view(t, shape, strides, t.offset(), "expand",
                   [in_shape](BackwardContext& ctx) -> TensorList { return {sum_to(ctx.grad(), in_shape)}; });
}

Tensor squeeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim());
  if (t.size(dim) != 1) return t;
  Shape shape = t.shape(), strides = t.strides();
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  Shape in_shape = t.shape();
  return make_view(t, shape, strides, t.offset(), "squeeze",
                   [in_shape](BackwardContext& ctx) -> TensorList { return {reshape(ctx.grad(), in_shape)}; });
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  dim = wrap_dim(dim, t.dim() + 1);
  Shape shape = t.shape(), strides = t.strides();
  const int64_t st = dim < t.dim() ? t.stride(dim) * t.size(dim) : 1;
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, st);
  Shape in_shape = t.shape();
  return make_view(t, shape, strides, t.offset(), "unsqueeze",
                   [in_shape](BackwardContext& ctx) -> TensorList { return {reshape(ctx.grad(), in_shape)}; });
}

Tensor clone(const Tensor& t) {
  Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device());
  backend_for(t).copy(t, out);
  if (any_requires_grad({t}))
    record_op("clone", {t}, {out}, [](BackwardContext& ctx) -> TensorList { return {ctx.grad()}; });
  return out;
}

Tensor contiguous(const Tensor& t) { return t.is_contiguous() ? t : clone(t); }

// ---- Tensor member conveniences ----
Tensor Tensor::contiguous() const { return lmforge::contiguous(*this); }
Tensor Tensor::reshape(const Shape& s) const { return lmforge::reshape(*this, s); }
Tensor Tensor::view(const Shape& s) const { return lmforge::view(*this, s); }
Tensor Tensor::transpose(int64_t a, int64_t b) const { return lmforge::transpose(*this, a, b); }
Tensor Tensor::permute(const Shape& o) const { return lmforge::permute(*this, o); }
Tensor Tensor::narrow(int64_t d, int64_t s, int64_t l) const { return lmforge::narrow(*this, d, s, l); }
Tensor Tensor::unsqueeze(int64_t d) const { return lmforge::unsqueeze(*this, d); }
Tensor Tensor::squeeze(int64_t d) const { return lmforge::squeeze(*this, d); }
Tensor Tensor::expand(const Shape& s) const { return lmforge::expand(*this, s); }

}  // namespace lmforge
