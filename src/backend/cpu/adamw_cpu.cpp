// CPU AdamW step (decoupled weight decay, Loshchilov & Hutter), in place, as torch.optim.AdamW:
//
//   p -= lr·wd·p                                   (decoupled decay, before the moment update)
//   g  = grad·grad_scale
//   m  = b1·m + (1-b1)·g;   v = b2·v + (1-b2)·g²
//   p -= lr·(m / bc1) / (sqrt(v / bc2) + eps)      bc = 1 - beta^step (passed in)
//
//   param [n] f32 or f64 (bf16/f16 also accepted: updated in f32 and rounded once), grad [n] of the
//   param's dtype or f32, exp_avg / exp_avg_sq [n] f32 (f64 for f64 params); all contiguous.
//   Elementwise, so the result does not depend on the thread count.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

template <class T, class G>
void adamw_impl(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamWArgs& a) {
  using A = compute_t<T>;
  T* p = static_cast<T*>(param.data_ptr());
  const G* g = static_cast<const G*>(grad.data_ptr());
  A* m = static_cast<A*>(exp_avg.data_ptr());
  A* v = static_cast<A*>(exp_avg_sq.data_ptr());
  const A decay = A(1.0 - a.lr * a.weight_decay);
  const A b1 = A(a.beta1), b2 = A(a.beta2), c1 = A(1.0 - a.beta1), c2 = A(1.0 - a.beta2);
  const A step = A(a.lr / a.bias_correction1), inv_bc2 = A(1.0 / a.bias_correction2), eps = A(a.eps);
  const A scale = A(a.grad_scale);
  parallel_for(param.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) {
      const A gi = A(load(g[i])) * scale;
      const A mi = b1 * m[i] + c1 * gi;
      const A vi = b2 * v[i] + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const A pi = A(load(p[i])) * decay;
      p[i] = store<T>(pi - step * mi / (std::sqrt(vi * inv_bc2) + eps));
    }
  });
}

}  // namespace

void CpuBackend::adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                            const AdamWArgs& args) {
  LF_ASSERT(param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous());
  LF_ASSERT(grad.numel() == param.numel() && exp_avg.numel() == param.numel() &&
            exp_avg_sq.numel() == param.numel());
  LF_CHECK(param.dtype() == DType::F64 || param.dtype() == DType::F32 || param.dtype() == DType::BF16 ||
               param.dtype() == DType::F16,
           "adamw_step: parameter dtype {} is not supported (expected f32, f64, bf16 or f16)",
           dtype_name(param.dtype()));
  dispatch_float(param.dtype(), "adamw_step", [&](auto t0) {
    using T = decltype(t0);
    check_stat<T>(exp_avg, "adamw exp_avg");
    check_stat<T>(exp_avg_sq, "adamw exp_avg_sq");
    if (grad.dtype() == param.dtype()) {
      adamw_impl<T, T>(param, grad, exp_avg, exp_avg_sq, args);
    } else {
      LF_CHECK(grad.dtype() == DType::F32, "adamw_step: gradient dtype {} does not match parameter dtype {} "
               "(expected {} or f32)", dtype_name(grad.dtype()), dtype_name(param.dtype()),
               dtype_name(param.dtype()));
      adamw_impl<T, float>(param, grad, exp_avg, exp_avg_sq, args);
    }
  });
}

}  // namespace lmforge
