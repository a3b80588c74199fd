// GPU RMSNorm and LayerNorm over the last dim, forward and backward. Twin of
// backend/cpu/norm_cpu.cpp (same formulas):
//   RMSNorm:   rstd = 1/sqrt(mean(x²) + eps),        y = x·rstd·w
//              dx   = rstd·(w·dy) - rstd³/C · x · Σ_c(w·dy·x)
//   LayerNorm: rstd = 1/sqrt(var(x) + eps) (two passes), xhat = (x - mean)·rstd, y = xhat·w + b
//              dx   = rstd·(g - mean_c(g) - xhat·mean_c(g·xhat)),  g = w·dy
//   dweight = Σ_rows dy·xhat, dbias = Σ_rows dy.
// Weight and bias arrive in the compute type (the backend converts them).
//
// Fused residual add, on both paths (backend/backend.h): with a residual the forward normalises
// sum = x + residual rounded to T, which it stores; with dsum the backward stores
// dx = dsum + (the norm's gradient rounded to T), rounded again. Both are the CPU twin's roundings.
//
// Two paths compute the same function:
// - norm_warp.cuh, one warp per row, the row in registers, 16-byte vectors: f32 / bf16 / f16
//   with C a multiple of the vector width (4 / 8 / 8), at most 16 vectors per lane forward (C ≤ 4096
//   bf16 / f16, 2048 f32; 12 for f16 LayerNorm) and 8 backward (C ≤ 2048 bf16 / f16, 1024 f32:
//   the lane's dweight / dbias partials live in registers too), and 16-byte aligned x / y / dy /
//   dx / weight / bias. The model widths up to 2048 take it on both passes.
// - the kernels below, one block per row (block tree reductions, fixed order): everything else
//   (f64, odd C, misaligned views, wider rows).
// dweight / dbias are deterministic without atomics on both paths: each block owns a partial row
// of the sums and adds its rows in a fixed order (here: the rows are cut into at most kMaxBlocks
// fixed blocks, the cut depends on N only, as on the CPU), then one thread per column adds the
// partials in block order.
#include <type_traits>
#include <utility>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"
#include "backend/cuda/norm_warp.cuh"
#include "backend/cuda/scratch.h"
#include "backend/cuda/vec_util.cuh"

namespace lmforge::cuda {

namespace {

constexpr int64_t kMinRowsPerBlock = 16;
constexpr int64_t kMaxBlocks = 256;

// One row of the tensor a forward kernel normalises: x's row, or (with a residual) the row of
// x + residual rounded to T. The first pass over the row computes each element and stores it to
// the sum row; the later passes of the same thread read it back from there (own writes, no
// barrier needed).
template <class T>
struct InputRow {
  const T* __restrict__ x;
  const T* __restrict__ residual;  // null: no residual add
  T* __restrict__ sum;

  __device__ InputRow(const T* x_, const T* residual_, T* sum_, int64_t row, int64_t c)
      : x(x_ + row * c),
        residual(residual_ ? residual_ + row * c : nullptr),
        sum(residual_ ? sum_ + row * c : nullptr) {}

