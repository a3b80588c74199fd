// RMSNorm / LayerNorm against the CPU twin on both GPU paths: the warp-per-row kernels (C a
// multiple of the 16-byte vector width: 768, 1024, 4096, 8, 24) and the block-per-row fallback
// (770, 100 for bf16 / f16, and widths past the warp path's limit, misaligned rows), with and
// without weight and bias; dweight / dbias checked, and every backward output bit-identical
// across two runs. The fused residual add (residual / sum forward, dsum backward) on both paths.
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

struct Affine {
  bool weight, bias;
};

TEST(CudaNorm, WarpAndBlockPaths) {
  LF_REQUIRE_GPU();
  Generator g(91);
  for (int64_t c : {768, 1024, 4096, 8, 24, 770, 100}) {
    for (int64_t n : {1, 3, 65, 1000}) {
      for (DType t : {DType::BF16, DType::F16, DType::F32}) {
        for (Affine a : {Affine{true, true}, Affine{true, false}, Affine{false, false}}) {
          SCOPED_TRACE(fmt::format("{}x{} {} weight {} bias {}", n, c, dtype_name(t), a.weight, a.bias));
          const DType st = DType::F32;
          Pair x = random_pair(g, {n, c}, t, -2, 2);
          Pair w = a.weight ? random_pair(g, {c}, st, 0.5, 1.5) : Pair{};
          Pair b = a.bias ? random_pair(g, {c}, st, -1, 1) : Pair{};
          Pair dy = random_pair(g, {n, c}, t);
          Pair dx = poisoned_pair({n, c}, t), y = poisoned_pair({n, c}, t);
          Pair rstd = poisoned_pair({n}, st), mean = poisoned_pair({n}, st);
          Pair dw = poisoned_pair({c}, st), db = poisoned_pair({c}, st);
          Tensor dw_cpu = a.weight ? dw.cpu : Tensor(), dw_gpu = a.weight ? dw.gpu : Tensor();
          Tensor db_cpu = a.bias ? db.cpu : Tensor(), db_gpu = a.bias ? db.gpu : Tensor();
          const double stat_tol = 1e-5;

          // RMSNorm (no bias): forward, backward, and a second backward for determinism.
          if (!a.bias) {
            cpu_be().rms_norm_forward(x.cpu, Tensor(), w.cpu, 1e-5, y.cpu, Tensor(), rstd.cpu);
            gpu_be().rms_norm_forward(x.gpu, Tensor(), w.gpu, 1e-5, y.gpu, Tensor(), rstd.gpu);
            EXPECT_TRUE(close(y.gpu, y.cpu, tol_for(t)));
            EXPECT_TRUE(close(rstd.gpu, rstd.cpu, stat_tol));
            cpu_be().rms_norm_backward(x.cpu, w.cpu, rstd.cpu, dy.cpu, Tensor(), dx.cpu, dw_cpu);
            gpu_be().rms_norm_backward(x.gpu, w.gpu, rstd.cpu.to(gpu()), dy.gpu, Tensor(), dx.gpu, dw_gpu);
            EXPECT_TRUE(close(dx.gpu, dx.cpu, tol_for(t)));
            if (a.weight) {
              EXPECT_TRUE(close(dw.gpu, dw.cpu, stat_tol));
            }
            Tensor dx2 = poisoned({n, c}, t, gpu());
            Tensor dw2 = a.weight ? poisoned({c}, st, gpu()) : Tensor();
            gpu_be().rms_norm_backward(x.gpu, w.gpu, rstd.cpu.to(gpu()), dy.gpu, Tensor(), dx2, dw2);
            EXPECT_TRUE(bit_equal(dx2, dx.gpu));
            if (a.weight) {
              EXPECT_TRUE(bit_equal(dw2, dw.gpu));
            }
          }

          // LayerNorm.
          cpu_be().layer_norm_forward(x.cpu, Tensor(), w.cpu, b.cpu, 1e-5, y.cpu, Tensor(), mean.cpu, rstd.cpu);
          gpu_be().layer_norm_forward(x.gpu, Tensor(), w.gpu, b.gpu, 1e-5, y.gpu, Tensor(), mean.gpu, rstd.gpu);
          EXPECT_TRUE(close(y.gpu, y.cpu, tol_for(t)));
          EXPECT_TRUE(close(mean.gpu, mean.cpu, stat_tol));
          EXPECT_TRUE(close(rstd.gpu, rstd.cpu, stat_tol));
          cpu_be().layer_norm_backward(x.cpu, w.cpu, mean.cpu, rstd.cpu, dy.cpu, Tensor(), dx.cpu, dw_cpu, db_cpu);
          gpu_be().layer_norm_backward(x.gpu, w.gpu, mean.cpu.to(gpu()), rstd.cpu.to(gpu()), dy.gpu, Tensor(), dx.gpu,
                                       dw_gpu, db_gpu);
          EXPECT_TRUE(close(dx.gpu, dx.cpu, t == DType::F32 ? 2e-5 : tol_for(t)));
          if (a.weight) {
            EXPECT_TRUE(close(dw.gpu, dw.cpu, stat_tol));
          }
          if (a.bias) {
            EXPECT_TRUE(close(db.gpu, db.cpu, stat_tol));
          }
          Tensor dx2 = poisoned({n, c}, t, gpu());
          Tensor dw2 = a.weight ? poisoned({c}, st, gpu()) : Tensor();
          Tensor db2 = a.bias ? poisoned({c}, st, gpu()) : Tensor();
          gpu_be().layer_norm_backward(x.gpu, w.gpu, mean.cpu.to(gpu()), rstd.cpu.to(gpu()), dy.gpu, Tensor(), dx2, dw2,
                                       db2);
          EXPECT_TRUE(bit_equal(dx2, dx.gpu));
          if (a.weight) {
            EXPECT_TRUE(bit_equal(dw2, dw.gpu));
          }
          if (a.bias) {
            EXPECT_TRUE(bit_equal(db2, db.gpu));
          }
        }
      }
    }
  }
}

