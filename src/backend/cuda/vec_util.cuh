// 16-byte vector loads and stores for the memory-bound kernels: a Vec<T> holds the 16 / sizeof(T)
// consecutive elements one 128-bit transaction moves (8 bf16 / f16, 4 f32, 2 f64), converted to
// and from the compute type with the same load/store rules as the scalar paths, so a vectorised
// kernel rounds exactly as its scalar form.
#pragma once

#include <array>
#include <cstdint>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/layout.h"

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

// Views a coalesced layout (layout.h) as a layout over groups of `g` consecutive elements, so a
// kernel can move every operand's group with 16-byte accesses (g·sizeof(T) a multiple of 16 for
// each operand's T, chosen by the caller). Holds when every base is 16-byte aligned and either
//   - the layout is one unit-stride dimension: V covers numel / g groups and `tail` (< g) elements
//     are left after them, for the kernel to do one at a time; or
//   - every operand steps by 1 along the innermost dimension, whose extent is a multiple of g, and
//     every outer stride is a multiple of g (0 included: a bias broadcast along rows): tail 0.
// Offsets computed from V are in groups (multiply by g for elements).
template <int N>
bool group_layout(const Layout<N>& L, const std::array<const void*, N>& base, int64_t g, Layout<N>& V,
                  int64_t& tail) {
  for (const void* p : base)
    if (!aligned16(p)) return false;
  V = L;
  tail = 0;
  const int last = L.ndim - 1;
  if (L.unit) {
    tail = L.numel % g;
    V.numel = L.numel / g;
    V.size[0] = V.numel;
    return true;
  }
  if (L.size[last] % g != 0) return false;
  for (int k = 0; k < N; ++k) {
    if (L.stride[k][last] != 1) return false;
    for (int d = 0; d < last; ++d)
      if (L.stride[k][d] % g != 0) return false;
  }
  V.size[last] = L.size[last] / g;
  for (int k = 0; k < N; ++k)
    for (int d = 0; d < last; ++d) V.stride[k][d] = L.stride[k][d] / g;
  V.numel = L.numel / g;
  return true;
}

// Grid-stride walk over the groups of a group_layout, U groups per thread and step, spaced a block
// apart so that a warp's accesses stay contiguous: load(u, off) for every group of the step first
// (all their loads in flight together), then finish(u, off). off holds the group offsets of the N
// operands. Both callbacks are inlined with u a constant, so per-group arrays stay in registers.
template <int U, int N, class Load, class Finish>
__device__ __forceinline__ void for_each_group(const Layout<N>& V, Load load, Finish finish) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x * U;
  for (int64_t j0 = int64_t(blockIdx.x) * blockDim.x * U + threadIdx.x; j0 < V.numel; j0 += step) {
    int64_t off[U][N];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t j = j0 + int64_t(u) * blockDim.x;
      if (j >= V.numel) continue;
      V.offsets(j, off[u]);
      load(u, off[u]);
    }
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (j0 + int64_t(u) * blockDim.x < V.numel) finish(u, off[u]);
  }
}

}  // namespace lmforge::cuda
