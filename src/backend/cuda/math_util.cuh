// Math functions by compute type (float or double), so templated kernels call the f32 library
// function for f32 compute and the f64 one for f64, as the CPU twins do through std::.
// No fast-math intrinsics: the results stay within a few ulp of the CPU's.
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

namespace lmforge::cuda {

#define LF_MATH1(name, f32, f64)                                        \
  template <class A>                                                    \
  __device__ __forceinline__ A name(A x) {                              \
    if constexpr (std::is_same_v<A, float>) return f32(x);              \
    else return f64(x);                                                 \
  }
LF_MATH1(m_exp, expf, exp)
LF_MATH1(m_log, logf, log)
LF_MATH1(m_sqrt, sqrtf, sqrt)
LF_MATH1(m_abs, fabsf, fabs)
LF_MATH1(m_tanh, tanhf, tanh)
LF_MATH1(m_erf, erff, erf)
#undef LF_MATH1

template <class A>
__device__ __forceinline__ A m_pow(A x, A y) {
  if constexpr (std::is_same_v<A, float>) return powf(x, y);
  else return pow(x, y);
}
template <class A>
__device__ __forceinline__ bool m_isnan(A x) { return x != x; }

template <class A>
__device__ __forceinline__ A m_sigmoid(A x) { return A(1) / (A(1) + m_exp(-x)); }

template <class A> __device__ __forceinline__ A m_inf() { return A(INFINITY); }

}  // namespace lmforge::cuda
