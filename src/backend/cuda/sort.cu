// GPU sort and top-k along the last dim of contiguous [rows, n]: values and i64 indices of the
// first k elements of each sorted row. Twin of select_rows in backend/cpu/reduce_cpu.cpp.
//
// Order: by value (NaN after every number ascending, before every number descending), ties by
// the lower index. Each element becomes a 64-bit key whose unsigned order is that order (the
// value widened to f64, -0 made +0, every NaN the largest key; complemented for descending),
// paired with its index: a total order, so any correct sort gives the CPU's result exactly.
//   n <= what fits in shared memory: one block per row, bitonic sort of (key, index) there;
//   longer rows: one stable CUB radix sort per row (sort_cub.cu).
// Values are copied bit for bit from x by the winning indices.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

namespace {

__device__ __forceinline__ uint64_t order_key(double v, bool descending) {
  uint64_t key;
  if (v != v) {
    key = ~uint64_t(0);
  } else {
    if (v == 0.0) v = 0.0;  // -0 -> +0: equal values tie, as on the CPU
    const uint64_t bits = static_cast<uint64_t>(__double_as_longlong(v));
    key = (bits >> 63) ? ~bits : (bits | (uint64_t(1) << 63));
  }
  return descending ? ~key : key;
}

template <class T>
__global__ void make_keys_kernel(const T* __restrict__ x, int64_t total, bool descending, uint64_t* __restrict__ keys) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step)
    keys[i] = order_key(double(load(x[i])), descending);
}

// One block per row; shared memory holds p (a power of two >= n) keys and indices.
template <class E>
__global__ void bitonic_rows_kernel(const uint64_t* __restrict__ keys, const E* __restrict__ x, int64_t rows, int n,
                                    int p, int k, E* __restrict__ values, int64_t* __restrict__ indices) {
  extern __shared__ unsigned char smem[];
  uint64_t* sk = reinterpret_cast<uint64_t*>(smem);
  int32_t* si = reinterpret_cast<int32_t*>(sk + p);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    for (int i = threadIdx.x; i < p; i += blockDim.x) {
      sk[i] = i < n ? keys[row * n + i] : ~uint64_t(0);
      si[i] = i < n ? i : INT32_MAX;
    }
    __syncthreads();
    for (int size = 2; size <= p; size <<= 1) {
      for (int stride = size >> 1; stride > 0; stride >>= 1) {
        for (int t = threadIdx.x; t < p / 2; t += blockDim.x) {
          const int lo = 2 * t - (t & (stride - 1));
          const int hi = lo + stride;
          const bool ascending = (lo & size) == 0;
          const uint64_t ka = sk[lo], kb = sk[hi];
          const int32_t ia = si[lo], ib = si[hi];
          const bool a_after_b = ka > kb || (ka == kb && ia > ib);
          if (a_after_b == ascending) {
            sk[lo] = kb; sk[hi] = ka;
            si[lo] = ib; si[hi] = ia;
          }
        }
        __syncthreads();
      }
    }
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
      const int32_t src = si[j];
      values[row * k + j] = x[row * n + src];
      indices[row * k + j] = src;
    }
    __syncthreads();
  }
}

template <class E>
__global__ void take_sorted_kernel(const int32_t* __restrict__ order, const E* __restrict__ xrow, int k,
                                   E* __restrict__ values, int64_t* __restrict__ indices) {
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < k; j += gridDim.x * blockDim.x) {
    values[j] = xrow[order[j]];
    indices[j] = order[j];
  }
}

__global__ void iota_kernel(int32_t* out, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = i;
}

template <class E>
void sort_rows_typed(const CudaContext& ctx, const uint64_t* keys, const void* x, int64_t rows, int64_t n, int64_t k,
                     void* values, int64_t* indices) {
  const E* xs = static_cast<const E*>(x);
  E* vs = static_cast<E*>(values);
  int p = 1;
  while (p < n) p <<= 1;
  const size_t smem = size_t(p) * (sizeof(uint64_t) + sizeof(int32_t));
  if (smem <= ctx.smem_per_block_optin) {
    LF_CUDA_CHECK(cudaFuncSetAttribute(bitonic_rows_kernel<E>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(smem)));
    const int threads = std::max(32, std::min(1024, p / 2));
    const unsigned grid = unsigned(std::min<int64_t>(rows, 65535));
    bitonic_rows_kernel<E><<<grid, threads, smem, ctx.stream>>>(keys, xs, rows, int(n), p, int(k), vs, indices);
    LF_CUDA_CHECK_LAUNCH("bitonic_rows_kernel");
    return;
  }
  Scratch keys_out(ctx.device, size_t(n) * sizeof(uint64_t));
  Scratch iota(ctx.device, size_t(n) * sizeof(int32_t));
  Scratch order(ctx.device, size_t(n) * sizeof(int32_t));
  iota_kernel<<<grid_for(ctx, n), kThreads, 0, ctx.stream>>>(iota.get<int32_t>(), int(n));
  LF_CUDA_CHECK_LAUNCH("iota_kernel");
  for (int64_t r = 0; r < rows; ++r) {
    sort_pairs(ctx, keys + r * n, keys_out.get<uint64_t>(), iota.get<int32_t>(), order.get<int32_t>(), n, 64);
    take_sorted_kernel<E><<<grid_for(ctx, k), kThreads, 0, ctx.stream>>>(order.get<int32_t>(), xs + r * n, int(k),
                                                                         vs + r * k, indices + r * k);
    LF_CUDA_CHECK_LAUNCH("take_sorted_kernel");
  }
}

}  // namespace

void launch_sort_rows(const CudaContext& ctx, DType t, const void* x, int64_t rows, int64_t n, int64_t k,
                      bool descending, void* values, int64_t* indices) {
  if (rows == 0 || k == 0) return;
  LF_ASSERT(n < (int64_t(1) << 31) - 1, "sort/topk: rows of {} elements are too long for the GPU sort", n);
  Scratch keys(ctx.device, size_t(rows * n) * sizeof(uint64_t));
  dispatch_numeric(t, "sort/topk", [&](auto t0) {
    using T = decltype(t0);
    make_keys_kernel<T><<<grid_for(ctx, rows * n), kThreads, 0, ctx.stream>>>(static_cast<const T*>(x), rows * n,
                                                                              descending, keys.get<uint64_t>());
  });
  LF_CUDA_CHECK_LAUNCH("make_keys_kernel");
  switch (dtype_size(t)) {
    case 1: sort_rows_typed<uint8_t>(ctx, keys.get<uint64_t>(), x, rows, n, k, values, indices); break;
    case 2: sort_rows_typed<uint16_t>(ctx, keys.get<uint64_t>(), x, rows, n, k, values, indices); break;
    case 4: sort_rows_typed<uint32_t>(ctx, keys.get<uint64_t>(), x, rows, n, k, values, indices); break;
    default: sort_rows_typed<uint64_t>(ctx, keys.get<uint64_t>(), x, rows, n, k, values, indices); break;
  }
}

}  // namespace lmforge::cuda
