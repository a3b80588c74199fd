// grouped_gemm (backend/backend.h) on the GPU against the CPU twin: the products with b[g]ᵀ and
// b[g] and the weight gradient, at sizes where the tensor-core kernel takes bf16 / f16 (more than
// 32 groups, so the scheduler scans the ends in several passes; empty segments; rows dropped after
// the last segment; segments of every size around the 128-row tile) and in f32 / fp8 (the SIMT
// kernel). Outputs start as NaN, so an element the GPU leaves unwritten fails. Also: ends that break
// the contract are read clamped on the GPU, and grouped_matmul forward and backward queue their
// work without the host waiting for the GPU (they can be captured into a CUDA graph).
#include <cuda_runtime.h>

#include "backend/cuda/cuda_context.h"
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

double tol_for(DType t) { return t == DType::F32 ? 1e-5 : (t == DType::F8E4M3 ? 6e-2 : 1e-2); }

// 40 segments of sizes 0, 1, 127, 128, 129, 300 and random ones, then `dropped` rows past the end.
std::vector<int64_t> ragged_ends(Generator& g, int64_t groups, int64_t dropped, int64_t& rows) {
  const std::vector<int64_t> fixed{0, 1, 127, 128, 129, 0, 300};
  const std::vector<int64_t> draws = to_vector<int64_t>(randint({groups}, 0, 200, g));
  std::vector<int64_t> ends;
  int64_t at = 0;
  for (int64_t i = 0; i < groups; ++i) {
    at += i < int64_t(fixed.size()) ? fixed[size_t(i)] : (i % 5 == 0 ? 0 : draws[size_t(i)]);
    ends.push_back(at);
  }
  rows = at + dropped;
  return ends;
}

struct GroupedCase {
  DType dtype;
  int64_t k, n;
  bool weight_grad, trans_b;
};

void check_case(const GroupedCase& c) {
  SCOPED_TRACE(fmt::format("{} k={} n={} weight_grad={} trans_b={}", dtype_name(c.dtype), c.k, c.n, c.weight_grad,
                           c.trans_b));
  Generator g(99);
  const int64_t groups = 40;
  int64_t rows = 0;
  const std::vector<int64_t> ends_v = ragged_ends(g, groups, 37, rows);
  const Pair ends = on_both(from_vector<int64_t>(ends_v, {groups}));
  const Pair a = random_pair(g, {rows, c.k}, c.dtype, -1, 1);
  const Pair b = c.weight_grad ? random_pair(g, {rows, c.n}, c.dtype, -1, 1)
                               : random_pair(g, c.trans_b ? Shape{groups, c.n, c.k} : Shape{groups, c.k, c.n},
                                             c.dtype, -1, 1);
  const Pair out = poisoned_pair(c.weight_grad ? Shape{groups, c.k, c.n} : Shape{rows, c.n}, c.dtype);
  for (const bool on_gpu : {false, true}) {
    const auto pick = [&](const Pair& p) { return on_gpu ? p.gpu : p.cpu; };
    const GroupedGemmArgs args{.a = pick(a), .b = pick(b), .ends = pick(ends), .c = pick(out), .trans_b = c.trans_b,
                               .weight_grad = c.weight_grad};
    backend_for(pick(a)).grouped_gemm(args);
  }
  EXPECT_TRUE(close(out.gpu, out.cpu, tol_for(c.dtype)));
}

TEST(CudaGroupedGemm, ProductsAndWeightGradientsMatchTheCpu) {
  LF_REQUIRE_GPU();
  for (const DType t : {DType::BF16, DType::F16, DType::F32, DType::F8E4M3}) {
    check_case({t, 136, 200, false, true});   // x·w[g]ᵀ
    check_case({t, 200, 136, false, false});  // dy·w[g]
    check_case({t, 136, 200, true, false});   // dy_gᵀ·x_g
  }
  // Sizes that are not whole 16-byte rows take the SIMT kernel in bf16 too.
  check_case({DType::BF16, 37, 21, false, true});
  check_case({DType::BF16, 21, 37, true, false});
}

TEST(CudaGroupedGemm, EndsThatBreakTheContractAreReadClamped) {
  LF_REQUIRE_GPU();
  // The CPU rejects these (it can check without waiting); the GPU reads min(M, max(0, ends[0..g])).
  Generator g(5);
  const int64_t rows = 50, k = 16, n = 24;
  const Tensor a = random_host(g, {rows, k}, DType::BF16, -1, 1), w = random_host(g, {4, n, k}, DType::BF16, -1, 1);
  const Tensor bad = from_vector<int64_t>({-3, 20, 10, 90}, {4});
  const Tensor clamped = from_vector<int64_t>({0, 20, 20, 50}, {4});
  Tensor want = poisoned({rows, n}, DType::BF16, Device::cpu());
  const GroupedGemmArgs cpu_args{.a = a, .b = w, .ends = clamped, .c = want, .trans_b = true, .weight_grad = false};
  cpu_be().grouped_gemm(cpu_args);
  Tensor bad_cpu = poisoned({rows, n}, DType::BF16, Device::cpu());
  const GroupedGemmArgs bad_args{.a = a, .b = w, .ends = bad, .c = bad_cpu, .trans_b = true, .weight_grad = false};
  EXPECT_THROW(cpu_be().grouped_gemm(bad_args), Error);
  Tensor got = poisoned({rows, n}, DType::BF16, gpu());
  const GroupedGemmArgs gpu_args{.a = a.to(gpu()), .b = w.to(gpu()), .ends = bad.to(gpu()), .c = got,
                                 .trans_b = true, .weight_grad = false};
  gpu_be().grouped_gemm(gpu_args);
  EXPECT_TRUE(close(got, want, 1e-2));
}

TEST(CudaGroupedGemm, GroupedMatmulQueuesWithoutWaitingForTheGpu) {
  LF_REQUIRE_GPU();
  // A host wait (a copy to the host, a stream synchronisation) during stream capture fails the
  // capture, so capturing forward and backward proves neither reads `ends` on the host.
  Generator g(11);
  const int64_t rows = 300, k = 64, n = 48, groups = 5;
  const Tensor x = random_host(g, {rows, k}, DType::BF16, -1, 1).to(gpu()).set_requires_grad(true);
  const Tensor w = random_host(g, {groups, n, k}, DType::BF16, -1, 1).to(gpu()).set_requires_grad(true);
  const Tensor ends = from_vector<int64_t>({10, 10, 150, 290, 295}, {groups}).to(gpu());
  const Tensor seed = random_host(g, {rows, n}, DType::BF16, -1, 1).to(gpu());
  const auto step = [&] { grouped_matmul(x, w, ends).backward(seed); };
  step();  // warm the allocator's cache and the kernels' attributes outside the capture
  gpu_be().synchronize();
  cudaStream_t stream = cuda::cuda_context(0).stream;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), cudaSuccess);
  bool threw = false;
  try {
    step();
  } catch (const std::exception& e) {
    threw = true;
    ADD_FAILURE() << "grouped_matmul waited for the GPU while being captured: " << e.what();
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  if (graph) cudaGraphDestroy(graph);
  (void)cudaGetLastError();
  EXPECT_FALSE(threw);
  EXPECT_EQ(end, cudaSuccess) << cudaGetErrorString(end);
}

}  // namespace
}  // namespace lmforge
