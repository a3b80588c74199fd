// GPU reductions and row-wise kernels: sum / max / min / sum of squares over the middle of
// [outer, r, inner], argmax, cumsum, softmax and log-softmax (forward and backward), logsumexp.
// Twin of backend/cpu/reduce_cpu.cpp.
//
// Determinism: every output is combined in a fixed order that depends only on the shape (block
// trees of a fixed size, chunks of a fixed length merged in chunk order), never on timing, and
// no float atomics are used. Long reductions that would leave the GPU idle are split into
// chunks of kChunk elements whose partial results are reduced by a second pass.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

namespace {

constexpr int64_t kChunk = 16384;         // elements of one split reduction
constexpr int64_t kBusyThreads = 1 << 16; // below this many output threads, split r

template <class A>
struct Reducer {
  ReduceOp op;
  __device__ A init() const {
    if (op == ReduceOp::Max) return -m_inf<A>();
    if (op == ReduceOp::Min) return m_inf<A>();
    return A(0);
  }
  __device__ A combine(A acc, A v) const {
    switch (op) {
      case ReduceOp::Sum: return acc + v;
      case ReduceOp::SumSquares: return acc + v * v;
      case ReduceOp::Max: return (m_isnan(v) || v > acc) ? v : acc;
      case ReduceOp::Min: return (m_isnan(v) || v < acc) ? v : acc;
    }
    return acc;
  }
  __device__ A merge(A a, A b) const {
    if (op == ReduceOp::Sum || op == ReduceOp::SumSquares) return a + b;
    return combine(a, b);
  }
};

// Rows of a contiguous [rows, r] (inner == 1), one block per row, each block covering columns
// [chunk·c, chunk·(c+1)) of its row for c = blockIdx.y. Writes A partials or the final value.
template <class T>
__global__ void reduce_rows_kernel(ReduceOp op, const T* __restrict__ x, int64_t rows, int64_t r, int64_t chunk,
                                   DType out_t, void* out) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  const Reducer<A> red{op};
  const int64_t n_chunks = gridDim.y;
  const int64_t lo = int64_t(blockIdx.y) * chunk, hi = min(r, lo + chunk);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * r;
    A acc = red.init();
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) acc = red.combine(acc, load(xr[i]));
    acc = block_reduce(acc, [&](A a, A b) { return red.merge(a, b); }, scratch);
    if (threadIdx.x == 0) store_as(out_t, out, row * n_chunks + blockIdx.y, acc);
  }
}

// [outer, r, inner] with inner > 1: one thread per output column, r split in gridDim.y chunks.
// Output index (o, c, i) -> (o·n_chunks + c)·inner + i.
template <class T>
__global__ void reduce_cols_kernel(ReduceOp op, const T* __restrict__ x, int64_t outer, int64_t r, int64_t inner,
                                   int64_t chunk, DType out_t, void* out) {
  using A = compute_t<T>;
  const Reducer<A> red{op};
  const int64_t n_chunks = gridDim.y;
  const int64_t lo = int64_t(blockIdx.y) * chunk, hi = min(r, lo + chunk);
  const int64_t cols = outer * inner;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < cols; t += step) {
    const int64_t o = t / inner, i = t - o * inner;
    const T* xp = x + (o * r) * inner + i;
    A acc = red.init();
    for (int64_t k = lo; k < hi; ++k) acc = red.combine(acc, load(xp[k * inner]));
    store_as(out_t, out, (o * n_chunks + blockIdx.y) * inner + i, acc);
  }
}

