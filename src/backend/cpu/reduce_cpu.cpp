// CPU reductions and row-wise kernels: sum/max/min/sum-of-squares over the middle of
// [outer, r, inner], argmax, cumsum, softmax / log-softmax (forward and backward), logsumexp,
// top-k and sort. Each output is produced by one thread in a fixed order; a single long
// reduction is split into fixed-size blocks whose partials are combined in order, so results do
// not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_types.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

constexpr int64_t kReduceBlock = 4096;

template <class A>
struct Reducer {
  ReduceOp op;
  A init() const {
    switch (op) {
      case ReduceOp::Max: return -std::numeric_limits<A>::infinity();
      case ReduceOp::Min: return std::numeric_limits<A>::infinity();
      default: return A(0);
    }
  }
  A combine(A acc, A v) const {
    switch (op) {
      case ReduceOp::Sum: return acc + v;
      case ReduceOp::SumSquares: return acc + v * v;
      case ReduceOp::Max: return (std::isnan(v) || v > acc) ? v : acc;
      case ReduceOp::Min: return (std::isnan(v) || v < acc) ? v : acc;
    }
    return acc;
  }
  A merge(A a, A b) const {  // partial results
    switch (op) {
      case ReduceOp::Sum: case ReduceOp::SumSquares: return a + b;
      default: return combine(a, b);
    }
  }
};

// The whole of xs[0, r) in fixed blocks whose partials are merged in block order.
template <class T, class A>
A reduce_all(const T* xs, int64_t r, const Reducer<A>& red) {
  const int64_t nb = (r + kReduceBlock - 1) / kReduceBlock;
  std::vector<A> partial(std::max<int64_t>(nb, 1), red.init());
  parallel_for(nb, 4, [&](int64_t b, int64_t e) {
    for (int64_t blk = b; blk < e; ++blk) {
      A acc = red.init();
      const int64_t lo = blk * kReduceBlock, hi = std::min(r, lo + kReduceBlock);
      for (int64_t i = lo; i < hi; ++i) acc = red.combine(acc, load(xs[i]));
      partial[blk] = acc;
    }
  });
  A acc = red.init();
  for (int64_t blk = 0; blk < nb; ++blk) acc = blk == 0 ? partial[0] : red.merge(acc, partial[blk]);
  return acc;
}

}  // namespace

void CpuBackend::do_reduce(ReduceOp op, const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) {
  dispatch_dtype(x.dtype(), [&](auto t0) {
    using T = decltype(t0);
    if constexpr (std::is_same_v<T, bool>) {
      throw Error("reduce: bool tensors are not supported; cast to a number type first");
    } else {
      // Accumulate in f64 for f64 and integers, f32 otherwise.
      using A = compute_t<T>;
      const T* xs = static_cast<const T*>(x.data_ptr());
      Reducer<A> red{op};
      auto write = [&](int64_t i, A v) {
        dispatch_dtype(out.dtype(), [&](auto o0) {
          using O = decltype(o0);
          static_cast<O*>(out.data_ptr())[i] = store<O>(v);
        });
      };
      if (outer * inner == 1) {
        write(0, reduce_all(xs, r, red));
        return;
      }
      if (inner == 1) {
        parallel_for(outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(r, 1)), [&](int64_t b, int64_t e) {
          for (int64_t o = b; o < e; ++o) {
            const T* row = xs + o * r;
            A acc = red.init();
            for (int64_t i = 0; i < r; ++i) acc = red.combine(acc, load(row[i]));
            write(o, acc);
          }
        });
        return;
      }
      // Reduce over the middle: accumulate whole rows of `inner` (vectorises over inner).
      parallel_for(outer * ((inner + 255) / 256), 2, [&](int64_t b, int64_t e) {
        std::vector<A> acc(256);
        const int64_t n_tiles = (inner + 255) / 256;
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / n_tiles, lo = (t % n_tiles) * 256, w = std::min<int64_t>(256, inner - lo);
          std::fill(acc.begin(), acc.begin() + w, red.init());
          for (int64_t i = 0; i < r; ++i) {
            const T* row = xs + (o * r + i) * inner + lo;
            for (int64_t j = 0; j < w; ++j) acc[j] = red.combine(acc[j], load(row[j]));
          }
          for (int64_t j = 0; j < w; ++j) write(o * inner + lo + j, acc[j]);
        }
      });
    }
  });
}

