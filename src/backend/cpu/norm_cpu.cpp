// CPU RMSNorm and LayerNorm over the last dim, forward and backward.
//
//   N = rows, C = channels. x, y, dy, dx [N, C] contiguous; weight, bias [C] (any float dtype,
//   or undefined); mean, rstd [N] and dweight, dbias [C] are f32 (f64 for f64 x), overwritten.
//   RMSNorm:   rstd = 1/sqrt(mean(x²) + eps),        y = x·rstd·w
//              dx   = rstd·(w·dy) - rstd³/C · x · Σ_c(w·dy·x)
//   LayerNorm: rstd = 1/sqrt(var(x) + eps) (population variance, two passes over the row),
//              xhat = (x - mean)·rstd,               y = xhat·w + b
//              dx   = rstd·(g - mean_c(g) - xhat·mean_c(g·xhat)),  g = w·dy
//   dweight = Σ_rows dy·xhat (RMSNorm: xhat = x·rstd), dbias = Σ_rows dy.
//
// Fused residual add (backend/backend.h): the forward first writes a row of sum = x + residual
// rounded to T and then normalises that stored row, so y and the statistics are bit for bit those
// of an elementwise add followed by the plain norm. The backward writes the norm's dx row (rounded
// to T) and then adds the row of dsum to it, rounding again, as the tape's add of the two
// gradients would.
//
// Determinism: rows are cut into fixed blocks (the block size depends on N only); each block sums
// its rows, in order, into its own partial row of dweight/dbias, and the partials are added in
// block order. The work of a block is the same whichever thread runs it, so results are
// identical for any thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

constexpr int64_t kMinRowsPerBlock = 16;
constexpr int64_t kMaxBlocks = 256;  // bounds the partials to 256·C values per reduced vector

int64_t row_grain(int64_t c) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(c, 1)); }

// Runs row(r, partial_a, partial_b) for every row, where the partials point at the [C] rows that
// row r's block accumulates into, then writes the block-ordered sums to out_a / out_b (either may
// be null: nothing reduced).
template <class A, class RowFn>
void rows_with_column_sums(int64_t n, int64_t c, A* out_a, A* out_b, RowFn&& row) {
  if (!out_a && !out_b) {
    parallel_for(n, row_grain(c), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) row(r, nullptr, nullptr);
    });
    return;
  }
  const int64_t rows_per_block = std::max(kMinRowsPerBlock, (n + kMaxBlocks - 1) / kMaxBlocks);
  const int64_t n_blocks = (n + rows_per_block - 1) / rows_per_block;
  std::vector<A> pa(out_a ? n_blocks * c : 0, A(0)), pb(out_b ? n_blocks * c : 0, A(0));
  parallel_for(n_blocks, 2, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      A* a = out_a ? pa.data() + blk * c : nullptr;
      A* bb = out_b ? pb.data() + blk * c : nullptr;
      const int64_t r1 = std::min(n, (blk + 1) * rows_per_block);
      for (int64_t r = blk * rows_per_block; r < r1; ++r) row(r, a, bb);
    }
  });
  // Column sums over blocks, in block order; columns split across threads.
  parallel_for(c, 1024, [&](int64_t b, int64_t e) {
    for (int which = 0; which < 2; ++which) {
      A* out = which == 0 ? out_a : out_b;
      const std::vector<A>& p = which == 0 ? pa : pb;
      if (!out) continue;
      for (int64_t j = b; j < e; ++j) out[j] = 0;
      for (int64_t blk = 0; blk < n_blocks; ++blk) {
        const A* pr = p.data() + blk * c;
#pragma omp simd
        for (int64_t j = b; j < e; ++j) out[j] += pr[j];
      }
    }
  });
}

// Row r of the tensor the norm reads: x itself, or (with a residual) the row of x + residual
// rounded to T, written to `sum` first.
template <class T>
struct NormInput {
  const T* x;
  const T* residual;  // null: no residual add
  T* sum;
  int64_t c;

  NormInput(const Tensor& x_t, const Tensor& residual_t, const Tensor& sum_t)
      : x(static_cast<const T*>(x_t.data_ptr())),
        residual(residual_t.defined() ? static_cast<const T*>(residual_t.data_ptr()) : nullptr),
        sum(residual ? static_cast<T*>(sum_t.data_ptr()) : nullptr),
        c(x_t.size(-1)) {}

