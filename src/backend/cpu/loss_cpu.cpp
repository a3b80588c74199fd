// CPU cross-entropy, forward and backward, fused with label smoothing and z-loss.
//
//   N = rows (tokens), V = vocab. logits [N, V] contiguous, targets [N] i64/i32.
//   Forward, one read of each row: running max and rescaled sum of exponentials (online softmax,
//   in chunks that stay in L1), plus the sum of the logits when label smoothing needs it:
//     lse  = log Σ_i e^{x_i}
//     loss = -(1-eps)·(x_t - lse) - eps/V·(Σ_i x_i - V·lse) + z·lse²
//   Backward, from the saved lse (no second reduction):
//     dlogits_i = dloss·(p_i·(1 + 2·z·lse) - eps/V - (1-eps)·[i == t]),  p_i = e^{x_i - lse}
//   Rows whose target is ignore_index get loss 0, lse 0 and a zero gradient.
//   loss, lse and dloss are f32 (f64 for f64 logits); rows run in parallel, each on one thread in
//   a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

constexpr int64_t kChunk = 2048;  // elements of a row converted and reduced at a time

// Checks every target before any parallel work (an exception must not leave an OpenMP region).
template <class I>
void check_targets(const I* tg, int64_t n, int64_t v, int64_t ignore_index, const char* op) {
  for (int64_t r = 0; r < n; ++r) {
    const int64_t t = static_cast<int64_t>(tg[r]);
    if (t == ignore_index) continue;
    LF_CHECK(t >= 0 && t < v, "{}: target {} at row {} is out of range for {} classes (expected 0..{} or "
             "ignore_index {})", op, t, r, v, v - 1, ignore_index);
  }
}

template <class T, class I>
void ce_forward(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args, const Tensor& loss,
                const Tensor& lse) {
  using A = compute_t<T>;
  const int64_t n = logits.size(0), v = logits.size(1);
  const T* xs = static_cast<const T*>(logits.data_ptr());
  const I* tg = static_cast<const I*>(targets.data_ptr());
  check_targets(tg, n, v, args.ignore_index, "cross_entropy");
  A* ls = static_cast<A*>(loss.data_ptr());
  A* es = static_cast<A*>(lse.data_ptr());
  const A eps = A(args.label_smoothing), z = A(args.z_loss);
  const bool smooth = args.label_smoothing != 0;
  parallel_for(n, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(v, 1)), [&](int64_t b, int64_t e) {
    A buf[kChunk];
    for (int64_t r = b; r < e; ++r) {
      const int64_t t = static_cast<int64_t>(tg[r]);
      if (t == args.ignore_index) {
        ls[r] = 0;
        es[r] = 0;
        continue;
      }
      const T* xr = xs + r * v;
      A m = -std::numeric_limits<A>::infinity(), s = 0, sum_x = 0;
      for (int64_t c0 = 0; c0 < v; c0 += kChunk) {
        const int64_t w = std::min(kChunk, v - c0);
        A cm = -std::numeric_limits<A>::infinity(), cx = 0;
#pragma omp simd reduction(max : cm) reduction(+ : cx)
        for (int64_t i = 0; i < w; ++i) {
          const A x = load(xr[c0 + i]);
          buf[i] = x;
          cm = std::max(cm, x);
          cx += x;
        }
        sum_x += cx;
        if (cm == -std::numeric_limits<A>::infinity()) continue;  // nothing to add
        if (cm > m) {
          s *= exp_fast(m - cm);  // m = -inf gives 0
          m = cm;
        }
        A cs = 0;
#pragma omp simd reduction(+ : cs)
        for (int64_t i = 0; i < w; ++i) cs += exp_fast(buf[i] - m);
        s += cs;
      }
      const A l = m + std::log(s);
      const A logp_t = load(xr[t]) - l;
      A out = -(A(1) - eps) * logp_t + z * l * l;
      if (smooth) out -= eps / A(v) * (sum_x - A(v) * l);
      ls[r] = out;
      es[r] = l;
    }
  });
}

template <class T, class I>
void ce_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse, const Tensor& dloss,
                 const CrossEntropyArgs& args, const Tensor& dlogits) {
  using A = compute_t<T>;
  const int64_t n = logits.size(0), v = logits.size(1);
  const T* xs = static_cast<const T*>(logits.data_ptr());
  const I* tg = static_cast<const I*>(targets.data_ptr());
  check_targets(tg, n, v, args.ignore_index, "cross_entropy backward");
  const A* es = static_cast<const A*>(lse.data_ptr());
  const A* gs = static_cast<const A*>(dloss.data_ptr());
  T* ds = static_cast<T*>(dlogits.data_ptr());
  const A eps = A(args.label_smoothing), z = A(args.z_loss);
  parallel_for(n, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(v, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t t = static_cast<int64_t>(tg[r]);
      const T* xr = xs + r * v;
      T* dr = ds + r * v;
      if (t == args.ignore_index) {
        const T zero = store<T>(A(0));
        for (int64_t i = 0; i < v; ++i) dr[i] = zero;
        continue;
      }
      const A g = gs[r], l = es[r];
      const A gp = g * (A(1) + A(2) * z * l), off = g * eps / A(v);
      const A xt = load(xr[t]);  // read first: dlogits may overwrite the logits in place
#pragma omp simd
      for (int64_t i = 0; i < v; ++i) dr[i] = store<T>(gp * exp_fast(load(xr[i]) - l) - off);
      dr[t] = store<T>(gp * exp_fast(xt - l) - off - g * (A(1) - eps));  // rounded once
    }
  });
}

}  // namespace

void CpuBackend::do_cross_entropy_forward(const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,
                                          const Tensor& loss, const Tensor& lse) {
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto t0) {
    using T = decltype(t0);
    dispatch_index(targets.dtype(), "cross_entropy targets", [&](auto i0) {
      ce_forward<T, decltype(i0)>(logits, targets, args, loss, lse);
    });
  });
}

void CpuBackend::do_cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                                           const Tensor& dloss, const CrossEntropyArgs& args, const Tensor& dlogits) {
  dispatch_float(logits.dtype(), "cross_entropy_backward", [&](auto t0) {
    using T = decltype(t0);
    dispatch_index(targets.dtype(), "cross_entropy targets", [&](auto i0) {
      ce_backward<T, decltype(i0)>(logits, targets, lse, dloss, args, dlogits);
    });
  });
}

}  // namespace lmforge
