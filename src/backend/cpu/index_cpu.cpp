// CPU indexing kernels: index_select / index_add (embedding forward and backward), gather /
// scatter_add. Accumulating kernels parallelise only over independent destinations (the
// `outer`×`inner` positions or the channel dimension), each summed in index order: deterministic.
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_types.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {
template <class I>
inline int64_t checked_index(const I* idx, int64_t pos, int64_t n, const char* op) {
  const int64_t v = static_cast<int64_t>(idx[pos]);
  if (v < 0 || v >= n)
    throw Error(fmt::format("{}: index {} at position {} is out of range for a dimension of size {}", op, v, pos, n));
  return v;
}
}  // namespace

void CpuBackend::do_index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n,
                                 int64_t inner) {
  const int64_t m = index.numel();
  dispatch_index(index.dtype(), "index_select", [&](auto i0) {
    using I = decltype(i0);
    const I* idx = static_cast<const I*>(index.data_ptr());
    for (int64_t j = 0; j < m; ++j) checked_index(idx, j, n, "index_select");
    const size_t es = x.element_size();
    const char* xs = static_cast<const char*>(x.data_ptr());
    char* os = static_cast<char*>(out.data_ptr());
    parallel_for(outer * m, std::max<int64_t>(1, 8192 / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / m, j = t % m;
        std::memcpy(os + (o * m + j) * inner * es, xs + (o * n + idx[j]) * inner * es, inner * es);
      }
    });
  });
}

void CpuBackend::do_index_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n,
                              int64_t inner) {
  const int64_t m = index.numel();
  dispatch_index(index.dtype(), "index_add", [&](auto i0) {
    using I = decltype(i0);
    const I* idx = static_cast<const I*>(index.data_ptr());
    for (int64_t j = 0; j < m; ++j) checked_index(idx, j, n, "index_add");
    dispatch_float(dst.dtype(), "index_add", [&](auto t0) {
      using T = decltype(t0);
      T* d = static_cast<T*>(dst.data_ptr());
      const T* s = static_cast<const T*>(src.data_ptr());
      // Threads own disjoint column ranges of every destination row; rows are visited in index order.
      const int64_t col_block = 64, n_cb = (inner + col_block - 1) / col_block;
      parallel_for(outer * n_cb, 1, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / n_cb, c0 = (t % n_cb) * col_block, c1 = std::min(inner, c0 + col_block);
          for (int64_t j = 0; j < m; ++j) {
            T* drow = d + (o * n + idx[j]) * inner;
            const T* srow = s + (o * m + j) * inner;
            for (int64_t c = c0; c < c1; ++c) drow[c] = store<T>(load(drow[c]) + load(srow[c]));
          }
        }
      });
    });
  });
}

void CpuBackend::do_gather(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n,
                           int64_t inner) {
  const int64_t m = outer * inner != 0 ? index.numel() / (outer * inner) : 0;
  dispatch_index(index.dtype(), "gather", [&](auto i0) {
    using I = decltype(i0);
    const I* idx = static_cast<const I*>(index.data_ptr());
    dispatch_dtype(x.dtype(), [&](auto t0) {
      using T = decltype(t0);
      const T* xs = static_cast<const T*>(x.data_ptr());
      T* os = static_cast<T*>(out.data_ptr());
      parallel_for(outer * m * inner, kParallelGrain, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / (m * inner), i = t % inner;
          os[t] = xs[(o * n + checked_index(idx, t, n, "gather")) * inner + i];
        }
      });
    });
  });
}

void CpuBackend::do_scatter_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n,
                                int64_t inner) {
  const int64_t m = outer * inner != 0 ? index.numel() / (outer * inner) : 0;
  dispatch_index(index.dtype(), "scatter_add", [&](auto i0) {
    using I = decltype(i0);
    const I* idx = static_cast<const I*>(index.data_ptr());
    for (int64_t t = 0; t < index.numel(); ++t) checked_index(idx, t, n, "scatter_add");
    dispatch_float(dst.dtype(), "scatter_add", [&](auto t0) {
      using T = decltype(t0);
      T* d = static_cast<T*>(dst.data_ptr());
      const T* s = static_cast<const T*>(src.data_ptr());
      // Each (o, i) column is independent; within it, j runs in increasing order.
      parallel_for(outer * inner, 64, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / inner, i = t % inner;
          for (int64_t j = 0; j < m; ++j) {
            const int64_t p = (o * m + j) * inner + i;
            T& slot = d[(o * n + static_cast<int64_t>(idx[p])) * inner + i];
            slot = store<T>(load(slot) + load(s[p]));
          }
        }
      });
    });
  });
}

void CpuBackend::do_copy_rows_at(const Tensor& src, const Tensor& dst, const Tensor& positions) {
  const int64_t nb = src.size(0), nt = src.size(1), ns = dst.size(1);
  const int64_t row_bytes = int64_t(src.element_size()) * (nt ? src.numel() / (nb * nt) : 0);
  if (nb * nt == 0 || row_bytes == 0) return;
  const int32_t* pos = static_cast<const int32_t*>(positions.data_ptr());
  const auto* s = static_cast<const char*>(src.data_ptr());
  auto* d = static_cast<char*>(dst.data_ptr());
  const int64_t es = int64_t(src.element_size());
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t t = 0; t < nt; ++t) {
      const int64_t row = int64_t(pos[b]) + t;
      if (row < 0 || row >= ns) continue;
      std::memcpy(d + (b * dst.stride(0) + row * dst.stride(1)) * es, s + (b * src.stride(0) + t * src.stride(1)) * es,
                  size_t(row_bytes));
    }
}

}  // namespace lmforge
