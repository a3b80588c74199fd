// The basic layers: Linear, Embedding, Norm (RMSNorm or LayerNorm).
//
// Parameters are created uninitialised on the given device and dtype; nn/init.h fills them.
// Shapes follow PyTorch: Linear weight [out, in], Embedding weight [num, dim].
// Under a compute dtype (Module::set_compute_dtype) Linear and Norm read their weights as compute
// copies; Embedding looks rows up in the master and returns them in its dtype (the model casts
// the summed embeddings once).
#pragma once

#include "nn/model_config.h"
#include "nn/module.h"
#include "ops/nn_ops.h"

namespace lmforge::nn {

// Where and in what dtype a module creates its parameters.
struct TensorOptions {
  DType dtype = DType::F32;
  Device device = Device::cpu();
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, ParamKind kind, TensorOptions opt);
  // x [..., in] -> [..., out]
  Tensor forward(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  // The weight and bias as the forward pass reads them (compute copies under mixed precision).
  Tensor compute_weight() const { return compute_copy(weight_); }
  Tensor compute_bias() const { return compute_copy(bias_); }

 private:
  Tensor weight_, bias_;
};

class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, TensorOptions opt);
  // ids [...] (i64 or i32) -> [..., dim]
  Tensor forward(const Tensor& ids) const;
  const Tensor& weight() const { return weight_; }

 private:
  Tensor weight_;
};

// RMSNorm (gain only) or LayerNorm (gain, and a bias when `bias`), over the last dim.
class Norm : public Module {
 public:
  Norm(NormKind kind, int64_t dim, bool bias, double eps, TensorOptions opt);
  Tensor forward(const Tensor& x) const;
  // The norm of residual + delta, the add fused into the norm's kernels (ops/nn_ops.h); returns
  // the sum too. delta undefined: the norm of residual alone (sum = residual).
  AddNorm forward_add(const Tensor& delta, const Tensor& residual) const;

 private:
  NormKind kind_;
  double eps_;
  Tensor weight_, bias_;
};

}  // namespace lmforge::nn
