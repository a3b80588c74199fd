// CPU GEMM through OpenBLAS (sgemm/dgemm). Low-precision operands are widened to f32 first,
// which defines the semantics the GPU's f32-accumulating tensor-core GEMMs reproduce.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_types.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

// Copies the `rows`×`cols` matrix with leading dimension `ld` of each batch into dense f32.
template <class T>
void widen(const T* src, int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld, float* dst) {
  parallel_for(batch * rows, 64, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t bi = t / rows, r = t % rows;
      const T* s = src + bi * stride + r * ld;
      float* d = dst + (bi * rows + r) * cols;
      for (int64_t c = 0; c < cols; ++c) d[c] = static_cast<float>(load(s[c]));
    }
  });
}

}  // namespace

void CpuBackend::do_gemm(const GemmArgs& g) {
  gemm_product(g);
  if (g.has_epilogue() && g.m > 0 && g.n > 0) apply_gemm_epilogue(*this, g);
}

void CpuBackend::gemm_product(const GemmArgs& g) {
  const DType dt = g.a.dtype();
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) {
    // C = beta * C
    Tensor c = g.c.as_strided({g.batch, g.m, g.n}, {g.stride_c, g.ldc, 1}, g.c.offset());
    if (g.beta == 0) fill(c, 0.0);
    else unary(UnaryOp::Affine, c, c, g.beta, 0.0);
    return;
  }
  const CBLAS_TRANSPOSE ta = g.trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = g.trans_b ? CblasTrans : CblasNoTrans;
  if (dt == DType::F64) {
    const double* a = static_cast<const double*>(g.a.data_ptr());
    const double* b = static_cast<const double*>(g.b.data_ptr());
    double* c = static_cast<double*>(g.c.data_ptr());
    for (int64_t i = 0; i < g.batch; ++i)
      cblas_dgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, g.alpha, a + i * g.stride_a, g.lda, b + i * g.stride_b,
                  g.ldb, g.beta, c + i * g.stride_c, g.ldc);
    return;
  }
  // f32 path; other float dtypes are widened to dense f32 copies.
  const float* a = nullptr;
  const float* b = nullptr;
  int64_t lda = g.lda, ldb = g.ldb, sa = g.stride_a, sb = g.stride_b;
  std::vector<float> wa, wb;
  if (dt == DType::F32) {
    a = static_cast<const float*>(g.a.data_ptr());
    b = static_cast<const float*>(g.b.data_ptr());
  } else {
    dispatch_float(dt, "matmul", [&](auto t0) {
      using T = decltype(t0);
      const int64_t ar = g.trans_a ? g.k : g.m, ac = g.trans_a ? g.m : g.k;
      const int64_t br = g.trans_b ? g.n : g.k, bc = g.trans_b ? g.k : g.n;
      const int64_t na = g.stride_a ? g.batch : 1, nb = g.stride_b ? g.batch : 1;
      wa.resize(na * ar * ac);
      wb.resize(nb * br * bc);
      widen(static_cast<const T*>(g.a.data_ptr()), na, g.stride_a, ar, ac, g.lda, wa.data());
      widen(static_cast<const T*>(g.b.data_ptr()), nb, g.stride_b, br, bc, g.ldb, wb.data());
      lda = ac; ldb = bc;
      sa = g.stride_a ? ar * ac : 0;
      sb = g.stride_b ? br * bc : 0;
    });
    a = wa.data();
    b = wb.data();
  }
  if (g.c.dtype() == DType::F32) {
    float* c = static_cast<float*>(g.c.data_ptr());
    if (g.m == 1) {
      // One row (batch-1 decoding): a matrix-vector product. sgemm would pack all of B for a
      // single row, which for a weight matrix costs more than the product itself.
      const int64_t incx = g.trans_a ? lda : 1;
      for (int64_t i = 0; i < g.batch; ++i) {
        if (g.trans_b)  // B is [n, k]: c = B·a
          cblas_sgemv(CblasRowMajor, CblasNoTrans, g.n, g.k, float(g.alpha), b + i * sb, ldb, a + i * sa, incx,
                      float(g.beta), c + i * g.stride_c, 1);
        else  // B is [k, n]: c = Bᵀ·a
          cblas_sgemv(CblasRowMajor, CblasTrans, g.k, g.n, float(g.alpha), b + i * sb, ldb, a + i * sa, incx,
                      float(g.beta), c + i * g.stride_c, 1);
      }
      return;
    }
    for (int64_t i = 0; i < g.batch; ++i)
      cblas_sgemm(CblasRowMajor, ta, tb, g.m, g.n, g.k, float(g.alpha), a + i * sa, lda, b + i * sb, ldb,
                  float(g.beta), c + i * g.stride_c, g.ldc);
    return;
  }
  // Low-precision output: compute into f32 (reading C when beta != 0), round once on store. The
  // f32 buffer holds a block of rows at a time (64 rows, or more up to 1 MiB), not all of C: for
  // the LM head C is the largest tensor of a step, and a full f32 twin of it would set the step's
  // memory peak.
  const int64_t block_rows =
      std::min<int64_t>(g.m, std::max<int64_t>(64, (int64_t(256) << 10) / std::max<int64_t>(g.n, 1)));
  Tensor tmp = Tensor::empty({block_rows, g.n}, DType::F32);
  float* c = tmp.data<float>();
  for (int64_t i = 0; i < g.batch; ++i)
    for (int64_t r0 = 0; r0 < g.m; r0 += block_rows) {
      const int64_t rows = std::min(block_rows, g.m - r0);
      Tensor c_block = g.c.as_strided({rows, g.n}, {g.ldc, 1}, g.c.offset() + i * g.stride_c + r0 * g.ldc);
      Tensor t_block = tmp.narrow(0, 0, rows);
      if (g.beta != 0) copy(c_block, t_block);
      const float* a_rows = a + i * sa + (g.trans_a ? r0 : r0 * lda);
      cblas_sgemm(CblasRowMajor, ta, tb, rows, g.n, g.k, float(g.alpha), a_rows, lda, b + i * sb, ldb,
                  float(g.beta), c, g.n);
      copy(t_block, c_block);
    }
}

}  // namespace lmforge
