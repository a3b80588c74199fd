// GPU SwiGLU, forward and backward, elementwise over the flat [N·F] buffers. Twin of
// backend/cpu/swiglu_cpu.cpp:
//   out   = silu(g)·up,  silu(g) = g·σ(g)
//   dgate = dout·up·σ(g)·(1 + g·(1 - σ(g)))
//   dup   = dout·silu(g)
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"

namespace lmforge::cuda {

namespace {

template <class T>
__global__ void swiglu_forward_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                                      int64_t n) {
  using A = compute_t<T>;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const A g = load(gate[i]);
    out[i] = store<T>(g * m_sigmoid(g) * A(load(up[i])));
  }
}

template <class T>
__global__ void swiglu_backward_kernel(const T* __restrict__ gate, const T* __restrict__ up,
                                       const T* __restrict__ dout, T* __restrict__ dgate, T* __restrict__ dup,
                                       int64_t n) {
  using A = compute_t<T>;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const A g = load(gate[i]), u = load(up[i]), d = load(dout[i]);
    const A s = m_sigmoid(g);
    dgate[i] = store<T>(d * u * s * (A(1) + g * (A(1) - s)));
    dup[i] = store<T>(d * g * s);
  }
}

}  // namespace

void launch_swiglu_forward(const CudaContext& ctx, DType t, const void* gate, const void* up, void* out, int64_t n) {
  if (n == 0) return;
  dispatch_float(t, "swiglu", [&](auto t0) {
    using T = decltype(t0);
    swiglu_forward_kernel<T><<<grid_for(ctx, n), kThreads, 0, ctx.stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<T*>(out), n);
  });
  LF_CUDA_CHECK_LAUNCH("swiglu_forward_kernel");
}

void launch_swiglu_backward(const CudaContext& ctx, DType t, const void* gate, const void* up, const void* dout,
                            void* dgate, void* dup, int64_t n) {
  if (n == 0) return;
  dispatch_float(t, "swiglu_backward", [&](auto t0) {
    using T = decltype(t0);
    swiglu_backward_kernel<T><<<grid_for(ctx, n), kThreads, 0, ctx.stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<const T*>(dout), static_cast<T*>(dgate),
        static_cast<T*>(dup), n);
  });
  LF_CUDA_CHECK_LAUNCH("swiglu_backward_kernel");
}

}  // namespace lmforge::cuda