template <class T>
void reduce_impl(const CudaContext& ctx, ReduceOp op, const T* x, DType out_t, void* out, int64_t outer, int64_t r,
                 int64_t inner) {
  using A = compute_t<T>;
  const ReduceOp merge_op = op == ReduceOp::SumSquares ? ReduceOp::Sum : op;
  if (inner == 1) {
    const int64_t rows = outer;
    const int64_t n_chunks = (rows < 2 * ctx.sm_count && r > kChunk) ? (r + kChunk - 1) / kChunk : 1;
    const int threads = row_threads(n_chunks > 1 ? kChunk : r, 8);
    const unsigned gx = unsigned(std::min<int64_t>(rows, 65535));
    if (n_chunks == 1) {
      reduce_rows_kernel<T><<<dim3(gx, 1), threads, 0, ctx.stream>>>(op, x, rows, r, r, out_t, out);
      LF_CUDA_CHECK_LAUNCH("reduce_rows_kernel");
      return;
    }
    LF_ASSERT(n_chunks <= 65535, "reduce: row of {} elements is too long", r);
    Scratch partial(ctx.device, size_t(rows * n_chunks) * sizeof(A));
    reduce_rows_kernel<T><<<dim3(gx, unsigned(n_chunks)), threads, 0, ctx.stream>>>(
        op, x, rows, r, kChunk, dtype_of<A>(), partial.get());
    LF_CUDA_CHECK_LAUNCH("reduce_rows_kernel");
    reduce_impl<A>(ctx, merge_op, partial.get<A>(), out_t, out, rows, n_chunks, 1);
    return;
  }
  const int64_t cols = outer * inner;
  int64_t n_chunks = 1;
  if (cols < kBusyThreads && r > 256) n_chunks = std::min<int64_t>((r + 255) / 256, (kBusyThreads + cols - 1) / cols);
  n_chunks = std::min<int64_t>(n_chunks, 65535);
  const int64_t chunk = n_chunks == 1 ? r : (r + n_chunks - 1) / n_chunks;
  if (n_chunks > 1) n_chunks = (r + chunk - 1) / chunk;
  const unsigned gx = unsigned(std::min<int64_t>((cols + kThreads - 1) / kThreads, 65535));
  if (n_chunks == 1) {
    reduce_cols_kernel<T><<<dim3(gx, 1), kThreads, 0, ctx.stream>>>(op, x, outer, r, inner, r, out_t, out);
    LF_CUDA_CHECK_LAUNCH("reduce_cols_kernel");
    return;
  }
  Scratch partial(ctx.device, size_t(cols * n_chunks) * sizeof(A));
  reduce_cols_kernel<T><<<dim3(gx, unsigned(n_chunks)), kThreads, 0, ctx.stream>>>(op, x, outer, r, inner, chunk,
                                                                                   dtype_of<A>(), partial.get());
  LF_CUDA_CHECK_LAUNCH("reduce_cols_kernel");
  reduce_impl<A>(ctx, merge_op, partial.get<A>(), out_t, out, outer, n_chunks, inner);
}

// ---- argmax: first maximum; a NaN beats every number and the first NaN wins ----
template <class A>
__device__ __forceinline__ bool better(A v, int64_t i, A bv, int64_t bi) {
  const bool vn = m_isnan(v), bn = m_isnan(bv);
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

template <class T>
__global__ void argmax_rows_kernel(const T* __restrict__ x, int64_t rows, int64_t r, int64_t* __restrict__ out) {
  using A = compute_t<T>;
  __shared__ A sv[32];
  __shared__ int64_t si[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * r;
    A bv = -m_inf<A>();
    int64_t bi = INT64_MAX;
    for (int64_t i = threadIdx.x; i < r; i += blockDim.x) {
      const A v = load(xr[i]);
      if (bi == INT64_MAX || better(v, i, bv, bi)) { bv = v; bi = i; }
    }
    for (int o = 16; o > 0; o >>= 1) {
      const A ov = __shfl_down_sync(0xffffffffu, bv, o);
      const int64_t oi = __shfl_down_sync(0xffffffffu, bi, o);
      if (lane + o < 32 && oi != INT64_MAX && (bi == INT64_MAX || better(ov, oi, bv, bi))) { bv = ov; bi = oi; }
    }
    __syncthreads();
    if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < nwarps; ++w)
        if (si[w] != INT64_MAX && (bi == INT64_MAX || better(sv[w], si[w], bv, bi))) { bv = sv[w]; bi = si[w]; }
      out[row] = bi == INT64_MAX ? 0 : bi;
    }
  }
}

