// copy (strided, every dtype pair), fill, arange and the Philox random fills against the CPU.
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

const std::vector<DType> kAllDTypes{DType::F64, DType::F32,  DType::BF16, DType::F16, DType::F8E4M3,
                                    DType::F8E5M2, DType::I8, DType::I16, DType::I32, DType::I64,
                                    DType::U8,  DType::U16,  DType::U32,  DType::Bool};

TEST(CudaMemory, CopyConvertsEveryDtypePairLikeTheCpu) {
  LF_REQUIRE_GPU();
  Generator g(21);
  // Values with fractions, negatives, large magnitudes, NaN and infinities: conversions must clamp
  // and round exactly as the CPU's store<T>.
  Tensor base = random_host(g, {4, 33}, DType::F64, -300, 300);
  std::vector<double> special{std::nan(""), INFINITY, -INFINITY, 0.5, -0.5, 1.5, 2.5, -0.0, 1e10, -1e10, 65504.0,
                              65520.0, 448.0, 464.0, 3e38, 1e-40, 255.5, -129.0};
  auto bv = to_vector<double>(base);
  for (size_t i = 0; i < special.size(); ++i) bv[i * 7] = special[i];
  base = from_vector<double>(bv, {4, 33});
  for (DType s : kAllDTypes) {
    Tensor src_h = base.to(s);
    Pair src = on_both(src_h);
    for (DType d : kAllDTypes) {
      SCOPED_TRACE(std::string(dtype_name(s)) + " -> " + std::string(dtype_name(d)));
      // Strided source (transposed view) into a strided destination (a column slice).
      Pair srcv = view(src, [](const Tensor& t) { return transpose(t, 0, 1); });
      Pair dst_base = poisoned_pair({33, 9}, d);
      Pair dst = view(dst_base, [](const Tensor& t) { return narrow(t, 1, 2, 4); });
      cpu_be().copy(srcv.cpu, dst.cpu);
      gpu_be().copy(srcv.gpu, dst.gpu);
      EXPECT_TRUE(bit_equal(dst.gpu, dst.cpu));
      // Contiguous conversion.
      Pair out = poisoned_pair(src_h.shape(), d);
      cpu_be().copy(src.cpu, out.cpu);
      gpu_be().copy(src.gpu, out.gpu);
      EXPECT_TRUE(bit_equal(out.gpu, out.cpu));
    }
  }
}

// Host-to-device copies that do not wait for the GPU: queued behind a long kernel, with the
// host buffer overwritten as soon as copy() returns, each device tensor still gets the values the
// host held at the call (they were staged), in order with the kernels around it. Past the
// staging size the copy is synchronous and equally right. read_async lands the same bytes.
TEST(CudaMemory, StagedHostCopiesAndAsyncReads) {
  LF_REQUIRE_GPU();
  Generator g(24);
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(3) << 20}) {  // 8 B .. 24 MiB of f64
    SCOPED_TRACE(n);
    std::vector<Tensor> devs;
    std::vector<std::vector<double>> want;
    Tensor host = random_host(g, {n}, DType::F64);
    Tensor busy = random_host(g, {1 << 24}, DType::F32).to(gpu());
    for (int k = 0; k < 4; ++k) {
      // Device work ahead of the copy, so the copy is still queued when copy() returns.
      for (int r = 0; r < 4; ++r) gpu_be().unary(UnaryOp::Tanh, busy, busy, 0, 0);
      Tensor d = poisoned({n}, DType::F64, gpu());
      gpu_be().copy(host, d);
      want.push_back(to_vector<double>(host));
      fill_(host, double(k) - 7.25);  // the caller's buffer is free again at once
      devs.push_back(d);
    }
    for (int k = 0; k < 4; ++k) EXPECT_EQ(to_vector<double>(devs[size_t(k)]), want[size_t(k)]) << "copy " << k;
    const Tensor src = random_host(g, {n}, DType::F64).to(gpu());
    auto pending = gpu_be().read_async(src);
    const auto& bytes = pending->wait();
    ASSERT_EQ(bytes.size(), size_t(n) * sizeof(double));
    std::vector<double> got(static_cast<size_t>(n), 0.0);
    std::memcpy(got.data(), bytes.data(), bytes.size());
    EXPECT_EQ(got, to_vector<double>(src));
  }
}

