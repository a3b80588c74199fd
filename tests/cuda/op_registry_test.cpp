// The op registry's backend mode (tests/ops/op_registry.h): every OpCase runs on cuda:0 and on
// the CPU with the same inputs, forward and backward, and the results must agree. A new kernel
// is tested on the GPU the moment its case exists.
//
// The case's f64 inputs are cast to each compute dtype (f32, bf16, f16, fp8 e4m3) on the CPU and
// carried to the GPU with their layout: a strided or broadcast input reaches the GPU kernels as a
// view of the same shape, strides and offset. Integer inputs (indices) keep their dtype. A dtype
// the CPU op rejects is skipped for that case; the GPU must then accept everything the CPU does.
// Bounds: relative error (‖gpu − cpu‖ / ‖cpu‖, cuda_test_util.h) at most 1e-5 in f32, 1e-2 in bf16
// and f16, 6e-2 in fp8 (2 to 3 mantissa bits), for the output and for every input's gradient.
#include <fmt/format.h>

#include "cuda_test_util.h"
#include "ops/op_registry.h"

namespace lmforge {
namespace {
using namespace cuda_test;
using test::OpCase;
using test::op_cases;

double registry_tol(DType t) {
  switch (t) {
    case DType::F32: return 1e-5;
    case DType::BF16:
    case DType::F16: return 1e-2;
    default: return 6e-2;  // fp8
  }
}

// `t` (on the CPU) with floating values cast to `dtype`, on `device`, keeping its shape, strides
// and offset: the storage span the view reaches is copied, and the view is re-applied on it.
Tensor carry(const Tensor& t, DType dtype, Device device) {
  if (!t.defined()) return t;
  const DType to = is_floating(t.dtype()) ? dtype : t.dtype();
  if (t.numel() == 0) return Tensor::empty(t.shape(), to, device);
  int64_t span = t.offset() + 1;
  for (int64_t d = 0; d < t.dim(); ++d) span += (t.size(d) - 1) * t.stride(d);
  const Tensor base = t.as_strided({span}, {1}, 0).to(to).to(device);
  return base.as_strided(t.shape(), t.strides(), t.offset());
}

struct Result {
  Tensor out;
  std::vector<Tensor> grads;  // per input; undefined where the input takes no gradient
};

// Runs the case on `inputs` (already on their device); with an output that takes a gradient,
// back-propagates the same random seed on either device (cast to the output's dtype) and collects
// the floating inputs' gradients.
Result run_case(const OpCase& c, const TensorList& inputs) {
  TensorList leaves = inputs;
  if (c.check_gradient)
    for (auto& x : leaves)
      if (x.defined() && is_floating(x.dtype())) x = x.detach().set_requires_grad(true);
  Result r;
  r.out = c.run(leaves);
  if (c.check_gradient && r.out.requires_grad()) {
    Generator seed_gen(7);
    const Tensor seed = rand(r.out.shape(), seed_gen, DType::F64, Device::cpu(), -1, 1);
    r.out.backward(seed.to(r.out.dtype()).to(r.out.device()));
    for (const auto& x : leaves) r.grads.push_back(x.defined() && x.requires_grad() ? x.grad() : Tensor());
  }
  return r;
}

TEST(CudaOpRegistry, EveryCaseMatchesTheCpu) {
  LF_REQUIRE_GPU();
  ASSERT_FALSE(op_cases().empty());
  for (const OpCase& c : op_cases()) {
    for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::F8E4M3}) {
      const std::string label = fmt::format("{} / {} / {}", c.op, c.name, dtype_name(dtype));
      SCOPED_TRACE(label);
      Generator gen(1234);
      const TensorList host = c.inputs(gen);
      TensorList cpu_in, gpu_in;
      for (const Tensor& t : host) {
        cpu_in.push_back(carry(t, dtype, Device::cpu()));
        gpu_in.push_back(carry(t, dtype, gpu()));
      }
      Result want;
      try {
        want = run_case(c, cpu_in);
      } catch (const Error&) {
        continue;  // the op does not take this dtype (the CPU is the reference)
      }
      Result got;
      try {
        got = run_case(c, gpu_in);
      } catch (const std::exception& e) {
        ADD_FAILURE() << label << ": the CPU runs it, the GPU throws: " << e.what();
        continue;
      }
      const double tol = registry_tol(dtype);
      EXPECT_EQ(got.out.dtype(), want.out.dtype()) << label;
      EXPECT_TRUE(close(got.out, want.out, tol)) << label << ": output";
      ASSERT_EQ(got.grads.size(), want.grads.size()) << label;
      for (size_t i = 0; i < want.grads.size(); ++i) {
        if (!want.grads[i].defined()) {
          EXPECT_FALSE(got.grads[i].defined()) << label << ": input " << i << " has a gradient only on the GPU";
          continue;
        }
        ASSERT_TRUE(got.grads[i].defined()) << label << ": no GPU gradient for input " << i;
        EXPECT_TRUE(close(got.grads[i], want.grads[i], tol)) << label << ": gradient of input " << i;
      }
    }
  }
}

}  // namespace
}  // namespace lmforge
