// Attention forward and backward on the GPU against the CPU twin (backend/cpu/attention_cpu.cpp,
// itself checked against finite differences): the general CUDA-core kernel (attention.cu) for
// every dtype, head dim, mask and layout, and the tensor-core kernel (attention_mma.cu) that the
// backend picks for bf16 / f16, head dim 64 / 128, no mask, 16-byte aligned operands. Both
// backward passes must be bit-reproducible.
#include "backend/cuda/cuda_context.h"
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

// How q / k / v are laid out.
enum class AttnLayout {
  Separate,     // three contiguous tensors
  Fused,        // views of one [B, T, H + 2·Hkv, D] projection (S == T, D == Dv)
  FusedPadded,  // the same with rows of D + 4 elements: strides off the 16-byte grid
};

struct AttnCase {
  int64_t b, t, s, h, hkv, d, dv;
  bool causal, mask;
  AttnLayout layout;
};

std::string describe(const AttnCase& c, DType t) {
  return fmt::format("B{} T{} S{} H{} Hkv{} D{} Dv{} causal{} mask{} layout{} {}", c.b, c.t, c.s, c.h, c.hkv, c.d,
                     c.dv, c.causal, c.mask, int(c.layout), dtype_name(t));
}

// Runs forward and backward on both backends, compares with the CPU, and checks that a second
// GPU backward gives the same bits.
void check_attention(Generator& g, const AttnCase& c, DType t) {
  SCOPED_TRACE(describe(c, t));
  const DType st = stat_dtype(t);
  Pair q, k, v;
  if (c.layout == AttnLayout::Separate) {
    q = random_pair(g, {c.b, c.t, c.h, c.d}, t);
    k = random_pair(g, {c.b, c.s, c.hkv, c.d}, t);
    v = random_pair(g, {c.b, c.s, c.hkv, c.dv}, t);
  } else {
    ASSERT_TRUE(c.s == c.t && c.d == c.dv);
    const int64_t row = c.layout == AttnLayout::Fused ? c.d : c.d + 4;
    Pair qkv = random_pair(g, {c.b, c.t, c.h + 2 * c.hkv, row}, t);
    auto heads = [&](int64_t first, int64_t n) {
      return view(qkv, [=](const Tensor& a) { return narrow(narrow(a, 2, first, n), 3, 0, c.d); });
    };
    q = heads(0, c.h);
    k = heads(c.h, c.hkv);
    v = heads(c.h + c.hkv, c.hkv);
  }
  Pair mask;
  if (c.mask) {
    // [1, H, T, S] broadcast over B, with some -inf entries.
    Tensor mh = random_host(g, {1, c.h, c.t, c.s}, st, -1, 1);
    auto mv = to_vector<double>(mh);
    for (size_t i = 0; i < mv.size(); i += 7) mv[i] = -INFINITY;
    mh = from_vector<double>(mv, mh.shape()).to(st);
    Pair m1 = on_both(mh);
    mask = view(m1, [&](const Tensor& a) { return expand(a, {c.b, c.h, c.t, c.s}); });
  }
  const AttentionArgs args{.scale = 0.0, .causal = c.causal};
  Pair out = poisoned_pair({c.b, c.t, c.h, c.dv}, t), lse = poisoned_pair({c.b, c.h, c.t}, st);
  cpu_be().attention_forward(q.cpu, k.cpu, v.cpu, mask.cpu, args, out.cpu, lse.cpu);
  gpu_be().attention_forward(q.gpu, k.gpu, v.gpu, mask.gpu, args, out.gpu, lse.gpu);
  EXPECT_TRUE(close(out.gpu, out.cpu, tol_for(t)));
  EXPECT_TRUE(close(lse.gpu, lse.cpu, t == DType::F64 ? 1e-12 : 1e-5));

  Pair dout = random_pair(g, {c.b, c.t, c.h, c.dv}, t);
  Pair dq = poisoned_pair(q.cpu.shape(), t), dk = poisoned_pair(k.cpu.shape(), t),
       dv = poisoned_pair(v.cpu.shape(), t);
  // The same forward results on both sides.
  Tensor out_g = out.cpu.to(gpu()), lse_g = lse.cpu.to(gpu());
  cpu_be().attention_backward(q.cpu, k.cpu, v.cpu, mask.cpu, out.cpu, lse.cpu, dout.cpu, args, dq.cpu, dk.cpu,
                              dv.cpu);
  gpu_be().attention_backward(q.gpu, k.gpu, v.gpu, mask.gpu, out_g, lse_g, dout.gpu, args, dq.gpu, dk.gpu, dv.gpu);
  const double tb = t == DType::F64 ? 1e-11 : (t == DType::F32 ? 1e-5 : tol_for(t));
  EXPECT_TRUE(close(dq.gpu, dq.cpu, tb));
  EXPECT_TRUE(close(dk.gpu, dk.cpu, tb));
  EXPECT_TRUE(close(dv.gpu, dv.cpu, tb));
  // Determinism.
  Pair dq2 = poisoned_pair(q.cpu.shape(), t), dk2 = poisoned_pair(k.cpu.shape(), t),
       dv2 = poisoned_pair(v.cpu.shape(), t);
  gpu_be().attention_backward(q.gpu, k.gpu, v.gpu, mask.gpu, out_g, lse_g, dout.gpu, args, dq2.gpu, dk2.gpu,
                              dv2.gpu);
  EXPECT_TRUE(bit_equal(dq2.gpu, dq.gpu));
  EXPECT_TRUE(bit_equal(dk2.gpu, dk.gpu));
  EXPECT_TRUE(bit_equal(dv2.gpu, dv.gpu));
}

