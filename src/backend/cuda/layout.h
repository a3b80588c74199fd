// Strided iteration over N same-shaped operands on the GPU (broadcast operands have stride 0).
// The host coalesces dimensions exactly as the CPU backend does (strided_loop.h): size-1 dims
// are dropped and neighbours merged where every operand is contiguous across them, so most
// tensors reach the kernel as one dimension and take the unit-stride path.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define LF_CUDA_HD __host__ __device__ __forceinline__
#else
#define LF_CUDA_HD inline
#endif

namespace lmforge::cuda {

inline constexpr int kMaxDims = 12;

template <int N>
struct Layout {
  int ndim = 1;
  bool small = true;   // numel and every extent fit 32-bit index arithmetic
  bool unit = true;    // one dimension with stride 1 for every operand
  int64_t numel = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[N][kMaxDims] = {};

  // Element offsets (in elements) of flat index i for every operand.
  LF_CUDA_HD void offsets(int64_t i, int64_t (&off)[N]) const {
    for (int k = 0; k < N; ++k) off[k] = 0;
    if (unit) {
      for (int k = 0; k < N; ++k) off[k] = i;
      return;
    }
    if (small) {
      uint32_t r = uint32_t(i);
      for (int d = ndim - 1; d > 0; --d) {
        const uint32_t s = uint32_t(size[d]);
        const uint32_t q = r / s;
        const uint32_t c = r - q * s;
        for (int k = 0; k < N; ++k) off[k] += int64_t(c) * stride[k][d];
        r = q;
      }
      for (int k = 0; k < N; ++k) off[k] += int64_t(r) * stride[k][0];
    } else {
      int64_t r = i;
      for (int d = ndim - 1; d > 0; --d) {
        const int64_t q = r / size[d];
        const int64_t c = r - q * size[d];
        for (int k = 0; k < N; ++k) off[k] += c * stride[k][d];
        r = q;
      }
      for (int k = 0; k < N; ++k) off[k] += r * stride[k][0];
    }
  }
};

// Builds the coalesced layout; returns false if more than kMaxDims dimensions remain.
template <int N>
bool make_layout(const std::vector<int64_t>& shape, const std::array<const std::vector<int64_t>*, N>& strides,
                 Layout<N>& out) {
  out = Layout<N>{};
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  out.numel = numel;
  std::vector<int64_t> sz;
  std::array<std::vector<int64_t>, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !sz.empty();
    for (int k = 0; k < N && merge; ++k) merge = st[k].back() == (*strides[k])[d] * shape[d];
    if (merge) {
      sz.back() *= shape[d];
      for (int k = 0; k < N; ++k) st[k].back() = (*strides[k])[d];
    } else {
      sz.push_back(shape[d]);
      for (int k = 0; k < N; ++k) st[k].push_back((*strides[k])[d]);
    }
  }
  if (sz.empty()) {
    sz.push_back(1);
    for (int k = 0; k < N; ++k) st[k].push_back(0);
  }
  if (sz.size() > size_t(kMaxDims)) return false;
  out.ndim = int(sz.size());
  out.unit = out.ndim == 1;
  out.small = numel < (int64_t(1) << 31);
  for (int d = 0; d < out.ndim; ++d) {
    out.size[d] = sz[d];
    for (int k = 0; k < N; ++k) {
      out.stride[k][d] = st[k][d];
      if (out.ndim == 1 && st[k][d] != 1) out.unit = false;
    }
  }
  return true;
}

}  // namespace lmforge::cuda