// Each tensor as reduce(SumSquares) over all of it (f32 blocks, merged in order), the totals added
// in f64 in list order: the same value as summing sum_of_squares() of each tensor.
void CpuBackend::do_multi_sum_of_squares(const std::vector<Tensor>& tensors, const Tensor& out) {
  double total = 0;
  for (const Tensor& t : tensors) {
    if (t.numel() == 0) continue;
    dispatch_float(t.dtype(), "multi_sum_of_squares", [&](auto t0) {
      using T = decltype(t0);
      using A = compute_t<T>;
      total += double(reduce_all(static_cast<const T*>(t.data_ptr()), t.numel(), Reducer<A>{ReduceOp::SumSquares}));
    });
  }
  *out.data<double>() = total;
}

void CpuBackend::do_argmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) {
  dispatch_float(x.dtype(), "argmax", [&](auto t0) {
    using T = decltype(t0);
    const T* xs = static_cast<const T*>(x.data_ptr());
    int64_t* os = out.data<int64_t>();
    parallel_for(outer * inner, 64, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / inner, j = t % inner;
        int64_t best = 0;
        auto bv = load(xs[o * r * inner + j]);
        for (int64_t i = 1; i < r; ++i) {
          auto v = load(xs[(o * r + i) * inner + j]);
          if (v > bv || (std::isnan(v) && !std::isnan(bv))) { bv = v; best = i; }
        }
        os[t] = best;
      }
    });
  });
}

void CpuBackend::do_cumsum_last(const Tensor& x, const Tensor& out) {
  const int64_t n = x.dim() == 0 ? 1 : x.size(-1), rows = n ? x.numel() / n : 0;
  dispatch_dtype(x.dtype(), [&](auto t0) {
    using T = decltype(t0);
    if constexpr (std::is_same_v<T, bool>) {
      throw Error("cumsum: bool tensors are not supported");
    } else {
      const T* xs = static_cast<const T*>(x.data_ptr());
      T* os = static_cast<T*>(out.data_ptr());
      parallel_for(rows, 16, [&](int64_t b, int64_t e) {
        for (int64_t rr = b; rr < e; ++rr) {
          compute_t<T> acc = 0;
          for (int64_t i = 0; i < n; ++i) {
            acc += load(xs[rr * n + i]);
            os[rr * n + i] = store<T>(acc);
          }
        }
      });
    }
  });
}

void CpuBackend::do_softmax_forward(const Tensor& x, const Tensor& y, bool log) {
  const int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  dispatch_float(x.dtype(), "softmax", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    const T* xs = static_cast<const T*>(x.data_ptr());
    T* ys = static_cast<T*>(y.data_ptr());
    parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
      std::vector<A> buf(n);
      for (int64_t r = b; r < e; ++r) {
        const T* xr = xs + r * n;
        T* yr = ys + r * n;
        A mx = -std::numeric_limits<A>::infinity();
        for (int64_t i = 0; i < n; ++i) { buf[i] = load(xr[i]); mx = std::max(mx, buf[i]); }
        if (mx == -std::numeric_limits<A>::infinity()) mx = 0;  // all masked: avoid inf - inf
        A s = 0;
        if (log) {
          for (int64_t i = 0; i < n; ++i) s += exp_fast(buf[i] - mx);
        } else {
          for (int64_t i = 0; i < n; ++i) s += buf[i] = exp_fast(buf[i] - mx);
        }
        if (log) {
          const A lse = mx + std::log(s);
          for (int64_t i = 0; i < n; ++i) yr[i] = store<T>(buf[i] - lse);
        } else {
          const A inv = A(1) / s;
          for (int64_t i = 0; i < n; ++i) yr[i] = store<T>(buf[i] * inv);
        }
      }
    });
  });
}

