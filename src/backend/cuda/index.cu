// GPU indexing kernels: index_select / index_add (embedding forward and backward), gather /
// scatter_add. Twin of backend/cpu/index_cpu.cpp.
//
// Indices are checked by a separate pass before any data moves (launch_check_indices; the
// backend then reads the report and throws), so an accumulating kernel never half-runs.
//
// Determinism without float atomics:
//   index_add: the pairs (index[j], j) are radix-sorted (stable, so equal destinations keep
//     increasing j); one block per run of equal destinations then adds the source rows in that
//     order, rounding to the element type after every addition exactly as the CPU loop does —
//     the result is bit-identical to the CPU's.
//   scatter_add: one thread per (outer, inner) column walks j in increasing order, as the CPU.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

namespace {

template <class I>
__global__ void check_indices_kernel(const I* __restrict__ idx, int64_t count, int64_t n,
                                     unsigned long long* error_position) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const int64_t v = static_cast<int64_t>(idx[i]);
    if (v < 0 || v >= n) report_bad_index(error_position, i);
  }
}

template <class I>
__global__ void check_targets_kernel(const I* __restrict__ idx, int64_t count, int64_t v, int64_t ignore_index,
                                     unsigned long long* error_position) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    const int64_t t = static_cast<int64_t>(idx[i]);
    if (t != ignore_index && (t < 0 || t >= v)) report_bad_index(error_position, i);
  }
}

// out [outer, m, inner] = x[:, index[j], :]; one thread per element (copied as raw bits).
template <class E, class I>
__global__ void index_select_kernel(const E* __restrict__ x, const I* __restrict__ idx, E* __restrict__ out,
                                    int64_t outer, int64_t n, int64_t inner, int64_t m) {
  const int64_t total = outer * m * inner;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
    const int64_t c = t % inner, row = t / inner, j = row % m, o = row / m;
    out[t] = x[(o * n + static_cast<int64_t>(idx[j])) * inner + c];
  }
}

template <class I>
__global__ void index_keys_kernel(const I* __restrict__ idx, int64_t m, uint64_t* __restrict__ keys,
                                  int32_t* __restrict__ pos) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < m; j += step) {
    keys[j] = static_cast<uint64_t>(idx[j]);
    pos[j] = static_cast<int32_t>(j);
  }
}

// Block (p, y): if sorted position p starts a run of equal destinations, adds that run's source
// rows into the destination row, in increasing j, for outer rows o = y, y + gridDim.y, ...
template <class T>
__global__ void index_add_runs_kernel(T* dst, const T* __restrict__ src, const uint64_t* __restrict__ keys,
                                      const int32_t* __restrict__ pos, int64_t outer, int64_t n, int64_t inner,
                                      int64_t m) {
  using A = compute_t<T>;
  const int64_t p = blockIdx.x;
  const uint64_t key = keys[p];
  if (p > 0 && keys[p - 1] == key) return;
  int64_t end = p + 1;
  while (end < m && keys[end] == key) ++end;
  for (int64_t o = blockIdx.y; o < outer; o += gridDim.y) {
    T* drow = dst + (o * n + int64_t(key)) * inner;
    for (int64_t c = threadIdx.x; c < inner; c += blockDim.x) {
      A acc = load(drow[c]);
      for (int64_t q = p; q < end; ++q) {
        const int64_t j = pos[q];
        acc = A(load(store<T>(acc + A(load(src[(o * m + j) * inner + c])))));
      }
      drow[c] = store<T>(acc);
    }
  }
}

// out[o, j, i] = x[o, index[o, j, i], i]
template <class E, class I>
__global__ void gather_kernel(const E* __restrict__ x, const I* __restrict__ idx, E* __restrict__ out, int64_t outer,
                              int64_t n, int64_t inner, int64_t m) {
  const int64_t total = outer * m * inner;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total; t += step) {
    const int64_t o = t / (m * inner), i = t % inner;
    out[t] = x[(o * n + static_cast<int64_t>(idx[t])) * inner + i];
  }
}

// dst[o, index[o, j, i], i] += src[o, j, i] in increasing j: one thread per (o, i) column.
template <class T, class I>
__global__ void scatter_add_kernel(T* dst, const I* __restrict__ idx, const T* __restrict__ src, int64_t outer,
                                   int64_t n, int64_t inner, int64_t m) {
  const int64_t cols = outer * inner;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < cols; t += step) {
    const int64_t o = t / inner, i = t % inner;
    for (int64_t j = 0; j < m; ++j) {
      const int64_t p = (o * m + j) * inner + i;
      T& slot = dst[(o * n + static_cast<int64_t>(idx[p])) * inner + i];
      slot = store<T>(load(slot) + load(src[p]));
    }
  }
}

template <class F>
void dispatch_elem(size_t size, F&& f) {
  switch (size) {
    case 1: f(uint8_t{}); return;
    case 2: f(uint16_t{}); return;
    case 4: f(uint32_t{}); return;
    default: f(uint64_t{}); return;
  }
}

}  // namespace

void launch_check_indices(const CudaContext& ctx, DType it, const void* index, int64_t count, int64_t n) {
  if (count == 0) return;
  dispatch_index(it, "index", [&](auto i0) {
    using I = decltype(i0);
    check_indices_kernel<I><<<grid_for(ctx, count), kThreads, 0, ctx.stream>>>(static_cast<const I*>(index), count, n,
                                                                               ctx.error_position);
  });
  LF_CUDA_CHECK_LAUNCH("check_indices_kernel");
}

