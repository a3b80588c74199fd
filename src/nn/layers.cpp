#include "nn/layers.h"

#include "ops/ops.h"

namespace lmforge::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, ParamKind kind, TensorOptions opt) {
  weight_ = register_parameter("weight", Tensor::empty({out_features, in_features}, opt.dtype, opt.device), kind);
  if (bias) bias_ = register_parameter("bias", Tensor::empty({out_features}, opt.dtype, opt.device), ParamKind::Bias);
}

Tensor Linear::forward(const Tensor& x) const { return linear(x, compute_weight(), compute_bias()); }

Embedding::Embedding(int64_t num, int64_t dim, TensorOptions opt) {
  weight_ = register_parameter("weight", Tensor::empty({num, dim}, opt.dtype, opt.device), ParamKind::Embedding);
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(weight_, ids); }

Norm::Norm(NormKind kind, int64_t dim, bool bias, double eps, TensorOptions opt) : kind_(kind), eps_(eps) {
  weight_ = register_parameter("weight", Tensor::empty({dim}, opt.dtype, opt.device), ParamKind::Norm);
  if (bias && kind == NormKind::LayerNorm)
    bias_ = register_parameter("bias", Tensor::empty({dim}, opt.dtype, opt.device), ParamKind::Bias);
}

Tensor Norm::forward(const Tensor& x) const {
  const Tensor w = compute_copy(weight_);
  return kind_ == NormKind::RmsNorm ? rms_norm(x, w, eps_) : layer_norm(x, w, compute_copy(bias_), eps_);
}

AddNorm Norm::forward_add(const Tensor& delta, const Tensor& residual) const {
  if (!delta.defined()) return {.sum = residual, .y = forward(residual)};
  const Tensor w = compute_copy(weight_);
  return kind_ == NormKind::RmsNorm ? add_rms_norm(delta, residual, w, eps_)
                                    : add_layer_norm(delta, residual, w, compute_copy(bias_), eps_);
}

}  // namespace lmforge::nn
