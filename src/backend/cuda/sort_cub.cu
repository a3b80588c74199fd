// Stable radix sort of (u64 key, i32 value) pairs through CUB, on its own in this file: CUB's
// templates are the slowest thing in the CUDA build to compile, and one instantiation serves
// every caller (index_add's grouping of destination rows, sort/topk of long rows).
#include <cub/device/device_radix_sort.cuh>

#include "backend/cuda/kernels.h"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

void sort_pairs(const CudaContext& ctx, const uint64_t* keys_in, uint64_t* keys_out, const int32_t* values_in,
                int32_t* values_out, int64_t n, int end_bit) {
  if (n == 0) return;
  const int count = static_cast<int>(n);
  size_t bytes = 0;
  LF_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys_in, keys_out, values_in, values_out, count, 0,
                                                end_bit, ctx.stream));
  Scratch tmp(ctx.device, bytes);
  LF_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp.get(), bytes, keys_in, keys_out, values_in, values_out, count, 0,
                                                end_bit, ctx.stream));
}

}  // namespace lmforge::cuda