void launch_check_targets(const CudaContext& ctx, DType it, const void* targets, int64_t count, int64_t v,
                          int64_t ignore_index) {
  if (count == 0) return;
  dispatch_index(it, "cross_entropy targets", [&](auto i0) {
    using I = decltype(i0);
    check_targets_kernel<I><<<grid_for(ctx, count), kThreads, 0, ctx.stream>>>(
        static_cast<const I*>(targets), count, v, ignore_index, ctx.error_position);
  });
  LF_CUDA_CHECK_LAUNCH("check_targets_kernel");
}

void launch_index_select(const CudaContext& ctx, DType t, DType it, const void* x, const void* index, void* out,
                         int64_t outer, int64_t n, int64_t inner, int64_t m) {
  const int64_t total = outer * m * inner;
  if (total == 0) return;
  dispatch_index(it, "index_select", [&](auto i0) {
    using I = decltype(i0);
    // Rows of whole 16-byte vectors (an embedding's rows) move as such: the same kernel with
    // 16-byte elements, a fraction of the index arithmetic per byte.
    const int64_t row_bytes = inner * int64_t(dtype_size(t));
    if (row_bytes % 16 == 0 && (reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16 == 0) {
      const int64_t vin = row_bytes / 16;
      index_select_kernel<uint4, I><<<grid_for(ctx, outer * m * vin), kThreads, 0, ctx.stream>>>(
          static_cast<const uint4*>(x), static_cast<const I*>(index), static_cast<uint4*>(out), outer, n, vin, m);
      return;
    }
    dispatch_elem(dtype_size(t), [&](auto e0) {
      using E = decltype(e0);
      index_select_kernel<E, I><<<grid_for(ctx, total), kThreads, 0, ctx.stream>>>(
          static_cast<const E*>(x), static_cast<const I*>(index), static_cast<E*>(out), outer, n, inner, m);
    });
  });
  LF_CUDA_CHECK_LAUNCH("index_select_kernel");
}

void launch_index_add(const CudaContext& ctx, DType t, DType it, void* dst, const void* index, const void* src,
                      int64_t outer, int64_t n, int64_t inner, int64_t m) {
  if (outer * m * inner == 0) return;
  LF_ASSERT(m < (int64_t(1) << 31) - 1, "index_add: {} indices are more than the GPU path handles", m);
  Scratch keys(ctx.device, size_t(m) * sizeof(uint64_t)), keys_sorted(ctx.device, size_t(m) * sizeof(uint64_t));
  Scratch pos(ctx.device, size_t(m) * sizeof(int32_t)), pos_sorted(ctx.device, size_t(m) * sizeof(int32_t));
  dispatch_index(it, "index_add", [&](auto i0) {
    using I = decltype(i0);
    index_keys_kernel<I><<<grid_for(ctx, m), kThreads, 0, ctx.stream>>>(static_cast<const I*>(index), m,
                                                                        keys.get<uint64_t>(), pos.get<int32_t>());
  });
  LF_CUDA_CHECK_LAUNCH("index_keys_kernel");
  int end_bit = 1;
  while (end_bit < 64 && (uint64_t(1) << end_bit) < uint64_t(n)) ++end_bit;
  sort_pairs(ctx, keys.get<uint64_t>(), keys_sorted.get<uint64_t>(), pos.get<int32_t>(), pos_sorted.get<int32_t>(), m,
             end_bit);
  const int threads = int(std::min<int64_t>(256, (inner + 31) / 32 * 32));
  const dim3 grid(unsigned(m), unsigned(std::min<int64_t>(outer, 65535)));
  dispatch_float(t, "index_add", [&](auto t0) {
    using T = decltype(t0);
    index_add_runs_kernel<T><<<grid, threads, 0, ctx.stream>>>(static_cast<T*>(dst), static_cast<const T*>(src),
                                                               keys_sorted.get<uint64_t>(), pos_sorted.get<int32_t>(),
                                                               outer, n, inner, m);
  });
  LF_CUDA_CHECK_LAUNCH("index_add_runs_kernel");
}

void launch_gather(const CudaContext& ctx, DType t, DType it, const void* x, const void* index, void* out,
                   int64_t outer, int64_t n, int64_t inner, int64_t m) {
  const int64_t total = outer * m * inner;
  if (total == 0) return;
  dispatch_index(it, "gather", [&](auto i0) {
    using I = decltype(i0);
    dispatch_elem(dtype_size(t), [&](auto e0) {
      using E = decltype(e0);
      gather_kernel<E, I><<<grid_for(ctx, total), kThreads, 0, ctx.stream>>>(
          static_cast<const E*>(x), static_cast<const I*>(index), static_cast<E*>(out), outer, n, inner, m);
    });
  });
  LF_CUDA_CHECK_LAUNCH("gather_kernel");
}

void launch_scatter_add(const CudaContext& ctx, DType t, DType it, void* dst, const void* index, const void* src,
                        int64_t outer, int64_t n, int64_t inner, int64_t m) {
  const int64_t cols = outer * inner;
  if (cols * m == 0) return;
  dispatch_index(it, "scatter_add", [&](auto i0) {
    using I = decltype(i0);
    dispatch_float(t, "scatter_add", [&](auto t0) {
      using T = decltype(t0);
      scatter_add_kernel<T, I><<<grid_for(ctx, cols), kThreads, 0, ctx.stream>>>(
          static_cast<T*>(dst), static_cast<const I*>(index), static_cast<const T*>(src), outer, n, inner, m);
    });
  });
  LF_CUDA_CHECK_LAUNCH("scatter_add_kernel");
}

}  // namespace lmforge::cuda
