#include "backend/cuda/cuda_context.h"

#include <array>
#include <atomic>
#include <climits>
#include <memory>
#include <mutex>

#include "core/dtype.h"
#include "core/error.h"

namespace lmforge::cuda {

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  throw Error(fmt::format("CUDA error at {}:{}: {} failed: {} ({})", file, line, call, cudaGetErrorString(err),
                          cudaGetErrorName(err)));
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  throw Error(fmt::format("cuBLAS error at {}:{}: {} failed: {} ({})", file, line, call,
                          cublasGetStatusString(status), cublasGetStatusName(status)));
}

void throw_unsupported_dtype(DType t, const char* op) {
  throw Error(fmt::format("{} on the GPU: dtype {} is not supported", op, dtype_name(t)));
}

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLASLt: 32 MiB is plenty on Hopper
constexpr int kMaxDevices = 64;

std::unique_ptr<CudaContext> create_context(int index) {
  auto ctx = std::make_unique<CudaContext>();
  ctx->device = index;
  LF_CUDA_CHECK(cudaSetDevice(index));
  cudaDeviceProp prop{};
  LF_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  ctx->name = prop.name;
  ctx->sm_count = prop.multiProcessorCount;
  ctx->max_threads_per_block = prop.maxThreadsPerBlock;
  ctx->smem_per_block_optin = prop.sharedMemPerBlockOptin;
  ctx->total_memory = prop.totalGlobalMem;
  ctx->wgmma_attention = prop.major == 9 && prop.minor == 0;
  LF_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
  LF_CUBLAS_CHECK(cublasLtCreate(&ctx->lt));
  LF_CUBLAS_CHECK(cublasCreate(&ctx->blas));
  LF_CUBLAS_CHECK(cublasSetStream(ctx->blas, ctx->stream));
  // Full f32 arithmetic: no TF32 (results must stay within f32 rounding of the CPU reference).
  LF_CUBLAS_CHECK(cublasSetMathMode(ctx->blas, CUBLAS_PEDANTIC_MATH));
  ctx->workspace_bytes = kWorkspaceBytes;
  LF_CUDA_CHECK(cudaMalloc(&ctx->workspace, ctx->workspace_bytes));
  ctx->gemm_plans = new_gemm_plan_cache();
  ctx->rope_tables = new_rope_table_cache();
  LF_CUDA_CHECK(cudaMalloc(&ctx->error_position, sizeof(unsigned long long)));
  LF_CUDA_CHECK(cudaMemset(ctx->error_position, 0xFF, sizeof(unsigned long long)));
  LF_CUDA_CHECK(cudaMallocHost(&ctx->error_position_host, sizeof(unsigned long long)));
  LF_CUDA_CHECK(cudaDeviceSynchronize());
  return ctx;
}

}  // namespace

void CudaContext::activate() const {
  int current = -1;
  LF_CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) LF_CUDA_CHECK(cudaSetDevice(device));
}

int64_t CudaContext::take_error_position() const {
  LF_CUDA_CHECK(cudaMemcpyAsync(error_position_host, error_position, sizeof(unsigned long long),
                                cudaMemcpyDeviceToHost, stream));
  LF_CUDA_CHECK(cudaStreamSynchronize(stream));
  const unsigned long long pos = *error_position_host;
  if (pos == ULLONG_MAX) return -1;
  LF_CUDA_CHECK(cudaMemsetAsync(error_position, 0xFF, sizeof(unsigned long long), stream));
  return static_cast<int64_t>(pos);
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear it: a missing driver is an answer here, not a failure
    return 0;
  }
  return n;
}

CudaContext& cuda_context(int index) {
  // Heap-allocated and never destroyed: tensors freed during static destruction may still return
  // memory to the allocator, and the CUDA runtime may already be torn down by then.
  static std::array<std::atomic<CudaContext*>, kMaxDevices> contexts{};
  static std::mutex mutex;
  if (index >= 0 && index < kMaxDevices) {
    if (CudaContext* c = contexts[index].load(std::memory_order_acquire)) return *c;
  }

  std::lock_guard<std::mutex> lock(mutex);
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    throw Error(fmt::format("no CUDA device: cudaGetDeviceCount returned {} ({} devices); use --device cpu",
                            err == cudaSuccess ? "cudaSuccess" : cudaGetErrorName(err), n));
  }
  if (index < 0 || index >= n || index >= kMaxDevices)
    throw Error(fmt::format("CUDA device cuda:{} does not exist: {} device{} found (cuda:0{})", index, n,
                            n == 1 ? "" : "s", n == 1 ? "" : fmt::format("..cuda:{}", n - 1)));
  if (!contexts[index].load()) contexts[index].store(create_context(index).release(), std::memory_order_release);
  return *contexts[index].load();
}

}  // namespace lmforge::cuda
