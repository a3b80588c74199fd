// Runs every registered op case in the forward and gradient modes, and checks that every
// required op has a case.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "ops/op_registry.h"

namespace lmforge::test {
namespace {

double max_scaled_error(const Tensor& got, const Tensor& want) {
  std::vector<double> g = to_vector<double>(got), w = to_vector<double>(want);
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i]) && std::isnan(g[i])) continue;
    if (std::isinf(w[i]) && g[i] == w[i]) continue;
    worst = std::max(worst, std::abs(g[i] - w[i]) / (1.0 + std::abs(w[i])));
  }
  return worst;
}

std::string case_label(const OpCase& c) { return c.op + " / " + c.name; }

TEST(OpCases, EveryRequiredOpHasACase) {
  std::set<std::string> have;
  for (const auto& c : op_cases()) have.insert(c.op);
  for (const auto& op : required_ops()) EXPECT_TRUE(have.count(op)) << "op '" << op << "' has no test case";
}

// Runs body(case) for every case, turning an exception into a failure of that case only.
template <class F>
void for_each_case(F body) {
  for (const auto& c : op_cases()) {
    try {
      body(c);
    } catch (const std::exception& e) {
      ADD_FAILURE() << case_label(c) << ": " << e.what();
    }
  }
}

TEST(OpCases, ForwardMatchesReference) {
  for_each_case([](const OpCase& c) {
    if (!c.reference) return;
    Generator gen(1234);
    TensorList in = c.inputs(gen);
    Tensor got = c.run(in), want = c.reference(in);
    ASSERT_EQ(got.shape(), want.shape()) << case_label(c);
    EXPECT_LE(max_scaled_error(got, want), c.forward_tol) << case_label(c);
  });
}

// Central finite differences in f64 of L = sum(run(inputs) * w) for a fixed random w.
TEST(OpCases, GradientMatchesFiniteDifferences) {
  for_each_case([](const OpCase& c) {
    if (!c.check_gradient) return;
    Generator gen(99);
    TensorList in = c.inputs(gen);
    std::vector<int> which = c.grad_inputs;
    if (which.empty())
      for (size_t i = 0; i < in.size(); ++i)
        if (in[i].defined() && in[i].dtype() == DType::F64) which.push_back(static_cast<int>(i));
    // The inputs themselves (strided views included) become leaves that require grad.
    TensorList leaves = in;
    for (int i : which) leaves[i] = in[i].detach().set_requires_grad(true);
    Tensor out0 = c.run(leaves);
    Generator wgen(7);
    Tensor w = rand(out0.shape(), wgen, DType::F64, Device::cpu(), -1, 1);
    auto loss_of = [&](const TensorList& xs) {
      NoGradGuard ng;
      return sum(mul(cast(c.run(xs), DType::F64), w)).item();
    };
    Tensor loss = sum(mul(cast(out0, DType::F64), w));
    if (!loss.requires_grad()) {
      ADD_FAILURE() << case_label(c) << ": output does not require grad";
      return;
    }
    loss.backward();
    for (int i : which) {
      Tensor g = leaves[i].grad();
      ASSERT_TRUE(g.defined()) << case_label(c) << ": no gradient for input " << i;
      std::vector<double> analytic = to_vector<double>(g);
      Tensor x = leaves[i];
      double* p = x.data<double>();
      double worst = 0;
      for (int64_t j = 0; j < x.numel(); ++j) {
        // Storage offset of logical element j.
        int64_t off = 0, rem = j;
        for (int64_t d = x.dim() - 1; d >= 0; --d) {
          off += (rem % x.size(d)) * x.stride(d);
          rem /= x.size(d);
        }
        const double orig = p[off];
        p[off] = orig + c.fd_eps;
        const double lp = loss_of(leaves);
        p[off] = orig - c.fd_eps;
        const double lm = loss_of(leaves);
        p[off] = orig;
        const double numeric = (lp - lm) / (2 * c.fd_eps);
        const double err = std::abs(numeric - analytic[j]) / std::max(1.0, std::abs(numeric) + std::abs(analytic[j]));
        worst = std::max(worst, err);
      }
      EXPECT_LE(worst, c.gradient_tol) << case_label(c) << ": input " << i;
    }
  });
}

}  // namespace
}  // namespace lmforge::test