// x and dy one element past a 16-byte boundary (contiguous views of a longer buffer): a width the
// warp path takes, but these rows must take the block path.
TEST(CudaNorm, MisalignedRowsTakeTheBlockPath) {
  LF_REQUIRE_GPU();
  Generator g(92);
  const int64_t n = 65, c = 768;
  for (DType t : {DType::BF16, DType::F32}) {
    SCOPED_TRACE(dtype_name(t));
    auto shifted = [&](double lo, double hi) {
      return view(random_pair(g, {n * c + 1}, t, lo, hi),
                  [&](const Tensor& a) { return view(narrow(a, 0, 1, n * c), {n, c}); });
    };
    Pair x = shifted(-2, 2), dy = shifted(-1, 1);
    Pair w = random_pair(g, {c}, DType::F32, 0.5, 1.5), b = random_pair(g, {c}, DType::F32, -1, 1);
    Pair y = poisoned_pair({n, c}, t), dx = poisoned_pair({n, c}, t);
    Pair mean = poisoned_pair({n}, DType::F32), rstd = poisoned_pair({n}, DType::F32);
    Pair dw = poisoned_pair({c}, DType::F32), db = poisoned_pair({c}, DType::F32);
    cpu_be().layer_norm_forward(x.cpu, Tensor(), w.cpu, b.cpu, 1e-5, y.cpu, Tensor(), mean.cpu, rstd.cpu);
    gpu_be().layer_norm_forward(x.gpu, Tensor(), w.gpu, b.gpu, 1e-5, y.gpu, Tensor(), mean.gpu, rstd.gpu);
    EXPECT_TRUE(close(y.gpu, y.cpu, tol_for(t)));
    cpu_be().layer_norm_backward(x.cpu, w.cpu, mean.cpu, rstd.cpu, dy.cpu, Tensor(), dx.cpu, dw.cpu, db.cpu);
    gpu_be().layer_norm_backward(x.gpu, w.gpu, mean.gpu, rstd.gpu, dy.gpu, Tensor(), dx.gpu, dw.gpu, db.gpu);
    EXPECT_TRUE(close(dx.gpu, dx.cpu, t == DType::F32 ? 2e-5 : tol_for(t)));
    EXPECT_TRUE(close(dw.gpu, dw.cpu, 1e-5));
    EXPECT_TRUE(close(db.gpu, db.cpu, 1e-5));
    cpu_be().rms_norm_forward(x.cpu, Tensor(), w.cpu, 1e-5, y.cpu, Tensor(), rstd.cpu);
    gpu_be().rms_norm_forward(x.gpu, Tensor(), w.gpu, 1e-5, y.gpu, Tensor(), rstd.gpu);
    EXPECT_TRUE(close(y.gpu, y.cpu, tol_for(t)));
    cpu_be().rms_norm_backward(x.cpu, w.cpu, rstd.cpu, dy.cpu, Tensor(), dx.cpu, dw.cpu);
    gpu_be().rms_norm_backward(x.gpu, w.gpu, rstd.gpu, dy.gpu, Tensor(), dx.gpu, dw.gpu);
    EXPECT_TRUE(close(dx.gpu, dx.cpu, tol_for(t)));
    EXPECT_TRUE(close(dw.gpu, dw.cpu, 1e-5));
  }
}

