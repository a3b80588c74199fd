// Device-side helpers shared by the kernels of backend/cuda/: loads and stores between storage
// and compute types (the same rules as backend/cpu/cpu_types.h, through core/float_convert.h, so
// both backends round identically), dtype dispatch for launchers, block reductions and launch
// sizing.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "backend/cuda/cuda_context.h"
#include "backend/cuda/layout.h"
#include "core/dtype.h"
#include "core/float_convert.h"

namespace lmforge::cuda {

// ---- compute types: f64 and the wide integers compute in double, everything else in float ----
template <class T> struct ComputeType { using type = float; };
template <> struct ComputeType<double> { using type = double; };
template <> struct ComputeType<int32_t> { using type = double; };
template <> struct ComputeType<int64_t> { using type = double; };
template <> struct ComputeType<uint32_t> { using type = double; };
template <class T> using compute_t = typename ComputeType<T>::type;

template <class T>
__device__ __forceinline__ compute_t<T> load(T v) {
  if constexpr (std::is_same_v<T, bf16>) return bf16_bits_to_float(v.bits);
  else if constexpr (std::is_same_v<T, f16>) return f16_bits_to_float(v.bits);
  else if constexpr (std::is_same_v<T, f8e4m3>) return e4m3_bits_to_float(v.bits);
  else if constexpr (std::is_same_v<T, f8e5m2>) return e5m2_bits_to_float(v.bits);
  else return static_cast<compute_t<T>>(v);
}

template <class T> struct IntLimits;
template <> struct IntLimits<int8_t> { static constexpr int8_t lo = INT8_MIN, hi = INT8_MAX; };
template <> struct IntLimits<uint8_t> { static constexpr uint8_t lo = 0, hi = UINT8_MAX; };
template <> struct IntLimits<int16_t> { static constexpr int16_t lo = INT16_MIN, hi = INT16_MAX; };
template <> struct IntLimits<uint16_t> { static constexpr uint16_t lo = 0, hi = UINT16_MAX; };
template <> struct IntLimits<int32_t> { static constexpr int32_t lo = INT32_MIN, hi = INT32_MAX; };
template <> struct IntLimits<uint32_t> { static constexpr uint32_t lo = 0, hi = UINT32_MAX; };
template <> struct IntLimits<int64_t> { static constexpr int64_t lo = INT64_MIN, hi = INT64_MAX; };

// float -> int truncates toward zero; NaN gives 0 and out-of-range values the limits, exactly
// as cpu::store (the comparisons are made in the source type A, as there).
template <class T, class A>
__device__ __forceinline__ T store(A v) {
  if constexpr (std::is_same_v<T, bf16>) return bf16{float_to_bf16_bits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, f16>) return f16{float_to_f16_bits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, f8e4m3>) return f8e4m3{float_to_e4m3_bits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, f8e5m2>) return f8e5m2{float_to_e5m2_bits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, bool>) return v != A(0);
  else if constexpr (std::is_integral_v<T>) {
    if constexpr (std::is_floating_point_v<A>) {
      if (v != v) return T(0);
      if (v >= static_cast<A>(IntLimits<T>::hi)) return IntLimits<T>::hi;
      if (v <= static_cast<A>(IntLimits<T>::lo)) return IntLimits<T>::lo;
    }
    return static_cast<T>(v);
  } else return static_cast<T>(v);
}

// ---- host-side dtype dispatch for launchers ----
// Floating dtypes (fp8 included).
template <class F>
void dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F64: f(double{}); return;
    case DType::F32: f(float{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    case DType::F8E4M3: f(f8e4m3{}); return;
    case DType::F8E5M2: f(f8e5m2{}); return;
    default: break;
  }
  throw_unsupported_dtype(t, op);
}
// The dtypes of the fused kernels: f64, f32, bf16, f16.
template <class F>
void dispatch_nn(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F64: f(double{}); return;
    case DType::F32: f(float{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    default: break;
  }
  throw_unsupported_dtype(t, op);
}
template <class F>
void dispatch_index(DType t, const char* op, F&& f) {
  if (t == DType::I64) return f(int64_t{});
  if (t == DType::I32) return f(int32_t{});
  throw_unsupported_dtype(t, op);
}

// ---- launch sizing ----
inline constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements with `per_thread` elements per thread.
inline unsigned grid_for(const CudaContext& ctx, int64_t n, int threads = kThreads, int per_thread = 1) {
  const int64_t want = (n + int64_t(threads) * per_thread - 1) / (int64_t(threads) * per_thread);
  const int64_t cap = int64_t(ctx.sm_count) * 32;
  return unsigned(want < 1 ? 1 : (want > cap ? cap : want));
}

// ---- reductions inside a block (fixed tree order: deterministic) ----
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
template <class A>
__device__ __forceinline__ A warp_max(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` holds 32 values; the call ends with a barrier, so it can be reused at once.
template <class A>
__device__ A block_sum(A v, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A t = lane < nwarps ? scratch[lane] : A(0);
  t = warp_sum(t);
  __syncthreads();
  return t;
}
template <class A>
__device__ A block_max(A v, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A t = lane < nwarps ? scratch[lane] : A(-INFINITY);
  t = warp_max(t);
  __syncthreads();
  return t;
}

// Threads for a block that handles one row of n elements: a multiple of 32 in [32, 1024].
inline int row_threads(int64_t n, int per_thread = 4) {
  int64_t t = (n + per_thread - 1) / per_thread;
  t = (t + 31) / 32 * 32;
  return int(t < 32 ? 32 : (t > 1024 ? 1024 : t));
}

// Records a bad index at `pos` (the smallest such position wins).
__device__ __forceinline__ void report_bad_index(unsigned long long* error_position, int64_t pos) {
  atomicMin(error_position, static_cast<unsigned long long>(pos));
}

}  // namespace lmforge::cuda

namespace lmforge::cuda {

// Writes a compute value into an element of runtime dtype `t` with the rounding of store<T>().
template <class A>
__device__ __forceinline__ void store_as(DType t, void* p, int64_t i, A v) {
  switch (t) {
    case DType::F64: static_cast<double*>(p)[i] = store<double>(v); return;
    case DType::F32: static_cast<float*>(p)[i] = store<float>(v); return;
    case DType::BF16: static_cast<bf16*>(p)[i] = store<bf16>(v); return;
    case DType::F16: static_cast<f16*>(p)[i] = store<f16>(v); return;
    case DType::F8E4M3: static_cast<f8e4m3*>(p)[i] = store<f8e4m3>(v); return;
    case DType::F8E5M2: static_cast<f8e5m2*>(p)[i] = store<f8e5m2>(v); return;
    case DType::I8: static_cast<int8_t*>(p)[i] = store<int8_t>(v); return;
    case DType::I16: static_cast<int16_t*>(p)[i] = store<int16_t>(v); return;
    case DType::I32: static_cast<int32_t*>(p)[i] = store<int32_t>(v); return;
    case DType::I64: static_cast<int64_t*>(p)[i] = store<int64_t>(v); return;
    case DType::U8: static_cast<uint8_t*>(p)[i] = store<uint8_t>(v); return;
    case DType::U16: static_cast<uint16_t*>(p)[i] = store<uint16_t>(v); return;
    case DType::U32: static_cast<uint32_t*>(p)[i] = store<uint32_t>(v); return;
    case DType::Bool: static_cast<bool*>(p)[i] = store<bool>(v); return;
  }
}

// Every dtype but bool (reductions, cumsum, sort).
template <class F>
void dispatch_numeric(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::F64: f(double{}); return;
    case DType::F32: f(float{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    case DType::F8E4M3: f(f8e4m3{}); return;
    case DType::F8E5M2: f(f8e5m2{}); return;
    case DType::I8: f(int8_t{}); return;
    case DType::I16: f(int16_t{}); return;
    case DType::I32: f(int32_t{}); return;
    case DType::I64: f(int64_t{}); return;
    case DType::U8: f(uint8_t{}); return;
    case DType::U16: f(uint16_t{}); return;
    case DType::U32: f(uint32_t{}); return;
    default: break;
  }
  throw_unsupported_dtype(t, op);
}

// Reduces v over the block with merge(a, b) in a fixed tree order; every thread gets the result.
// `scratch` holds 32 values; ends with a barrier.
template <class A, class M>
__device__ A block_reduce(A v, M merge, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = merge(v, __shfl_down_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    A t = scratch[lane < nwarps ? lane : 0];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const A u = __shfl_down_sync(0xffffffffu, t, o);
      if (lane + o < nwarps) t = merge(t, u);
    }
    if (lane == 0) scratch[0] = t;
  }
  __syncthreads();
  const A r = scratch[0];
  __syncthreads();
  return r;
}

}  // namespace lmforge::cuda