template <class T>
__global__ void argmax_cols_kernel(const T* __restrict__ x, int64_t outer, int64_t r, int64_t inner,
                                   int64_t* __restrict__ out) {
  using A = compute_t<T>;
  const int64_t cols = outer * inner;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < cols; t += step) {
    const int64_t o = t / inner, j = t - o * inner;
    const T* xp = x + o * r * inner + j;
    int64_t best = 0;
    A bv = load(xp[0]);
    for (int64_t i = 1; i < r; ++i) {
      const A v = load(xp[i * inner]);
      if (v > bv || (m_isnan(v) && !m_isnan(bv))) { bv = v; best = i; }
    }
    out[t] = best;
  }
}

// ---- cumsum along rows: segment sums, a block scan of them, then the segments again ----
template <class T>
__global__ void cumsum_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t rows, int64_t n) {
  using A = compute_t<T>;
  __shared__ A sums[1024];
  const int64_t seg = (n + blockDim.x - 1) / blockDim.x;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * n;
    T* orow = out + row * n;
    const int64_t lo = threadIdx.x * seg, hi = min(n, lo + seg);
    A s = 0;
    for (int64_t i = lo; i < hi; ++i) s += load(xr[i]);
    sums[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x == 0) {  // exclusive scan of the segment sums, in order
      A acc = 0;
      for (int k = 0; k < int(blockDim.x); ++k) {
        const A v = sums[k];
        sums[k] = acc;
        acc += v;
      }
    }
    __syncthreads();
    A acc = sums[threadIdx.x];
    for (int64_t i = lo; i < hi; ++i) {
      acc += load(xr[i]);
      orow[i] = store<T>(acc);
    }
    __syncthreads();
  }
}

// ---- softmax / log-softmax / logsumexp: one block per row ----
template <class A, class T>
__device__ A row_max(const T* xr, int64_t n, A* scratch) {
  A mx = -m_inf<A>();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) mx = fmax(mx, A(load(xr[i])));
  return block_reduce(mx, [](A a, A b) { return fmax(a, b); }, scratch);
}

template <class T>
__global__ void softmax_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t n, bool log) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * n;
    T* yr = y + row * n;
    A mx = row_max<A>(xr, n, scratch);
    if (mx == -m_inf<A>()) mx = 0;  // all masked: avoid inf - inf
    A s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += m_exp(A(load(xr[i])) - mx);
    s = block_reduce(s, [](A a, A b) { return a + b; }, scratch);
    if (log) {
      const A lse = mx + m_log(s);
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = store<T>(A(load(xr[i])) - lse);
    } else {
      const A inv = A(1) / s;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = store<T>(m_exp(A(load(xr[i])) - mx) * inv);
    }
  }
}

template <class T>
__global__ void softmax_backward_kernel(const T* __restrict__ y, const T* __restrict__ dy, T* __restrict__ dx,
                                        int64_t rows, int64_t n, bool log) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* yr = y + row * n;
    const T* gr = dy + row * n;
    T* dr = dx + row * n;
    A dot = 0;
    if (log) {
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dot += A(load(gr[i]));
    } else {
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dot += A(load(gr[i])) * A(load(yr[i]));
    }
    dot = block_reduce(dot, [](A a, A b) { return a + b; }, scratch);
    if (log) {
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        dr[i] = store<T>(A(load(gr[i])) - m_exp(A(load(yr[i]))) * dot);
    } else {
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        dr[i] = store<T>(A(load(yr[i])) * (A(load(gr[i])) - dot));
    }
  }
}

template <class T>
__global__ void logsumexp_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t rows, int64_t n) {
  using A = compute_t<T>;
  __shared__ A scratch[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * n;
    // The CPU's max keeps a NaN it meets; match it so a NaN row gives NaN either way.
    A mx = -m_inf<A>();
    bool nan = false;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const A v = load(xr[i]);
      nan |= m_isnan(v);
      mx = fmax(mx, v);
    }
    mx = block_reduce(mx, [](A a, A b) { return fmax(a, b); }, scratch);
    const A any_nan = block_reduce(A(nan ? 1 : 0), [](A a, A b) { return a + b; }, scratch);
    if (any_nan != A(0)) mx = A(NAN);
    if (!isfinite(mx)) {
      if (threadIdx.x == 0) out[row] = store<T>(mx);
      continue;
    }
    A s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += m_exp(A(load(xr[i])) - mx);
    s = block_reduce(s, [](A a, A b) { return a + b; }, scratch);
    if (threadIdx.x == 0) out[row] = store<T>(mx + m_log(s));
  }
}

