// GPU AdamW step, in place, elementwise. Twin of backend/cpu/adamw_cpu.cpp (torch.optim.AdamW):
//   p -= lr·wd·p;  g = grad·grad_scale;  m = b1·m + (1-b1)·g;  v = b2·v + (1-b2)·g²
//   p -= lr·(m / bc1) / (sqrt(v / bc2) + eps)
// param f64 / f32 / bf16 / f16 (low precision updated in f32, rounded once), grad of the param's
// dtype or f32, moments in the compute type.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"

namespace lmforge::cuda {

namespace {

template <class A>
struct AdamWConst {
  A decay, b1, b2, c1, c2, step, inv_bc2, eps, scale;
};

template <class T, class G>
__global__ void adamw_kernel(T* __restrict__ p, const G* __restrict__ g, compute_t<T>* __restrict__ m,
                             compute_t<T>* __restrict__ v, int64_t n, AdamWConst<compute_t<T>> k) {
  using A = compute_t<T>;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const A gi = A(load(g[i])) * k.scale;
    const A mi = k.b1 * m[i] + k.c1 * gi;
    const A vi = k.b2 * v[i] + k.c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const A pi = A(load(p[i])) * k.decay;
    p[i] = store<T>(pi - k.step * mi / (m_sqrt(vi * k.inv_bc2) + k.eps));
  }
}

}  // namespace

void launch_adamw(const CudaContext& ctx, DType param_t, DType grad_t, void* param, const void* grad, void* exp_avg,
                  void* exp_avg_sq, int64_t n, const AdamWArgs& a) {
  if (n == 0) return;
  dispatch_nn(param_t, "adamw_step", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    const AdamWConst<A> k{A(1.0 - a.lr * a.weight_decay), A(a.beta1), A(a.beta2), A(1.0 - a.beta1),
                          A(1.0 - a.beta2), A(a.lr / a.bias_correction1), A(1.0 / a.bias_correction2), A(a.eps),
                          A(a.grad_scale)};
    const unsigned grid = grid_for(ctx, n);
    if (grad_t == param_t)
      adamw_kernel<T, T><<<grid, kThreads, 0, ctx.stream>>>(static_cast<T*>(param), static_cast<const T*>(grad),
                                                            static_cast<A*>(exp_avg), static_cast<A*>(exp_avg_sq), n, k);
    else
      adamw_kernel<T, float><<<grid, kThreads, 0, ctx.stream>>>(static_cast<T*>(param),
                                                                static_cast<const float*>(grad),
                                                                static_cast<A*>(exp_avg),
                                                                static_cast<A*>(exp_avg_sq), n, k);
  });
  LF_CUDA_CHECK_LAUNCH("adamw_kernel");
}

}  // namespace lmforge::cuda
