// Reductions over dimensions. `dims` empty means all dimensions. keepdim keeps reduced dims as 1.
#pragma once

#include "core/tensor.h"

namespace lmforge {

Tensor sum(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
// amax: the maximum; its gradient is split evenly among tied maxima (as torch.amax).
Tensor amax(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
// max over one dim with the index of the first maximum; gradient flows to that index.
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
// Variance with `correction` (1 = unbiased, 0 = population).
Tensor var(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
// Cumulative sum along dim.
Tensor cumsum(const Tensor& x, int64_t dim);
// Sum of squares of all elements in f64 (for gradient norms); no autograd.
double sum_of_squares(const Tensor& x);
// The same over every tensor of the list together (all on one device): one backend call and one
// read of the result, however many tensors (Backend::multi_sum_of_squares). Undefined tensors are
// skipped.
double sum_of_squares(const TensorList& xs);
// The same as an f64 scalar tensor on the tensors' device, not read back (so the host does not
// wait for the device); `device` when every tensor is undefined (the sum is then 0).
Tensor sum_of_squares_tensor(const TensorList& xs, Device device);

}  // namespace lmforge
