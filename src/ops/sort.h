// Sorting and selection along one dimension. Ties keep the lower index first (stable).
#pragma once

#include "core/tensor.h"

namespace lmforge {

// values, indices (i64) of the k largest (or smallest) along dim, sorted.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
std::pair<Tensor, Tensor> sort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);

}  // namespace lmforge
