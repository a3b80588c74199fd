// Indexing: embedding lookup, index_select, gather/scatter_add, concatenation and splitting.
// Index tensors are i64 or i32; an index out of range is an Error naming the op, the value and
// its position. Backward passes accumulate deterministically (no float atomics, fixed order).
#pragma once

#include "core/tensor.h"

namespace lmforge {

// weight [V, C], ids [...] -> [..., C]
Tensor embedding(const Tensor& weight, const Tensor& ids);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j] = x[i][index[i][j]] for dim 1 (torch.gather); index has x's shape except in dim.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// out = x; out[i][index[i][j]] += src[i][j] for dim 1 (torch.scatter_add).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor cat(const TensorList& xs, int64_t dim);
Tensor stack(const TensorList& xs, int64_t dim);
TensorList split(const Tensor& x, const Shape& sizes, int64_t dim);   // sizes sum to x.size(dim)
TensorList chunk(const Tensor& x, int64_t n, int64_t dim);            // equal parts
// dst[b, positions[b] + t, ...] = src[b, t, ...] for src [B, T, ...] into dst [B, S, ...] (src is
// converted to dst's dtype); positions i32 [B] on dst's device, read where the data lives (the new
// steps of a KV cache written by a CUDA graph at positions it does not know when captured). Rows
// that land outside [0, S) are not written. No gradient.
void copy_rows_at_(const Tensor& dst, const Tensor& src, const Tensor& positions);

}  // namespace lmforge
