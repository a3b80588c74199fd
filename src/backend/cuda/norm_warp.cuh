// The fast path of norm.cu: one warp per row, the row held in registers, 16-byte loads and stores,
// warp-shuffle reductions (no block barrier per row). Same formulas and f32 statistics as the
// block-per-row kernels of norm.cu, which remain the path for everything this one does not take.
//
// Layout of a row in a warp: the row is cut into C / W vectors of W = kVecWidth<T> elements
// (16 bytes); lane l owns vectors l, l + 32, l + 64, ... (NV of them, NV a template parameter so
// the register arrays have compile-time size). The warp's loads of one k are 512 consecutive
// bytes. A lane always owns the same columns, whichever row it works on, so the backward keeps
// its columns' dweight / dbias partial sums in registers across all the rows of its warp.
//
// Determinism: rows go to warps by a fixed rule (global warp g takes rows g, g + G, g + 2G, ...
// with G the number of warps of the grid, which depends on N and the SM count only); a warp adds
// its rows in increasing order; the block adds its warps' partials in warp order in shared memory
// and writes one partial row; column_sum_kernel adds those in block order.
//
// Fused residual add (norm.cu): the forward adds the residual's vectors to the row as it loads it,
// rounds the sum to T, stores it (16-byte stores) and keeps the rounded sum packed as the row; the
// backward adds dsum's vectors to dx (rounded to T first) as it stores it.
#pragma once

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/math_util.cuh"
#include "backend/cuda/vec_util.cuh"

namespace lmforge::cuda::norm_warp {

inline constexpr int kWarps = 8;  // warps (rows in flight) per block
inline constexpr int kThreadsPerBlock = kWarps * 32;

// W compute-type (f32) weights at p, 16-byte aligned: W / 4 vector loads.
template <int W>
__device__ __forceinline__ void load_weights(const float* __restrict__ p, float (&out)[W]) {
  static_assert(W % 4 == 0);
#pragma unroll
  for (int i = 0; i < W; i += 4) {
    const float4 q = __ldg(reinterpret_cast<const float4*>(p + i));
    out[i] = q.x;
    out[i + 1] = q.y;
    out[i + 2] = q.z;
    out[i + 3] = q.w;
  }
}

// Loads the lane's NV vectors of row r (zeros past the end of the row).
template <class T, int NV>
__device__ __forceinline__ void load_row(const T* __restrict__ r, int lane, int cv, uint4 (&raw)[NV]) {
#pragma unroll
  for (int k = 0; k < NV; ++k) {
    const int vi = k * 32 + lane;
    raw[k] = vi < cv ? load_raw(r + int64_t(vi) * kVecWidth<T>) : make_uint4(0, 0, 0, 0);
  }
}

// The lane's NV vectors of the row the forward normalises: x's row, or (residual non-null) the row
// of x + residual rounded to T, which is also stored to the sum row.
template <class T, int NV>
__device__ __forceinline__ void load_input_row(const T* __restrict__ x, const T* __restrict__ residual,
                                               T* __restrict__ sum, int64_t row, int c, int lane, uint4 (&raw)[NV]) {
  constexpr int W = kVecWidth<T>;
  const int cv = c / W;
  load_row<T, NV>(x + row * c, lane, cv, raw);
  if (!residual) return;
  const T* rr = residual + row * c;
  T* sr = sum + row * c;
#pragma unroll
  for (int k = 0; k < NV; ++k) {
    const int vi = k * 32 + lane;
    if (vi >= cv) break;
    Vec<T> v = unpack_vec<T>(raw[k]);
    const Vec<T> r = load_vec<T>(rr + vi * W);
#pragma unroll
    for (int i = 0; i < W; ++i) v.v[i] += r.v[i];
    raw[k] = pack_vec<T>(v);
    *reinterpret_cast<uint4*>(sr + vi * W) = raw[k];
  }
}

// o (the norm's gradient of a vector) becomes o rounded to T plus the dsum vector `raw` (loaded
// with the row's other vectors): the caller's store rounds it again.
template <class T>
__device__ __forceinline__ void add_dsum(Vec<T>& o, const uint4& raw) {
  const Vec<T> rounded = unpack_vec<T>(pack_vec<T>(o)), d = unpack_vec<T>(raw);
#pragma unroll
  for (int i = 0; i < kVecWidth<T>; ++i) o.v[i] = rounded.v[i] + d.v[i];
}

// residual / sum: both null (no residual add) or both set, [N, C] like x.
template <class T, int NV>
__global__ void __launch_bounds__(kThreadsPerBlock)
    rms_forward(const T* __restrict__ x, const T* __restrict__ residual, const float* __restrict__ w, float eps,
                T* __restrict__ y, T* __restrict__ sum, float* __restrict__ rstd, int64_t n, int c) {
  constexpr int W = kVecWidth<T>;
  const int lane = threadIdx.x & 31, cv = c / W;
  const int64_t stride = int64_t(gridDim.x) * kWarps;
  for (int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); row < n; row += stride) {
    uint4 raw[NV];
    load_input_row<T, NV>(x, residual, sum, row, c, lane, raw);
    float ss = 0;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const Vec<T> v = unpack_vec<T>(raw[k]);  // zeros past the end add nothing
#pragma unroll
      for (int i = 0; i < W; ++i) ss += v.v[i] * v.v[i];
    }
    ss = warp_sum(ss);
    const float s = 1.f / m_sqrt(ss / float(c) + eps);
    if (lane == 0) rstd[row] = s;
    T* yr = y + row * c;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const int vi = k * 32 + lane;
      if (vi >= cv) break;
      Vec<T> v = unpack_vec<T>(raw[k]);
      float wv[W];
      if (w) load_weights<W>(w + vi * W, wv);
#pragma unroll
      for (int i = 0; i < W; ++i) {
        v.v[i] *= s;
        if (w) v.v[i] *= wv[i];
      }
      store_vec<T>(yr + vi * W, v);
    }
  }
}