  __device__ __forceinline__ compute_t<T> first(int64_t i) const {
    if (!residual) return load(x[i]);
    const T v = store<T>(compute_t<T>(load(x[i])) + compute_t<T>(load(residual[i])));
    sum[i] = v;
    return load(v);
  }
  __device__ __forceinline__ compute_t<T> again(int64_t i) const { return load(residual ? sum[i] : x[i]); }
};

// dx element from the norm's gradient v: v rounded to T, plus the sum's gradient when there is one
// (ds: dsum's row, or null), rounded again.
template <class T>
__device__ __forceinline__ T with_dsum(compute_t<T> v, const T* __restrict__ ds, int64_t i) {
  const T o = store<T>(v);
  return ds ? store<T>(compute_t<T>(load(o)) + compute_t<T>(load(ds[i]))) : o;
}

template <class T>
__global__ void rms_forward_kernel(const T* __restrict__ x, const T* __restrict__ residual,
                                   const compute_t<T>* __restrict__ w, compute_t<T> eps, T* __restrict__ y,
                                   T* __restrict__ sum, compute_t<T>* __restrict__ rstd, int64_t n, int64_t c) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const InputRow<T> in(x, residual, sum, row, c);
    T* yr = y + row * c;
    A ss = 0;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A v = in.first(i);
      ss += v * v;
    }
    ss = block_reduce(ss, [](A a, A b) { return a + b; }, scratch);
    const A s = A(1) / m_sqrt(ss / A(c) + eps);
    if (threadIdx.x == 0) rstd[row] = s;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A v = in.again(i) * s;
      yr[i] = store<T>(w ? v * w[i] : v);
    }
  }
}

// Rows [blk·rpb, (blk+1)·rpb) of block blk; partial_dw (null: no dweight) has one [C] row per block.
template <class T>
__global__ void rms_backward_kernel(const T* __restrict__ x, const compute_t<T>* __restrict__ w,
                                    const compute_t<T>* __restrict__ rstd, const T* __restrict__ dy,
                                    const T* __restrict__ dsum, T* __restrict__ dx,
                                    compute_t<T>* __restrict__ partial_dw, int64_t n, int64_t c,
                                    int64_t rows_per_block) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  const int64_t r0 = int64_t(blockIdx.x) * rows_per_block, r1 = min(n, r0 + rows_per_block);
  A* pdw = partial_dw ? partial_dw + int64_t(blockIdx.x) * c : nullptr;
  if (pdw)
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) pdw[i] = A(0);
  for (int64_t row = r0; row < r1; ++row) {
    const T* xr = x + row * c;
    const T* gr = dy + row * c;
    const T* ds = dsum ? dsum + row * c : nullptr;
    T* dr = dx + row * c;
    const A s = rstd[row];
    A dot = 0;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A g = load(gr[i]);
      dot += (w ? w[i] * g : g) * A(load(xr[i]));
    }
    dot = block_reduce(dot, [](A a, A b) { return a + b; }, scratch);
    const A k = s * s * s * dot / A(c);
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A g = load(gr[i]), xv = load(xr[i]);
      dr[i] = with_dsum<T>((w ? s * w[i] * g : s * g) - k * xv, ds, i);
      if (pdw) pdw[i] += g * xv * s;
    }
  }
}

template <class T>
__global__ void ln_forward_kernel(const T* __restrict__ x, const T* __restrict__ residual,
                                  const compute_t<T>* __restrict__ w, const compute_t<T>* __restrict__ b,
                                  compute_t<T> eps, T* __restrict__ y, T* __restrict__ sum,
                                  compute_t<T>* __restrict__ mean, compute_t<T>* __restrict__ rstd, int64_t n,
                                  int64_t c) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const InputRow<T> in(x, residual, sum, row, c);
    T* yr = y + row * c;
    A total = 0;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) total += in.first(i);
    total = block_reduce(total, [](A a, A b) { return a + b; }, scratch);
    const A mu = total / A(c);
    A sq = 0;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A d = in.again(i) - mu;
      sq += d * d;
    }
    sq = block_reduce(sq, [](A a, A b) { return a + b; }, scratch);
    const A s = A(1) / m_sqrt(sq / A(c) + eps);
    if (threadIdx.x == 0) {
      mean[row] = mu;
      rstd[row] = s;
    }
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      A v = (in.again(i) - mu) * s;
      if (w) v *= w[i];
      if (b) v += b[i];
      yr[i] = store<T>(v);
    }
  }
}

