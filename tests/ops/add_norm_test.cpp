// The fused residual add + norm (add_rms_norm, add_layer_norm in ops/nn_ops.h) against the unfused
// composition on the CPU: add() then rms_norm() / layer_norm(), the tape summing the gradient of
// the sum with the norm's. The forward outputs and every gradient must agree bit for bit, in f32,
// bf16 and f16, whichever outputs receive a gradient. (The registry, tests/ops/cases_nn.cpp, checks
// the values against plain loops and finite differences in f64.)
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core/random_kernels.h"
#include "ops/ops.h"

namespace lmforge {
namespace {

::testing::AssertionResult bit_identical(const Tensor& a, const Tensor& b) {
  if (a.defined() != b.defined())
    return ::testing::AssertionFailure() << "defined " << a.defined() << " vs " << b.defined();
  if (!a.defined()) return ::testing::AssertionSuccess();
  if (a.dtype() != b.dtype() || a.shape() != b.shape())
    return ::testing::AssertionFailure() << a.str() << " vs " << b.str();
  const Tensor ca = contiguous(a), cb = contiguous(b);
  const auto* pa = static_cast<const unsigned char*>(ca.data_ptr());
  const auto* pb = static_cast<const unsigned char*>(cb.data_ptr());
  for (size_t i = 0; i < ca.nbytes(); ++i)
    if (pa[i] != pb[i])
      return ::testing::AssertionFailure() << "element " << i / ca.element_size() << " of " << ca.numel()
                                           << " differs: " << to_vector<double>(ca.view({-1}))[i / ca.element_size()]
                                           << " vs " << to_vector<double>(cb.view({-1}))[i / cb.element_size()];
  return ::testing::AssertionSuccess();
}

enum class Kind { Rms, Layer };
enum class Use { Both, NormOnly, SumOnly };  // which outputs the loss reads

struct Inputs {
  Tensor x, residual, weight, bias, gsum, gy;  // gsum, gy: the gradients the loss sends to sum, y
};

// Values of `dt`; the residual is larger than x so that rounding the sum matters.
Inputs make_inputs(DType dt, const Shape& shape, bool strided_residual, uint64_t seed) {
  Generator gen(seed);
  const int64_t c = shape.back();
  auto in = [&](const Shape& s, double scale) { return cast(mul(randn(s, gen, DType::F64), scale), dt); };
  Inputs r;
  r.x = in(shape, 1.0);
  if (strided_residual) {
    Shape swapped = shape;
    std::swap(swapped[swapped.size() - 1], swapped[swapped.size() - 2]);
    r.residual = transpose(in(swapped, 4.0), -1, -2);
  } else {
    r.residual = in(shape, 4.0);
  }
  r.weight = cast(rand({c}, gen, DType::F64, Device::cpu(), 0.5, 1.5), dt);
  r.bias = in({c}, 0.5);
  r.gsum = in(shape, 1.0);
  r.gy = in(shape, 1.0);
  return r;
}

struct Outputs {
  Tensor sum, y, dx, dresidual, dweight, dbias;
};

Outputs run(const Inputs& in, Kind kind, Use use, bool fused) {
  auto leaf = [](const Tensor& t) { return t.detach().set_requires_grad(true); };
  Tensor x = leaf(in.x), r = leaf(in.residual), w = leaf(in.weight), b = kind == Kind::Layer ? leaf(in.bias) : Tensor();
  Outputs o;
  if (fused) {
    const AddNorm f = kind == Kind::Rms ? add_rms_norm(x, r, w) : add_layer_norm(x, r, w, b);
    o.sum = f.sum;
    o.y = f.y;
  } else {
    o.sum = add(x, r);
    o.y = kind == Kind::Rms ? rms_norm(o.sum, w) : layer_norm(o.sum, w, b);
  }
  // loss = Σ sum·gsum + Σ y·gy in f32: the gradients reaching sum and y are gsum and gy exactly.
  auto dot = [](const Tensor& t, const Tensor& g) { return sum(mul(cast(t, DType::F32), cast(g, DType::F32))); };
  Tensor loss = use == Use::Both       ? add(dot(o.sum, in.gsum), dot(o.y, in.gy))
                : use == Use::SumOnly ? dot(o.sum, in.gsum)
                                      : dot(o.y, in.gy);
  loss.backward();
  o.dx = x.grad();
  o.dresidual = r.grad();
  o.dweight = w.grad();
  if (b.defined()) o.dbias = b.grad();
  return o;
}

TEST(AddNorm, FusedIsBitIdenticalToAddThenNorm) {
  for (Kind kind : {Kind::Rms, Kind::Layer}) {
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      for (Use use : {Use::Both, Use::NormOnly, Use::SumOnly}) {
        for (bool strided : {false, true}) {
          const std::string label = fmt::format("{} {} use {} strided residual {}", kind == Kind::Rms ? "rms" : "layer",
                                                dtype_name(dt), int(use), strided);
          SCOPED_TRACE(label);
          // 111 rows: several of the backward's fixed row blocks for dweight / dbias.
          const Inputs in = make_inputs(dt, {3, 37, 96}, strided, 17);
          const Outputs f = run(in, kind, use, true), u = run(in, kind, use, false);
          EXPECT_TRUE(bit_identical(f.sum, u.sum));
          EXPECT_TRUE(bit_identical(f.y, u.y));
          ASSERT_TRUE(f.dx.defined());
          EXPECT_TRUE(bit_identical(f.dx, u.dx));
          EXPECT_TRUE(bit_identical(f.dresidual, u.dresidual));
          EXPECT_TRUE(bit_identical(f.dweight, u.dweight));
          EXPECT_TRUE(bit_identical(f.dbias, u.dbias));
          // Only the norm's path reaches the parameters.
          EXPECT_EQ(f.dweight.defined(), use != Use::SumOnly);
        }
      }
    }
  }
}

// The gradient that reaches x and residual is the sum of both paths: with both outputs read it
// differs from what each path alone gives (a fused kernel that dropped dsum, or the norm's part,
// would fail here as well as against the unfused composition).
TEST(AddNorm, GradientSumsBothPaths) {
  const Inputs in = make_inputs(DType::F32, {9, 32}, false, 5);
  const Outputs both = run(in, Kind::Rms, Use::Both, true);
  const Outputs norm_only = run(in, Kind::Rms, Use::NormOnly, true);
  const Outputs sum_only = run(in, Kind::Rms, Use::SumOnly, true);
  EXPECT_TRUE(bit_identical(sum_only.dx, in.gsum));
  const std::vector<float> b = to_vector<float>(both.dx), n = to_vector<float>(norm_only.dx),
                           g = to_vector<float>(in.gsum);
  for (size_t i = 0; i < b.size(); ++i) ASSERT_FLOAT_EQ(b[i], n[i] + g[i]) << "element " << i;
  EXPECT_TRUE(bit_identical(both.dx, both.dresidual));
}

TEST(AddNorm, ClearErrorsForBadArguments) {
  Generator gen(1);
  auto error_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  const Tensor x = randn({3, 4}, gen);
  EXPECT_NE(error_of([&] { add_rms_norm(x, randn({1, 4}, gen), Tensor()); })
                .find("add_rms_norm: x has shape [3, 4] but residual has shape [1, 4] (they must match"),
            std::string::npos);
  EXPECT_NE(error_of([&] { add_layer_norm(x, cast(x, DType::BF16), Tensor(), Tensor()); })
                .find("add_layer_norm: x is f32 but residual is bf16"),
            std::string::npos);
  EXPECT_NE(error_of([&] { add_rms_norm(x, x, randn({5}, gen)); })
                .find("add_rms_norm: weight has shape [5] but x's last dim is 4"),
            std::string::npos);
  EXPECT_NE(error_of([&] { add_rms_norm(x, Tensor(), Tensor()); }).find("add_rms_norm: residual is undefined"),
            std::string::npos);
}

}  // namespace
}  // namespace lmforge
