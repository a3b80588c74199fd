// Matrix products. matmul follows torch.matmul: 1-D operands are promoted, batch dims broadcast.
// Transposed views are passed to the GEMM as transposed operands, not copied.
#pragma once

#include "core/tensor.h"

namespace lmforge {

Tensor matmul(const Tensor& a, const Tensor& b);
// y = x @ w^T (+ b): x [..., in], w [out, in], b [out] or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
// gelu_tanh(linear(x, w, b)) as one GEMM with the bias and the GELU in its epilogue.
Tensor linear_gelu(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

}  // namespace lmforge
