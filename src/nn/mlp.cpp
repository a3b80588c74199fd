#include "nn/mlp.h"

#include "ops/ops.h"

namespace lmforge::nn {

MLP::MLP(const ModelConfig& c, TensorOptions opt) : kind_(c.ffn) {
  if (kind_ == FfnKind::SwiGLU)
    gate_proj_ = register_module("gate_proj", std::make_unique<Linear>(c.d_model, c.d_ff, c.bias, ParamKind::Matrix, opt));
  up_proj_ = register_module("up_proj", std::make_unique<Linear>(c.d_model, c.d_ff, c.bias, ParamKind::Matrix, opt));
  down_proj_ = register_module("down_proj",
                               std::make_unique<Linear>(c.d_ff, c.d_model, c.bias, ParamKind::ResidualMatrix, opt));
}

Tensor MLP::forward(const Tensor& x, AuxReport*) const {
  if (kind_ == FfnKind::SwiGLU) return down_proj_->forward(swiglu(gate_proj_->forward(x), up_proj_->forward(x)));
  // The GELU (and bias) in the up projection's GEMM epilogue, its gradient in the epilogue of the
  // GEMM that makes the activation's gradient.
  return gelu_mlp(x, up_proj_->compute_weight(), up_proj_->compute_bias(), down_proj_->compute_weight(),
                  down_proj_->compute_bias());
}

}  // namespace lmforge::nn