template <class T>
__global__ void ln_backward_kernel(const T* __restrict__ x, const compute_t<T>* __restrict__ w,
                                   const compute_t<T>* __restrict__ mean, const compute_t<T>* __restrict__ rstd,
                                   const T* __restrict__ dy, const T* __restrict__ dsum, T* __restrict__ dx,
                                   compute_t<T>* __restrict__ partial_dw,
                                   compute_t<T>* __restrict__ partial_db, int64_t n, int64_t c,
                                   int64_t rows_per_block) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  const int64_t r0 = int64_t(blockIdx.x) * rows_per_block, r1 = min(n, r0 + rows_per_block);
  A* pdw = partial_dw ? partial_dw + int64_t(blockIdx.x) * c : nullptr;
  A* pdb = partial_db ? partial_db + int64_t(blockIdx.x) * c : nullptr;
  for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
    if (pdw) pdw[i] = A(0);
    if (pdb) pdb[i] = A(0);
  }
  for (int64_t row = r0; row < r1; ++row) {
    const T* xr = x + row * c;
    const T* gr = dy + row * c;
    const T* ds = dsum ? dsum + row * c : nullptr;
    T* dr = dx + row * c;
    const A mu = mean[row], s = rstd[row];
    A sum_g = 0, sum_gx = 0;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A dyv = load(gr[i]);
      const A g = w ? w[i] * dyv : dyv;
      sum_g += g;
      sum_gx += g * (A(load(xr[i])) - mu) * s;
    }
    sum_g = block_reduce(sum_g, [](A a, A b) { return a + b; }, scratch);
    sum_gx = block_reduce(sum_gx, [](A a, A b) { return a + b; }, scratch);
    const A mg = sum_g / A(c), mgx = sum_gx / A(c);
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A dyv = load(gr[i]);
      const A g = w ? w[i] * dyv : dyv;
      const A xh = (A(load(xr[i])) - mu) * s;
      dr[i] = with_dsum<T>(s * (g - mg - xh * mgx), ds, i);
      if (pdw) pdw[i] += dyv * xh;
      if (pdb) pdb[i] += dyv;
    }
  }
}

// out[j] = Σ_blk partial[blk·c + j], in block order.
template <class A>
__global__ void column_sum_kernel(const A* __restrict__ partial, int64_t blocks, int64_t c, A* __restrict__ out) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < c; j += step) {
    A acc = 0;
    for (int64_t b = 0; b < blocks; ++b) acc += partial[b * c + j];
    out[j] = acc;
  }
}

unsigned row_grid(int64_t rows) { return unsigned(std::max<int64_t>(1, std::min<int64_t>(rows, 65535))); }

// The CPU's row blocking: the partial sums then match its grouping.
int64_t rows_per_block(int64_t n) { return std::max(kMinRowsPerBlock, (n + kMaxBlocks - 1) / kMaxBlocks); }

// ---- choosing the warp-per-row path ----
// Vectors per lane the warp kernels are built for; a row takes the smallest that holds it. The
// forward holds the packed row: NV = 16 (C = 4096 bf16 / f16, 2048 f32) is the widest that
// compiles without spilling (ptxas -v; f16's exact software rounding costs the most registers:
// its LayerNorm spills from NV = 16, so it stops at 12). The backward holds x, dy, dsum (packed)
// and up to two [NV · W] f32 partials per lane: at NV = 8 the bf16 / f16 LayerNorm reaches 255
// registers and spills about 50 bytes; the RMSNorm stays below 230.
using FwdVectors = std::integer_sequence<int, 1, 2, 3, 4, 6, 8, 12, 16>;
using FwdVectorsF16Ln = std::integer_sequence<int, 1, 2, 3, 4, 6, 8, 12>;
using BwdVectors = std::integer_sequence<int, 1, 2, 3, 4, 6, 8>;

// Calls f(std::integral_constant<int, NV>) for the smallest listed NV >= needed; false if none
// (or needed is 0: the row cannot take the warp path).
template <class F, int... NVs>
bool with_vectors_per_lane(int64_t needed, std::integer_sequence<int, NVs...>, F&& f) {
  return needed > 0 && ((needed <= NVs ? (f(std::integral_constant<int, NVs>{}), true) : false) || ...);
}