// The fused residual add against the CPU twin, on fresh random inputs with every output poisoned:
// C = 768, 1024 take the warp path both ways, 2048 the warp path forward (and backward for bf16 /
// f16; f32 backward takes the block kernel past C = 1024), 5000 the block kernels both ways (past
// the warp path's 16 vectors per lane). The backward runs with and without dsum, on the CPU's sum
// and statistics, and twice on the GPU (bit-identical).
TEST(CudaNorm, FusedResidualAddMatchesCpu) {
  LF_REQUIRE_GPU();
  Generator g(93);
  const DType st = DType::F32;
  for (int64_t c : {768, 1024, 2048, 5000}) {
    for (int64_t n : {3, 257}) {
      for (DType t : {DType::BF16, DType::F16, DType::F32}) {
        for (bool with_dsum : {true, false}) {
          SCOPED_TRACE(fmt::format("{}x{} {} dsum {}", n, c, dtype_name(t), with_dsum));
          const double tol = t == DType::F32 ? 1e-5 : 1e-2;
          Pair x = random_pair(g, {n, c}, t, -2, 2), res = random_pair(g, {n, c}, t, -4, 4);
          Pair w = random_pair(g, {c}, st, 0.5, 1.5), b = random_pair(g, {c}, st, -1, 1);
          Pair dy = random_pair(g, {n, c}, t), dsum = with_dsum ? random_pair(g, {n, c}, t) : Pair{};
          Pair y = poisoned_pair({n, c}, t), sum = poisoned_pair({n, c}, t);
          Pair mean = poisoned_pair({n}, st), rstd = poisoned_pair({n}, st);
          Pair dx = poisoned_pair({n, c}, t), dw = poisoned_pair({c}, st), db = poisoned_pair({c}, st);

          // RMSNorm. The sum is one rounded f32 add on both devices: bit-identical.
          cpu_be().rms_norm_forward(x.cpu, res.cpu, w.cpu, 1e-5, y.cpu, sum.cpu, rstd.cpu);
          gpu_be().rms_norm_forward(x.gpu, res.gpu, w.gpu, 1e-5, y.gpu, sum.gpu, rstd.gpu);
          EXPECT_TRUE(bit_equal(sum.gpu, sum.cpu));
          EXPECT_TRUE(close(y.gpu, y.cpu, tol));
          EXPECT_TRUE(close(rstd.gpu, rstd.cpu, 1e-5));
          const Tensor s_gpu = sum.cpu.to(gpu()), rstd_gpu = rstd.cpu.to(gpu());
          cpu_be().rms_norm_backward(sum.cpu, w.cpu, rstd.cpu, dy.cpu, dsum.cpu, dx.cpu, dw.cpu);
          gpu_be().rms_norm_backward(s_gpu, w.gpu, rstd_gpu, dy.gpu, dsum.gpu, dx.gpu, dw.gpu);
          EXPECT_TRUE(close(dx.gpu, dx.cpu, tol));
          EXPECT_TRUE(close(dw.gpu, dw.cpu, 1e-5));
          Tensor dx2 = poisoned({n, c}, t, gpu()), dw2 = poisoned({c}, st, gpu());
          gpu_be().rms_norm_backward(s_gpu, w.gpu, rstd_gpu, dy.gpu, dsum.gpu, dx2, dw2);
          EXPECT_TRUE(bit_equal(dx2, dx.gpu));
          EXPECT_TRUE(bit_equal(dw2, dw.gpu));

          // LayerNorm (fresh poisoned outputs).
          y = poisoned_pair({n, c}, t), sum = poisoned_pair({n, c}, t), rstd = poisoned_pair({n}, st);
          dx = poisoned_pair({n, c}, t), dw = poisoned_pair({c}, st);
          cpu_be().layer_norm_forward(x.cpu, res.cpu, w.cpu, b.cpu, 1e-5, y.cpu, sum.cpu, mean.cpu, rstd.cpu);
          gpu_be().layer_norm_forward(x.gpu, res.gpu, w.gpu, b.gpu, 1e-5, y.gpu, sum.gpu, mean.gpu, rstd.gpu);
          EXPECT_TRUE(bit_equal(sum.gpu, sum.cpu));
          EXPECT_TRUE(close(y.gpu, y.cpu, tol));
          EXPECT_TRUE(close(mean.gpu, mean.cpu, 1e-5));
          EXPECT_TRUE(close(rstd.gpu, rstd.cpu, 1e-5));
          const Tensor ls_gpu = sum.cpu.to(gpu()), mean_gpu = mean.cpu.to(gpu()), lrstd_gpu = rstd.cpu.to(gpu());
          cpu_be().layer_norm_backward(sum.cpu, w.cpu, mean.cpu, rstd.cpu, dy.cpu, dsum.cpu, dx.cpu, dw.cpu, db.cpu);
          gpu_be().layer_norm_backward(ls_gpu, w.gpu, mean_gpu, lrstd_gpu, dy.gpu, dsum.gpu, dx.gpu, dw.gpu, db.gpu);
          // Without dsum this is the plain LayerNorm backward, whose f32 dx the test above holds to 2e-5.
          EXPECT_TRUE(close(dx.gpu, dx.cpu, t == DType::F32 && !with_dsum ? 2e-5 : tol));
          EXPECT_TRUE(close(dw.gpu, dw.cpu, 1e-5));
          EXPECT_TRUE(close(db.gpu, db.cpu, 1e-5));
          dx2 = poisoned({n, c}, t, gpu()), dw2 = poisoned({c}, st, gpu());
          Tensor db2 = poisoned({c}, st, gpu());
          gpu_be().layer_norm_backward(ls_gpu, w.gpu, mean_gpu, lrstd_gpu, dy.gpu, dsum.gpu, dx2, dw2, db2);
          EXPECT_TRUE(bit_equal(dx2, dx.gpu));
          EXPECT_TRUE(bit_equal(dw2, dw.gpu));
          EXPECT_TRUE(bit_equal(db2, db.gpu));
        }
      }
    }
  }
}

