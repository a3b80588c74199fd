// A kernel that keeps the stream busy for a given time: CudaBackend::time_on_device queues it
// before the start event so that the host can queue the timed kernels meanwhile.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace lmforge::cuda {

namespace {

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void busy_wait_kernel(uint64_t ns) {
  const uint64_t start = global_ns();
  while (global_ns() - start < ns) {
  }
}

}  // namespace

void launch_busy_wait(const CudaContext& ctx, double seconds) {
  busy_wait_kernel<<<1, 1, 0, ctx.stream>>>(uint64_t(seconds * 1e9));
  LF_CUDA_CHECK_LAUNCH("busy_wait_kernel");
}

}  // namespace lmforge::cuda
