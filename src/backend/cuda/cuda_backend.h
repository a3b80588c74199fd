// The CUDA backend: every kernel of backend/backend.h on one GPU. The entry points of Backend have
// checked each call's contract (devices, dtypes, shapes, layouts); the do_ methods turn tensors
// into plain pointers and strides and call the launchers of kernels.h on the device's stream.
// Nothing here waits for the GPU except copies to the host (read_async waits only when asked),
// copies of more than a few MiB from the host, synchronize(), and index checks (which must report
// a bad index as Error before returning; an index tensor already found valid, or valid by how a
// kernel of this backend made it, and not written since is not checked).
//
// The methods are defined across cuda_backend_*.cpp, by kernel family.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_context.h"

namespace lmforge::cuda {

class MultiTensorTable;
class PinnedPool;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(CudaContext& ctx) : ctx_(ctx) {}
  Device device() const override { return Device::cuda(ctx_.device); }
  void synchronize() override;
  Timing time_on_device(const std::function<void()>& f) override;
  std::unique_ptr<CapturedWork> capture(const std::function<void()>& f) override;
  const CudaContext& context() const { return ctx_; }

  void set_allow_tf32(bool on) override { ctx_.allow_tf32.store(on); }
  // backend.h's defaults, and the quantized GEMM for i8, fp8 e4m3, bf16, f16 and f32 weights.
  bool supports(Kernel k, DType t) const override;

 protected:
  LMFORGE_BACKEND_KERNEL_OVERRIDES
  void do_gemm_quantized(const QuantizedGemmArgs& args) override;

 private:
  // Makes this GPU the calling thread's current device (the entry point has checked that every
  // tensor lives on it).
  void activate() const { ctx_.activate(); }
  // After launch_check_indices: throws the CPU backend's out-of-range message if a kernel
  // reported a bad index.
  void throw_if_bad_index(const char* op, const Tensor& index, int64_t n) const;
  // Index tensors known to hold values in [0, bound), until their storage is written (its
  // version moves) or freed. Known either because they were checked (the backward of an
  // embedding or a cross-entropy reads the forward's ids again, and checking them again would
  // make the host wait for the GPU a second time) or by how they were made, without a check:
  // the positions that topk / sort write, an arange of whole non-negative steps, and copies and
  // index_select gathers of known-valid values (a Mixture-of-Experts layer routes its tokens
  // with these, so its indexing never waits for the GPU). A span of a remembered storage is
  // known valid for every bound at least the remembered one. Ops bump the version of what they
  // write; a raw Backend call writing into a remembered index tensor must too.
  // ignore_index: a value also allowed (cross-entropy targets), or kNoIgnoredValue.
  static constexpr int64_t kNoIgnoredValue = INT64_MIN;
  bool index_known_valid(const Tensor& index, int64_t bound, int64_t ignore_index) const;
  // The smallest bound `index` (contiguous or a strided view) is known valid for, or -1.
  int64_t known_index_bound(const Tensor& index) const;
  void remember_valid_index(const Tensor& index, int64_t bound, int64_t ignore_index);
  // An integer `out` whose values were taken from `from` (a copy, a gather along rows) is valid
  // for whatever `from` is valid for.
  void remember_copied_index(const Tensor& from, const Tensor& out);
  // The range check of index_select / index_add / gather / scatter_add: launch_check_indices +
  // throw_if_bad_index, skipped for an index tensor already known valid for n.
  void check_indices_once(const char* op, const Tensor& index, int64_t n);
  struct ValidIndex {
    std::weak_ptr<Storage> storage;
    int64_t offset = 0, numel = 0, bound = 0, ignore_index = 0;
    DType dtype = DType::I64;
    uint64_t version = 0;
  };
  std::vector<ValidIndex> valid_indices_;  // newest last; expired storages dropped first when full

  CudaContext& ctx_;
  // Device tables of the multi-tensor launches, kept between calls (multi_tensor_table.h).
  std::shared_ptr<MultiTensorTable> adamw_table_, sum_of_squares_table_;
  // Staging for small host-to-device copies and landing buffers of read_async (pinned_pool.h).
  std::shared_ptr<PinnedPool> pinned_;
};

// gemm_cublas.cpp: C = alpha·op(A)·op(B) + beta·C (and the epilogue, bias and tanh-GELU, fused
// where cuBLASLt offers it: the caller applies it otherwise) through cuBLASLt (f32 / bf16 / f16) or cuBLAS
// (f64); returns false when the library does not take these arguments (the caller falls back).
// Returns false when the library cannot do the product; sets `epilogue_done` when it also applied
// the epilogue.
bool gemm_cublas(const CudaContext& ctx, const GemmArgs& g, bool& epilogue_done);

}  // namespace lmforge::cuda
