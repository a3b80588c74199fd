// The CUDA backend: every kernel of backend/backend.h on one GPU. Methods validate their tensors
// (device, dtype, layout) with the same rules as the CPU twin, turn them into plain pointers and
// strides, and call the launchers of kernels.h on the device's stream. Nothing here waits for
// the GPU except copies to the host (read_async waits only when asked), copies of more than a
// few MiB from the host, synchronize(), and index checks (which must report a bad index as
// Error before returning; an index tensor already found valid and not written since is not
// checked again).
//
// The methods are defined across cuda_backend_*.cpp, by kernel family.
#pragma once

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
  const CudaContext& context() const { return ctx_; }

  void copy(const Tensor& src, const Tensor& dst) override;
  std::unique_ptr<PendingRead> read_async(const Tensor& src) override;
  void fill(const Tensor& dst, double value) override;
  void arange(const Tensor& dst, double start, double step) override;
  void random(const Tensor& dst, const RandomArgs& args) override;

  void unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha, double beta) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;

  void reduce(ReduceOp op, const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) override;
  void argmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) override;
  void cumsum_last(const Tensor& x, const Tensor& out) override;

  void gemm(const GemmArgs& args) override;
  void set_allow_tf32(bool on) override { ctx_.allow_tf32.store(on); }

  void softmax_forward(const Tensor& x, const Tensor& y, bool log) override;
  void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, bool log) override;
  void logsumexp_last(const Tensor& x, const Tensor& out) override;
  void topk_last(const Tensor& x, int64_t k, bool largest, const Tensor& values, const Tensor& indices) override;
  void sort_last(const Tensor& x, bool descending, const Tensor& values, const Tensor& indices) override;

  void index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n, int64_t inner) override;
  void index_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n, int64_t inner) override;
  void gather(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n, int64_t inner) override;
  void scatter_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n, int64_t inner) override;

  void cross_entropy_forward(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,
                             const Tensor& loss, const Tensor& lse) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& dloss,
                              const CrossEntropyArgs& args, const Tensor& dlogits) override;
  void rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps, const Tensor& y,
                        const Tensor& sum, const Tensor& rstd) override;
  void rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dy,
                         const Tensor& dsum, const Tensor& dx, const Tensor& dweight) override;
  void layer_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                          double eps, const Tensor& y, const Tensor& sum, const Tensor& mean,
                          const Tensor& rstd) override;
  void layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                           const Tensor& dy, const Tensor& dsum, const Tensor& dx, const Tensor& dweight,
                           const Tensor& dbias) override;
  void rope(const Tensor& x, const Tensor& out, double theta, int64_t position_offset, bool interleaved,
            bool inverse) override;
  void swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) override;
  void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                       const Tensor& dup) override;
  void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                         const AttentionArgs& args, const Tensor& out, const Tensor& lse) override;
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& out,
                          const Tensor& lse, const Tensor& dout, const AttentionArgs& args, const Tensor& dq,
                          const Tensor& dk, const Tensor& dv) override;

  void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                  const AdamWArgs& args) override;
  void adamw_multi_step(const std::vector<AdamWTensor>& tensors, const AdamWArgs& args) override;
  void multi_sum_of_squares(const std::vector<Tensor>& tensors, const Tensor& out) override;

 private:
  // Throws Error naming `op` unless every defined tensor lives on this GPU; activates the device.
  void check_device(const char* op, std::initializer_list<const Tensor*> tensors) const;
  // After launch_check_indices: throws the CPU backend's out-of-range message if a kernel
  // reported a bad index.
  void throw_if_bad_index(const char* op, const Tensor& index, int64_t n) const;
  // Index tensors found valid for a bound, until their storage is written (its version moves)
  // or freed: the backward of an embedding or a cross-entropy reads the forward's ids again,
  // and checking them again would make the host wait for the GPU a second time. Ops bump the
  // version of what they write; a raw Backend call writing into a checked index tensor must too.
  bool index_known_valid(const Tensor& index, int64_t bound, int64_t ignore_index) const;
  void remember_valid_index(const Tensor& index, int64_t bound, int64_t ignore_index);
  // The range check of index_select / index_add: launch_check_indices + throw_if_bad_index,
  // skipped for an index tensor already known valid for n.
  void check_indices_once(const char* op, const Tensor& index, int64_t n);
  struct ValidIndex {
    std::weak_ptr<Storage> storage;
    int64_t offset = 0, numel = 0, bound = 0, ignore_index = 0;
    DType dtype = DType::I64;
    uint64_t version = 0;
  };
  std::vector<ValidIndex> valid_indices_;  // the last few, newest last

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
