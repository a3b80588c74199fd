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
// linear(linear_gelu(x, w_up, b_up), w_down, b_down), the GELU MLP of a GPT-2 block (biases may be
// undefined), as one op whose backward puts the GELU's gradient and the up projection's bias
// gradient in the epilogue of the GEMM that makes the activation's gradient: no elementwise pass
// over the [rows, hidden] activations in either direction.
Tensor gelu_mlp(const Tensor& x, const Tensor& w_up, const Tensor& b_up, const Tensor& w_down,
                const Tensor& b_down);

}  // namespace lmforge
