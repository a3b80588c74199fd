// GPU AdamW step, in place, elementwise. Twin of backend/cpu/adamw_cpu.cpp (torch.optim.AdamW):
//   p -= lr·wd·p;  g = grad·grad_scale;  m = b1·m + (1-b1)·g;  v = b2·v + (1-b2)·g²
//   p -= lr·(m / bc1) / (sqrt(v / bc2) + eps)
// param f64 / f32 / bf16 / f16 (low precision updated in f32, rounded once), grad of the param's
// dtype or f32, moments in the compute type.
//
// adamw_multi_kernel: the same update for a list of f32 parameters with f32 gradients in one
// launch (kernels.h: one block per 64K-element chunk of one tensor, found through the table).
// 16-byte loads and stores where the tensor's four arrays are 16-byte aligned; the compute copy
// (bf16 / f16) is written from the stored f32 value, so it equals casting the parameter. With a
// gradient multiplier on the device (AdamWArgs::device_grad_scale) every block reads it, and none
// writes anything when it is not finite.
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

struct AdamWMultiConst {
  double lr;  // the decay 1 - lr·wd is formed per tensor in f64 and rounded, as the CPU does
  float b1, b2, c1, c2, step, inv_bc2, eps, scale;
  const double* device_grad_scale;  // null: the gradient multiplier is `scale`
};

__device__ __forceinline__ float adamw_update(float p, float g, float& m, float& v, float decay, float scale,
                                              const AdamWMultiConst& k) {
  const float gi = g * scale;
  const float mi = k.b1 * m + k.c1 * gi;
  const float vi = k.b2 * v + k.c2 * gi * gi;
  m = mi;
  v = vi;
  return p * decay - k.step * mi / (m_sqrt(vi * k.inv_bc2) + k.eps);
}

__device__ __forceinline__ void store_copy(void* copy, MultiTensorKind kind, int64_t i, float p) {
  if (kind == MultiTensorKind::BF16) static_cast<bf16*>(copy)[i] = store<bf16>(p);
  else if (kind == MultiTensorKind::F16) static_cast<f16*>(copy)[i] = store<f16>(p);
}

__global__ void adamw_multi_kernel(const MultiTensorEntry* __restrict__ entries,
                                   const MultiTensorChunk* __restrict__ chunks, AdamWMultiConst k) {
  float scale = k.scale;
  if (k.device_grad_scale) {
    const double s = *k.device_grad_scale;
    if (!isfinite(s)) return;  // the step is skipped (a non-finite gradient norm)
    scale = float(s);
  }
  const MultiTensorChunk ch = chunks[blockIdx.x];
  const MultiTensorEntry e = entries[ch.tensor];
  const int64_t lo = ch.start, hi = min(e.n, lo + kMultiTensorChunk);
  const float decay = float(1.0 - k.lr * e.weight_decay);
  float* p = static_cast<float*>(e.param);
  const float* g = static_cast<const float*>(e.x);
  float* m = e.exp_avg;
  float* v = e.exp_avg_sq;
  const bool has_copy = e.copy_kind != MultiTensorKind::None;
  // Chunk starts are multiples of 4 elements, so aligned bases keep every float4 aligned; the
  // copy's 4 elements are 8 bytes.
  const bool vec = ((reinterpret_cast<uintptr_t>(p) | reinterpret_cast<uintptr_t>(g) | reinterpret_cast<uintptr_t>(m) |
                     reinterpret_cast<uintptr_t>(v)) & 15) == 0 &&
                   (!has_copy || (reinterpret_cast<uintptr_t>(e.copy) & 7) == 0);
  int64_t tail = lo;
  if (vec) {
    const int64_t nvec = (hi - lo) / 4;
    for (int64_t j = threadIdx.x; j < nvec; j += blockDim.x) {
      const int64_t i = lo + 4 * j;
      float4 pv = *reinterpret_cast<const float4*>(p + i);
      const float4 gv = *reinterpret_cast<const float4*>(g + i);
      float4 mv = *reinterpret_cast<const float4*>(m + i);
      float4 vv = *reinterpret_cast<const float4*>(v + i);
      pv.x = adamw_update(pv.x, gv.x, mv.x, vv.x, decay, scale, k);
      pv.y = adamw_update(pv.y, gv.y, mv.y, vv.y, decay, scale, k);
      pv.z = adamw_update(pv.z, gv.z, mv.z, vv.z, decay, scale, k);
      pv.w = adamw_update(pv.w, gv.w, mv.w, vv.w, decay, scale, k);
      *reinterpret_cast<float4*>(p + i) = pv;
      *reinterpret_cast<float4*>(m + i) = mv;
      *reinterpret_cast<float4*>(v + i) = vv;
      if (has_copy) {
        store_copy(e.copy, e.copy_kind, i, pv.x);
        store_copy(e.copy, e.copy_kind, i + 1, pv.y);
        store_copy(e.copy, e.copy_kind, i + 2, pv.z);
        store_copy(e.copy, e.copy_kind, i + 3, pv.w);
      }
    }
    tail = lo + 4 * nvec;
  }
  for (int64_t i = tail + threadIdx.x; i < hi; i += blockDim.x) {
    float mi = m[i], vi = v[i];
    const float pi = adamw_update(p[i], g[i], mi, vi, decay, scale, k);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (has_copy) store_copy(e.copy, e.copy_kind, i, pi);
  }
}

}  // namespace

void launch_adamw_multi(const CudaContext& ctx, const void* table, int64_t n_tensors, int64_t n_chunks,
                        const AdamWArgs& a, const double* device_grad_scale) {
  if (n_chunks == 0) return;
  const auto* entries = static_cast<const MultiTensorEntry*>(table);
  const auto* chunks = reinterpret_cast<const MultiTensorChunk*>(entries + n_tensors);
  const AdamWMultiConst k{a.lr, float(a.beta1), float(a.beta2), float(1.0 - a.beta1), float(1.0 - a.beta2),
                          float(a.lr / a.bias_correction1), float(1.0 / a.bias_correction2), float(a.eps),
                          float(a.grad_scale), device_grad_scale};
  adamw_multi_kernel<<<unsigned(n_chunks), kThreads, 0, ctx.stream>>>(entries, chunks, k);
  LF_CUDA_CHECK_LAUNCH("adamw_multi_kernel");
}

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
