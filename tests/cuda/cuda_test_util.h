// Helpers for the CUDA-vs-CPU kernel tests: every test builds its inputs on the CPU, copies them
// to the GPU (views are re-applied on both sides, so strided and broadcast operands reach the
// GPU kernels as such), poisons the outputs (NaN for floats), runs the CPU twin and the CUDA
// kernel, and compares. Every test skips when there is no GPU.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/random_kernels.h"
#include "ops/ops.h"

namespace lmforge::cuda_test {

// True when cuda:0 exists (the backend constructs without error).
inline bool have_gpu() {
  static const bool ok = [] {
    try {
      backend_for(Device::cuda(0));
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }();
  return ok;
}

#define LF_REQUIRE_GPU() \
  if (!::lmforge::cuda_test::have_gpu()) GTEST_SKIP() << "no CUDA device"

inline Device gpu() { return Device::cuda(0); }
inline Backend& cpu_be() { return backend_for(Device::cpu()); }
inline Backend& gpu_be() { return backend_for(gpu()); }

// The same values on both devices.
struct Pair {
  Tensor cpu, gpu;
};

inline Pair on_both(const Tensor& host) { return {host, host.to(gpu())}; }
inline Pair view(const Pair& p, const std::function<Tensor(const Tensor&)>& f) { return {f(p.cpu), f(p.gpu)}; }

// Uniform random values in [lo, hi) of `dtype`, made in f64 and cast (so every dtype sees values
// that are exact in f64).
inline Tensor random_host(Generator& g, const Shape& shape, DType dtype, double lo = -2, double hi = 2) {
  Tensor t = rand(shape, g, DType::F64, Device::cpu(), lo, hi);
  return dtype == DType::F64 ? t : t.to(dtype);
}
inline Pair random_pair(Generator& g, const Shape& shape, DType dtype, double lo = -2, double hi = 2) {
  return on_both(random_host(g, shape, dtype, lo, hi));
}
inline Tensor random_index_host(Generator& g, const Shape& shape, int64_t n, DType dtype = DType::I64) {
  Tensor t = randint(shape, 0, n, g);
  return dtype == DType::I64 ? t : t.to(dtype);
}

// Fresh outputs: NaN in floats, a sentinel in integers, so unwritten elements show.
inline Tensor poisoned(const Shape& shape, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  backend_for(device).fill(t, is_floating(dtype) ? std::nan("") : (dtype == DType::Bool ? 1.0 : -77.0));
  return t;
}
inline Pair poisoned_pair(const Shape& shape, DType dtype) {
  return {poisoned(shape, dtype, Device::cpu()), poisoned(shape, dtype, gpu())};
}

inline std::vector<double> host_values(const Tensor& t) {
  Tensor h = t.device().is_cpu() ? t : t.to(Device::cpu());
  return to_vector<double>(h);
}

// ‖out - ref‖ / ‖ref‖ over the finite reference values; NaN and ±Inf must sit at the same places.
inline ::testing::AssertionResult close(const Tensor& out, const Tensor& ref, double tol) {
  if (out.shape() != ref.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(out.shape()) << " vs " << shape_str(ref.shape());
  const std::vector<double> a = host_values(out), b = host_values(ref);
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i]) || std::isnan(a[i])) {
      if (std::isnan(b[i]) != std::isnan(a[i]))
        return ::testing::AssertionFailure() << "element " << i << ": got " << a[i] << ", want " << b[i];
      continue;
    }
    if (std::isinf(b[i]) || std::isinf(a[i])) {
      if (a[i] != b[i])
        return ::testing::AssertionFailure() << "element " << i << ": got " << a[i] << ", want " << b[i];
      continue;
    }
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  const double err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  if (err <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "relative error " << err << " > " << tol << " (" << a.size()
                                       << " elements)";
}

// For long f32 sums, where the CPU's sequential order is itself off by more than `tol`: the GPU
// passes when it is within `tol` of the CPU or of the same computation in f64.
inline ::testing::AssertionResult close_or_exact(const Tensor& out, const Tensor& ref, const Tensor& ref64,
                                                 double tol) {
  ::testing::AssertionResult r = close(out, ref, tol);
  if (r) return r;
  ::testing::AssertionResult r64 = close(out, ref64, tol);
  if (r64) return r64;
  return ::testing::AssertionFailure() << "vs CPU: " << r.message() << "; vs f64: " << r64.message();
}

// Bit-for-bit equality of two tensors' contents (any devices).
inline ::testing::AssertionResult bit_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    return ::testing::AssertionFailure() << a.str() << " vs " << b.str();
  Tensor ha = contiguous(a.device().is_cpu() ? a : a.to(Device::cpu()));
  Tensor hb = contiguous(b.device().is_cpu() ? b : b.to(Device::cpu()));
  const size_t n = ha.nbytes();
  const auto* pa = static_cast<const unsigned char*>(ha.data_ptr());
  const auto* pb = static_cast<const unsigned char*>(hb.data_ptr());
  for (size_t i = 0; i < n; ++i)
    if (pa[i] != pb[i])
      return ::testing::AssertionFailure() << "first differing byte " << i << " of " << n << " (element "
                                           << i / ha.element_size() << ")";
  return ::testing::AssertionSuccess();
}

// Tolerance for results stored in `dtype` (computed in f32, or f64 for f64).
inline double tol_for(DType t) {
  switch (t) {
    case DType::F64: return 1e-12;
    case DType::F32: return 1e-5;
    case DType::BF16: return 1e-2;
    case DType::F16: return 1e-2;
    default: return 6e-2;  // fp8: 2-3 mantissa bits
  }
}

inline const std::vector<DType>& float_dtypes() {
  static const std::vector<DType> v{DType::F64, DType::F32, DType::BF16, DType::F16, DType::F8E4M3, DType::F8E5M2};
  return v;
}
inline const std::vector<DType>& nn_dtypes() {
  static const std::vector<DType> v{DType::F64, DType::F32, DType::BF16, DType::F16};
  return v;
}

}  // namespace lmforge::cuda_test
