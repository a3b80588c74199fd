// Views: new shape/strides over the same storage, never a copy (except reshape of a
// non-viewable layout and contiguous() of a non-contiguous tensor, which copy). Each records
// its backward so gradients pass through views.
#pragma once

#include "core/tensor.h"

namespace lmforge {

Tensor view(const Tensor& t, const Shape& shape);      // error if not expressible as a view; one dim may be -1
Tensor reshape(const Tensor& t, const Shape& shape);   // view when possible, else a copy
Tensor flatten(const Tensor& t, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor permute(const Tensor& t, const Shape& order);
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
// Python-style slice with a step > 0: start/end clamp to the dimension.
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& t, int64_t dim, int64_t index);  // removes dim
Tensor expand(const Tensor& t, const Shape& shape);    // -1 keeps a size; new leading dims allowed
Tensor squeeze(const Tensor& t, int64_t dim);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor contiguous(const Tensor& t);                    // returns t itself when already contiguous
Tensor clone(const Tensor& t);                         // always a contiguous copy

// Broadcasting helpers.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op = "broadcast");
// Sums `t` down to `shape` (the inverse of broadcasting); used by backward functions.
Tensor sum_to(const Tensor& t, const Shape& shape);

}  // namespace lmforge