// The general kernel: every dtype; masks, Dv != D, head dims the tensor cores do not take.
TEST(CudaAttention, GeneralKernel) {
  LF_REQUIRE_GPU();
  Generator g(76);
  using L = AttnLayout;
  const AttnCase cases[] = {
      {2, 100, 100, 4, 4, 64, 64, true, false, L::Separate},   // MHA causal
      {1, 77, 77, 8, 2, 128, 128, true, false, L::Fused},      // GQA, strided q/k/v (fused projection)
      {2, 5, 40, 4, 1, 32, 16, true, true, L::Separate},       // MQA, decode-like causal offset, mask, Dv != D
      {1, 65, 130, 2, 2, 48, 48, false, true, L::Separate},    // not causal, mask
      {1, 40, 20, 2, 1, 16, 16, true, false, L::Separate},     // T > S: the first queries see no key
      {1, 33, 33, 1, 1, 256, 256, true, false, L::Separate},   // large head dim
  };
  for (const AttnCase& c : cases)
    for (DType t : nn_dtypes()) check_attention(g, c, t);
}

// The tensor-core kernel: bf16 / f16, head dim 64 and 128, lengths off the tile sizes (the tiles
// are 32 to 128 rows), MHA / GQA / MQA, causal and not, KV-cache shapes (S > T), fused views.
// The bf16 / f16 cases the backend sends to the general kernel (a mask, head dim 32 or 80, strides
// off the 16-byte grid) run beside them.
TEST(CudaAttention, TensorCoreKernel) {
  LF_REQUIRE_GPU();
  Generator g(77);
  using L = AttnLayout;
  std::vector<AttnCase> cases;
  for (int64_t d : {64, 128}) {
    const std::vector<AttnCase> per_d = {
        {2, 200, 200, 4, 4, d, d, true, false, L::Fused},       // MHA causal, fused projection, B > 1
        {1, 333, 333, 8, 2, d, d, true, false, L::Fused},       // GQA
        {2, 17, 17, 4, 1, d, d, false, false, L::Separate},     // MQA, not causal
        {2, 1, 7, 2, 2, d, d, false, false, L::Separate},       // one query (with one key dq, dk are 0: no test)
        {2, 200, 200, 8, 2, d, d, false, false, L::Fused},      // GQA, not causal
        {2, 33, 300, 8, 2, d, d, true, false, L::Separate},     // KV cache: S > T, causal offset S - T
        {1, 1, 129, 4, 1, d, d, true, false, L::Separate},      // one decode step
        {1, 150, 70, 2, 1, d, d, true, false, L::Separate},     // T > S: the first queries see no key
        {1, 129, 129, 2, 2, d, d, true, false, L::FusedPadded}, // misaligned strides: general kernel
    };
    cases.insert(cases.end(), per_d.begin(), per_d.end());
  }
  cases.push_back({1, 200, 200, 4, 2, 80, 80, true, false, L::Fused});      // head dim 80: general kernel
  cases.push_back({2, 100, 100, 4, 4, 32, 32, true, false, L::Separate});   // head dim 32: general kernel
  cases.push_back({1, 65, 65, 2, 2, 64, 64, true, true, L::Separate});      // a mask: general kernel
  cases.push_back({1, 1100, 1100, 2, 1, 64, 64, true, false, L::Fused});    // T > 1024: Hopper's other dQ tiling
  for (const AttnCase& c : cases)
    for (DType t : {DType::BF16, DType::F16}) check_attention(g, c, t);
}

