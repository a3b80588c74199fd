// Parallel iteration over N same-shaped strided operands (broadcast operands have stride 0).
// Dimensions are coalesced where every operand is contiguous across them, then rows of the last
// dimension are handed to `row(offsets, n, inner_strides)` — a typed inner loop that the
// compiler vectorises when all inner strides are 1. Work is split by element position only, so
// results never depend on the thread count.
#pragma once

#include <omp.h>

#include <array>
#include <vector>

#include "core/tensor.h"

namespace lmforge::cpu {

inline constexpr int64_t kParallelGrain = 16384;  // elements below which a loop stays serial

template <size_t N>
struct CoalescedLayout {
  Shape shape;
  std::array<Shape, N> strides;
};

template <size_t N>
CoalescedLayout<N> coalesce(const Shape& shape, const std::array<Shape, N>& strides) {
  CoalescedLayout<N> out;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !out.shape.empty();
    for (size_t k = 0; k < N && merge; ++k)
      merge = out.strides[k].back() == strides[k][d] * shape[d];
    if (merge) {
      out.shape.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) out.strides[k].back() = strides[k][d];
    } else {
      out.shape.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) out.strides[k].push_back(strides[k][d]);
    }
  }
  if (out.shape.empty()) {
    out.shape.push_back(1);
    for (size_t k = 0; k < N; ++k) out.strides[k].push_back(0);
  }
  return out;
}

// row(std::array<int64_t, N> offsets, int64_t n, const std::array<int64_t, N>& inner_strides)
template <size_t N, class RowFn>
void for_each_row(const Shape& shape, const std::array<Shape, N>& strides, RowFn&& row) {
  int64_t numel = shape_numel(shape);
  if (numel == 0) return;
  CoalescedLayout<N> L = coalesce<N>(shape, strides);
  const int64_t nd = static_cast<int64_t>(L.shape.size());
  const int64_t inner = L.shape.back();
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = L.strides[k].back();
  const int64_t rows = numel / inner;

  if (rows == 1) {
    // One long row: split it into chunks.
    const int64_t chunk = 8192;
    const int64_t n_chunks = (inner + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (inner >= 2 * kParallelGrain)
    for (int64_t c = 0; c < n_chunks; ++c) {
      std::array<int64_t, N> off;
      for (size_t k = 0; k < N; ++k) off[k] = c * chunk * inner_strides[k];
      row(off, std::min(chunk, inner - c * chunk), inner_strides);
    }
    return;
  }
#pragma omp parallel if (numel >= kParallelGrain)
  {
    int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    int64_t begin = rows * tid / nt, end = rows * (tid + 1) / nt;
    if (begin < end) {
      // Unravel `begin` into an index over the outer dims, then increment it like an odometer.
      std::vector<int64_t> idx(nd - 1, 0);
      std::array<int64_t, N> off{};
      int64_t rem = begin;
      for (int64_t d = nd - 2; d >= 0; --d) {
        idx[d] = rem % L.shape[d];
        rem /= L.shape[d];
        for (size_t k = 0; k < N; ++k) off[k] += idx[d] * L.strides[k][d];
      }
      for (int64_t r = begin; r < end; ++r) {
        row(off, inner, inner_strides);
        for (int64_t d = nd - 2; d >= 0; --d) {
          for (size_t k = 0; k < N; ++k) off[k] += L.strides[k][d];
          if (++idx[d] < L.shape[d]) break;
          for (size_t k = 0; k < N; ++k) off[k] -= L.shape[d] * L.strides[k][d];
          idx[d] = 0;
        }
      }
    }
  }
}

// Parallel loop over [0, n) in contiguous blocks; f(begin, end).
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  if (n < grain || omp_in_parallel()) {
    f(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    int64_t b = n * tid / nt, e = n * (tid + 1) / nt;
    if (b < e) f(b, e);
  }
}

}  // namespace lmforge::cpu
