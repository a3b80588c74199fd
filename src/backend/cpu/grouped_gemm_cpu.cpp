// CPU grouped GEMM (Backend::grouped_gemm): one ordinary GEMM per non-empty segment, on views of
// the operands, so it inherits gemm's rounding (low-precision operands widened to f32, one
// rounding on store). The reference the GPU's one-launch kernel is tested against. `ends` is on
// the host here, so its values are checked and a bad one is an Error naming its position.
#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace lmforge {

namespace {

// The segment ends as i64, checked: non-decreasing, within [0, rows].
std::vector<int64_t> checked_ends(const Tensor& ends, int64_t rows) {
  const int64_t n = ends.numel();
  std::vector<int64_t> e(size_t(n), 0);
  for (int64_t g = 0; g < n; ++g)
    e[size_t(g)] = ends.dtype() == DType::I64 ? static_cast<const int64_t*>(ends.data_ptr())[g]
                                               : static_cast<const int32_t*>(ends.data_ptr())[g];
  int64_t prev = 0;
  for (int64_t g = 0; g < n; ++g) {
    LF_CHECK(e[size_t(g)] >= prev && e[size_t(g)] <= rows, "grouped_gemm: ends[{}] = {} is outside [{}, {}] (ends "
             "must be non-decreasing and at most the {} rows)", g, e[size_t(g)], prev, rows, rows);
    prev = e[size_t(g)];
  }
  return e;
}

}  // namespace

void CpuBackend::do_grouped_gemm(const GroupedGemmArgs& g) {
  const int64_t rows = g.a.size(0);
  const std::vector<int64_t> ends = checked_ends(g.ends, rows);
  const int64_t groups = int64_t(ends.size());
  if (g.weight_grad) {
    // c[g] [P, Q] = a_gᵀ · b_g: op(A) = the segment of a transposed (trans_a, lda = P).
    const int64_t p = g.a.size(1), q = g.b.size(1);
    int64_t start = 0;
    for (int64_t e = 0; e < groups; ++e) {
      const int64_t n = ends[size_t(e)] - start;
      const Tensor ce = g.c.as_strided({p, q}, {q, 1}, g.c.offset() + e * p * q);
      if (n == 0) {
        fill(ce, 0.0);
      } else {
        const GemmArgs args{.a = g.a.as_strided({n, p}, {p, 1}, g.a.offset() + start * p),
                            .b = g.b.as_strided({n, q}, {q, 1}, g.b.offset() + start * q),
                            .c = ce, .trans_a = true, .m = p, .n = q, .k = n, .lda = p, .ldb = q, .ldc = q};
        gemm(args);
      }
      start = ends[size_t(e)];
    }
    return;
  }
  const int64_t k = g.a.size(1), n = g.c.size(1);
  int64_t start = 0;
  for (int64_t e = 0; e < groups; ++e) {
    const int64_t m = ends[size_t(e)] - start;
    if (m > 0) {
      const GemmArgs args{.a = g.a.as_strided({m, k}, {k, 1}, g.a.offset() + start * k),
                          .b = g.trans_b ? g.b.as_strided({n, k}, {k, 1}, g.b.offset() + e * n * k)
                                         : g.b.as_strided({k, n}, {n, 1}, g.b.offset() + e * n * k),
                          .c = g.c.as_strided({m, n}, {n, 1}, g.c.offset() + start * n),
                          .trans_b = g.trans_b, .m = m, .n = n, .k = k, .lda = k, .ldb = g.trans_b ? k : n,
                          .ldc = n};
      gemm(args);
    }
    start = ends[size_t(e)];
  }
  if (start < rows) fill(g.c.as_strided({rows - start, n}, {n, 1}, g.c.offset() + start * n), 0.0);
}

}  // namespace lmforge
