// The basic layers: Linear, Embedding, Norm (RMSNorm or LayerNorm).
//
// Parameters are created uninitialised on the given device and dtype; nn/init.h fills them.
// Shapes follow PyTorch: Linear weight [out, in], Embedding weight [num, dim].
// Under a compute dtype (Module::set_compute_dtype) Linear and Norm read their weights as compute
// copies; Embedding looks rows up in the master and returns them in its dtype (the model casts
// the summed embeddings once).
#pragma once

#include <optional>

#include "nn/model_config.h"
#include "nn/module.h"
#include "ops/nn_ops.h"
#include "ops/quantized_matmul.h"

namespace lmforge::nn {

// Where and in what dtype a module creates its parameters.
struct TensorOptions {
  DType dtype = DType::F32;
  Device device = Device::cpu();
};

// While one is alive on this thread, every Linear runs through the fixed-order kernel
// (ops/quantized_matmul.h: linear_fixed_order, or linear_quantized for quantized weights), so a
// row's output does not depend on the other rows of the batch: batch-invariant decoding
// (infer/batch_generate.h). Nests; inference only.
class FixedOrderLinearScope {
 public:
  FixedOrderLinearScope();
  ~FixedOrderLinearScope();
  FixedOrderLinearScope(const FixedOrderLinearScope&) = delete;
  FixedOrderLinearScope& operator=(const FixedOrderLinearScope&) = delete;
  static bool active();

 private:
  bool previous_;
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, ParamKind kind, TensorOptions opt);
  // x [..., in] -> [..., out]
  Tensor forward(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  // The weight and bias as the forward pass reads them (compute copies under mixed precision).
  Tensor compute_weight() const { return quantized_ ? dequantize(*quantized_) : compute_copy(weight_); }
  Tensor compute_bias() const { return compute_copy(bias_); }

  // Inference with a narrow weight (ops/quantized_matmul.h, made by infer/quantize.h): the f32
  // weight parameter is dropped and freed, and forward() runs linear_quantized, dequantising
  // inside the GEMM. compute_weight() then returns a dense f32 copy made on each call, for the
  // few callers that need the matrix itself. The bias stays a parameter.
  void set_quantized_weight(QuantizedWeight w);
  const QuantizedWeight* quantized_weight() const { return quantized_ ? &*quantized_ : nullptr; }

 private:
  Tensor weight_, bias_;
  std::optional<QuantizedWeight> quantized_;
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