  const T* row(int64_t r) const {
    const T* xr = x + r * c;
    if (!residual) return xr;
    const T* rr = residual + r * c;
    T* sr = sum + r * c;
#pragma omp simd
    for (int64_t i = 0; i < c; ++i) sr[i] = store<T>(load(xr[i]) + load(rr[i]));
    return sr;
  }
};

// dx row += the incoming gradient of the sum, when there is one (the row already holds the norm's
// gradient rounded to T).
template <class T>
void add_dsum_row(const T* dsum, int64_t r, int64_t c, T* dr) {
  if (!dsum) return;
  const T* g = dsum + r * c;
#pragma omp simd
  for (int64_t i = 0; i < c; ++i) dr[i] = store<T>(load(dr[i]) + load(g[i]));
}

template <class T>
const T* dsum_ptr(const Tensor& dsum) {
  return dsum.defined() ? static_cast<const T*>(dsum.data_ptr()) : nullptr;
}

template <class T>
void rms_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps_d, const Tensor& y,
                 const Tensor& sum, const Tensor& rstd) {
  using A = compute_t<T>;
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const std::vector<A> w = load_vector<A>(weight);
  const NormInput<T> in(x, residual, sum);
  T* ys = static_cast<T*>(y.data_ptr());
  A* rs = static_cast<A*>(rstd.data_ptr());
  const A eps = A(eps_d);
  parallel_for(n, row_grain(c), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = in.row(r);
      T* yr = ys + r * c;
      A ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t i = 0; i < c; ++i) {
        const A v = load(xr[i]);
        ss += v * v;
      }
      const A s = A(1) / std::sqrt(ss / A(c) + eps);
      rs[r] = s;
      if (w.empty()) {
#pragma omp simd
        for (int64_t i = 0; i < c; ++i) yr[i] = store<T>(load(xr[i]) * s);
      } else {
        const A* wp = w.data();
#pragma omp simd
        for (int64_t i = 0; i < c; ++i) yr[i] = store<T>(load(xr[i]) * s * wp[i]);
      }
    }
  });
}

template <class T>
void rms_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dy, const Tensor& dsum,
                  const Tensor& dx, const Tensor& dweight) {
  using A = compute_t<T>;
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const std::vector<A> w = load_vector<A>(weight);
  const T* xs = static_cast<const T*>(x.data_ptr());
  const T* gs = static_cast<const T*>(dy.data_ptr());
  const T* dsum_p = dsum_ptr<T>(dsum);
  T* ds = static_cast<T*>(dx.data_ptr());
  const A* rs = static_cast<const A*>(rstd.data_ptr());
  A* dw = dweight.defined() ? static_cast<A*>(dweight.data_ptr()) : nullptr;
  const A* wp = w.data();
  const bool has_w = !w.empty();
  rows_with_column_sums<A>(n, c, dw, nullptr, [&](int64_t r, A* pdw, A*) {
    const T* xr = xs + r * c;
    const T* gr = gs + r * c;
    T* dr = ds + r * c;
    const A s = rs[r];
    A dot = 0;  // Σ w·dy·x
    if (has_w) {
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < c; ++i) dot += wp[i] * load(gr[i]) * load(xr[i]);
    } else {
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < c; ++i) dot += load(gr[i]) * load(xr[i]);
    }
    const A k = s * s * s * dot / A(c);
    if (has_w) {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) dr[i] = store<T>(s * wp[i] * load(gr[i]) - k * load(xr[i]));
    } else {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) dr[i] = store<T>(s * load(gr[i]) - k * load(xr[i]));
    }
    add_dsum_row(dsum_p, r, c, dr);
    if (pdw) {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) pdw[i] += load(gr[i]) * load(xr[i]) * s;
    }
  });
}

template <class T>
void ln_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias, double eps_d,
                const Tensor& y, const Tensor& sum, const Tensor& mean, const Tensor& rstd) {
  using A = compute_t<T>;
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const std::vector<A> w = load_vector<A>(weight), bv = load_vector<A>(bias);
  const NormInput<T> in(x, residual, sum);
  T* ys = static_cast<T*>(y.data_ptr());
  A* ms = static_cast<A*>(mean.data_ptr());
  A* rs = static_cast<A*>(rstd.data_ptr());
  const A eps = A(eps_d);
  const A* wp = w.data();
  const A* bp = bv.data();
  const bool has_w = !w.empty(), has_b = !bv.empty();
  parallel_for(n, row_grain(c), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = in.row(r);
      T* yr = ys + r * c;
      A total = 0;
#pragma omp simd reduction(+ : total)
      for (int64_t i = 0; i < c; ++i) total += load(xr[i]);
      const A mu = total / A(c);
      A sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < c; ++i) {
        const A d = load(xr[i]) - mu;
        sq += d * d;
      }
      const A s = A(1) / std::sqrt(sq / A(c) + eps);
      ms[r] = mu;
      rs[r] = s;
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) {
        A v = (load(xr[i]) - mu) * s;
        if (has_w) v *= wp[i];
        if (has_b) v += bp[i];
        yr[i] = store<T>(v);
      }
    }
  });
}

