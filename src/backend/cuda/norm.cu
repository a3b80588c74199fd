// GPU RMSNorm and LayerNorm over the last dim, forward and backward. Twin of
// backend/cpu/norm_cpu.cpp (same formulas):
//   RMSNorm:   rstd = 1/sqrt(mean(x²) + eps),        y = x·rstd·w
//              dx   = rstd·(w·dy) - rstd³/C · x · Σ_c(w·dy·x)
//   LayerNorm: rstd = 1/sqrt(var(x) + eps) (two passes), xhat = (x - mean)·rstd, y = xhat·w + b
//              dx   = rstd·(g - mean_c(g) - xhat·mean_c(g·xhat)),  g = w·dy
//   dweight = Σ_rows dy·xhat, dbias = Σ_rows dy.
// One block per row (block tree reductions, fixed order). Weight and bias arrive in the compute
// type (the backend converts them). dweight / dbias are deterministic without atomics: the rows
// are cut into at most kMaxBlocks fixed blocks (the cut depends on N only, as on the CPU); each
// block owns a partial row of the sums and adds its rows in order, then one thread per column
// adds the partials in block order.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

namespace {

constexpr int64_t kMinRowsPerBlock = 16;
constexpr int64_t kMaxBlocks = 256;

template <class T>
__global__ void rms_forward_kernel(const T* __restrict__ x, const compute_t<T>* __restrict__ w, compute_t<T> eps,
                                   T* __restrict__ y, compute_t<T>* __restrict__ rstd, int64_t n, int64_t c) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* xr = x + row * c;
    T* yr = y + row * c;
    A ss = 0;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A v = load(xr[i]);
      ss += v * v;
    }
    ss = block_reduce(ss, [](A a, A b) { return a + b; }, scratch);
    const A s = A(1) / m_sqrt(ss / A(c) + eps);
    if (threadIdx.x == 0) rstd[row] = s;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A v = A(load(xr[i])) * s;
      yr[i] = store<T>(w ? v * w[i] : v);
    }
  }
}

// Rows [blk·rpb, (blk+1)·rpb) of block blk; partial_dw (null: no dweight) has one [C] row per block.
template <class T>
__global__ void rms_backward_kernel(const T* __restrict__ x, const compute_t<T>* __restrict__ w,
                                    const compute_t<T>* __restrict__ rstd, const T* __restrict__ dy,
                                    T* __restrict__ dx, compute_t<T>* __restrict__ partial_dw, int64_t n, int64_t c,
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
      dr[i] = store<T>((w ? s * w[i] * g : s * g) - k * xv);
      if (pdw) pdw[i] += g * xv * s;
    }
  }
}

template <class T>
__global__ void ln_forward_kernel(const T* __restrict__ x, const compute_t<T>* __restrict__ w,
                                  const compute_t<T>* __restrict__ b, compute_t<T> eps, T* __restrict__ y,
                                  compute_t<T>* __restrict__ mean, compute_t<T>* __restrict__ rstd, int64_t n,
                                  int64_t c) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* xr = x + row * c;
    T* yr = y + row * c;
    A sum = 0;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) sum += A(load(xr[i]));
    sum = block_reduce(sum, [](A a, A b) { return a + b; }, scratch);
    const A mu = sum / A(c);
    A sq = 0;
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      const A d = A(load(xr[i])) - mu;
      sq += d * d;
    }
    sq = block_reduce(sq, [](A a, A b) { return a + b; }, scratch);
    const A s = A(1) / m_sqrt(sq / A(c) + eps);
    if (threadIdx.x == 0) {
      mean[row] = mu;
      rstd[row] = s;
    }
    for (int64_t i = threadIdx.x; i < c; i += blockDim.x) {
      A v = (A(load(xr[i])) - mu) * s;
      if (w) v *= w[i];
      if (b) v += b[i];
      yr[i] = store<T>(v);
    }
  }
}

template <class T>
__global__ void ln_backward_kernel(const T* __restrict__ x, const compute_t<T>* __restrict__ w,
                                   const compute_t<T>* __restrict__ mean, const compute_t<T>* __restrict__ rstd,
                                   const T* __restrict__ dy, T* __restrict__ dx, compute_t<T>* __restrict__ partial_dw,
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
      dr[i] = store<T>(s * (g - mg - xh * mgx));
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

}  // namespace

