// CPU rotary position embedding (RoPE), forward and inverse (= backward).
//
//   x, out [B, T, H, D] with the last dim contiguous (other strides free; out may alias x).
//   Pair i (0 <= i < D/2) is rotated by angle = pos · theta^(-2i/D), pos = position_offset + t:
//     half-split (HF Llama's rotate_half): (x[i], x[i + D/2])
//     interleaved (GPT-J / Meta Llama):    (x[2i], x[2i + 1])
//     (a, b) -> (a·cos - b·sin, b·cos + a·sin); inverse uses -angle, which is the transpose of the
//   rotation and so the backward.
//   cos/sin are computed in f64 once per call into a [T, D/2] table (rounded to the compute type),
//   so angles at large positions keep full accuracy.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

template <class T>
void rope_impl(const Tensor& x, const Tensor& out, double theta, int64_t position_offset, bool interleaved,
               bool inverse) {
  using A = compute_t<T>;
  const int64_t nb = x.size(0), nt = x.size(1), nh = x.size(2), d = x.size(3), half = d / 2;
  std::vector<double> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * double(i) / double(d));
  std::vector<A> cos_t(nt * half), sin_t(nt * half);
  const double sign = inverse ? -1.0 : 1.0;
  parallel_for(nt, std::max<int64_t>(1, 4096 / std::max<int64_t>(half, 1)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const double pos = double(position_offset + t);
      for (int64_t i = 0; i < half; ++i) {
        const double ang = pos * inv_freq[i];
        cos_t[t * half + i] = A(std::cos(ang));
        sin_t[t * half + i] = A(sign * std::sin(ang));
      }
    }
  });
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
      const A* c = cos_t.data() + t * half;
      const A* s = sin_t.data() + t * half;
      if (interleaved) {
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const A a = load(xp[2 * i]), bb = load(xp[2 * i + 1]);
          op[2 * i] = store<T>(a * c[i] - bb * s[i]);
          op[2 * i + 1] = store<T>(bb * c[i] + a * s[i]);
        }
      } else {
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const A a = load(xp[i]), bb = load(xp[i + half]);
          op[i] = store<T>(a * c[i] - bb * s[i]);
          op[i + half] = store<T>(bb * c[i] + a * s[i]);
        }
      }
    }
  });
}

}  // namespace

void CpuBackend::rope(const Tensor& x, const Tensor& out, double theta, int64_t position_offset, bool interleaved,
                      bool inverse) {
  LF_ASSERT(x.dim() == 4 && out.shape() == x.shape() && out.dtype() == x.dtype());
  LF_ASSERT(x.size(3) % 2 == 0 && (x.size(3) <= 1 || (x.stride(3) == 1 && out.stride(3) == 1)));
  if (x.numel() == 0) return;
  dispatch_float(x.dtype(), "rope", [&](auto t0) {
    rope_impl<decltype(t0)>(x, out, theta, position_offset, interleaved, inverse);
  });
}

}  // namespace lmforge