// Vectors per lane a row of c elements of T needs on the warp path, or 0 when the path cannot
// take it: f64 (its statistics are f64), c not a whole number of 16-byte vectors, or a pointer off
// the 16-byte grid (with c a multiple of the vector width, every row then starts on it too).
template <class T>
int64_t warp_vectors(int64_t c, std::initializer_list<const void*> ptrs) {
  if constexpr (std::is_same_v<T, double>) return 0;
  constexpr int64_t w = kVecWidth<T>;
  if (c <= 0 || c % w != 0) return 0;
  for (const void* p : ptrs)
    if (p && !aligned16(p)) return 0;
  return (c / w + 31) / 32;
}

// Forward: enough blocks to cover every row once, capped (each warp then walks several rows).
unsigned warp_fwd_grid(const CudaContext& ctx, int64_t n) {
  const int64_t want = (n + norm_warp::kWarps - 1) / norm_warp::kWarps;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(ctx.sm_count) * 16)));
}

// Backward: two blocks per SM fill the GPU; fewer for small N. The grid (and so the assignment of
// rows to warps and the partial rows) depends on N and the SM count only.
unsigned warp_bwd_grid(const CudaContext& ctx, int64_t n) {
  const int64_t want = (n + norm_warp::kWarps - 1) / norm_warp::kWarps;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(ctx.sm_count) * 2)));
}

template <class A>
void column_sum(const CudaContext& ctx, const A* partial, int64_t blocks, int64_t c, void* out) {
  column_sum_kernel<A><<<grid_for(ctx, c), kThreads, 0, ctx.stream>>>(partial, blocks, c, static_cast<A*>(out));
  LF_CUDA_CHECK_LAUNCH("column_sum_kernel");
}

// ---- warp-path launches: false when the row does not fit the path (the caller falls back) ----
using norm_warp::kThreadsPerBlock;

template <class T>
bool warp_rms_forward(const CudaContext& ctx, const void* x, const void* residual, const void* w, double eps,
                      void* y, void* sum, void* rstd, int64_t n, int64_t c) {
  return with_vectors_per_lane(warp_vectors<T>(c, {x, residual, w, y, sum}), FwdVectors{}, [&](auto nv) {
    norm_warp::rms_forward<T, decltype(nv)::value><<<warp_fwd_grid(ctx, n), kThreadsPerBlock, 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(residual), static_cast<const float*>(w), float(eps),
        static_cast<T*>(y), static_cast<T*>(sum), static_cast<float*>(rstd), n, int(c));
    LF_CUDA_CHECK_LAUNCH("norm_warp::rms_forward");
  });
}

template <class T>
bool warp_layer_norm_forward(const CudaContext& ctx, const void* x, const void* residual, const void* w,
                             const void* b, double eps, void* y, void* sum, void* mean, void* rstd, int64_t n,
                             int64_t c) {
  using Vectors = std::conditional_t<std::is_same_v<T, f16>, FwdVectorsF16Ln, FwdVectors>;
  return with_vectors_per_lane(warp_vectors<T>(c, {x, residual, w, b, y, sum}), Vectors{}, [&](auto nv) {
    norm_warp::ln_forward<T, decltype(nv)::value><<<warp_fwd_grid(ctx, n), kThreadsPerBlock, 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(residual), static_cast<const float*>(w),
        static_cast<const float*>(b), float(eps), static_cast<T*>(y), static_cast<T*>(sum),
        static_cast<float*>(mean), static_cast<float*>(rstd), n, int(c));
    LF_CUDA_CHECK_LAUNCH("norm_warp::ln_forward");
  });
}

