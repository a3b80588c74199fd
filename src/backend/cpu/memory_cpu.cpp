// CPU kernels that move and create data: strided copy with dtype conversion, fill, arange,
// random fills (Philox, element-indexed: identical for any thread count and on the GPU).
#include <cstring>
#include <memory>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_types.h"
#include "backend/cpu/strided_loop.h"
#include "core/random_kernels.h"

namespace lmforge {
using namespace cpu;

void CpuBackend::do_copy(const Tensor& src, const Tensor& dst) {
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    if (src.data_ptr() != dst.data_ptr()) {
      const int64_t nbytes = static_cast<int64_t>(src.nbytes());
      char* d = static_cast<char*>(dst.data_ptr());
      const char* s = static_cast<const char*>(src.data_ptr());
      parallel_for(nbytes, 1 << 20, [&](int64_t b, int64_t e) { std::memcpy(d + b, s + b, e - b); });
    }
    return;
  }
  dispatch_dtype(src.dtype(), [&](auto s0) {
    using S = decltype(s0);
    dispatch_dtype(dst.dtype(), [&](auto d0) {
      using D = decltype(d0);
      const S* s = static_cast<const S*>(src.data_ptr());
      D* d = static_cast<D*>(dst.data_ptr());
      for_each_row<2>(dst.shape(), {src.strides(), dst.strides()},
                      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                        const S* sp = s + off[0];
                        D* dp = d + off[1];
                        if constexpr (std::is_same_v<S, D>) {
                          for (int64_t i = 0; i < n; ++i) dp[i * st[1]] = sp[i * st[0]];
                        } else if constexpr (std::is_same_v<S, bool>) {
                          for (int64_t i = 0; i < n; ++i) dp[i * st[1]] = store<D>(sp[i * st[0]] ? 1.0 : 0.0);
                        } else {
                          for (int64_t i = 0; i < n; ++i) dp[i * st[1]] = store<D>(load(sp[i * st[0]]));
                        }
                      });
    });
  });
}

namespace {
// Host memory is read at once: the values are there when the read is asked for.
class ReadDone final : public PendingRead {
 public:
  explicit ReadDone(std::vector<unsigned char> bytes) : bytes_(std::move(bytes)) {}
  const std::vector<unsigned char>& wait() override { return bytes_; }

 private:
  std::vector<unsigned char> bytes_;
};
}  // namespace

std::unique_ptr<PendingRead> CpuBackend::do_read_async(const Tensor& src) {
  const auto* p = static_cast<const unsigned char*>(src.data_ptr());
  return std::make_unique<ReadDone>(std::vector<unsigned char>(p, p + src.nbytes()));
}

void CpuBackend::do_fill(const Tensor& dst, double value) {
  dispatch_dtype(dst.dtype(), [&](auto t0) {
    using T = decltype(t0);
    const T v = store<T>(value);
    T* d = static_cast<T*>(dst.data_ptr());
    for_each_row<1>(dst.shape(), {dst.strides()},
                    [&](const std::array<int64_t, 1>& off, int64_t n, const std::array<int64_t, 1>& st) {
                      T* p = d + off[0];
                      if (st[0] == 1) std::fill(p, p + n, v);
                      else for (int64_t i = 0; i < n; ++i) p[i * st[0]] = v;
                    });
  });
}

void CpuBackend::do_arange(const Tensor& dst, double start, double step) {
  dispatch_dtype(dst.dtype(), [&](auto t0) {
    using T = decltype(t0);
    T* d = static_cast<T*>(dst.data_ptr());
    parallel_for(dst.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) d[i] = store<T>(start + step * static_cast<double>(i));
    });
  });
}

void CpuBackend::do_random(const Tensor& dst, const RandomArgs& a) {
  const int64_t n = dst.numel();
  using K = RandomArgs::Kind;
  if (a.kind == K::RandInt) {
    fill_randint(dst.data<int64_t>(), n, a.seed, a.offset, static_cast<int64_t>(a.a), static_cast<int64_t>(a.b));
    return;
  }
  if (a.kind == K::Bernoulli) {
    if (dst.dtype() == DType::Bool || dst.dtype() == DType::U8) {
      fill_bernoulli(static_cast<uint8_t*>(dst.data_ptr()), n, a.seed, a.offset, a.a);
      return;
    }
    std::vector<uint8_t> tmp(n);
    fill_bernoulli(tmp.data(), n, a.seed, a.offset, a.a);
    Tensor t = Tensor::from_external(tmp.data(), dst.shape(), DType::U8, Device::cpu(), nullptr);
    copy(t, dst);
    return;
  }
  auto generate_f64 = [&](double* p) {
    switch (a.kind) {
      case K::Uniform: fill_uniform(p, n, a.seed, a.offset, a.a, a.b); break;
      case K::Normal: fill_normal(p, n, a.seed, a.offset, a.a, a.b); break;
      case K::TruncatedNormal: fill_truncated_normal(p, n, a.seed, a.offset, a.a, a.b, a.lo, a.hi); break;
      default: LF_ASSERT(false);
    }
  };
  auto generate_f32 = [&](float* p) {
    switch (a.kind) {
      case K::Uniform: fill_uniform(p, n, a.seed, a.offset, float(a.a), float(a.b)); break;
      case K::Normal: fill_normal(p, n, a.seed, a.offset, float(a.a), float(a.b)); break;
      case K::TruncatedNormal:
        fill_truncated_normal(p, n, a.seed, a.offset, float(a.a), float(a.b), float(a.lo), float(a.hi));
        break;
      default: LF_ASSERT(false);
    }
  };
  if (dst.dtype() == DType::F64) return generate_f64(dst.data<double>());
  if (dst.dtype() == DType::F32) return generate_f32(dst.data<float>());
  Tensor tmp = Tensor::empty(dst.shape(), DType::F32);
  generate_f32(tmp.data<float>());
  copy(tmp, dst);
}

}  // namespace lmforge