TEST(CudaMemory, CopyBroadcastSourceAndManyDims) {
  LF_REQUIRE_GPU();
  Generator g(22);
  Pair src = random_pair(g, {1, 5, 1, 3}, DType::F32);
  Pair srcb = view(src, [](const Tensor& t) { return expand(t, {4, 5, 6, 3}); });
  Pair dst = poisoned_pair({4, 5, 6, 3}, DType::BF16);
  cpu_be().copy(srcb.cpu, dst.cpu);
  gpu_be().copy(srcb.gpu, dst.gpu);
  EXPECT_TRUE(bit_equal(dst.gpu, dst.cpu));
  // A 6-d permuted view.
  Pair big = random_pair(g, {2, 3, 4, 5, 6, 7}, DType::F16);
  Pair perm = view(big, [](const Tensor& t) { return permute(t, {5, 3, 1, 0, 4, 2}); });
  Pair out = poisoned_pair(perm.cpu.shape(), DType::F16);
  cpu_be().copy(perm.cpu, out.cpu);
  gpu_be().copy(perm.gpu, out.gpu);
  EXPECT_TRUE(bit_equal(out.gpu, out.cpu));
}

TEST(CudaMemory, FillAndArange) {
  LF_REQUIRE_GPU();
  for (DType t : kAllDTypes) {
    SCOPED_TRACE(std::string(dtype_name(t)));
    for (double v : {0.0, -3.75, 1e9, 0.1}) {
      Pair base = poisoned_pair({7, 10}, t);
      Pair strided = view(base, [](const Tensor& x) { return slice(x, 1, 1, 10, 3); });
      cpu_be().fill(strided.cpu, v);
      gpu_be().fill(strided.gpu, v);
      EXPECT_TRUE(bit_equal(base.gpu, base.cpu));
    }
    Pair a = poisoned_pair({1000}, t);
    cpu_be().arange(a.cpu, -7.5, 0.25);
    gpu_be().arange(a.gpu, -7.5, 0.25);
    EXPECT_TRUE(bit_equal(a.gpu, a.cpu));
  }
}

TEST(CudaMemory, RandomMatchesTheCpuBitForBit) {
  LF_REQUIRE_GPU();
  using K = RandomArgs::Kind;
  struct Case {
    K kind;
    DType dtype;
    double a, b;
  };
  const Case cases[] = {
      {K::Uniform, DType::F32, -1, 3},  {K::Uniform, DType::F64, -1, 3},   {K::Uniform, DType::BF16, 0, 1},
      {K::Normal, DType::F32, 0.5, 2},  {K::Normal, DType::F16, 0, 1},     {K::TruncatedNormal, DType::F32, 0, 1},
      {K::Bernoulli, DType::Bool, 0.3, 0}, {K::Bernoulli, DType::F32, 0.7, 0}, {K::Bernoulli, DType::F64, 0.5, 0},
      {K::RandInt, DType::I64, -5, 1000003},
  };
  for (const Case& c : cases) {
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1 << 20) + 3}) {
      SCOPED_TRACE(fmt::format("kind {} dtype {} n {}", int(c.kind), dtype_name(c.dtype), n));
      RandomArgs args{.kind = c.kind, .seed = 0x1234567890ull + uint64_t(n), .offset = 77, .a = c.a, .b = c.b,
                      .lo = -0.5, .hi = 1.5};
      Pair out = poisoned_pair({n}, c.dtype);
      cpu_be().random(out.cpu, args);
      gpu_be().random(out.gpu, args);
      EXPECT_TRUE(bit_equal(out.gpu, out.cpu));
    }
  }
}

// f64 normals go through f64 log / sin / cos, whose GPU versions are within 1-2 ulp of the
// correctly rounded results glibc gives; the streams agree to that.
TEST(CudaMemory, RandomF64NormalsAgreeToAFewUlp) {
  LF_REQUIRE_GPU();
  using K = RandomArgs::Kind;
  for (K kind : {K::Normal, K::TruncatedNormal}) {
    RandomArgs args{.kind = kind, .seed = 99, .offset = 5, .a = 0.0, .b = 1.0, .lo = -1.0, .hi = 2.5};
    Pair out = poisoned_pair({100003}, DType::F64);
    cpu_be().random(out.cpu, args);
    gpu_be().random(out.gpu, args);
    EXPECT_TRUE(close(out.gpu, out.cpu, 1e-14));
  }
}

TEST(CudaMemory, RandomRejectsWhatTheCpuRejects) {
  LF_REQUIRE_GPU();
  Tensor f = Tensor::empty({10}, DType::F32, gpu());
  EXPECT_THROW(gpu_be().random(f, {.kind = RandomArgs::Kind::RandInt, .a = 0, .b = 5}), Error);
  EXPECT_THROW(gpu_be().random(f, {.kind = RandomArgs::Kind::Bernoulli, .a = 1.5}), Error);
  EXPECT_THROW(gpu_be().random(f, {.kind = RandomArgs::Kind::Normal, .a = 0, .b = -1}), Error);
  Tensor i = Tensor::empty({10}, DType::I32, gpu());
  EXPECT_THROW(gpu_be().random(i, {.kind = RandomArgs::Kind::Uniform, .a = 0, .b = 1}), Error);
}

}  // namespace
}  // namespace lmforge
