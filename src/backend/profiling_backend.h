// A Backend that forwards every call to another and records its time in op_profile (see
// op_profile.h). backend_for() returns one of these per device while profiling is enabled.
#pragma once

#include <string>

#include "backend/backend.h"
#include "backend/op_profile.h"

namespace lmforge {

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}
  Device device() const override { return inner_.device(); }
  void synchronize() override { inner_.synchronize(); }

  std::unique_ptr<PendingRead> read_async(const Tensor& src) override;
  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, double value) override;
  void arange(const Tensor& dst, double start, double step) override;
  void random(const Tensor& dst, const RandomArgs& args) override;
  void unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha = 0, double beta = 0) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void reduce(ReduceOp op, const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) override;
  void argmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) override;
  void cumsum_last(const Tensor& x, const Tensor& out) override;
  void gemm(const GemmArgs& args) override;
  void set_allow_tf32(bool on) override { inner_.set_allow_tf32(on); }
  void softmax_forward(const Tensor& x, const Tensor& y, bool log) override;
  void softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, bool log) override;
  void logsumexp_last(const Tensor& x, const Tensor& out) override;
  void topk_last(const Tensor& x, int64_t k, bool largest, const Tensor& values, const Tensor& indices) override;
  void sort_last(const Tensor& x, bool descending, const Tensor& values, const Tensor& indices) override;
  void index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n,
                    int64_t inner) override;
  void index_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n,
                 int64_t inner) override;
  void gather(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n,
              int64_t inner) override;
  void scatter_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n,
                   int64_t inner) override;
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
  template <class F>
  void timed(const std::string& name, F&& f);
  Backend& inner_;
};

}  // namespace lmforge
