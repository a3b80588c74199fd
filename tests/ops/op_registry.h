// One registry of op test cases, run in several modes (tests/ops/op_modes_test.cpp):
//   * forward:  the op against a straightforward reference (plain loops on host doubles);
//   * gradient: the op's backward against central finite differences in f64 (rel. err < 1e-6);
//   * backend:  (GPU build, tests/cuda/op_registry_test.cpp) every case on cuda:0 against the CPU,
//               in f32, bf16, f16 and fp8, output and gradients.
// Every op named in required_ops() must have at least one case, or a test fails.
//
// Inputs are made in f64 on the CPU; cases are encouraged to include non-contiguous views
// (transposes, slices), broadcast and size-0 / size-1 dimensions.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/random_kernels.h"
#include "ops/ops.h"

namespace lmforge::test {

struct OpCase {
  std::string op;    // the op's name as in required_ops(), e.g. "matmul"
  std::string name;  // what this case covers, e.g. "broadcast batch, transposed b"
  // Makes the inputs (f64, CPU). Only floating inputs take part in the gradient check.
  std::function<TensorList(Generator& gen)> inputs;
  // The op under test; returns one tensor (several outputs: return the differentiable one, or
  // combine them).
  std::function<Tensor(const TensorList& in)> run;
  // Independent reference computed with plain loops (use test::HostTensor below); may be empty
  // only for ops whose reference is another op known correct (say why in `name`).
  std::function<Tensor(const TensorList& in)> reference;
  bool check_gradient = true;
  double forward_tol = 1e-12;    // max abs error / (1 + |ref|) in f64
  double gradient_tol = 1e-6;    // relative error vs finite differences
  double fd_eps = 1e-6;
  std::vector<int> grad_inputs{};  // which inputs to check (empty: every floating input)
};

std::vector<OpCase>& op_cases();
struct OpCaseRegistrar {
  explicit OpCaseRegistrar(OpCase c) { op_cases().push_back(std::move(c)); }
};
#define LMFORGE_OP_CASE_CONCAT2(a, b) a##b
#define LMFORGE_OP_CASE_CONCAT(a, b) LMFORGE_OP_CASE_CONCAT2(a, b)
// LMFORGE_OP_CASE({.op = "add", .name = "...", .inputs = ..., .run = ..., .reference = ...});
// or LMFORGE_OP_CASE(make_case(...)) with a function returning an OpCase.
#define LMFORGE_OP_CASE(...) \
  static ::lmforge::test::OpCaseRegistrar LMFORGE_OP_CASE_CONCAT(op_case_, __COUNTER__){::lmforge::test::OpCase(__VA_ARGS__)}

// The ops that must have cases.
const std::vector<std::string>& required_ops();

// ---- helpers for cases ----
// Host copy of a tensor as doubles with its shape, for writing reference loops.
struct HostTensor {
  Shape shape;
  std::vector<double> v;
  explicit HostTensor(const Tensor& t);
  HostTensor(Shape s, double fill = 0.0) : shape(std::move(s)), v(shape_numel(shape), fill) {}
  // Row-major offset of a multi-index.
  int64_t at(std::initializer_list<int64_t> idx) const;
  double& operator()(std::initializer_list<int64_t> idx) { return v[at(idx)]; }
  double operator()(std::initializer_list<int64_t> idx) const { return v[at(idx)]; }
  Tensor tensor() const;  // f64 CPU tensor
};

Tensor rand_f64(Generator& g, const Shape& shape, double lo = -1, double hi = 1);
// A non-contiguous tensor with the given logical shape (a transposed copy of a random tensor).
Tensor rand_f64_strided(Generator& g, const Shape& shape, double lo = -1, double hi = 1);

}  // namespace lmforge::test