unsigned row_grid(int64_t rows) { return unsigned(std::max<int64_t>(1, std::min<int64_t>(rows, 65535))); }

}  // namespace

void launch_reduce(const CudaContext& ctx, ReduceOp op, DType t, const void* x, DType out_t, void* out, int64_t outer,
                   int64_t r, int64_t inner) {
  if (outer * inner == 0) return;
  dispatch_numeric(t, "reduce", [&](auto t0) {
    using T = decltype(t0);
    reduce_impl<T>(ctx, op, static_cast<const T*>(x), out_t, out, outer, r, inner);
  });
}

void launch_argmax(const CudaContext& ctx, DType t, const void* x, int64_t* out, int64_t outer, int64_t r,
                   int64_t inner) {
  if (outer * inner == 0) return;
  dispatch_float(t, "argmax", [&](auto t0) {
    using T = decltype(t0);
    if (inner == 1) {
      argmax_rows_kernel<T><<<row_grid(outer), row_threads(r, 8), 0, ctx.stream>>>(static_cast<const T*>(x), outer,
                                                                                   r, out);
    } else {
      argmax_cols_kernel<T><<<grid_for(ctx, outer * inner), kThreads, 0, ctx.stream>>>(static_cast<const T*>(x),
                                                                                       outer, r, inner, out);
    }
  });
  LF_CUDA_CHECK_LAUNCH("argmax_kernel");
}

void launch_cumsum(const CudaContext& ctx, DType t, const void* x, void* out, int64_t rows, int64_t n) {
  if (rows * n == 0) return;
  dispatch_numeric(t, "cumsum", [&](auto t0) {
    using T = decltype(t0);
    cumsum_kernel<T><<<row_grid(rows), row_threads(n, 16), 0, ctx.stream>>>(static_cast<const T*>(x),
                                                                            static_cast<T*>(out), rows, n);
  });
  LF_CUDA_CHECK_LAUNCH("cumsum_kernel");
}

void launch_softmax(const CudaContext& ctx, DType t, const void* x, void* y, int64_t rows, int64_t n, bool log) {
  if (rows * n == 0) return;
  dispatch_float(t, "softmax", [&](auto t0) {
    using T = decltype(t0);
    softmax_kernel<T><<<row_grid(rows), row_threads(n, 8), 0, ctx.stream>>>(static_cast<const T*>(x),
                                                                            static_cast<T*>(y), rows, n, log);
  });
  LF_CUDA_CHECK_LAUNCH("softmax_kernel");
}

void launch_softmax_backward(const CudaContext& ctx, DType t, const void* y, const void* dy, void* dx, int64_t rows,
                             int64_t n, bool log) {
  if (rows * n == 0) return;
  dispatch_float(t, "softmax_backward", [&](auto t0) {
    using T = decltype(t0);
    softmax_backward_kernel<T><<<row_grid(rows), row_threads(n, 8), 0, ctx.stream>>>(
        static_cast<const T*>(y), static_cast<const T*>(dy), static_cast<T*>(dx), rows, n, log);
  });
  LF_CUDA_CHECK_LAUNCH("softmax_backward_kernel");
}

void launch_logsumexp(const CudaContext& ctx, DType t, const void* x, void* out, int64_t rows, int64_t n) {
  if (rows == 0) return;
  dispatch_float(t, "logsumexp", [&](auto t0) {
    using T = decltype(t0);
    logsumexp_kernel<T><<<row_grid(rows), row_threads(n, 8), 0, ctx.stream>>>(static_cast<const T*>(x),
                                                                              static_cast<T*>(out), rows, n);
  });
  LF_CUDA_CHECK_LAUNCH("logsumexp_kernel");
}

}  // namespace lmforge::cuda
