// Helpers shared by the fused CPU kernels (loss, norms, rope, swiglu, attention, adamw).
//
// exp_fast: libm's expf is a scalar call, and GCC only declares its vector variants (libmvec)
// under -ffast-math, which the project does not use. Softmax-like loops (cross-entropy, attention)
// spend most of their time in exp, so f32 uses a polynomial that the compiler vectorises; f64
// keeps std::exp (the f64 path is the reference for gradient checks).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_types.h"
#include "core/tensor.h"

namespace lmforge::cpu {

// e^x for f32, Cephes' expf scheme: x = k·ln2 + r with |r| <= ln2/2 (ln2 split in two parts so
// r is exact), e^r by a degree-6 polynomial, 2^k put into the exponent bits. Relative error
// below 2.5e-7 (measured over [-87, 88]; tests/ops/nn_ops_test.cpp). Below -87.3 the result is
// flushed to 0 (e^-87.3 is the smallest normal f32), -inf gives 0, above 88.3 gives +inf (the
// true overflow is at 88.72; no caller evaluates exp of a positive argument that large), NaN
// stays NaN. Branch-free, so loops calling it vectorise.
inline float exp_fast(float x) {
  const float lo = -87.3f, hi = 88.3f;
  float xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  xc = xc != xc ? 0.0f : xc;  // NaN: any finite value (the result is x itself), so k converts to int
  const float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (xc - k * 0.693359375f) - k * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * (r * r) + r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(k) + 127) << 23);
  float out = y * scale;
  out = x < lo ? 0.0f : out;
  out = x > hi ? std::numeric_limits<float>::infinity() : out;
  return x != x ? x : out;
}
inline double exp_fast(double x) { return std::exp(x); }

// Logistic sigmoid through exp_fast (exp(-x) = inf for very negative x gives 1/inf = 0).
template <class A>
inline A sigmoid_fast(A x) {
  return A(1) / (A(1) + exp_fast(-x));
}

// A small 1-D tensor (a norm's weight or bias) read into compute precision; empty if undefined.
template <class A>
std::vector<A> load_vector(const Tensor& t) {
  std::vector<A> out;
  if (!t.defined()) return out;
  LF_ASSERT(t.dim() == 1);
  out.resize(t.numel());
  dispatch_float(t.dtype(), "load_vector", [&](auto t0) {
    using T = decltype(t0);
    const T* p = static_cast<const T*>(t.data_ptr());
    for (int64_t i = 0; i < t.numel(); ++i) out[i] = static_cast<A>(load(p[i * t.stride(0)]));
  });
  return out;
}

// Writes a compute-precision vector into a 1-D tensor of any float dtype.
template <class A>
void store_vector(const std::vector<A>& v, const Tensor& t) {
  LF_ASSERT(t.dim() == 1 && t.numel() == static_cast<int64_t>(v.size()));
  dispatch_float(t.dtype(), "store_vector", [&](auto t0) {
    using T = decltype(t0);
    T* p = static_cast<T*>(t.data_ptr());
    for (int64_t i = 0; i < t.numel(); ++i) p[i * t.stride(0)] = store<T>(v[i]);
  });
}

}  // namespace lmforge::cpu
