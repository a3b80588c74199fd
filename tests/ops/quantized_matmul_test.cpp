// linear_quantized / linear_fixed_order (the CPU gemm_quantized kernel) against a plain
// dequantise-then-matmul reference, and their batch invariance.
#include <gtest/gtest.h>

#include <cmath>

#include "infer/quantize.h"
#include "nn/model_test_util.h"
#include "ops/ops.h"
#include "ops/quantized_matmul.h"

namespace lmforge {
namespace {

// y[m, n] = Σ_k x[m, k] · w[n, k] + b[n] in double, w the dequantised weight read element by
// element from data and scale with its own loops (not through dequantize()).
std::vector<double> reference(const Tensor& x, const QuantizedWeight& q, const Tensor& b) {
  const int64_t m = x.size(0), k = x.size(1), n = q.out_features();
  const std::vector<double> xv = to_vector<double>(cast(x, DType::F64));
  const std::vector<double> dv = to_vector<double>(cast(q.data, DType::F64));
  const std::vector<double> sv = q.scale.defined() ? to_vector<double>(q.scale) : std::vector<double>();
  const std::vector<double> bv = b.defined() ? to_vector<double>(cast(b, DType::F64)) : std::vector<double>();
  const int64_t groups = q.scale.defined() ? k / q.group_size : 1;
  std::vector<double> y(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = bv.empty() ? 0.0 : bv[size_t(j)];
      for (int64_t p = 0; p < k; ++p) {
        const double s = sv.empty() ? 1.0 : sv[size_t(j * groups + p / (k / groups))];
        acc += xv[size_t(i * k + p)] * dv[size_t(j * k + p)] * s;
      }
      y[size_t(i * n + j)] = acc;
    }
  return y;
}

struct QuantCase {
  infer::QuantFormat format;
  int64_t group_size;
  DType x_dtype;
};

TEST(QuantizedMatmul, MatchesDequantiseThenMatmul) {
  const int64_t n = 19, k = 48;
  Generator g(3);
  const Tensor w = randn({n, k}, g, DType::F32, Device::cpu(), 0, 0.5);
  const Tensor bias = randn({n}, g);
  for (const QuantCase c : {QuantCase{infer::QuantFormat::Int8, 0, DType::F32}, QuantCase{infer::QuantFormat::Int8, 16, DType::F32},
                       QuantCase{infer::QuantFormat::Fp8, 0, DType::F32}, QuantCase{infer::QuantFormat::Fp8, 8, DType::BF16},
                       QuantCase{infer::QuantFormat::BF16, 0, DType::F32}, QuantCase{infer::QuantFormat::F16, 0, DType::F16}}) {
    const QuantizedWeight q = infer::quantize_weight(w, {.format = c.format, .group_size = c.group_size});
    for (int64_t m : {1, 3, 37}) {
      const Tensor x = cast(randn({m, k}, g), c.x_dtype);
      for (bool with_bias : {false, true}) {
        const Tensor y = linear_quantized(x, q, with_bias ? bias : Tensor());
        ASSERT_EQ(y.dtype(), c.x_dtype);
        ASSERT_EQ(y.shape(), (Shape{m, n}));
        const std::vector<double> got = to_vector<double>(cast(y, DType::F64));
        const std::vector<double> want = reference(x, q, with_bias ? bias : Tensor());
        // f32 accumulation over k = 48 terms, then one rounding to the output dtype.
        const double rel = c.x_dtype == DType::F32 ? 1e-5 : c.x_dtype == DType::BF16 ? 8e-3 : 1e-3;
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], want[i], rel * (1 + std::abs(want[i])))
              << infer::to_string(c.format) << " group " << c.group_size << " m " << m << " at " << i;
      }
    }
  }
}

TEST(QuantizedMatmul, FixedOrderLinearMatchesLinear) {
  Generator g(5);
  const Tensor x = randn({2, 5, 40}, g), w = randn({24, 40}, g), b = randn({24}, g);
  const std::vector<double> got = to_vector<double>(linear_fixed_order(x, w, b));
  const std::vector<double> want = to_vector<double>(linear(x, w, b));
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4 * (1 + std::abs(want[i]))) << i;
}

TEST(QuantizedMatmul, EachRowIsIndependentOfTheBatch) {
  // A row computed with 63 others gives the same bits as the row alone: the K sum has one order.
  Generator g(9);
  const int64_t k = 200, n = 70;  // k not a multiple of the kernel's lanes: the tail too
  const Tensor w = randn({n, k}, g);
  const QuantizedWeight q = infer::quantize_weight(w, {.format = infer::QuantFormat::Int8});
  const Tensor x = randn({64, k}, g);
  const Tensor all_q = linear_quantized(x, q), all_f = linear_fixed_order(x, w);
  for (int64_t r : {0, 17, 63}) {
    const Tensor row = x.narrow(0, r, 1);
    EXPECT_TRUE(test::bit_identical(linear_quantized(row, q), all_q.narrow(0, r, 1))) << r;
    EXPECT_TRUE(test::bit_identical(linear_fixed_order(row, w), all_f.narrow(0, r, 1))) << r;
  }
  EXPECT_TRUE(test::bit_identical(linear_quantized(x.narrow(0, 17, 5), q), all_q.narrow(0, 17, 5)));
}

TEST(QuantizedMatmul, DequantizeAndBadWeights) {
  Generator g(2);
  const Tensor w = randn({4, 8}, g);
  const QuantizedWeight q = infer::quantize_weight(w, {.format = infer::QuantFormat::Int8, .group_size = 4});
  // dequantize() is data · scale per group, checked by hand on one element per group.
  const std::vector<float> d = to_vector<float>(dequantize(q));
  const std::vector<float> s = to_vector<float>(q.scale);
  const std::vector<int8_t> v = to_vector<int8_t>(q.data);
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t c : {0, 5}) EXPECT_EQ(d[size_t(r * 8 + c)], float(v[size_t(r * 8 + c)]) * s[size_t(r * 2 + c / 4)]);
  QuantizedWeight bad = q;
  bad.scale = q.scale.narrow(1, 0, 1).contiguous();
  EXPECT_THROW(check_quantized_weight(bad, "w"), Error);
  bad = q;
  bad.scale = Tensor();
  EXPECT_THROW(check_quantized_weight(bad, "w"), Error);
  bad = q;
  bad.group_size = 3;
  EXPECT_THROW(check_quantized_weight(bad, "w"), Error);
  EXPECT_THROW(linear_quantized(randn({2, 7}, g), q), Error);  // 7 features, the weight wants 8
  // Inference only: a backward through it is refused.
  Tensor x = randn({2, 8}, g).set_requires_grad(true);
  EXPECT_THROW(sum(linear_quantized(x, q)).backward(), Error);
}

}  // namespace
}  // namespace lmforge