// The decoding kernel (attention_decode.cu: T <= 8, no mask, split over the keys): MHA / GQA /
// MQA, MLA's absorbed shape (one kv head of 288 for 16 query heads, Dv 256), several query
// steps with the causal offset, T > S, not causal, lengths off the chunk and tile sizes, and a
// group too large for it (the tiled kernels take it). Backward runs the tiled kernels on the lse
// the decoding kernel wrote.
TEST(CudaAttention, DecodeKernel) {
  LF_REQUIRE_GPU();
  cuda::CudaContext& ctx = cuda::cuda_context(0);
  const bool was = ctx.split_kv_decode;
  ctx.split_kv_decode = true;
  struct Restore {
    cuda::CudaContext& c;
    bool v;
    ~Restore() { c.split_kv_decode = v; }
  } restore{ctx, was};
  Generator g(79);
  using L = AttnLayout;
  const AttnCase cases[] = {
      {2, 1, 1500, 8, 2, 64, 64, true, false, L::Separate},     // GQA, one step
      {1, 1, 1029, 4, 4, 128, 128, true, false, L::Separate},   // MHA, head dim 128
      {1, 4, 700, 16, 1, 96, 64, true, false, L::Separate},     // MQA, four steps, Dv != D
      {1, 1, 1300, 16, 1, 288, 256, true, false, L::Separate},  // MLA absorbed
      {2, 8, 5, 4, 2, 32, 32, true, false, L::Separate},        // T > S: the first queries see no key
      {1, 3, 100, 2, 2, 40, 40, false, false, L::Separate},     // not causal
      {1, 2, 300, 64, 1, 64, 64, true, false, L::Separate},     // 128 rows per kv head: tiled kernel
  };
  for (const AttnCase& c : cases)
    for (DType t : nn_dtypes()) check_attention(g, c, t);
}

// key_lengths: each row sees the keys [0, key_lengths[b]) of a fixed-capacity cache, on the GPU
// as on the CPU (which cuts the cache row by row); lengths past the capacity are clamped.
TEST(CudaAttention, DecodeKernelKeyLengths) {
  LF_REQUIRE_GPU();
  NoGradGuard no_grad;
  Generator g(80);
  for (DType t : nn_dtypes())
    for (int64_t steps : {1, 3}) {
      SCOPED_TRACE(fmt::format("{} T {}", dtype_name(t), steps));
      const Pair q = random_pair(g, {3, steps, 8, 64}, t), k = random_pair(g, {3, 900, 2, 64}, t),
                 v = random_pair(g, {3, 900, 2, 48}, t);
      const Tensor lengths = from_vector<int32_t>({3, 900, 517}, {3});
      const Tensor out_c = attention(q.cpu, k.cpu, v.cpu, {.causal = true, .key_lengths = lengths});
      const Tensor out_g = attention(q.gpu, k.gpu, v.gpu, {.causal = true, .key_lengths = lengths.to(gpu())});
      EXPECT_TRUE(close(out_g, out_c, tol_for(t)));
    }
}

// On compute capability 9.0 head dim 64 runs the wgmma kernels; the sm_80 kernels the other GPUs
// run are checked on the same cases with them switched off.
TEST(CudaAttention, Sm80KernelOnHopper) {
  LF_REQUIRE_GPU();
  cuda::CudaContext& ctx = cuda::cuda_context(0);
  if (!ctx.wgmma_attention) GTEST_SKIP() << "not a compute capability 9.0 GPU: TensorCoreKernel covered these";
  ctx.wgmma_attention = false;
  struct Restore {
    cuda::CudaContext& c;
    ~Restore() { c.wgmma_attention = true; }
  } restore{ctx};
  Generator g(78);
  using L = AttnLayout;
  const AttnCase cases[] = {
      {2, 200, 200, 4, 4, 64, 64, true, false, L::Fused},
      {1, 333, 333, 8, 2, 64, 64, true, false, L::Fused},
      {2, 33, 300, 8, 2, 64, 64, true, false, L::Separate},
      {1, 150, 70, 2, 1, 64, 64, true, false, L::Separate},
  };
  for (const AttnCase& c : cases)
    for (DType t : {DType::BF16, DType::F16}) check_attention(g, c, t);
}

}  // namespace
}  // namespace lmforge
