// One CudaContext per GPU: the device index, the stream every kernel of that device runs on, the
// cuBLASLt / cuBLAS handles bound to that stream, a GEMM workspace, the device limits kernels
// size themselves by, and a word kernels use to report a bad index. Kernels and launchers take
// the context explicitly; the only process-wide state is the per-device singleton returned by
// cuda_context(i) (and cuda_backend(i) / cuda_allocator(i), which sit on it).
//
// All work of one device is ordered on ctx.stream, so memory freed to the caching allocator can
// be handed to the next kernel without synchronising: that kernel runs after every earlier one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "backend/cuda/cuda_check.h"

namespace lmforge::cuda {

struct GemmPlanCache;  // gemm_cublas.cpp: cuBLASLt descriptors and algorithms by problem
GemmPlanCache* new_gemm_plan_cache();
struct RopeTableCache;  // rope.cu: cos / sin tables of recent shapes
RopeTableCache* new_rope_table_cache();

struct CudaContext {
  int device = 0;
  std::string name;                 // "NVIDIA H200"
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;    // GEMMs (f32, bf16, f16)
  cublasHandle_t blas = nullptr;    // f64 GEMMs
  void* workspace = nullptr;        // cuBLASLt workspace
  size_t workspace_bytes = 0;
  int sm_count = 0;
  int max_threads_per_block = 0;
  size_t smem_per_block_optin = 0;  // largest dynamic shared memory a block may ask for
  size_t total_memory = 0;
  // Compute capability 9.0 (H100 / H200): attention at head dim 64 runs the Hopper kernels of
  // attention_wgmma.cu (built for sm_90a only). Tests clear it to run the sm_80 kernels there too.
  bool wgmma_attention = false;
  // Decode-shaped attention (T <= 8, no mask) through the split-KV kernel of attention_decode.cu
  // instead of the tiled kernels. Off by default until the kernel has been measured on hardware;
  // calls with key_lengths (device-position decoding) always take it. Tests set it to check it.
  bool split_kv_decode = false;
  // Bad-index report: kernels atomicMin the first offending position into *error_position
  // (ULLONG_MAX when none). Read and reset by take_error_position().
  unsigned long long* error_position = nullptr;
  unsigned long long* error_position_host = nullptr;  // pinned mirror
  // GEMM plans of this device, made on first use of a problem shape (owned; never freed, like
  // the context itself).
  GemmPlanCache* gemm_plans = nullptr;
  // RoPE cos / sin tables, kept for the few most recent (length, head dim, theta, offset,
  // direction): a training step rotates q and k of every layer with the same two (owned; never
  // freed).
  RopeTableCache* rope_tables = nullptr;
  // f32 GEMMs in TF32 on tensor cores (Backend::set_allow_tf32); off: full f32 arithmetic.
  std::atomic<bool> allow_tf32{false};

  // Makes this context's device current for the calling thread.
  void activate() const;
  // Waits for the stream; returns the first bad position a kernel reported since the last call,
  // or -1, and clears the report.
  int64_t take_error_position() const;
};

// Number of visible GPUs; 0 when there is none or the driver is missing (never throws).
int cuda_device_count();
// The context of GPU `index`, created on first use. Throws Error when there is no GPU or the
// index is out of range, naming how many exist.
CudaContext& cuda_context(int index);

}  // namespace lmforge::cuda