void launch_rms_norm_forward(const CudaContext& ctx, DType t, const void* x, const void* w, double eps, void* y,
                             void* rstd, int64_t n, int64_t c) {
  if (n == 0) return;
  dispatch_nn(t, "rms_norm", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    rms_forward_kernel<T><<<row_grid(n), row_threads(c, 4), 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const A*>(w), A(eps), static_cast<T*>(y), static_cast<A*>(rstd), n, c);
  });
  LF_CUDA_CHECK_LAUNCH("rms_forward_kernel");
}

void launch_rms_norm_backward(const CudaContext& ctx, DType t, const void* x, const void* w, const void* rstd,
                              const void* dy, void* dx, void* dweight, int64_t n, int64_t c) {
  dispatch_nn(t, "rms_norm_backward", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    if (n == 0) {
      if (dweight) LF_CUDA_CHECK(cudaMemsetAsync(dweight, 0, size_t(c) * sizeof(A), ctx.stream));
      return;
    }
    const int64_t rpb = dweight ? rows_per_block(n) : 1;
    const int64_t blocks = (n + rpb - 1) / rpb;
    Scratch partial(ctx.device, dweight ? size_t(blocks * c) * sizeof(A) : 0);
    rms_backward_kernel<T><<<unsigned(blocks), row_threads(c, 4), 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const A*>(w), static_cast<const A*>(rstd), static_cast<const T*>(dy),
        static_cast<T*>(dx), partial.get<A>(), n, c, rpb);
    LF_CUDA_CHECK_LAUNCH("rms_backward_kernel");
    if (dweight) {
      column_sum_kernel<A><<<grid_for(ctx, c), kThreads, 0, ctx.stream>>>(partial.get<A>(), blocks, c,
                                                                          static_cast<A*>(dweight));
      LF_CUDA_CHECK_LAUNCH("column_sum_kernel");
    }
  });
}

void launch_layer_norm_forward(const CudaContext& ctx, DType t, const void* x, const void* w, const void* b,
                               double eps, void* y, void* mean, void* rstd, int64_t n, int64_t c) {
  if (n == 0) return;
  dispatch_nn(t, "layer_norm", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    ln_forward_kernel<T><<<row_grid(n), row_threads(c, 4), 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const A*>(w), static_cast<const A*>(b), A(eps), static_cast<T*>(y),
        static_cast<A*>(mean), static_cast<A*>(rstd), n, c);
  });
  LF_CUDA_CHECK_LAUNCH("ln_forward_kernel");
}

void launch_layer_norm_backward(const CudaContext& ctx, DType t, const void* x, const void* w, const void* mean,
                                const void* rstd, const void* dy, void* dx, void* dweight, void* dbias, int64_t n,
                                int64_t c) {
  dispatch_nn(t, "layer_norm_backward", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    if (n == 0) {
      if (dweight) LF_CUDA_CHECK(cudaMemsetAsync(dweight, 0, size_t(c) * sizeof(A), ctx.stream));
      if (dbias) LF_CUDA_CHECK(cudaMemsetAsync(dbias, 0, size_t(c) * sizeof(A), ctx.stream));
      return;
    }
    const bool sums = dweight || dbias;
    const int64_t rpb = sums ? rows_per_block(n) : 1;
    const int64_t blocks = (n + rpb - 1) / rpb;
    Scratch pdw(ctx.device, dweight ? size_t(blocks * c) * sizeof(A) : 0);
    Scratch pdb(ctx.device, dbias ? size_t(blocks * c) * sizeof(A) : 0);
    ln_backward_kernel<T><<<unsigned(blocks), row_threads(c, 4), 0, ctx.stream>>>(
        static_cast<const T*>(x), static_cast<const A*>(w), static_cast<const A*>(mean), static_cast<const A*>(rstd),
        static_cast<const T*>(dy), static_cast<T*>(dx), pdw.get<A>(), pdb.get<A>(), n, c, rpb);
    LF_CUDA_CHECK_LAUNCH("ln_backward_kernel");
    if (dweight) {
      column_sum_kernel<A><<<grid_for(ctx, c), kThreads, 0, ctx.stream>>>(pdw.get<A>(), blocks, c,
                                                                          static_cast<A*>(dweight));
      LF_CUDA_CHECK_LAUNCH("column_sum_kernel");
    }
    if (dbias) {
      column_sum_kernel<A><<<grid_for(ctx, c), kThreads, 0, ctx.stream>>>(pdb.get<A>(), blocks, c,
                                                                          static_cast<A*>(dbias));
      LF_CUDA_CHECK_LAUNCH("column_sum_kernel");
    }
  });
}

}  // namespace lmforge::cuda
