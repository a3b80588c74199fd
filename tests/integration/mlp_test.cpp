// A 2-layer MLP learns a synthetic task with the engine alone (ops, autograd, AdamW kernel), and
// the same seed gives bit-identical losses with 1 and 2 OpenMP threads.
#include <gtest/gtest.h>
#include <omp.h>

#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {
namespace {

// Classify 2-D points by which of 4 rotated sectors they fall in; returns the loss per step.
std::vector<float> train_mlp(int steps) {
  Generator gen(42);
  const int64_t n = 256, hidden = 64, classes = 4;
  Tensor x = randn({n, 2}, gen);
  std::vector<float> xs = to_vector<float>(x);
  std::vector<int64_t> labels(n);
  for (int64_t i = 0; i < n; ++i) {
    const double angle = std::atan2(xs[2 * i + 1], xs[2 * i]) + M_PI + 0.3;
    labels[i] = static_cast<int64_t>(std::fmod(angle, 2 * M_PI) / (M_PI / 2)) % classes;
  }
  Tensor y = from_vector<int64_t>(labels, {n});
  Tensor w1 = mul(randn({hidden, 2}, gen), 0.7).detach().set_requires_grad(true);
  Tensor b1 = zeros({hidden}).set_requires_grad(true);
  Tensor w2 = mul(randn({classes, hidden}, gen), 0.1).detach().set_requires_grad(true);
  Tensor b2 = zeros({classes}).set_requires_grad(true);
  TensorList params{w1, b1, w2, b2}, m, v;
  for (auto& p : params) { m.push_back(zeros_like(p)); v.push_back(zeros_like(p)); }
  std::vector<float> losses;
  for (int step = 1; step <= steps; ++step) {
    Tensor h = gelu(linear(x, w1, b1));
    Tensor loss = cross_entropy(linear(h, w2, b2), y);
    for (auto& p : params) p.zero_grad();
    loss.backward();
    losses.push_back(static_cast<float>(loss.item()));
    NoGradGuard g;
    AdamWArgs a{.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0,
                .bias_correction1 = 1 - std::pow(0.9, step), .bias_correction2 = 1 - std::pow(0.999, step)};
    for (size_t i = 0; i < params.size(); ++i) backend_for(params[i]).adamw_step(params[i], params[i].grad(), m[i], v[i], a);
  }
  return losses;
}

TEST(MlpIntegration, LearnsSyntheticTaskDeterministically) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  std::vector<float> one = train_mlp(300);
  omp_set_num_threads(2);
  std::vector<float> two = train_mlp(300);
  omp_set_num_threads(saved);
  EXPECT_GT(one.front(), 1.0f);
  EXPECT_LT(one.back(), 0.15f) << "the MLP did not learn the task";
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i)
    ASSERT_EQ(one[i], two[i]) << "step " << i << " differs between 1 and 2 threads";
}

}  // namespace
}  // namespace lmforge
