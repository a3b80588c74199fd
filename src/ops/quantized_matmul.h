// Products with weights stored narrow for inference (weight-only quantization, infer/quantize.h).
//
// A QuantizedWeight is a Linear weight [out, in] kept as
//   i8 or f8e4m3 data with f32 scales [out, in / group_size]: w[n, k] = data[n, k] · scale[n, k / group_size]
//   (group_size == in: one scale per output channel), or
//   bf16 / f16 data without scales: w = data.
// linear_quantized dequantises inside the GEMM kernel (Backend::gemm_quantized); no f32 copy of
// the weight is made (the CPU and the GPU both have the kernel). On a backend without it
// (supports() false) each call dequantises the one weight it needs into a temporary and runs the
// ordinary GEMM. These ops are inference-only: autograd refuses a backward through them.
#pragma once

#include "core/tensor.h"

namespace lmforge {

struct QuantizedWeight {
  Tensor data;    // [out, in]: i8, f8e4m3, bf16 or f16, contiguous
  Tensor scale;   // [out, in / group_size] f32, or undefined (bf16 / f16 data)
  int64_t group_size = 0;

  int64_t out_features() const { return data.size(0); }
  int64_t in_features() const { return data.size(1); }
  // Bytes of data and scales.
  int64_t nbytes() const { return data.nbytes() + (scale.defined() ? scale.nbytes() : 0); }
};

// Checks data / scale dtypes, shapes and group_size; `what` names the weight in the error.
void check_quantized_weight(const QuantizedWeight& w, const std::string& what);

// y = x @ dequant(w)ᵀ (+ b): x [..., in] floating, b [out] or undefined; y [..., out] in x's dtype.
Tensor linear_quantized(const Tensor& x, const QuantizedWeight& w, const Tensor& b = Tensor());

// linear(x, w, b) for a dense weight w [out, in] (f32, bf16 or f16) through the same kernel:
// batch-invariant (each output row summed in one fixed order whatever the number of rows; see
// Backend::gemm_quantized), for decoding whose result must not depend on the batch.
Tensor linear_fixed_order(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// The weight as an f32 tensor [out, in] (a reference for tests, and for the rare consumer that
// needs the dense weight).
Tensor dequantize(const QuantizedWeight& w);

}  // namespace lmforge
