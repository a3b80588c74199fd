// The position-wise feed-forward network.
//
//   SwiGLU: down_proj(silu(gate_proj(x)) * up_proj(x))     x [B, T, C], hidden [B, T, F]
//   GELU:   down_proj(gelu_tanh(up_proj(x)))               (GPT-2's MLP)
//
// FeedForward is the interface a block holds, so a Mixture-of-Experts layer (nn/moe.h) takes its
// place; nn/layer_factory.h picks one per layer.
#pragma once

#include "nn/aux_report.h"
#include "nn/layers.h"

namespace lmforge::nn {

class FeedForward : public Module {
 public:
  // x [..., C] -> [..., C]. `report` (may be null: nothing is collected) receives auxiliary
  // losses and statistics (nn/aux_report.h).
  virtual Tensor forward(const Tensor& x, AuxReport* report) const = 0;
  // Called after each optimizer step with the step's statistics (this layer's under
  // "layers.{layer}."); an FFN with state that follows the load (auxiliary-loss-free
  // balancing's expert biases) updates it here. Default: nothing.
  virtual void after_optimizer_step(const StepStats& stats, int64_t layer) {}
};

class MLP : public FeedForward {
 public:
  MLP(const ModelConfig& config, TensorOptions opt);
  Tensor forward(const Tensor& x, AuxReport* report) const override;
  Tensor forward(const Tensor& x) const { return forward(x, nullptr); }

 private:
  FfnKind kind_;
  Linear *gate_proj_ = nullptr, *up_proj_, *down_proj_;
};

}  // namespace lmforge::nn