// The partial rows are [blocks, C] f32; the kernel adds its warps in C floats of shared memory.
template <class T>
bool warp_rms_backward(const CudaContext& ctx, const void* x, const void* w, const void* rstd, const void* dy,
                       const void* dsum, void* dx, void* dweight, int64_t n, int64_t c) {
  return with_vectors_per_lane(warp_vectors<T>(c, {x, w, dy, dsum, dx}), BwdVectors{}, [&](auto nv) {
    const unsigned blocks = warp_bwd_grid(ctx, n);
    const size_t row_bytes = size_t(c) * sizeof(float);
    Scratch partial(ctx.device, dweight ? blocks * row_bytes : 0);
    norm_warp::rms_backward<T, decltype(nv)::value>
        <<<blocks, kThreadsPerBlock, dweight ? row_bytes : 0, ctx.stream>>>(
            static_cast<const T*>(x), static_cast<const float*>(w), static_cast<const float*>(rstd),
            static_cast<const T*>(dy), static_cast<const T*>(dsum), static_cast<T*>(dx), partial.get<float>(), n,
            int(c));
    LF_CUDA_CHECK_LAUNCH("norm_warp::rms_backward");
    if (dweight) column_sum<float>(ctx, partial.get<float>(), blocks, c, dweight);
  });
}

template <class T>
bool warp_layer_norm_backward(const CudaContext& ctx, const void* x, const void* w, const void* mean,
                              const void* rstd, const void* dy, const void* dsum, void* dx, void* dweight,
                              void* dbias, int64_t n, int64_t c) {
  return with_vectors_per_lane(warp_vectors<T>(c, {x, w, dy, dsum, dx}), BwdVectors{}, [&](auto nv) {
    const unsigned blocks = warp_bwd_grid(ctx, n);
    const size_t row_bytes = size_t(c) * sizeof(float);
    Scratch pdw(ctx.device, dweight ? blocks * row_bytes : 0);
    Scratch pdb(ctx.device, dbias ? blocks * row_bytes : 0);
    norm_warp::ln_backward<T, decltype(nv)::value>
        <<<blocks, kThreadsPerBlock, (dweight || dbias) ? row_bytes : 0, ctx.stream>>>(
            static_cast<const T*>(x), static_cast<const float*>(w), static_cast<const float*>(mean),
            static_cast<const float*>(rstd), static_cast<const T*>(dy), static_cast<const T*>(dsum),
            static_cast<T*>(dx), pdw.get<float>(), pdb.get<float>(), n, int(c));
    LF_CUDA_CHECK_LAUNCH("norm_warp::ln_backward");
    if (dweight) column_sum<float>(ctx, pdw.get<float>(), blocks, c, dweight);
    if (dbias) column_sum<float>(ctx, pdb.get<float>(), blocks, c, dbias);
  });
}

}  // namespace

void launch_rms_norm_forward(const CudaContext& ctx, DType t, const void* x, const void* residual, const void* w,
                             double eps, void* y, void* sum, void* rstd, int64_t n, int64_t c) {
  if (n == 0) return;
  dispatch_nn(t, "rms_norm", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    if constexpr (!std::is_same_v<T, double>)  // f64 always takes the block kernels
      if (warp_rms_forward<T>(ctx, x, residual, w, eps, y, sum, rstd, n, c)) return;
    rms_forward_kernel<T><<<row_grid(n), row_threads(c, 4), 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(residual), static_cast<const A*>(w), A(eps),
        static_cast<T*>(y), static_cast<T*>(sum), static_cast<A*>(rstd), n, c);
    LF_CUDA_CHECK_LAUNCH("rms_forward_kernel");
  });
}

