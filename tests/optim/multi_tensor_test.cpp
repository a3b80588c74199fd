// The multi-tensor kernels of the CPU backend against their single-tensor forms: AdamW over a list
// bit for bit equal to adamw_step per tensor (with the compute copy equal to casting the updated
// parameter), and the multi-tensor sum of squares against a plain f64 loop.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "backend/backend.h"
#include "core/random_kernels.h"
#include "ops/ops.h"
#include "test_util.h"

namespace lmforge {
namespace {

using test::same_bits;

struct Operands {
  Tensor param, grad, m, v;
};

Operands random_operands(Generator& g, int64_t n, DType param_t, DType grad_t) {
  const DType st = param_t == DType::F64 ? DType::F64 : DType::F32;
  return {rand({n}, g, param_t, Device::cpu(), -1, 1), rand({n}, g, grad_t, Device::cpu(), -2, 2),
          rand({n}, g, st, Device::cpu(), -0.1, 0.1), rand({n}, g, st, Device::cpu(), 0, 0.01)};
}

TEST(MultiTensorAdamW, EqualsPerTensorStepBitForBit) {
  Backend& be = backend_for(Device::cpu());
  Generator g(5);
  struct Case {
    int64_t n;
    DType param_t, grad_t;
    double wd;
    DType copy_t;  // F32: no copy
  };
  const Case cases[] = {{1, DType::F32, DType::F32, 0.1, DType::BF16},   {3, DType::F32, DType::F32, 0.0, DType::F32},
                        {4097, DType::F32, DType::F32, 0.1, DType::F16}, {70001, DType::F32, DType::F32, 0.1, DType::BF16},
                        {17, DType::F64, DType::F64, 0.2, DType::F32},   {33, DType::BF16, DType::F32, 0.1, DType::F32}};
  const AdamWArgs args{.lr = 3e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 99,  // ignored
                       .bias_correction1 = 1 - 0.9 * 0.9, .bias_correction2 = 1 - 0.95 * 0.95, .grad_scale = 0.25};
  std::vector<Operands> single, multi;
  std::vector<AdamWTensor> list;
  for (const Case& c : cases) {
    Operands o = random_operands(g, c.n, c.param_t, c.grad_t);
    single.push_back({clone(o.param), clone(o.grad), clone(o.m), clone(o.v)});
    multi.push_back(o);
    Tensor copy;
    if (c.copy_t != DType::F32) copy = full({c.n}, NAN, c.copy_t);  // poisoned: every element must be written
    list.push_back({.param = o.param, .grad = o.grad, .exp_avg = o.m, .exp_avg_sq = o.v, .weight_decay = c.wd,
                    .compute_copy = copy});
  }
  for (int step = 0; step < 3; ++step) {
    be.adamw_multi_step(list, args);
    for (size_t i = 0; i < single.size(); ++i) {
      AdamWArgs a = args;
      a.weight_decay = cases[i].wd;
      be.adamw_step(single[i].param, single[i].grad, single[i].m, single[i].v, a);
    }
  }
  for (size_t i = 0; i < single.size(); ++i) {
    SCOPED_TRACE(fmt::format("n {} param {}", cases[i].n, dtype_name(cases[i].param_t)));
    EXPECT_TRUE(same_bits(multi[i].param, single[i].param));
    EXPECT_TRUE(same_bits(multi[i].m, single[i].m));
    EXPECT_TRUE(same_bits(multi[i].v, single[i].v));
    if (list[i].compute_copy.defined()) {
      EXPECT_TRUE(same_bits(list[i].compute_copy, cast(single[i].param, cases[i].copy_t)));
    }
  }
  // The updates moved the parameters (the comparison above is not between untouched tensors).
  Generator g2(5);
  const Operands first = random_operands(g2, cases[0].n, cases[0].param_t, cases[0].grad_t);
  EXPECT_FALSE(same_bits(first.param, multi[0].param));
}

TEST(MultiTensorSumOfSquares, MatchesF64Loop) {
  Generator g(9);
  TensorList xs;
  double ref = 0;
  for (int64_t n : {int64_t(1), int64_t(5), int64_t(4096), int64_t(4097), int64_t(100003)}) {
    for (DType t : {DType::F32, DType::BF16}) {
      Tensor x = rand({n}, g, t, Device::cpu(), -3, 3);
      for (double v : to_vector<double>(x)) ref += v * v;
      xs.push_back(x);
    }
  }
  xs.push_back(Tensor());  // undefined (a parameter without a gradient) is skipped
  xs.push_back(zeros({0}));
  const double got = sum_of_squares(xs);
  EXPECT_NEAR(got, ref, 1e-5 * ref);  // f32 sums of 4096-element blocks
  // The same as summing each tensor's sum_of_squares in order (what clipping did before).
  double per_tensor = 0;
  for (const Tensor& x : xs)
    if (x.defined()) per_tensor += sum_of_squares(x);
  EXPECT_EQ(got, per_tensor);
  EXPECT_EQ(sum_of_squares(TensorList{}), 0.0);
}

}  // namespace
}  // namespace lmforge
