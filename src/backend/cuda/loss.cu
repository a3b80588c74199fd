// GPU cross-entropy, forward and backward, fused with label smoothing and z-loss. Twin of
// backend/cpu/loss_cpu.cpp (same formulas):
//   lse  = log Σ_i e^{x_i}
//   loss = -(1-eps)·(x_t - lse) - eps/V·(Σ_i x_i - V·lse) + z·lse²
//   dlogits_i = dloss·(p_i·(1 + 2·z·lse) - eps/V - (1-eps)·[i == t]),  p_i = e^{x_i - lse}
// Rows whose target is ignore_index get loss 0, lse 0 and a zero gradient.
//
// Forward: one block per row, one pass over the logits with a running max and a rescaled sum
// per thread (online softmax), merged in a fixed tree; nothing of size V is stored. Backward:
// elementwise over [N, V] from the saved lse, so no second logits-sized buffer either.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"

namespace lmforge::cuda {

namespace {

template <class A>
struct MaxSum {
  A m, s;
};

template <class A>
__device__ __forceinline__ MaxSum<A> merge_ms(MaxSum<A> a, MaxSum<A> b) {
  const A m = fmax(a.m, b.m);
  if (m == -m_inf<A>()) return {m, A(0)};
  return {m, a.s * m_exp(a.m - m) + b.s * m_exp(b.m - m)};
}

template <class T, class I>
__global__ void ce_forward_kernel(const T* __restrict__ logits, const I* __restrict__ targets, int64_t n, int64_t v,
                                  int64_t ignore_index, double eps_d, double z_d, compute_t<T>* __restrict__ loss,
                                  compute_t<T>* __restrict__ lse) {
  using A = compute_t<T>;
  __shared__ A sm[32], ss[32], sx[32];
  const A eps = A(eps_d), z = A(z_d);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const int64_t t = static_cast<int64_t>(targets[row]);
    if (t == ignore_index) {
      if (threadIdx.x == 0) { loss[row] = 0; lse[row] = 0; }
      continue;
    }
    const T* xr = logits + row * v;
    MaxSum<A> ms{-m_inf<A>(), A(0)};
    A sum_x = 0;
    for (int64_t i = threadIdx.x; i < v; i += blockDim.x) {
      const A x = load(xr[i]);
      sum_x += x;
      if (x > ms.m) {
        ms.s = ms.s * m_exp(ms.m - x) + A(1);  // m = -inf gives 0·... = 0 + 1
        ms.m = x;
      } else if (ms.m != -m_inf<A>()) {  // -inf logits add nothing (and -inf - -inf is NaN)
        ms.s += m_exp(x - ms.m);
      }
    }
    // Tree merge, fixed order.
    for (int o = 16; o > 0; o >>= 1) {
      MaxSum<A> other{__shfl_down_sync(0xffffffffu, ms.m, o), __shfl_down_sync(0xffffffffu, ms.s, o)};
      const A ox = __shfl_down_sync(0xffffffffu, sum_x, o);
      if (lane + o < 32) { ms = merge_ms(ms, other); sum_x += ox; }
    }
    __syncthreads();
    if (lane == 0) { sm[warp] = ms.m; ss[warp] = ms.s; sx[warp] = sum_x; }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < nwarps; ++w) {
        ms = merge_ms(ms, MaxSum<A>{sm[w], ss[w]});
        sum_x += sx[w];
      }
      const A l = ms.m + m_log(ms.s);
      const A logp_t = A(load(xr[t])) - l;
      A out = -(A(1) - eps) * logp_t + z * l * l;
      if (eps_d != 0) out -= eps / A(v) * (sum_x - A(v) * l);
      loss[row] = out;
      lse[row] = l;
    }
  }
}

template <class T, class I>
__global__ void ce_backward_kernel(const T* __restrict__ logits, const I* __restrict__ targets,
                                   const compute_t<T>* __restrict__ lse, const compute_t<T>* __restrict__ dloss,
                                   int64_t n, int64_t v, int64_t ignore_index, double eps_d, double z_d,
                                   T* __restrict__ dlogits) {
  using A = compute_t<T>;
  const A eps = A(eps_d), z = A(z_d);
  const int64_t total = n * v;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t row = e / v, i = e - row * v;
    const int64_t t = static_cast<int64_t>(targets[row]);
    if (t == ignore_index) {
      dlogits[e] = store<T>(A(0));
      continue;
    }
    const A g = dloss[row], l = lse[row];
    const A gp = g * (A(1) + A(2) * z * l), off = g * eps / A(v);
    A d = gp * m_exp(A(load(logits[e])) - l) - off;
    if (i == t) d -= g * (A(1) - eps);
    dlogits[e] = store<T>(d);
  }
}

}  // namespace

void launch_cross_entropy_forward(const CudaContext& ctx, DType t, DType it, const void* logits, const void* targets,
                                  int64_t n, int64_t v, const CrossEntropyArgs& args, void* loss, void* lse) {
  if (n == 0) return;
  dispatch_nn(t, "cross_entropy", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    dispatch_index(it, "cross_entropy targets", [&](auto i0) {
      using I = decltype(i0);
      ce_forward_kernel<T, I><<<unsigned(std::min<int64_t>(n, 65535)), row_threads(v, 16), 0, ctx.stream>>>(
          static_cast<const T*>(logits), static_cast<const I*>(targets), n, v, args.ignore_index,
          args.label_smoothing, args.z_loss, static_cast<A*>(loss), static_cast<A*>(lse));
    });
  });
  LF_CUDA_CHECK_LAUNCH("ce_forward_kernel");
}

void launch_cross_entropy_backward(const CudaContext& ctx, DType t, DType it, const void* logits, const void* targets,
                                   const void* lse, const void* dloss, int64_t n, int64_t v,
                                   const CrossEntropyArgs& args, void* dlogits) {
  if (n * v == 0) return;
  dispatch_nn(t, "cross_entropy_backward", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    dispatch_index(it, "cross_entropy targets", [&](auto i0) {
      using I = decltype(i0);
      ce_backward_kernel<T, I><<<grid_for(ctx, n * v), kThreads, 0, ctx.stream>>>(
          static_cast<const T*>(logits), static_cast<const I*>(targets), static_cast<const A*>(lse),
          static_cast<const A*>(dloss), n, v, args.ignore_index, args.label_smoothing, args.z_loss,
          static_cast<T*>(dlogits));
    });
  });
  LF_CUDA_CHECK_LAUNCH("ce_backward_kernel");
}

}  // namespace lmforge::cuda
