// The tape: accumulation, seeds, no-grad scopes and the errors it must raise.
#include <gtest/gtest.h>

#include "autograd/function.h"
#include "ops/ops.h"

namespace lmforge {
namespace {

Tensor vec(std::vector<double> v) { return from_vector<double>(v, {static_cast<int64_t>(v.size())}); }

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = vec({1, 2, 3}).set_requires_grad(true);
  sum(mul(x, x)).backward();
  sum(mul(x, 3.0)).backward();
  EXPECT_EQ(to_vector<double>(x.grad()), (std::vector<double>{2 + 3, 4 + 3, 6 + 3}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, TensorUsedTwiceSumsBothPaths) {
  Tensor x = vec({2}).set_requires_grad(true);
  Tensor y = add(mul(x, x), exp(x));  // dy/dx = 2x + e^x
  y.backward(ones({1}, DType::F64));
  EXPECT_NEAR(x.grad().item(), 4 + std::exp(2.0), 1e-12);
}

TEST(Autograd, BackwardWithGivenGradient) {
  Tensor x = vec({1, 2}).set_requires_grad(true);
  Tensor y = mul(x, 5.0);
  y.backward(vec({1, 10}));
  EXPECT_EQ(to_vector<double>(x.grad()), (std::vector<double>{5, 50}));
}

TEST(Autograd, BackwardFromNonScalarWithoutGradientIsAnError) {
  Tensor x = vec({1, 2}).set_requires_grad(true);
  Tensor y = mul(x, 2.0);
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, NoGradScopeRecordsNothing) {
  Tensor x = vec({1, 2}).set_requires_grad(true);
  Tensor y;
  {
    NoGradGuard g;
    y = mul(x, 2.0);
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(y.backward(), Error);
  EXPECT_TRUE(GradMode::is_enabled());
}

TEST(Autograd, SavedTensorModifiedInPlaceIsAnError) {
  Tensor x = vec({1, 2}).set_requires_grad(true);
  Tensor w = vec({3, 4});
  Tensor y = sum(mul(x, w));  // saves w
  add_(w, vec({1, 1}));
  try {
    y.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("modified in place"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mul"), std::string::npos) << e.what();
  }
}

TEST(Autograd, OpWithoutBackwardIsAClearError) {
  Tensor x = vec({1, 2}).set_requires_grad(true);
  Tensor y = mul(x, 1.0);
  Tensor z = Tensor::empty({2}, DType::F64);
  record_op_without_backward("quantized_matmul", {y}, {z});
  try {
    sum(z).backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("quantized_matmul"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no backward"), std::string::npos) << e.what();
  }
}

TEST(Autograd, SecondBackwardThroughFreedGraphIsAnError) {
  Tensor x = vec({1, 2}).set_requires_grad(true);
  Tensor y = sum(mul(x, x));
  y.backward();
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, InPlaceWriteToLeafRequiringGradIsRefused) {
  Tensor x = vec({1, 2}).set_requires_grad(true);
  EXPECT_THROW(fill_(x, 0.0), Error);
  NoGradGuard g;
  fill_(x, 0.0);
  EXPECT_EQ(to_vector<double>(x), (std::vector<double>{0, 0}));
}

TEST(Autograd, GradientFlowsThroughViews) {
  Tensor x = from_vector<double>(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad(true);
  Tensor y = sum(mul(narrow(transpose(x, 0, 1), 0, 1, 2), vec({10, 100}).reshape({1, 2})));
  y.backward();
  EXPECT_EQ(to_vector<double>(x.grad()), (std::vector<double>{0, 10, 10, 0, 100, 100}));
}

}  // namespace
}  // namespace lmforge
