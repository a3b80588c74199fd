// The multi-tensor kernels (one launch for a list of tensors) against their CPU twins: AdamW with
// compute copies, and the sum of squares behind gradient clipping. Sizes of 1, odd, one chunk
// plus one element, several chunks; unaligned tensors (views one element into their storage) take
// the scalar path; the GPU outputs start poisoned.
#include "cuda_test_util.h"
#include "optim/clip.h"

namespace lmforge {
namespace {
using namespace cuda_test;

constexpr int64_t kSizes[] = {1, 3, 4097, 65537, 200003};

// A contiguous 1-D operand of n elements, aligned or one element into its storage.
Pair operand(Generator& g, int64_t n, DType t, bool unaligned, double lo, double hi) {
  Pair p = random_pair(g, {n + 1}, t, lo, hi);
  return view(p, [&](const Tensor& x) { return x.narrow(0, unaligned ? 1 : 0, n); });
}

TEST(CudaMultiTensor, AdamWMatchesCpuAndCopiesEqualTheCast) {
  LF_REQUIRE_GPU();
  Generator g(81);
  const AdamWArgs args{.lr = 2e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0,
                       .bias_correction1 = 1 - 0.9 * 0.9, .bias_correction2 = 1 - 0.95 * 0.95, .grad_scale = 0.5};
  struct Item {
    Pair p, grad, m, v, copy;
    double wd;
  };
  std::vector<Item> items;
  int k = 0;
  for (int64_t n : kSizes) {
    for (bool unaligned : {false, true}) {
      const DType copy_t = k % 3 == 0 ? DType::F32 : (k % 3 == 1 ? DType::BF16 : DType::F16);  // F32: no copy
      Item it{operand(g, n, DType::F32, unaligned, -1, 1), operand(g, n, DType::F32, unaligned, -2, 2),
              operand(g, n, DType::F32, unaligned, -0.1, 0.1), operand(g, n, DType::F32, unaligned, 0, 0.01), {},
              k % 2 ? 0.1 : 0.0};
      if (copy_t != DType::F32) it.copy = poisoned_pair({n}, copy_t);
      items.push_back(it);
      ++k;
    }
  }
  // A bf16 parameter takes the single-tensor path inside the same call.
  items.push_back({random_pair(g, {777}, DType::BF16), random_pair(g, {777}, DType::F32),
                   random_pair(g, {777}, DType::F32, -0.1, 0.1), random_pair(g, {777}, DType::F32, 0, 0.01), {}, 0.1});
  std::vector<AdamWTensor> cpu_list, gpu_list;
  for (const Item& it : items) {
    cpu_list.push_back({it.p.cpu, it.grad.cpu, it.m.cpu, it.v.cpu, it.wd, it.copy.cpu});
    gpu_list.push_back({it.p.gpu, it.grad.gpu, it.m.gpu, it.v.gpu, it.wd, it.copy.gpu});
  }
  for (int step = 0; step < 3; ++step) {  // the second and third calls reuse the uploaded table
    cpu_be().adamw_multi_step(cpu_list, args);
    gpu_be().adamw_multi_step(gpu_list, args);
  }
  for (const Item& it : items) {
    SCOPED_TRACE(fmt::format("n {} offset {}", it.p.cpu.numel(), it.p.cpu.offset()));
    EXPECT_TRUE(close(it.p.gpu, it.p.cpu, it.p.cpu.dtype() == DType::F32 ? 1e-6 : tol_for(DType::BF16)));
    EXPECT_TRUE(close(it.m.gpu, it.m.cpu, 1e-6));
    EXPECT_TRUE(close(it.v.gpu, it.v.cpu, 1e-6));
    if (it.copy.gpu.defined()) {
      // Written in the update's pass from the stored value: exactly the cast of the GPU parameter.
      EXPECT_TRUE(bit_equal(it.copy.gpu, cast(it.p.gpu.to(Device::cpu()), it.copy.gpu.dtype())));
      EXPECT_TRUE(close(it.copy.gpu, it.copy.cpu, tol_for(it.copy.gpu.dtype())));
    }
  }
  // A changed list (a tensor dropped) uploads a new table and still updates the right tensors.
  std::vector<AdamWTensor> fewer_cpu(cpu_list.begin() + 2, cpu_list.end()),
      fewer_gpu(gpu_list.begin() + 2, gpu_list.end());
  const Tensor untouched = items[0].p.gpu.to(Device::cpu());
  cpu_be().adamw_multi_step(fewer_cpu, args);
  gpu_be().adamw_multi_step(fewer_gpu, args);
  EXPECT_TRUE(bit_equal(items[0].p.gpu, untouched));
  for (size_t i = 2; i < items.size(); ++i)
    EXPECT_TRUE(close(items[i].p.gpu, items[i].p.cpu, items[i].p.cpu.dtype() == DType::F32 ? 1e-6 : 1e-2)) << i;
}

// Clipping decided on the GPU (optim::clip_step_scale_on_device into AdamWArgs::device_grad_scale)
// against the CPU twin given the same norm: the multiplier is formed from the norm where it lives,
// bit for bit the host's, both above and below max_norm; a non-finite norm leaves every parameter,
// moment and compute copy as it was. A list with a bf16
// parameter (single-tensor path) reads the norm on the host and must agree as well.
TEST(CudaMultiTensor, AdamWDeviceClipMatchesCpuAndSkipsNonFinite) {
  LF_REQUIRE_GPU();
  Generator g(83);
  for (bool mixed : {false, true}) {
    for (double max_norm : {0.5, 1e9, 0.0}) {
      SCOPED_TRACE(fmt::format("mixed {} max_norm {}", mixed, max_norm));
      std::vector<Pair> p, grad, m, v, copy;
      std::vector<AdamWTensor> cpu_list, gpu_list;
      double sq = 0;
      for (int64_t n : {int64_t(3), int64_t(4097), int64_t(65537)}) {
        p.push_back(random_pair(g, {n}, mixed && n == 3 ? DType::BF16 : DType::F32, -1, 1));
        grad.push_back(random_pair(g, {n}, DType::F32, -2, 2));
        m.push_back(random_pair(g, {n}, DType::F32, -0.1, 0.1));
        v.push_back(random_pair(g, {n}, DType::F32, 0, 0.01));
        copy.push_back(n == 4097 ? poisoned_pair({n}, DType::BF16) : Pair{});
        for (double x : to_vector<double>(grad.back().cpu)) sq += x * x;
        cpu_list.push_back({p.back().cpu, grad.back().cpu, m.back().cpu, v.back().cpu, 0.1, copy.back().cpu});
        gpu_list.push_back({p.back().gpu, grad.back().gpu, m.back().gpu, v.back().gpu, 0.1, copy.back().gpu});
      }
      AdamWArgs args{.lr = 1e-2, .bias_correction1 = 0.1, .bias_correction2 = 0.05, .grad_scale = 0.25};
      AdamWArgs cpu_args = args, gpu_args = args;
      const Tensor sq_cpu = from_vector<double>({sq}, {});
      cpu_args.device_grad_scale = optim::clip_step_scale_on_device(sq_cpu, args.grad_scale, max_norm);
      gpu_args.device_grad_scale = optim::clip_step_scale_on_device(sq_cpu.to(gpu()), args.grad_scale, max_norm);
      cpu_be().adamw_multi_step(cpu_list, cpu_args);
      gpu_be().adamw_multi_step(gpu_list, gpu_args);
      // The CPU twin with the host's clip: the same update.
      double host_scale = 0;
      ASSERT_TRUE(optim::clip_step_scale(sq, args.grad_scale, max_norm, host_scale));
      if (max_norm == 0.5) EXPECT_LT(host_scale, args.grad_scale);
      EXPECT_EQ(gpu_args.device_grad_scale.item(), host_scale);
      EXPECT_EQ(cpu_args.device_grad_scale.item(), host_scale);
      for (size_t i = 0; i < p.size(); ++i) {
        EXPECT_TRUE(close(p[i].gpu, p[i].cpu, p[i].cpu.dtype() == DType::F32 ? 1e-6 : tol_for(DType::BF16))) << i;
        EXPECT_TRUE(close(m[i].gpu, m[i].cpu, 1e-6)) << i;
        if (copy[i].gpu.defined()) EXPECT_TRUE(bit_equal(copy[i].gpu, cast(p[i].gpu.to(Device::cpu()), DType::BF16)));
      }
      // A non-finite norm: nothing moves on either device.
      for (double bad : {double(NAN), double(INFINITY)}) {
        std::vector<Tensor> before;
        for (size_t i = 0; i < p.size(); ++i)
          for (const Tensor* t : {&p[i].gpu, &m[i].gpu, &v[i].gpu, &copy[i].gpu})
            if (t->defined()) before.push_back(t->to(Device::cpu()));
        gpu_args.device_grad_scale =
            optim::clip_step_scale_on_device(from_vector<double>({bad}, {}).to(gpu()), args.grad_scale, max_norm);
        gpu_be().adamw_multi_step(gpu_list, gpu_args);
        size_t k = 0;
        for (size_t i = 0; i < p.size(); ++i)
          for (const Tensor* t : {&p[i].gpu, &m[i].gpu, &v[i].gpu, &copy[i].gpu})
            if (t->defined()) EXPECT_TRUE(bit_equal(*t, before[k++])) << "tensor " << i;
      }
    }
  }
}

TEST(CudaMultiTensor, SumOfSquaresMatchesCpuAndIsDeterministic) {
  LF_REQUIRE_GPU();
  Generator g(82);
  TensorList cpu_xs, gpu_xs;
  int k = 0;
  for (int64_t n : kSizes) {
    for (DType t : {DType::F32, DType::BF16, DType::F16, DType::F64}) {
      Pair p = operand(g, n, t, k++ % 2 == 1, -2, 2);
      cpu_xs.push_back(p.cpu);
      gpu_xs.push_back(p.gpu);
    }
  }
  double ref64 = 0;
  for (const Tensor& x : cpu_xs)
    for (double v : to_vector<double>(x)) ref64 += v * v;
  auto run = [&](Backend& be, const TensorList& xs, Device d) {
    Tensor out = poisoned({}, DType::F64, d);
    be.multi_sum_of_squares(xs, out);
    return out.to(Device::cpu()).item();
  };
  const double on_cpu = run(cpu_be(), cpu_xs, Device::cpu());
  const double on_gpu = run(gpu_be(), gpu_xs, gpu());
  EXPECT_NEAR(on_gpu, on_cpu, 1e-5 * on_cpu);
  EXPECT_NEAR(on_gpu, ref64, 1e-5 * ref64);
  EXPECT_EQ(run(gpu_be(), gpu_xs, gpu()), on_gpu);  // same inputs, same bits
  // No tensors, and only empty ones: zero.
  EXPECT_EQ(run(gpu_be(), {}, gpu()), 0.0);
  EXPECT_EQ(run(gpu_be(), {zeros({0}, DType::F32, gpu())}, gpu()), 0.0);
  // Through the op that clipping uses: one call for the whole list.
  EXPECT_NEAR(sum_of_squares(gpu_xs), on_cpu, 1e-5 * on_cpu);
}

}  // namespace
}  // namespace lmforge
