// The kernel profile attributes each backend call to its kernel, counts calls, and leaves
// results unchanged.
#include <gtest/gtest.h>

#include "backend/op_profile.h"
#include "ops/ops.h"

namespace lmforge {
namespace {

const op_profile::Entry* find(const std::vector<op_profile::Entry>& all, const std::string& name) {
  for (const auto& e : all)
    if (e.name == name) return &e;
  return nullptr;
}

TEST(OpProfile, CountsEachKernelCallUnderItsName) {
  Generator gen(3);
  const Tensor a = randn({64, 32}, gen), b = randn({32, 16}, gen);
  const Tensor expected = matmul(a, b);
  op_profile::enable();
  op_profile::reset();
  Tensor c;
  for (int i = 0; i < 3; ++i) c = matmul(a, b);
  const Tensor d = exp(c);
  const auto all = op_profile::entries();
  op_profile::enable(false);

  const op_profile::Entry* gemm = find(all, "gemm f32->f32");
  ASSERT_NE(gemm, nullptr) << op_profile::report();
  EXPECT_EQ(gemm->calls, 3);
  EXPECT_GT(gemm->seconds, 0.0);
  const op_profile::Entry* e = find(all, "unary exp f32");
  ASSERT_NE(e, nullptr) << op_profile::report();
  EXPECT_EQ(e->calls, 1);
  EXPECT_NE(op_profile::report().find("gemm f32->f32"), std::string::npos);
  // Profiling only times the calls: same results.
  EXPECT_EQ(to_vector<float>(c), to_vector<float>(expected));
  // Off again: nothing more is recorded.
  matmul(a, b);
  EXPECT_EQ(find(op_profile::entries(), "gemm f32->f32")->calls, 3);
}

}  // namespace
}  // namespace lmforge
