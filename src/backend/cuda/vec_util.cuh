// 16-byte vector loads and stores for the memory-bound kernels: a Vec<T> holds the 16 / sizeof(T)
// consecutive elements one 128-bit transaction moves (8 bf16 / f16, 4 f32, 2 f64), converted to
// and from the compute type with the same load/store rules as the scalar paths, so a vectorised
// kernel rounds exactly as its scalar form.
#pragma once

#include <cstdint>

#include "backend/cuda/device_util.cuh"

namespace lmforge::cuda {

template <class T>
inline constexpr int kVecWidth = int(16 / sizeof(T));

// Elements of a 16-byte vector, in the compute type.
template <class T>
struct Vec {
  compute_t<T> v[kVecWidth<T>];
};

// True when `p` (and so every 16-byte step from it) is 16-byte aligned.
__host__ __device__ inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Widens the kVecWidth<T> elements packed in a raw 16-byte word (kernels that keep rows in
// registers hold them packed: half the registers of the widened form for bf16 / f16).
template <class T>
__device__ __forceinline__ Vec<T> unpack_vec(const uint4& raw) {
  const T* e = reinterpret_cast<const T*>(&raw);
  Vec<T> out;
#pragma unroll
  for (int i = 0; i < kVecWidth<T>; ++i) out.v[i] = load(e[i]);
  return out;
}

// Rounds kVecWidth<T> compute values into a raw 16-byte word.
template <class T>
__device__ __forceinline__ uint4 pack_vec(const Vec<T>& x) {
  uint4 raw;
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVecWidth<T>; ++i) e[i] = store<T>(x.v[i]);
  return raw;
}

// The raw 16 bytes at p (16-byte aligned).
template <class T>
__device__ __forceinline__ uint4 load_raw(const T* __restrict__ p) {
  return *reinterpret_cast<const uint4*>(p);
}

// Loads kVecWidth<T> elements at p (16-byte aligned) and widens them.
template <class T>
__device__ __forceinline__ Vec<T> load_vec(const T* __restrict__ p) {
  return unpack_vec<T>(load_raw(p));
}

// Rounds and stores kVecWidth<T> elements at p (16-byte aligned).
template <class T>
__device__ __forceinline__ void store_vec(T* __restrict__ p, const Vec<T>& x) {
  *reinterpret_cast<uint4*>(p) = pack_vec<T>(x);
}

}  // namespace lmforge::cuda
