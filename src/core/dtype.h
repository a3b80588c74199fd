// Element types. Storage types for the low-precision floats (bf16, f16, fp8) are plain bit
// containers; arithmetic on them happens in f32 (core/float_convert.h defines the conversions,
// which the CUDA kernels share, so both backends round identically).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

#if defined(__CUDACC__)
#define LF_HOST_DEVICE __host__ __device__
#else
#define LF_HOST_DEVICE
#endif

namespace lmforge {

enum class DType : uint8_t { F64, F32, BF16, F16, F8E4M3, F8E5M2, I8, I16, I32, I64, U8, U16, U32, Bool };
inline constexpr int kNumDTypes = 14;

// Bit containers for the types C++ has no arithmetic for.
struct bf16 { uint16_t bits; };
struct f16 { uint16_t bits; };
struct f8e4m3 { uint8_t bits; };
struct f8e5m2 { uint8_t bits; };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::BF16: case DType::F16: case DType::I16: case DType::U16: return 2;
    case DType::F8E4M3: case DType::F8E5M2: case DType::I8: case DType::U8: case DType::Bool: return 1;
  }
  return 0;
}

constexpr bool is_floating(DType t) {
  return t == DType::F64 || t == DType::F32 || t == DType::BF16 || t == DType::F16 ||
         t == DType::F8E4M3 || t == DType::F8E5M2;
}
// Low-precision floats are computed by converting to f32 and back.
constexpr bool is_low_precision(DType t) {
  return t == DType::BF16 || t == DType::F16 || t == DType::F8E4M3 || t == DType::F8E5M2;
}
constexpr bool is_integral(DType t) { return !is_floating(t); }
// The dtype of normalization statistics (mean, rstd), masks and reduced parameter gradients for
// data of dtype `data`: f64 for f64 data, f32 for every other float.
constexpr DType stat_dtype(DType data) { return data == DType::F64 ? DType::F64 : DType::F32; }

std::string_view dtype_name(DType t);
// Parses "f32", "float32", "bf16", "e4m3", ...; throws Error naming the accepted spellings.
DType parse_dtype(std::string_view name);

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<bf16>() { return DType::BF16; }
template <> constexpr DType dtype_of<f16>() { return DType::F16; }
template <> constexpr DType dtype_of<f8e4m3>() { return DType::F8E4M3; }
template <> constexpr DType dtype_of<f8e5m2>() { return DType::F8E5M2; }
template <> constexpr DType dtype_of<int8_t>() { return DType::I8; }
template <> constexpr DType dtype_of<int16_t>() { return DType::I16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::U16; }
template <> constexpr DType dtype_of<uint32_t>() { return DType::U32; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

// Calls f(T{}) with T the C++ type of `t`.
template <class F>
decltype(auto) dispatch_dtype(DType t, F&& f) {
  switch (t) {
    case DType::F64: return f(double{});
    case DType::F32: return f(float{});
    case DType::BF16: return f(bf16{});
    case DType::F16: return f(f16{});
    case DType::F8E4M3: return f(f8e4m3{});
    case DType::F8E5M2: return f(f8e5m2{});
    case DType::I8: return f(int8_t{});
    case DType::I16: return f(int16_t{});
    case DType::I32: return f(int32_t{});
    case DType::I64: return f(int64_t{});
    case DType::U8: return f(uint8_t{});
    case DType::U16: return f(uint16_t{});
    case DType::U32: return f(uint32_t{});
    case DType::Bool: return f(bool{});
  }
  throw Error("unknown dtype");
}

}  // namespace lmforge
