// index_select / index_add / gather / scatter_add: bit-identical to the CPU (the accumulating
// kernels add in the CPU's order), deterministic, and a clear error for a bad index.
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

TEST(CudaIndex, IndexSelectAndIndexAdd) {
  LF_REQUIRE_GPU();
  Generator g(51);
  struct Case {
    int64_t outer, n, inner, m;
  };
  for (const Case& c : {Case{1, 50257, 64, 4096}, Case{3, 10, 7, 100}, Case{2, 5, 1, 3}, Case{1, 1000, 768, 20000},
                        Case{2, 17, 24, 50}, Case{4, 3, 0, 5}, Case{1, 8, 16, 0}}) {
    for (DType it : {DType::I64, DType::I32}) {
      for (DType t : {DType::F32, DType::BF16, DType::F64, DType::F16}) {
        SCOPED_TRACE(fmt::format("[{},{},{}] m {} {} {}", c.outer, c.n, c.inner, c.m, dtype_name(t), dtype_name(it)));
        Pair x = random_pair(g, {c.outer, c.n, c.inner}, t);
        // Skewed indices: many repeats of a few rows (an embedding backward's frequent tokens).
        Tensor idx_h = random_index_host(g, {c.m}, c.n, it);
        if (c.m > 10) {
          auto v = to_vector<int64_t>(idx_h);
          for (size_t j = 0; j < v.size(); j += 3) v[j] = v[0];
          idx_h = from_vector<int64_t>(v, {c.m}).to(it);
        }
        Pair idx = on_both(idx_h);
        Pair out = poisoned_pair({c.outer, c.m, c.inner}, t);
        cpu_be().index_select(x.cpu, idx.cpu, out.cpu, c.outer, c.n, c.inner);
        gpu_be().index_select(x.gpu, idx.gpu, out.gpu, c.outer, c.n, c.inner);
        EXPECT_TRUE(bit_equal(out.gpu, out.cpu));

        Pair src = random_pair(g, {c.outer, c.m, c.inner}, t);
        Pair dst = random_pair(g, {c.outer, c.n, c.inner}, t);
        Tensor dst2 = dst.gpu.to(Device::cpu()).to(gpu());
        cpu_be().index_add(dst.cpu, idx.cpu, src.cpu, c.outer, c.n, c.inner);
        gpu_be().index_add(dst.gpu, idx.gpu, src.gpu, c.outer, c.n, c.inner);
        EXPECT_TRUE(bit_equal(dst.gpu, dst.cpu));
        gpu_be().index_add(dst2, idx.gpu, src.gpu, c.outer, c.n, c.inner);
        EXPECT_TRUE(bit_equal(dst2, dst.gpu));  // determinism
      }
    }
  }
}

TEST(CudaIndex, GatherAndScatterAdd) {
  LF_REQUIRE_GPU();
  Generator g(52);
  struct Case {
    int64_t outer, n, inner, m;
  };
  for (const Case& c : {Case{4, 64, 8, 6}, Case{1, 1000, 1, 5000}, Case{3, 7, 300, 40}, Case{2, 1, 3, 4}}) {
    for (DType t : {DType::F32, DType::BF16, DType::F64}) {
      SCOPED_TRACE(fmt::format("[{},{},{}] m {} {}", c.outer, c.n, c.inner, c.m, dtype_name(t)));
      Pair x = random_pair(g, {c.outer, c.n, c.inner}, t);
      Pair idx = on_both(random_index_host(g, {c.outer, c.m, c.inner}, c.n));
      Pair out = poisoned_pair({c.outer, c.m, c.inner}, t);
      cpu_be().gather(x.cpu, idx.cpu, out.cpu, c.outer, c.n, c.inner);
      gpu_be().gather(x.gpu, idx.gpu, out.gpu, c.outer, c.n, c.inner);
      EXPECT_TRUE(bit_equal(out.gpu, out.cpu));

      Pair src = random_pair(g, {c.outer, c.m, c.inner}, t);
      Pair dst = random_pair(g, {c.outer, c.n, c.inner}, t);
      cpu_be().scatter_add(dst.cpu, idx.cpu, src.cpu, c.outer, c.n, c.inner);
      gpu_be().scatter_add(dst.gpu, idx.gpu, src.gpu, c.outer, c.n, c.inner);
      EXPECT_TRUE(bit_equal(dst.gpu, dst.cpu));
    }
  }
}

TEST(CudaIndex, BadIndexIsAnErrorAndLeavesDstAlone) {
  LF_REQUIRE_GPU();
  Tensor x = full({10, 4}, 1.0, DType::F32, gpu());
  Tensor idx = from_vector<int64_t>({1, 2, 10, 3, -1}, {5}).to(gpu());
  Tensor out = Tensor::empty({5, 4}, DType::F32, gpu());
  try {
    gpu_be().index_select(x, idx, out, 1, 10, 4);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("index 10 at position 2 is out of range for a dimension of size 10"),
              std::string::npos)
        << e.what();
  }
  Tensor before = x.to(Device::cpu());
  EXPECT_THROW(gpu_be().index_add(x, idx, out, 1, 10, 4), Error);
  EXPECT_TRUE(bit_equal(x, before));
  Tensor gidx = from_vector<int32_t>({0, 1, 2, 99}, {1, 1, 4}).to(gpu());
  Tensor gout = Tensor::empty({1, 1, 4}, DType::F32, gpu());
  EXPECT_THROW(gpu_be().gather(x, gidx, gout, 1, 10, 4), Error);
  // The report is cleared: the next good call succeeds.
  Tensor ok_idx = from_vector<int64_t>({0, 9}, {2}).to(gpu());
  Tensor ok_out = Tensor::empty({2, 4}, DType::F32, gpu());
  EXPECT_NO_THROW(gpu_be().index_select(x, ok_idx, ok_out, 1, 10, 4));
  // Indices found valid are not checked again until written: an op writing bad values into the
  // same tensor moves its version, and the next use is checked and fails.
  Tensor ok_src = full({2, 4}, 1.0, DType::F32, gpu());
  EXPECT_NO_THROW(gpu_be().index_add(x, ok_idx, ok_src, 1, 10, 4));
  copy_(ok_idx, from_vector<int64_t>({0, 10}, {2}));
  Tensor before_add = x.to(Device::cpu());
  EXPECT_THROW(gpu_be().index_add(x, ok_idx, ok_src, 1, 10, 4), Error);
  EXPECT_TRUE(bit_equal(x, before_add));
}

}  // namespace
}  // namespace lmforge