template <class T, int NV>
__global__ void __launch_bounds__(kThreadsPerBlock)
    ln_forward(const T* __restrict__ x, const T* __restrict__ residual, const float* __restrict__ w,
               const float* __restrict__ b, float eps, T* __restrict__ y, T* __restrict__ sum,
               float* __restrict__ mean, float* __restrict__ rstd, int64_t n, int c) {
  constexpr int W = kVecWidth<T>;
  const int lane = threadIdx.x & 31, cv = c / W;
  const int64_t stride = int64_t(gridDim.x) * kWarps;
  for (int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); row < n; row += stride) {
    uint4 raw[NV];
    load_input_row<T, NV>(x, residual, sum, row, c, lane, raw);
    float sum = 0;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const Vec<T> v = unpack_vec<T>(raw[k]);
#pragma unroll
      for (int i = 0; i < W; ++i) sum += v.v[i];
    }
    const float mu = warp_sum(sum) / float(c);
    // Second pass over the registers: the variance of (x - mean), as the CPU twin computes it.
    float sq = 0;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      if (k * 32 + lane >= cv) break;
      const Vec<T> v = unpack_vec<T>(raw[k]);
#pragma unroll
      for (int i = 0; i < W; ++i) {
        const float d = v.v[i] - mu;
        sq += d * d;
      }
    }
    sq = warp_sum(sq);
    const float s = 1.f / m_sqrt(sq / float(c) + eps);
    if (lane == 0) {
      mean[row] = mu;
      rstd[row] = s;
    }
    T* yr = y + row * c;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const int vi = k * 32 + lane;
      if (vi >= cv) break;
      Vec<T> v = unpack_vec<T>(raw[k]);
      float wv[W], bv[W];
      if (w) load_weights<W>(w + vi * W, wv);
      if (b) load_weights<W>(b + vi * W, bv);
#pragma unroll
      for (int i = 0; i < W; ++i) {
        v.v[i] = (v.v[i] - mu) * s;
        if (w) v.v[i] *= wv[i];
        if (b) v.v[i] += bv[i];
      }
      store_vec<T>(yr + vi * W, v);
    }
  }
}

// Adds the block's per-warp partial sums (acc: the lane's NV·W columns) in warp order in `sm`
// ([C] f32, dynamic shared memory) and writes the result as the block's row of `partial`.
template <class T, int NV>
__device__ __forceinline__ void block_partial_row(const float (&acc)[NV][kVecWidth<T>], float* sm,
                                                  float* __restrict__ partial, int c) {
  constexpr int W = kVecWidth<T>;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, cv = c / W;
  for (int wi = 0; wi < kWarps; ++wi) {
    if (warp == wi) {
#pragma unroll
      for (int k = 0; k < NV; ++k) {
        const int vi = k * 32 + lane;
        if (vi >= cv) break;
#pragma unroll
        for (int i = 0; i < W; ++i) sm[vi * W + i] = wi == 0 ? acc[k][i] : sm[vi * W + i] + acc[k][i];
      }
    }
    __syncthreads();
  }
  float* out = partial + int64_t(blockIdx.x) * c;
  for (int j = threadIdx.x; j < c; j += blockDim.x) out[j] = sm[j];
  __syncthreads();  // sm is reused by the next accumulator
}