template <class T>
void ln_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd, const Tensor& dy,
                 const Tensor& dsum, const Tensor& dx, const Tensor& dweight, const Tensor& dbias) {
  using A = compute_t<T>;
  const int64_t c = x.size(-1), n = c ? x.numel() / c : 0;
  const std::vector<A> w = load_vector<A>(weight);
  const T* xs = static_cast<const T*>(x.data_ptr());
  const T* gs = static_cast<const T*>(dy.data_ptr());
  const T* dsum_p = dsum_ptr<T>(dsum);
  T* ds = static_cast<T*>(dx.data_ptr());
  const A* ms = static_cast<const A*>(mean.data_ptr());
  const A* rs = static_cast<const A*>(rstd.data_ptr());
  A* dw = dweight.defined() ? static_cast<A*>(dweight.data_ptr()) : nullptr;
  A* db = dbias.defined() ? static_cast<A*>(dbias.data_ptr()) : nullptr;
  const A* wp = w.data();
  const bool has_w = !w.empty();
  rows_with_column_sums<A>(n, c, dw, db, [&](int64_t r, A* pdw, A* pdb) {
    const T* xr = xs + r * c;
    const T* gr = gs + r * c;
    T* dr = ds + r * c;
    const A mu = ms[r], s = rs[r];
    A sum_g = 0, sum_gx = 0;  // Σ g, Σ g·xhat with g = w·dy
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t i = 0; i < c; ++i) {
      const A g = has_w ? wp[i] * load(gr[i]) : load(gr[i]);
      sum_g += g;
      sum_gx += g * (load(xr[i]) - mu) * s;
    }
    const A mg = sum_g / A(c), mgx = sum_gx / A(c);
#pragma omp simd
    for (int64_t i = 0; i < c; ++i) {
      const A g = has_w ? wp[i] * load(gr[i]) : load(gr[i]);
      const A xh = (load(xr[i]) - mu) * s;
      dr[i] = store<T>(s * (g - mg - xh * mgx));
    }
    add_dsum_row(dsum_p, r, c, dr);
    if (pdw) {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) pdw[i] += load(gr[i]) * (load(xr[i]) - mu) * s;
    }
    if (pdb) {
#pragma omp simd
      for (int64_t i = 0; i < c; ++i) pdb[i] += load(gr[i]);
    }
  });
}

}  // namespace

void CpuBackend::do_rms_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,
                                     const Tensor& y, const Tensor& sum, const Tensor& rstd) {
  dispatch_float(x.dtype(), "rms_norm", [&](auto t0) {
    using T = decltype(t0);
    rms_forward<T>(x, residual, weight, eps, y, sum, rstd);
  });
}

void CpuBackend::do_rms_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dy,
                                      const Tensor& dsum, const Tensor& dx, const Tensor& dweight) {
  dispatch_float(x.dtype(), "rms_norm_backward", [&](auto t0) {
    using T = decltype(t0);
    rms_backward<T>(x, weight, rstd, dy, dsum, dx, dweight);
  });
}

void CpuBackend::do_layer_norm_forward(const Tensor& x, const Tensor& residual, const Tensor& weight,
                                       const Tensor& bias, double eps, const Tensor& y, const Tensor& sum,
                                       const Tensor& mean, const Tensor& rstd) {
  dispatch_float(x.dtype(), "layer_norm", [&](auto t0) {
    using T = decltype(t0);
    ln_forward<T>(x, residual, weight, bias, eps, y, sum, mean, rstd);
  });
}

void CpuBackend::do_layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                                        const Tensor& dy, const Tensor& dsum, const Tensor& dx, const Tensor& dweight,
                                        const Tensor& dbias) {
  dispatch_float(x.dtype(), "layer_norm_backward", [&](auto t0) {
    using T = decltype(t0);
    ln_backward<T>(x, weight, mean, rstd, dy, dsum, dx, dweight, dbias);
  });
}

}  // namespace lmforge