void CpuBackend::do_softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, bool log) {
  const int64_t n = y.size(-1), rows = n ? y.numel() / n : 0;
  dispatch_float(y.dtype(), "softmax_backward", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    const T* ys = static_cast<const T*>(y.data_ptr());
    const T* gs = static_cast<const T*>(dy.data_ptr());
    T* ds = static_cast<T*>(dx.data_ptr());
    parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* yr = ys + r * n;
        const T* gr = gs + r * n;
        T* dr = ds + r * n;
        A dot = 0;
        if (log) {
          for (int64_t i = 0; i < n; ++i) dot += load(gr[i]);
          for (int64_t i = 0; i < n; ++i) dr[i] = store<T>(load(gr[i]) - exp_fast(load(yr[i])) * dot);
        } else {
          for (int64_t i = 0; i < n; ++i) dot += load(gr[i]) * load(yr[i]);
          for (int64_t i = 0; i < n; ++i) dr[i] = store<T>(load(yr[i]) * (load(gr[i]) - dot));
        }
      }
    });
  });
}

void CpuBackend::do_logsumexp_last(const Tensor& x, const Tensor& out) {
  const int64_t n = x.size(-1), rows = out.numel();
  dispatch_float(x.dtype(), "logsumexp", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    const T* xs = static_cast<const T*>(x.data_ptr());
    T* os = static_cast<T*>(out.data_ptr());
    parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = xs + r * n;
        A mx = -std::numeric_limits<A>::infinity();
        for (int64_t i = 0; i < n; ++i) mx = std::max(mx, load(xr[i]));
        if (!std::isfinite(mx)) { os[r] = store<T>(mx); continue; }
        A s = 0;
        for (int64_t i = 0; i < n; ++i) s += exp_fast(load(xr[i]) - mx);
        os[r] = store<T>(mx + std::log(s));
      }
    });
  });
}

namespace {
// Orders (value, index): the preferred value first, ties by lower index; NaN counts as largest.
template <class A>
struct RankOrder {
  bool descending;
  bool operator()(const std::pair<A, int64_t>& a, const std::pair<A, int64_t>& b) const {
    const bool an = std::isnan(a.first), bn = std::isnan(b.first);
    if (an || bn) {
      if (an && bn) return a.second < b.second;
      return descending ? an : bn;
    }
    if (a.first != b.first) return descending ? a.first > b.first : a.first < b.first;
    return a.second < b.second;
  }
};

template <class F>
void select_rows(const Tensor& x, const Tensor& values, const Tensor& indices, int64_t k, bool descending, F&& pick) {
  const int64_t n = x.size(-1), rows = n ? x.numel() / n : values.numel() / std::max<int64_t>(k, 1);
  dispatch_dtype(x.dtype(), [&](auto t0) {
    using T = decltype(t0);
    if constexpr (std::is_same_v<T, bool>) {
      throw Error("sort/topk: bool tensors are not supported");
    } else {
      using A = compute_t<T>;
      const T* xs = static_cast<const T*>(x.data_ptr());
      T* vs = static_cast<T*>(values.data_ptr());
      int64_t* is = indices.data<int64_t>();
      parallel_for(rows, 8, [&](int64_t b, int64_t e) {
        std::vector<std::pair<A, int64_t>> buf(n);
        for (int64_t r = b; r < e; ++r) {
          for (int64_t i = 0; i < n; ++i) buf[i] = {load(xs[r * n + i]), i};
          pick(buf, RankOrder<A>{descending});
          for (int64_t i = 0; i < k; ++i) {
            vs[r * k + i] = xs[r * n + buf[i].second];
            is[r * k + i] = buf[i].second;
          }
        }
      });
    }
  });
}
}  // namespace

void CpuBackend::do_topk_last(const Tensor& x, int64_t k, bool largest, const Tensor& values, const Tensor& indices) {
  select_rows(x, values, indices, k, largest, [k](auto& buf, auto order) {
    std::partial_sort(buf.begin(), buf.begin() + k, buf.end(), order);
  });
}

void CpuBackend::do_sort_last(const Tensor& x, bool descending, const Tensor& values, const Tensor& indices) {
  select_rows(x, values, indices, x.dim() ? x.size(-1) : 1, descending,
              [](auto& buf, auto order) { std::sort(buf.begin(), buf.end(), order); });
}

}  // namespace lmforge
