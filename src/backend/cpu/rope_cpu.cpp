// CPU rotary position embedding (RoPE), forward and inverse (= backward).
//
//   x, out [B, T, H, D] with the last dim contiguous (other strides free; out may alias x).
//   Pair i (0 <= i < D/2) is rotated by angle = pos · theta^(-2i/D), pos = position_offset + t:
//     half-split (HF Llama's rotate_half): (x[i], x[i + D/2])
//     interleaved (GPT-J / Meta Llama):    (x[2i], x[2i + 1])
//     (a, b) -> (a·cos - b·sin, b·cos + a·sin); inverse uses -angle, which is the transpose of the
//   rotation and so the backward.
//   cos/sin are computed in f64 (so angles at large positions keep full accuracy), rounded to the
//   compute type and cached in a [positions, D/2] table per (theta, D); see rope_table.
#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

// cos/sin of pos·theta^(-2i/D) for pos in [0, n_pos), i < D/2, computed in f64 and rounded to A.
template <class A>
struct RopeTable {
  double theta = 0;
  int64_t d = 0, n_pos = 0;
  std::vector<A> cos_t, sin_t;  // [n_pos, D/2]
};

// Tables are cached per (theta, D) and grown geometrically, so a training step (every layer,
// forward and backward, q and k) computes them once and KV-cache decoding, whose positions grow
// by one per step, recomputes them O(log n) times. Readers hold a shared_ptr to an immutable table.
template <class A>
std::shared_ptr<const RopeTable<A>> rope_table(double theta, int64_t d, int64_t n_pos) {
  static std::mutex mu;
  static std::vector<std::shared_ptr<const RopeTable<A>>> cache;  // a few (theta, D) pairs
  constexpr size_t kMaxEntries = 4;
  std::lock_guard<std::mutex> lock(mu);
  auto it = std::find_if(cache.begin(), cache.end(), [&](const auto& t) { return t->theta == theta && t->d == d; });
  if (it != cache.end() && (*it)->n_pos >= n_pos) return *it;
  const int64_t half = d / 2;
  const int64_t grown = std::max<int64_t>(n_pos, it != cache.end() ? 2 * (*it)->n_pos : 0);
  auto table = std::make_shared<RopeTable<A>>();
  table->theta = theta;
  table->d = d;
  table->n_pos = std::max<int64_t>(grown, 1);
  table->cos_t.resize(table->n_pos * half);
  table->sin_t.resize(table->n_pos * half);
  std::vector<double> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * double(i) / double(d));
  parallel_for(table->n_pos, std::max<int64_t>(1, 4096 / std::max<int64_t>(half, 1)), [&](int64_t b, int64_t e) {
    for (int64_t pos = b; pos < e; ++pos)
      for (int64_t i = 0; i < half; ++i) {
        const double ang = double(pos) * inv_freq[i];
        table->cos_t[pos * half + i] = A(std::cos(ang));
        table->sin_t[pos * half + i] = A(std::sin(ang));
      }
  });
  if (it != cache.end()) {
    *it = table;
  } else {
    if (cache.size() == kMaxEntries) cache.erase(cache.begin());
    cache.push_back(table);
  }
  return table;
}

// positions (i32 [B] or null): row b's step t at positions[b] + t instead of position_offset + t.
template <class T>
void rope_impl(const Tensor& x, const Tensor& out, double theta, int64_t position_offset, bool interleaved,
               bool inverse, const int32_t* positions) {
  using A = compute_t<T>;
  const int64_t nb = x.size(0), nt = x.size(1), nh = x.size(2), d = x.size(3), half = d / 2;
  int64_t first_max = position_offset;
  if (positions)
    for (int64_t b = 0; b < nb; ++b) {
      LF_CHECK(positions[b] >= 0, "rope: positions[{}] = {} is negative", b, positions[b]);
      first_max = b == 0 ? positions[b] : std::max<int64_t>(first_max, positions[b]);
    }
  const auto table = rope_table<A>(theta, d, first_max + nt);
  const A sign = inverse ? A(-1) : A(1);
  const T* xs = static_cast<const T*>(x.data_ptr());
  T* os = static_cast<T*>(out.data_ptr());
  const int64_t xs0 = x.stride(0), xs1 = x.stride(1), xs2 = x.stride(2);
  const int64_t os0 = out.stride(0), os1 = out.stride(1), os2 = out.stride(2);
  const int64_t rows = nb * nt * nh;
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(d, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t h = r % nh, t = (r / nh) % nt, bi = r / (nh * nt);
      const T* xp = xs + bi * xs0 + t * xs1 + h * xs2;
      T* op = os + bi * os0 + t * os1 + h * os2;
      const int64_t pos = (positions ? int64_t(positions[bi]) : position_offset) + t;
      const A* c = table->cos_t.data() + pos * half;
      const A* s = table->sin_t.data() + pos * half;
      if (interleaved) {
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const A a = load(xp[2 * i]), bb = load(xp[2 * i + 1]), si = sign * s[i];
          op[2 * i] = store<T>(a * c[i] - bb * si);
          op[2 * i + 1] = store<T>(bb * c[i] + a * si);
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const A a = load(xp[i]), bb = load(xp[i + half]), si = sign * s[i];
          op[i] = store<T>(a * c[i] - bb * si);
          op[i + half] = store<T>(bb * c[i] + a * si);
        }
      }
    }
  });
}

}  // namespace

void CpuBackend::do_rope(const Tensor& x, const Tensor& out, double theta, int64_t position_offset, bool interleaved,
                         bool inverse, const Tensor& positions) {
  if (x.numel() == 0) return;
  const int32_t* pos = positions.defined() ? static_cast<const int32_t*>(positions.data_ptr()) : nullptr;
  dispatch_float(x.dtype(), "rope", [&](auto t0) {
    rope_impl<decltype(t0)>(x, out, theta, position_offset, interleaved, inverse, pos);
  });
}

}  // namespace lmforge
