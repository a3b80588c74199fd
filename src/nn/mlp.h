// The position-wise feed-forward network.
//
//   SwiGLU: down_proj(silu(gate_proj(x)) * up_proj(x))     x [B, T, C], hidden [B, T, F]
//   GELU:   down_proj(gelu_tanh(up_proj(x)))               (GPT-2's MLP)
//
// FeedForward is the interface a block holds, so a Mixture-of-Experts layer can take its place.
#pragma once

#include "nn/layers.h"

namespace lmforge::nn {

class FeedForward : public Module {
 public:
  // x [..., C] -> [..., C]
  virtual Tensor forward(const Tensor& x) const = 0;
};

class MLP : public FeedForward {
 public:
  MLP(const ModelConfig& config, TensorOptions opt);
  Tensor forward(const Tensor& x) const override;

 private:
  FfnKind kind_;
  Linear *gate_proj_ = nullptr, *up_proj_, *down_proj_;
};

}  // namespace lmforge::nn
