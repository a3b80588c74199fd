// Loads and stores between storage types and compute types on the CPU: f64 computes in double,
// every other float type (and the integers, for arithmetic) in float or double as below.
// Low-precision floats round once on store (core/float_convert.h), as the CUDA kernels do.
#pragma once

#include <cmath>
#include <type_traits>

#include "core/dtype.h"
#include "core/float_convert.h"

namespace lmforge::cpu {

template <class T> struct ComputeType { using type = float; };
template <> struct ComputeType<double> { using type = double; };
template <> struct ComputeType<int32_t> { using type = double; };
template <> struct ComputeType<int64_t> { using type = double; };
template <> struct ComputeType<uint32_t> { using type = double; };
template <class T> using compute_t = typename ComputeType<T>::type;

template <class T>
inline compute_t<T> load(T v) {
  if constexpr (std::is_same_v<T, bf16>) return bf16_bits_to_float(v.bits);
  else if constexpr (std::is_same_v<T, f16>) return f16_bits_to_float(v.bits);
  else if constexpr (std::is_same_v<T, f8e4m3>) return e4m3_bits_to_float(v.bits);
  else if constexpr (std::is_same_v<T, f8e5m2>) return e5m2_bits_to_float(v.bits);
  else return static_cast<compute_t<T>>(v);
}

template <class T, class A>
inline T store(A v) {
  if constexpr (std::is_same_v<T, bf16>) return bf16{float_to_bf16_bits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, f16>) return f16{float_to_f16_bits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, f8e4m3>) return f8e4m3{float_to_e4m3_bits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, f8e5m2>) return f8e5m2{float_to_e5m2_bits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, bool>) return v != A(0);
  else if constexpr (std::is_integral_v<T>) {
    // float -> int truncates toward zero (as C and PyTorch); NaN and out-of-range give 0/limits.
    if constexpr (std::is_floating_point_v<A>) {
      if (std::isnan(v)) return T(0);
      if (v >= static_cast<A>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
      if (v <= static_cast<A>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    }
    return static_cast<T>(v);
  } else return static_cast<T>(v);
}

// Calls f(T{}) for the floating dtypes; throws Error naming `op` for others.
template <class F>
decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F64: return f(double{});
    case DType::F32: return f(float{});
    case DType::BF16: return f(bf16{});
    case DType::F16: return f(f16{});
    case DType::F8E4M3: return f(f8e4m3{});
    case DType::F8E5M2: return f(f8e5m2{});
    default: break;
  }
  throw Error(fmt::format("{}: dtype {} is not supported (expected a floating dtype)", op, dtype_name(t)));
}

// Calls f(T{}) for the dtypes of the fused kernels (backend.h is_fused_dtype: f64, f32, bf16, f16).
template <class F>
decltype(auto) dispatch_fused(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F64: return f(double{});
    case DType::F32: return f(float{});
    case DType::BF16: return f(bf16{});
    case DType::F16: return f(f16{});
    default: break;
  }
  throw Error(fmt::format("{}: dtype {} is not supported (expected f64, f32, bf16 or f16)", op, dtype_name(t)));
}

// Calls f(T{}) for integer index dtypes (i32, i64).
template <class F>
decltype(auto) dispatch_index(DType t, const char* op, F&& f) {
  if (t == DType::I64) return f(int64_t{});
  if (t == DType::I32) return f(int32_t{});
  throw Error(fmt::format("{}: index dtype {} is not supported (expected i64 or i32)", op, dtype_name(t)));
}

}  // namespace lmforge::cpu
