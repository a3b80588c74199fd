#include "ops/op_registry.h"

namespace lmforge::test {

std::vector<OpCase>& op_cases() {
  static std::vector<OpCase> cases;
  return cases;
}

const std::vector<std::string>& required_ops() {
  static const std::vector<std::string> ops = {
      "matmul", "linear", "linear_gelu", "add", "sub", "mul", "div", "pow", "pow_scalar", "maximum", "minimum", "neg", "exp", "log",
      "sqrt", "rsqrt", "abs", "square", "tanh", "sigmoid", "silu", "relu", "gelu", "gelu_tanh", "sum", "mean",
      "amax", "amin", "max", "var", "softmax", "log_softmax", "logsumexp", "embedding", "index_select", "gather",
      "scatter_add", "cat", "split", "stack", "where", "masked_fill", "topk", "sort", "cumsum", "clamp", "cast",
      "dropout", "cross_entropy", "rms_norm", "layer_norm", "add_rms_norm", "add_layer_norm", "rope", "swiglu", "attention", "reshape", "permute",
      "narrow", "slice", "expand", "squeeze", "unsqueeze", "contiguous", "to_device", "grouped_matmul"};
  return ops;
}

HostTensor::HostTensor(const Tensor& t) : shape(t.shape()), v(to_vector<double>(t)) {}

int64_t HostTensor::at(std::initializer_list<int64_t> idx) const {
  int64_t off = 0, i = 0;
  for (int64_t x : idx) off = off * shape[i++] + x;
  return off;
}

Tensor HostTensor::tensor() const { return from_vector<double>(v, shape); }

Tensor rand_f64(Generator& g, const Shape& shape, double lo, double hi) {
  return rand(shape, g, DType::F64, Device::cpu(), lo, hi);
}

Tensor rand_f64_strided(Generator& g, const Shape& shape, double lo, double hi) {
  if (shape.size() < 2) {
    // A stride-2 slice of a longer vector.
    Shape big = shape;
    if (big.empty()) return rand_f64(g, shape, lo, hi);
    big[0] = big[0] * 2;
    return slice(rand_f64(g, big, lo, hi), 0, 0, big[0], 2);
  }
  Shape swapped = shape;
  std::swap(swapped[swapped.size() - 1], swapped[swapped.size() - 2]);
  return transpose(rand_f64(g, swapped, lo, hi), -1, -2);
}

}  // namespace lmforge::test
