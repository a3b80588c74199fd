// The composite fallback of a fused op: no backend has a fused SwiGLU kernel for fp8
// (Backend::supports says so), so ops::swiglu composes silu(gate)·up from elementwise kernels, each
// rounding to fp8. Checked on the CPU against plain loops over doubles that round the same way.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "core/float_convert.h"
#include "core/random_kernels.h"
#include "ops/ops.h"

namespace lmforge {
namespace {

double round_e4m3(double v) { return double(e4m3_bits_to_float(float_to_e4m3_bits(float(v)))); }
double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// |got - want| within `ulps` units of e4m3's 3-bit mantissa at want's magnitude (f32 arithmetic
// inside a kernel may round a value lying next to a rounding boundary the other way).
void expect_e4m3_near(double got, double want, int ulps, const std::string& what) {
  const double ulp = want == 0 ? std::ldexp(1.0, -9) : std::ldexp(1.0, std::ilogb(want) - 3);
  EXPECT_LE(std::abs(got - want), ulps * ulp) << what << ": got " << got << ", want " << want;
}

TEST(SwigluComposite, BackendsReportNoFusedFp8Kernel) {
  const Backend& cpu = backend_for(Device::cpu());
  EXPECT_TRUE(cpu.supports(Kernel::swiglu_forward, DType::F32));
  EXPECT_TRUE(cpu.supports(Kernel::swiglu_backward, DType::BF16));
  EXPECT_FALSE(cpu.supports(Kernel::swiglu_forward, DType::F8E4M3));
  EXPECT_FALSE(cpu.supports(Kernel::swiglu_backward, DType::F8E5M2));
  // Called anyway, the entry point refuses it by name.
  Tensor g = Tensor::empty({2, 3}, DType::F8E4M3);
  try {
    backend_for(Device::cpu()).swiglu_forward(g, g, g);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("swiglu: dtype f8e4m3 is not supported"), std::string::npos) << e.what();
  }
}

TEST(SwigluComposite, Fp8ForwardAndBackwardMatchPlainLoops) {
  Generator gen(5);
  const Shape shape{4, 6};
  Tensor gate = rand(shape, gen, DType::F64, Device::cpu(), -3, 3).to(DType::F8E4M3);
  Tensor up = rand(shape, gen, DType::F64, Device::cpu(), -2, 2).to(DType::F8E4M3);
  gate.set_requires_grad(true);
  up.set_requires_grad(true);
  const Tensor out = swiglu(gate, up);
  ASSERT_EQ(out.dtype(), DType::F8E4M3);
  ASSERT_EQ(out.shape(), shape);
  const std::vector<double> g = to_vector<double>(gate), u = to_vector<double>(up), o = to_vector<double>(out);
  // out = round(round(silu(g)) · u): the two stores of silu and mul.
  for (size_t i = 0; i < g.size(); ++i)
    expect_e4m3_near(o[i], round_e4m3(round_e4m3(g[i] * sigmoid(g[i])) * u[i]), 1, "out " + std::to_string(i));

  // Backward with dout = 1: dup = silu(g) (rounded), dgate = u · silu'(g) (rounded).
  out.backward(full(shape, 1.0, DType::F8E4M3));
  const std::vector<double> dg = to_vector<double>(gate.grad()), du = to_vector<double>(up.grad());
  for (size_t i = 0; i < g.size(); ++i) {
    const double s = sigmoid(g[i]);
    expect_e4m3_near(du[i], round_e4m3(g[i] * s), 1, "dup " + std::to_string(i));
    expect_e4m3_near(dg[i], round_e4m3(round_e4m3(u[i]) * s * (1 + g[i] * (1 - s))), 2, "dgate " + std::to_string(i));
  }
}

// The fused kernel still serves every dtype it supports: f32 agrees with the same loops unrounded.
TEST(SwigluComposite, F32TakesTheFusedKernel) {
  Generator gen(6);
  Tensor gate = rand({3, 5}, gen, DType::F32, Device::cpu(), -3, 3);
  Tensor up = rand({3, 5}, gen, DType::F32, Device::cpu(), -2, 2);
  const std::vector<double> g = to_vector<double>(gate), u = to_vector<double>(up);
  const std::vector<double> o = to_vector<double>(swiglu(gate, up));
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(o[i], g[i] * sigmoid(g[i]) * u[i], 1e-5 * (1 + std::abs(o[i])));
}

}  // namespace
}  // namespace lmforge