void launch_rms_norm_backward(const CudaContext& ctx, DType t, const void* x, const void* w, const void* rstd,
                              const void* dy, const void* dsum, void* dx, void* dweight, int64_t n, int64_t c) {
  dispatch_nn(t, "rms_norm_backward", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    if (n == 0) {
      if (dweight) LF_CUDA_CHECK(cudaMemsetAsync(dweight, 0, size_t(c) * sizeof(A), ctx.stream));
      return;
    }
    if constexpr (!std::is_same_v<T, double>)  // f64 always takes the block kernels
      if (warp_rms_backward<T>(ctx, x, w, rstd, dy, dsum, dx, dweight, n, c)) return;
    const int64_t rpb = dweight ? rows_per_block(n) : 1;
    const int64_t blocks = (n + rpb - 1) / rpb;
    Scratch partial(ctx.device, dweight ? size_t(blocks * c) * sizeof(A) : 0);
    rms_backward_kernel<T><<<unsigned(blocks), row_threads(c, 4), 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const A*>(w), static_cast<const A*>(rstd), static_cast<const T*>(dy),
        static_cast<const T*>(dsum), static_cast<T*>(dx), partial.get<A>(), n, c, rpb);
    LF_CUDA_CHECK_LAUNCH("rms_backward_kernel");
    if (dweight) column_sum<A>(ctx, partial.get<A>(), blocks, c, dweight);
  });
}

void launch_layer_norm_forward(const CudaContext& ctx, DType t, const void* x, const void* residual, const void* w,
                               const void* b, double eps, void* y, void* sum, void* mean, void* rstd, int64_t n,
                               int64_t c) {
  if (n == 0) return;
  dispatch_nn(t, "layer_norm", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    if constexpr (!std::is_same_v<T, double>)  // f64 always takes the block kernels
      if (warp_layer_norm_forward<T>(ctx, x, residual, w, b, eps, y, sum, mean, rstd, n, c)) return;
    ln_forward_kernel<T><<<row_grid(n), row_threads(c, 4), 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(residual), static_cast<const A*>(w),
        static_cast<const A*>(b), A(eps), static_cast<T*>(y), static_cast<T*>(sum), static_cast<A*>(mean),
        static_cast<A*>(rstd), n, c);
    LF_CUDA_CHECK_LAUNCH("ln_forward_kernel");
  });
}

void launch_layer_norm_backward(const CudaContext& ctx, DType t, const void* x, const void* w, const void* mean,
                                const void* rstd, const void* dy, const void* dsum, void* dx, void* dweight,
                                void* dbias, int64_t n, int64_t c) {
  dispatch_nn(t, "layer_norm_backward", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    if (n == 0) {
      if (dweight) LF_CUDA_CHECK(cudaMemsetAsync(dweight, 0, size_t(c) * sizeof(A), ctx.stream));
      if (dbias) LF_CUDA_CHECK(cudaMemsetAsync(dbias, 0, size_t(c) * sizeof(A), ctx.stream));
      return;
    }
    if constexpr (!std::is_same_v<T, double>)  // f64 always takes the block kernels
      if (warp_layer_norm_backward<T>(ctx, x, w, mean, rstd, dy, dsum, dx, dweight, dbias, n, c)) return;
    const bool sums = dweight || dbias;
    const int64_t rpb = sums ? rows_per_block(n) : 1;
    const int64_t blocks = (n + rpb - 1) / rpb;
    Scratch pdw(ctx.device, dweight ? size_t(blocks * c) * sizeof(A) : 0);
    Scratch pdb(ctx.device, dbias ? size_t(blocks * c) * sizeof(A) : 0);
    ln_backward_kernel<T><<<unsigned(blocks), row_threads(c, 4), 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const A*>(w), static_cast<const A*>(mean), static_cast<const A*>(rstd),
        static_cast<const T*>(dy), static_cast<const T*>(dsum), static_cast<T*>(dx), pdw.get<A>(), pdb.get<A>(), n,
        c, rpb);
    LF_CUDA_CHECK_LAUNCH("ln_backward_kernel");
    if (dweight) column_sum<A>(ctx, pdw.get<A>(), blocks, c, dweight);
    if (dbias) column_sum<A>(ctx, pdb.get<A>(), blocks, c, dbias);
  });
}

}  // namespace lmforge::cuda