// residual, sum and dsum one element past a 16-byte boundary while x, y, dy, dx are aligned, at a
// width the warp path takes: each of them alone must send the call to the block kernels.
TEST(CudaNorm, FusedResidualAddMisalignedOperandsTakeTheBlockPath) {
  LF_REQUIRE_GPU();
  Generator g(94);
  const int64_t n = 65, c = 768;
  const DType st = DType::F32;
  auto shifted = [&](const Pair& p) {
    return view(p, [&](const Tensor& a) { return view(narrow(a.view({-1}), 0, 1, n * c), {n, c}); });
  };
  for (DType t : {DType::BF16, DType::F32}) {
    SCOPED_TRACE(dtype_name(t));
    const double tol = t == DType::F32 ? 1e-5 : 1e-2;
    Pair x = random_pair(g, {n, c}, t, -2, 2), w = random_pair(g, {c}, st, 0.5, 1.5);
    Pair b = random_pair(g, {c}, st, -1, 1), dy = random_pair(g, {n, c}, t);
    Pair res = shifted(random_pair(g, {n * c + 1}, t, -4, 4)), dsum = shifted(random_pair(g, {n * c + 1}, t));
    Pair sum = shifted(poisoned_pair({n * c + 1}, t));
    Pair y = poisoned_pair({n, c}, t), mean = poisoned_pair({n}, st), rstd = poisoned_pair({n}, st);
    Pair dx = poisoned_pair({n, c}, t), dw = poisoned_pair({c}, st), db = poisoned_pair({c}, st);
    cpu_be().rms_norm_forward(x.cpu, res.cpu, w.cpu, 1e-5, y.cpu, sum.cpu, rstd.cpu);
    gpu_be().rms_norm_forward(x.gpu, res.gpu, w.gpu, 1e-5, y.gpu, sum.gpu, rstd.gpu);
    EXPECT_TRUE(bit_equal(sum.gpu, sum.cpu));
    EXPECT_TRUE(close(y.gpu, y.cpu, tol));
    const Tensor s_aligned = contiguous(sum.cpu).to(gpu());  // x of the backward aligned: only dsum is off
    cpu_be().rms_norm_backward(sum.cpu, w.cpu, rstd.cpu, dy.cpu, dsum.cpu, dx.cpu, dw.cpu);
    gpu_be().rms_norm_backward(s_aligned, w.gpu, rstd.cpu.to(gpu()), dy.gpu, dsum.gpu, dx.gpu, dw.gpu);
    EXPECT_TRUE(close(dx.gpu, dx.cpu, tol));
    EXPECT_TRUE(close(dw.gpu, dw.cpu, 1e-5));
    sum = shifted(poisoned_pair({n * c + 1}, t)), y = poisoned_pair({n, c}, t), rstd = poisoned_pair({n}, st);
    dx = poisoned_pair({n, c}, t), dw = poisoned_pair({c}, st);
    cpu_be().layer_norm_forward(x.cpu, res.cpu, w.cpu, b.cpu, 1e-5, y.cpu, sum.cpu, mean.cpu, rstd.cpu);
    gpu_be().layer_norm_forward(x.gpu, res.gpu, w.gpu, b.gpu, 1e-5, y.gpu, sum.gpu, mean.gpu, rstd.gpu);
    EXPECT_TRUE(bit_equal(sum.gpu, sum.cpu));
    EXPECT_TRUE(close(y.gpu, y.cpu, tol));
    const Tensor ls_aligned = contiguous(sum.cpu).to(gpu());
    cpu_be().layer_norm_backward(sum.cpu, w.cpu, mean.cpu, rstd.cpu, dy.cpu, dsum.cpu, dx.cpu, dw.cpu, db.cpu);
    gpu_be().layer_norm_backward(ls_aligned, w.gpu, mean.cpu.to(gpu()), rstd.cpu.to(gpu()), dy.gpu, dsum.gpu, dx.gpu,
                                 dw.gpu, db.gpu);
    EXPECT_TRUE(close(dx.gpu, dx.cpu, tol));
    EXPECT_TRUE(close(dw.gpu, dw.cpu, 1e-5));
    EXPECT_TRUE(close(db.gpu, db.cpu, 1e-5));
  }
}

}  // namespace
}  // namespace lmforge
