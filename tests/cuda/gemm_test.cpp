// gemm: cuBLASLt (f32 without TF32, bf16 / f16 with f32 accumulation, f32 or low-precision C),
// cuBLAS f64, and the fallback kernel (fp8) against the CPU, with transposes, leading dims
// larger than the matrix, batches with a broadcast operand, and beta != 0.
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

struct GemmCase {
  int64_t m, n, k, batch;
  bool ta, tb;
  bool broadcast_b;
  double alpha, beta;
};

// Builds A, B, C storage for the case (with padded leading dims) and the GemmArgs for a device.
struct GemmSetup {
  Pair a, b, c;
  int64_t lda, ldb, ldc, sa, sb, sc;
};

GemmSetup make(Generator& g, const GemmCase& c, DType ab, DType ct) {
  GemmSetup s;
  const int64_t ar = c.ta ? c.k : c.m, ac = c.ta ? c.m : c.k;
  const int64_t br = c.tb ? c.n : c.k, bc = c.tb ? c.k : c.n;
  s.lda = ac + 3;
  s.ldb = bc + 1;
  s.ldc = c.n + 2;
  s.sa = ar * s.lda;
  s.sb = c.broadcast_b ? 0 : br * s.ldb;
  s.sc = c.m * s.ldc;
  s.a = random_pair(g, {c.batch * ar * s.lda}, ab, -1, 1);
  s.b = random_pair(g, {(c.broadcast_b ? 1 : c.batch) * br * s.ldb}, ab, -1, 1);
  s.c = c.beta != 0 ? random_pair(g, {c.batch * s.sc}, ct, -1, 1) : poisoned_pair({c.batch * s.sc}, ct);
  return s;
}

GemmArgs args_for(const GemmSetup& s, const GemmCase& c, bool on_gpu) {
  return GemmArgs{.a = on_gpu ? s.a.gpu : s.a.cpu, .b = on_gpu ? s.b.gpu : s.b.cpu, .c = on_gpu ? s.c.gpu : s.c.cpu,
                  .trans_a = c.ta, .trans_b = c.tb, .m = c.m, .n = c.n, .k = c.k, .lda = s.lda, .ldb = s.ldb,
                  .ldc = s.ldc, .batch = c.batch, .stride_a = s.sa, .stride_b = s.sb, .stride_c = s.sc,
                  .alpha = c.alpha, .beta = c.beta};
}

// Only the C elements the product writes (not the padding) are compared.
Tensor c_view(const Tensor& c, const GemmSetup& s, const GemmCase& gc) {
  return c.as_strided({gc.batch, gc.m, gc.n}, {s.sc, s.ldc, 1}, c.offset());
}

const GemmCase kCases[] = {
    {64, 48, 32, 1, false, false, false, 1.0, 0.0},  {33, 17, 129, 1, true, false, false, 0.5, 0.0},
    {70, 65, 31, 1, false, true, false, 1.0, 1.0},   {16, 24, 40, 3, true, true, false, 1.0, -0.5},
    {8, 300, 64, 5, false, true, true, 2.0, 0.0},    {1, 1, 1000, 1, false, false, false, 1.0, 0.0},
    {1000, 1, 64, 2, false, false, true, 1.0, 0.0},  {257, 129, 513, 2, false, true, false, 1.0, 0.0},
};

TEST(CudaGemm, MatchesTheCpu) {
  LF_REQUIRE_GPU();
  Generator g(61);
  struct Types {
    DType ab, c;
    double tol;
  };
  for (const Types& ty : {Types{DType::F32, DType::F32, 1e-5}, Types{DType::F64, DType::F64, 1e-12},
                          Types{DType::BF16, DType::BF16, 1e-2}, Types{DType::BF16, DType::F32, 1e-5},
                          Types{DType::F16, DType::F16, 2e-3}, Types{DType::F16, DType::F32, 1e-5},
                          Types{DType::F8E4M3, DType::F32, 1e-5}, Types{DType::F8E5M2, DType::F8E5M2, 6e-2}}) {
    for (const GemmCase& c : kCases) {
      SCOPED_TRACE(fmt::format("{}x{}x{} b{} ta{} tb{} bcast{} beta{} {}->{}", c.m, c.n, c.k, c.batch, c.ta, c.tb,
                               c.broadcast_b, c.beta, dtype_name(ty.ab), dtype_name(ty.c)));
      GemmSetup s = make(g, c, ty.ab, ty.c);
      cpu_be().gemm(args_for(s, c, false));
      gpu_be().gemm(args_for(s, c, true));
      EXPECT_TRUE(close(c_view(s.c.gpu, s, c), c_view(s.c.cpu, s, c), ty.tol));
    }
  }
}

TEST(CudaGemm, DeterministicAndNoTf32) {
  LF_REQUIRE_GPU();
  Generator g(62);
  const GemmCase c{1024, 1024, 4096, 1, false, true, false, 1.0, 0.0};
  GemmSetup s = make(g, c, DType::F32, DType::F32);
  gpu_be().gemm(args_for(s, c, true));
  Tensor first = s.c.gpu.to(Device::cpu());
  gpu_be().gemm(args_for(s, c, true));
  EXPECT_TRUE(bit_equal(s.c.gpu, first));
  cpu_be().gemm(args_for(s, c, false));
  // TF32 (10-bit mantissa) would miss this by orders of magnitude.
  EXPECT_TRUE(close(c_view(s.c.gpu, s, c), c_view(s.c.cpu, s, c), 1e-5));
}

