// Sum of squares over a list of tensors in two launches (the gradient norm for clipping). Twin of
// CpuBackend::multi_sum_of_squares; the value agrees within f32 rounding, not bit for bit (the
// CPU adds 4096-element blocks sequentially, the GPU 64K-element chunks as a block tree).
//
//   1. one block per chunk (kernels.h: MultiTensorChunk): each thread adds x² in f32 over a
//      strided slice (float4 loads for aligned f32), block_sum in a fixed tree -> partials[chunk]
//   2. one block adds the partials in f64: thread t takes t, t + 1024, ..., then a fixed tree.
// Both orders depend on the sizes only, so the result is deterministic.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace lmforge::cuda {

namespace {

constexpr int kPartialThreads = 1024;

__device__ __forceinline__ float load_kind(const void* x, MultiTensorKind kind, int64_t i) {
  if (kind == MultiTensorKind::BF16) return load(static_cast<const bf16*>(x)[i]);
  if (kind == MultiTensorKind::F16) return load(static_cast<const f16*>(x)[i]);
  return static_cast<const float*>(x)[i];
}

__global__ void chunk_sum_of_squares_kernel(const MultiTensorEntry* __restrict__ entries,
                                            const MultiTensorChunk* __restrict__ chunks, float* __restrict__ partials) {
  __shared__ float scratch[32];
  const MultiTensorChunk ch = chunks[blockIdx.x];
  const MultiTensorEntry e = entries[ch.tensor];
  const int64_t lo = ch.start, hi = min(e.n, lo + kMultiTensorChunk);
  float acc = 0;
  int64_t tail = lo;
  if (e.x_kind == MultiTensorKind::F32 && (reinterpret_cast<uintptr_t>(e.x) & 15) == 0) {
    const float* x = static_cast<const float*>(e.x);
    const int64_t nvec = (hi - lo) / 4;
    for (int64_t j = threadIdx.x; j < nvec; j += blockDim.x) {
      const float4 v = *reinterpret_cast<const float4*>(x + lo + 4 * j);
      acc += v.x * v.x;
      acc += v.y * v.y;
      acc += v.z * v.z;
      acc += v.w * v.w;
    }
    tail = lo + 4 * nvec;
  }
  for (int64_t i = tail + threadIdx.x; i < hi; i += blockDim.x) {
    const float v = load_kind(e.x, e.x_kind, i);
    acc += v * v;
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(const float* __restrict__ partials, int64_t n, double* __restrict__ out) {
  __shared__ double scratch[32];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += double(partials[i]);
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) *out = acc;
}

}  // namespace

void launch_multi_sum_of_squares(const CudaContext& ctx, const void* table, int64_t n_tensors, int64_t n_chunks,
                                 float* partials, double* out) {
  const auto* entries = static_cast<const MultiTensorEntry*>(table);
  const auto* chunks = reinterpret_cast<const MultiTensorChunk*>(entries + n_tensors);
  if (n_chunks > 0) {
    chunk_sum_of_squares_kernel<<<unsigned(n_chunks), kThreads, 0, ctx.stream>>>(entries, chunks, partials);
    LF_CUDA_CHECK_LAUNCH("chunk_sum_of_squares_kernel");
  }
  sum_partials_kernel<<<1, kPartialThreads, 0, ctx.stream>>>(partials, n_chunks, out);
  LF_CUDA_CHECK_LAUNCH("sum_partials_kernel");
}

}  // namespace lmforge::cuda
