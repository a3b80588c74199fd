// Tensors made from values: constants, ranges, host data, random numbers.
#pragma once

#include <span>
#include <vector>

#include "core/tensor.h"

namespace lmforge {

class Generator;  // core/random_kernels.h

Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor empty_like(const Tensor& t);  // contiguous, same dtype and device
Tensor full_like(const Tensor& t, double value);
// [start, start + step, ...) with n elements.
Tensor arange(int64_t n, DType dtype = DType::I64, Device device = Device::cpu(), double start = 0, double step = 1);
Tensor scalar_tensor(double value, DType dtype = DType::F32, Device device = Device::cpu());

// Copies host values into a new tensor of `shape` (numel must match) and dtype of T.
template <class T>
Tensor from_vector(std::span<const T> values, const Shape& shape, Device device = Device::cpu());
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = Device::cpu()) {
  return from_vector<T>(std::span<const T>(values), shape, device);
}
// Reads a tensor back to the host as T (converting from its dtype).
template <class T>
std::vector<T> to_vector(const Tensor& t);

// Random tensors; each draw advances the generator so later draws differ.
Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device device = Device::cpu(),
            double lo = 0, double hi = 1);
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device device = Device::cpu(),
             double mean = 0, double std = 1);
// Normal(mean, std) truncated to [a, b] (absolute bounds, as torch.nn.init.trunc_normal_).
Tensor trunc_normal(const Shape& shape, Generator& gen, double mean, double std, double a, double b,
                    DType dtype = DType::F32, Device device = Device::cpu());
Tensor randint(const Shape& shape, int64_t lo, int64_t hi, Generator& gen, Device device = Device::cpu());
Tensor bernoulli(const Shape& shape, double p, Generator& gen, Device device = Device::cpu());  // bool
Tensor randperm(int64_t n, Generator& gen, Device device = Device::cpu());                     // i64

// In place (bump the version; refused on a leaf that requires grad while grad mode is on).
Tensor& fill_(Tensor& t, double value);
Tensor& zero_(Tensor& t);
Tensor& copy_(Tensor& dst, const Tensor& src);  // any dtypes/devices, same shape
Tensor& uniform_(Tensor& t, Generator& gen, double lo, double hi);
Tensor& normal_(Tensor& t, Generator& gen, double mean, double std);
Tensor& trunc_normal_(Tensor& t, Generator& gen, double mean, double std, double a, double b);

}  // namespace lmforge
