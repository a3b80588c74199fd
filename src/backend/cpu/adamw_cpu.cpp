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
//
// adamw_multi_step runs the same loop over each tensor of the list (so each update is bit for bit
// adamw_step's), writing the optional compute copy (bf16 / f16) from the stored parameter: the
// copy is exactly cast(param).
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

struct NoCopy {};

// C: the compute copy's element type, or NoCopy.
template <class T, class G, class C = NoCopy>
void adamw_impl(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamWArgs& a, const Tensor& copy = Tensor()) {
  using A = compute_t<T>;
  T* p = static_cast<T*>(param.data_ptr());
  const G* g = static_cast<const G*>(grad.data_ptr());
  A* m = static_cast<A*>(exp_avg.data_ptr());
  A* v = static_cast<A*>(exp_avg_sq.data_ptr());
  const A decay = A(1.0 - a.lr * a.weight_decay);
  const A b1 = A(a.beta1), b2 = A(a.beta2), c1 = A(1.0 - a.beta1), c2 = A(1.0 - a.beta2);
  const A step = A(a.lr / a.bias_correction1), inv_bc2 = A(1.0 / a.bias_correction2), eps = A(a.eps);
  const A scale = A(a.grad_scale);
  [[maybe_unused]] C* c = nullptr;
  if constexpr (!std::is_same_v<C, NoCopy>) c = static_cast<C*>(copy.data_ptr());
  parallel_for(param.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) {
      const A gi = A(load(g[i])) * scale;
      const A mi = b1 * m[i] + c1 * gi;
      const A vi = b2 * v[i] + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const A pi = A(load(p[i])) * decay;
      const A updated = pi - step * mi / (std::sqrt(vi * inv_bc2) + eps);
      p[i] = store<T>(updated);
      if constexpr (!std::is_same_v<C, NoCopy>) c[i] = store<C>(A(load(p[i])));
    }
  });
}

// Runs the loop with the element types of one tensor's operands (checked by the entry point).
void adamw_one(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
               const AdamWArgs& args, const Tensor& copy) {
  dispatch_fused(param.dtype(), "adamw_step", [&](auto t0) {
    using T = decltype(t0);
    auto run = [&](auto g0) {
      using G = decltype(g0);
      if (!copy.defined()) adamw_impl<T, G>(param, grad, exp_avg, exp_avg_sq, args);
      else if (copy.dtype() == DType::BF16) adamw_impl<T, G, bf16>(param, grad, exp_avg, exp_avg_sq, args, copy);
      else adamw_impl<T, G, f16>(param, grad, exp_avg, exp_avg_sq, args, copy);
    };
    if (grad.dtype() == param.dtype()) {
      run(T{});
    } else {
      run(float{});
    }
  });
}

}  // namespace

void CpuBackend::do_adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                               const AdamWArgs& args) {
  adamw_one(param, grad, exp_avg, exp_avg_sq, args, Tensor());
}

void CpuBackend::do_adamw_multi_step(const std::vector<AdamWTensor>& tensors, const AdamWArgs& args0) {
  AdamWArgs args = args0;
  if (args.device_grad_scale.defined()) {
    // The host waits for the multiplier here: the CPU has no queue to put the step behind.
    args.grad_scale = args.device_grad_scale.item();
    args.device_grad_scale = Tensor();
    if (!std::isfinite(args.grad_scale)) return;  // a non-finite gradient norm: no update
  }
  for (const AdamWTensor& t : tensors) {
    AdamWArgs a = args;
    a.weight_decay = t.weight_decay;
    adamw_one(t.param, t.grad, t.exp_avg, t.exp_avg_sq, a, t.compute_copy);
  }
}

}  // namespace lmforge