// Backend::set_allow_tf32: the same f32 product in TF32 leaves f32 rounding (the option takes
// effect) but stays within TF32's (inputs rounded to 10 mantissa bits); switched off again, the
// product is f32-exact once more.
TEST(CudaGemm, Tf32WhenAllowed) {
  LF_REQUIRE_GPU();
  Generator g(64);
  const GemmCase c{1024, 1024, 4096, 1, false, true, false, 1.0, 0.0};
  GemmSetup s = make(g, c, DType::F32, DType::F32);
  cpu_be().gemm(args_for(s, c, false));
  gpu_be().set_allow_tf32(true);
  gpu_be().gemm(args_for(s, c, true));
  gpu_be().set_allow_tf32(false);
  EXPECT_FALSE(close(c_view(s.c.gpu, s, c), c_view(s.c.cpu, s, c), 1e-5)) << "TF32 was not used";
  EXPECT_TRUE(close(c_view(s.c.gpu, s, c), c_view(s.c.cpu, s, c), 2e-2)) << "beyond TF32 rounding";
  gpu_be().gemm(args_for(s, c, true));
  EXPECT_TRUE(close(c_view(s.c.gpu, s, c), c_view(s.c.cpu, s, c), 1e-5)) << "TF32 still on";
}

TEST(CudaGemm, ZeroKScalesC) {
  LF_REQUIRE_GPU();
  Generator g(63);
  const GemmCase c{5, 6, 0, 2, false, false, false, 1.0, 0.5};
  GemmSetup s = make(g, c, DType::F32, DType::F32);
  cpu_be().gemm(args_for(s, c, false));
  gpu_be().gemm(args_for(s, c, true));
  EXPECT_TRUE(close(c_view(s.c.gpu, s, c), c_view(s.c.cpu, s, c), 1e-6));
}

// The GEMM epilogue (bias, tanh-GELU, pre-GELU output) fused by cuBLASLt against the CPU's
// GEMM followed by its elementwise kernels, through the linear / linear_gelu ops forward and
// backward (3-d input folded into rows; 72 columns so the fused path's alignment holds, and 70
// so it does not and the epilogue runs as separate kernels).
TEST(CudaGemm, LinearEpilogueBiasAndGeluMatchTheCpu) {
  LF_REQUIRE_GPU();
  Generator g(67);
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t n : {72, 70})
      for (bool with_gelu : {false, true}) {
        SCOPED_TRACE(fmt::format("{} n={} gelu={}", dtype_name(dt), n, with_gelu));
        const Pair x = random_pair(g, {3, 33, 40}, dt, -1, 1), w = random_pair(g, {n, 40}, dt, -0.3, 0.3);
        const Pair b = random_pair(g, {n}, dt, -1, 1), dy = random_pair(g, {3, 33, n}, dt, -1, 1);
        Tensor out[2], dx[2], dw[2], db[2];
        for (int side = 0; side < 2; ++side) {
          Tensor xs = (side ? x.gpu : x.cpu).detach().set_requires_grad(true);
          Tensor ws = (side ? w.gpu : w.cpu).detach().set_requires_grad(true);
          Tensor bs = (side ? b.gpu : b.cpu).detach().set_requires_grad(true);
          out[side] = with_gelu ? linear_gelu(xs, ws, bs) : linear(xs, ws, bs);
          sum(mul(out[side], side ? dy.gpu : dy.cpu)).backward();
          dx[side] = xs.grad();
          dw[side] = ws.grad();
          db[side] = bs.grad();
        }
        const double tol = tol_for(dt);
        EXPECT_TRUE(close(out[1], out[0], tol)) << "out";
        EXPECT_TRUE(close(dx[1], dx[0], tol)) << "dx";
        EXPECT_TRUE(close(dw[1], dw[0], tol)) << "dw";
        EXPECT_TRUE(close(db[1], db[0], tol)) << "db";
      }
}

// The GELU MLP op: forward GEMMs with the bias + GELU epilogue, backward with the GELU gradient and
// the up projection's bias gradient in the epilogue (cuBLASLt's DGELU_BGRAD), against the CPU's
// GEMMs followed by elementwise kernels. Hidden width 72 takes the fused epilogues, 70 does not.
TEST(CudaGemm, GeluMlpMatchesTheCpu) {
  LF_REQUIRE_GPU();
  Generator g(68);
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t f : {72, 70}) {
      SCOPED_TRACE(fmt::format("{} hidden={}", dtype_name(dt), f));
      const Pair x = random_pair(g, {3, 33, 40}, dt, -1, 1), wu = random_pair(g, {f, 40}, dt, -0.3, 0.3);
      const Pair bu = random_pair(g, {f}, dt, -1, 1), wd = random_pair(g, {24, f}, dt, -0.3, 0.3);
      const Pair bd = random_pair(g, {24}, dt, -1, 1), dy = random_pair(g, {3, 33, 24}, dt, -1, 1);
      Tensor out[2], grads[2][5];
      for (int side = 0; side < 2; ++side) {
        TensorList in;
        for (const Pair* p : {&x, &wu, &bu, &wd, &bd})
          in.push_back((side ? p->gpu : p->cpu).detach().set_requires_grad(true));
        out[side] = gelu_mlp(in[0], in[1], in[2], in[3], in[4]);
        sum(mul(out[side], side ? dy.gpu : dy.cpu)).backward();
        for (int i = 0; i < 5; ++i) grads[side][i] = in[size_t(i)].grad();
      }
      const double tol = tol_for(dt);
      EXPECT_TRUE(close(out[1], out[0], tol)) << "out";
      const char* names[] = {"dx", "dw_up", "db_up", "dw_down", "db_down"};
      for (int i = 0; i < 5; ++i) EXPECT_TRUE(close(grads[1][i], grads[0][i], tol)) << names[i];
    }
}

}  // namespace
}  // namespace lmforge
