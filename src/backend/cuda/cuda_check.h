// Every CUDA runtime call, cuBLAS call and kernel launch in backend/cuda/ goes through one of the
// macros below. A failure becomes lmforge::Error carrying file:line, the call as written and the
// CUDA error text, so it reaches main as one clear line instead of a silent wrong result.
//
// Kept free of fmt and other heavy headers: the .cu files include it, and nvcc parses every
// header twice (host and device passes).
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace lmforge {
enum class DType : uint8_t;
}

namespace lmforge::cuda {

[[noreturn]] void throw_unsupported_dtype(DType t, const char* op);
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line);

}  // namespace lmforge::cuda

// LF_CUDA_CHECK(cudaMemcpyAsync(...));
#define LF_CUDA_CHECK(call)                                                              \
  do {                                                                                   \
    const cudaError_t lf_cuda_err_ = (call);                                             \
    if (lf_cuda_err_ != cudaSuccess)                                                     \
      ::lmforge::cuda::throw_cuda_error(lf_cuda_err_, #call, __FILE__, __LINE__);        \
  } while (0)

// LF_CUBLAS_CHECK(cublasLtMatmul(...));
#define LF_CUBLAS_CHECK(call)                                                            \
  do {                                                                                   \
    const cublasStatus_t lf_cublas_st_ = (call);                                         \
    if (lf_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                          \
      ::lmforge::cuda::throw_cublas_error(lf_cublas_st_, #call, __FILE__, __LINE__);     \
  } while (0)

// Right after a kernel<<<...>>> launch: reports a bad launch configuration (too many threads,
// too much shared memory) where it happened. Faults inside the kernel surface at the next
// checked call on the stream.
#define LF_CUDA_CHECK_LAUNCH(what)                                                       \
  do {                                                                                   \
    const cudaError_t lf_cuda_err_ = cudaGetLastError();                                 \
    if (lf_cuda_err_ != cudaSuccess)                                                     \
      ::lmforge::cuda::throw_cuda_error(lf_cuda_err_, "launch of " what, __FILE__, __LINE__); \
  } while (0)