// dsum (null: none): [N, C] like dy. partial_dw (null: no dweight): [gridDim.x, C]; dynamic shared
// memory: C floats when partial_dw.
template <class T, int NV>
__global__ void __launch_bounds__(kThreadsPerBlock)
    rms_backward(const T* __restrict__ x, const float* __restrict__ w, const float* __restrict__ rstd,
                 const T* __restrict__ dy, const T* __restrict__ dsum, T* __restrict__ dx,
                 float* __restrict__ partial_dw, int64_t n, int c) {
  constexpr int W = kVecWidth<T>;
  extern __shared__ float sm[];
  const int lane = threadIdx.x & 31, cv = c / W;
  const int64_t stride = int64_t(gridDim.x) * kWarps;
  float acc[NV][W];
#pragma unroll
  for (int k = 0; k < NV; ++k)
#pragma unroll
    for (int i = 0; i < W; ++i) acc[k][i] = 0.f;
  for (int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); row < n; row += stride) {
    uint4 rx[NV], rg[NV], rd[NV];  // rd: the dsum row, loaded with the others so its latency overlaps theirs
    load_row<T, NV>(x + row * c, lane, cv, rx);
    load_row<T, NV>(dy + row * c, lane, cv, rg);
    if (dsum) load_row<T, NV>(dsum + row * c, lane, cv, rd);
    const float s = rstd[row];
    float dot = 0;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const int vi = k * 32 + lane;
      if (vi >= cv) break;
      const Vec<T> xv = unpack_vec<T>(rx[k]), gv = unpack_vec<T>(rg[k]);
      float wv[W];
      if (w) load_weights<W>(w + vi * W, wv);
#pragma unroll
      for (int i = 0; i < W; ++i) dot += (w ? wv[i] * gv.v[i] : gv.v[i]) * xv.v[i];
    }
    dot = warp_sum(dot);
    const float kc = s * s * s * dot / float(c);
    T* dr = dx + row * c;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const int vi = k * 32 + lane;
      if (vi >= cv) break;
      const Vec<T> xv = unpack_vec<T>(rx[k]), gv = unpack_vec<T>(rg[k]);
      float wv[W];
      if (w) load_weights<W>(w + vi * W, wv);
      Vec<T> o;
#pragma unroll
      for (int i = 0; i < W; ++i) {
        o.v[i] = (w ? s * wv[i] * gv.v[i] : s * gv.v[i]) - kc * xv.v[i];
        acc[k][i] += gv.v[i] * xv.v[i] * s;
      }
      if (dsum) add_dsum<T>(o, rd[k]);
      store_vec<T>(dr + vi * W, o);
    }
  }
  if (partial_dw) block_partial_row<T, NV>(acc, sm, partial_dw, c);
}

// dsum (null: none): [N, C] like dy. partial_dw / partial_db (null: not wanted): [gridDim.x, C];
// dynamic shared memory: C floats when either is wanted.
template <class T, int NV>
__global__ void __launch_bounds__(kThreadsPerBlock)
    ln_backward(const T* __restrict__ x, const float* __restrict__ w, const float* __restrict__ mean,
                const float* __restrict__ rstd, const T* __restrict__ dy, const T* __restrict__ dsum,
                T* __restrict__ dx, float* __restrict__ partial_dw, float* __restrict__ partial_db, int64_t n,
                int c) {
  constexpr int W = kVecWidth<T>;
  extern __shared__ float sm[];
  const int lane = threadIdx.x & 31, cv = c / W;
  const int64_t stride = int64_t(gridDim.x) * kWarps;
  float acc_w[NV][W], acc_b[NV][W];
#pragma unroll
  for (int k = 0; k < NV; ++k)
#pragma unroll
    for (int i = 0; i < W; ++i) acc_w[k][i] = acc_b[k][i] = 0.f;
  for (int64_t row = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5); row < n; row += stride) {
    uint4 rx[NV], rg[NV], rd[NV];  // rd: the dsum row, loaded with the others so its latency overlaps theirs
    load_row<T, NV>(x + row * c, lane, cv, rx);
    load_row<T, NV>(dy + row * c, lane, cv, rg);
    if (dsum) load_row<T, NV>(dsum + row * c, lane, cv, rd);
    const float mu = mean[row], s = rstd[row];
    float sum_g = 0, sum_gx = 0;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const int vi = k * 32 + lane;
      if (vi >= cv) break;
      const Vec<T> xv = unpack_vec<T>(rx[k]), gv = unpack_vec<T>(rg[k]);
      float wv[W];
      if (w) load_weights<W>(w + vi * W, wv);
#pragma unroll
      for (int i = 0; i < W; ++i) {
        const float g = w ? wv[i] * gv.v[i] : gv.v[i];
        sum_g += g;
        sum_gx += g * (xv.v[i] - mu) * s;
      }
    }
    const float mg = warp_sum(sum_g) / float(c), mgx = warp_sum(sum_gx) / float(c);
    T* dr = dx + row * c;
#pragma unroll
    for (int k = 0; k < NV; ++k) {
      const int vi = k * 32 + lane;
      if (vi >= cv) break;
      const Vec<T> xv = unpack_vec<T>(rx[k]), gv = unpack_vec<T>(rg[k]);
      float wv[W];
      if (w) load_weights<W>(w + vi * W, wv);
      Vec<T> o;
#pragma unroll
      for (int i = 0; i < W; ++i) {
        const float g = w ? wv[i] * gv.v[i] : gv.v[i];
        const float xh = (xv.v[i] - mu) * s;
        o.v[i] = s * (g - mg - xh * mgx);
        acc_w[k][i] += gv.v[i] * xh;
        acc_b[k][i] += gv.v[i];
      }
      if (dsum) add_dsum<T>(o, rd[k]);
      store_vec<T>(dr + vi * W, o);
    }
  }
  if (partial_dw) block_partial_row<T, NV>(acc_w, sm, partial_dw, c);
  if (partial_db) block_partial_row<T, NV>(acc_b, sm, partial_db, c);
}

}  // namespace lmforge::cuda::norm_warp
