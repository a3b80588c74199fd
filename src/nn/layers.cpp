#include "nn/layers.h"

#include "ops/ops.h"

namespace lmforge::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, ParamKind kind, TensorOptions opt) {
  weight_ = register_parameter("weight", Tensor::empty({out_features, in_features}, opt.dtype, opt.device), kind);
  if (bias) bias_ = register_parameter("bias", Tensor::empty({out_features}, opt.dtype, opt.device), ParamKind::Bias);
}

namespace {
thread_local bool fixed_order_linear = false;
}  // namespace

FixedOrderLinearScope::FixedOrderLinearScope() : previous_(fixed_order_linear) { fixed_order_linear = true; }
FixedOrderLinearScope::~FixedOrderLinearScope() { fixed_order_linear = previous_; }
bool FixedOrderLinearScope::active() { return fixed_order_linear; }

Tensor Linear::forward(const Tensor& x) const {
  if (quantized_) return linear_quantized(x, *quantized_, compute_bias());
  if (fixed_order_linear) return linear_fixed_order(x, compute_weight(), compute_bias());
  return linear(x, compute_weight(), compute_bias());
}

void Linear::set_quantized_weight(QuantizedWeight w) {
  check_quantized_weight(w, "Linear");
  const Shape expected = quantized_ ? Shape{quantized_->out_features(), quantized_->in_features()} : weight_.shape();
  LF_CHECK(w.data.shape() == expected, "Linear: quantized weight {} does not match the layer's [out, in] = {}",
           shape_str(w.data.shape()), shape_str(expected));
  if (weight_.defined()) release_parameter(weight_);
  weight_ = Tensor();
  quantized_ = std::move(w);
}

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
