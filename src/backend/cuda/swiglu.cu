// GPU SwiGLU, forward and backward, elementwise over the flat [N·F] buffers. Twin of
// backend/cpu/swiglu_cpu.cpp:
//   out   = silu(g)·up,  silu(g) = g·σ(g)
//   dgate = dout·up·σ(g)·(1 + g·(1 - σ(g)))
//   dup   = dout·silu(g)
// When every buffer is 16-byte aligned the kernels move 16-byte vectors, two per thread and step
// (a run of fewer than a vector at the end is done one element at a time); the per-element
// arithmetic is the same either way.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"
#include "backend/cuda/vec_util.cuh"

namespace lmforge::cuda {

namespace {

template <class A>
__device__ __forceinline__ A swiglu_value(A g, A u) {
  return g * m_sigmoid(g) * u;
}

template <class A>
__device__ __forceinline__ void swiglu_grads(A g, A u, A d, A& dg, A& du) {
  const A s = m_sigmoid(g);
  dg = d * u * s * (A(1) + g * (A(1) - s));
  du = d * g * s;
}

template <class T>
__global__ void swiglu_forward_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                                      int64_t n) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    out[i] = store<T>(swiglu_value(load(gate[i]), load(up[i])));
}

template <class T>
__global__ void swiglu_backward_kernel(const T* __restrict__ gate, const T* __restrict__ up,
                                       const T* __restrict__ dout, T* __restrict__ dgate, T* __restrict__ dup,
                                       int64_t n) {
  using A = compute_t<T>;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    A dg, du;
    swiglu_grads<A>(load(gate[i]), load(up[i]), load(dout[i]), dg, du);
    dgate[i] = store<T>(dg);
    dup[i] = store<T>(du);
  }
}

constexpr int kVecPerThread = 2;

// nv vectors of kVecWidth<T> elements, kVecPerThread a thread and step.
template <class T>
__global__ void swiglu_forward_vec_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                                          int64_t nv) {
  constexpr int W = kVecWidth<T>, U = kVecPerThread;
  const int64_t step = int64_t(gridDim.x) * blockDim.x * U;
  for (int64_t j0 = int64_t(blockIdx.x) * blockDim.x * U + threadIdx.x; j0 < nv; j0 += step) {
    uint4 g[U], u[U];
#pragma unroll
    for (int k = 0; k < U; ++k) {
      const int64_t j = j0 + int64_t(k) * blockDim.x;
      if (j < nv) g[k] = load_raw(gate + j * W), u[k] = load_raw(up + j * W);
    }
#pragma unroll
    for (int k = 0; k < U; ++k) {
      const int64_t j = j0 + int64_t(k) * blockDim.x;
      if (j >= nv) continue;
      const Vec<T> gv = unpack_vec<T>(g[k]), uv = unpack_vec<T>(u[k]);
      Vec<T> o;
#pragma unroll
      for (int i = 0; i < W; ++i) o.v[i] = swiglu_value(gv.v[i], uv.v[i]);
      store_vec<T>(out + j * W, o);
    }
  }
}

template <class T>
__global__ void swiglu_backward_vec_kernel(const T* __restrict__ gate, const T* __restrict__ up,
                                           const T* __restrict__ dout, T* __restrict__ dgate, T* __restrict__ dup,
                                           int64_t nv) {
  constexpr int W = kVecWidth<T>, U = kVecPerThread;
  const int64_t step = int64_t(gridDim.x) * blockDim.x * U;
  for (int64_t j0 = int64_t(blockIdx.x) * blockDim.x * U + threadIdx.x; j0 < nv; j0 += step) {
    uint4 g[U], u[U], d[U];
#pragma unroll
    for (int k = 0; k < U; ++k) {
      const int64_t j = j0 + int64_t(k) * blockDim.x;
      if (j < nv) g[k] = load_raw(gate + j * W), u[k] = load_raw(up + j * W), d[k] = load_raw(dout + j * W);
    }
#pragma unroll
    for (int k = 0; k < U; ++k) {
      const int64_t j = j0 + int64_t(k) * blockDim.x;
      if (j >= nv) continue;
      const Vec<T> gv = unpack_vec<T>(g[k]), uv = unpack_vec<T>(u[k]), dv = unpack_vec<T>(d[k]);
      Vec<T> dg, du;
#pragma unroll
      for (int i = 0; i < W; ++i) swiglu_grads(gv.v[i], uv.v[i], dv.v[i], dg.v[i], du.v[i]);
      store_vec<T>(dgate + j * W, dg);
      store_vec<T>(dup + j * W, du);
    }
  }
}

bool all_aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

}  // namespace

void launch_swiglu_forward(const CudaContext& ctx, DType t, const void* gate, const void* up, void* out, int64_t n) {
  if (n == 0) return;
  dispatch_nn(t, "swiglu", [&](auto t0) {
    using T = decltype(t0);
    const T* g = static_cast<const T*>(gate);
    const T* u = static_cast<const T*>(up);
    T* o = static_cast<T*>(out);
    int64_t done = 0;
    if (all_aligned16({gate, up, out})) {
      const int64_t nv = n / kVecWidth<T>;
      done = nv * kVecWidth<T>;
      if (nv > 0)
        swiglu_forward_vec_kernel<T>
            <<<grid_for(ctx, nv, kThreads, kVecPerThread), kThreads, 0, ctx.stream>>>(g, u, o, nv);
    }
    if (done < n)
      swiglu_forward_kernel<T>
          <<<grid_for(ctx, n - done), kThreads, 0, ctx.stream>>>(g + done, u + done, o + done, n - done);
  });
  LF_CUDA_CHECK_LAUNCH("swiglu_forward_kernel");
}

void launch_swiglu_backward(const CudaContext& ctx, DType t, const void* gate, const void* up, const void* dout,
                            void* dgate, void* dup, int64_t n) {
  if (n == 0) return;
  dispatch_nn(t, "swiglu_backward", [&](auto t0) {
    using T = decltype(t0);
    const T* g = static_cast<const T*>(gate);
    const T* u = static_cast<const T*>(up);
    const T* d = static_cast<const T*>(dout);
    T* dg = static_cast<T*>(dgate);
    T* du = static_cast<T*>(dup);
    int64_t done = 0;
    if (all_aligned16({gate, up, dout, dgate, dup})) {
      const int64_t nv = n / kVecWidth<T>;
      done = nv * kVecWidth<T>;
      if (nv > 0)
        swiglu_backward_vec_kernel<T>
            <<<grid_for(ctx, nv, kThreads, kVecPerThread), kThreads, 0, ctx.stream>>>(g, u, d, dg, du, nv);
    }
    if (done < n)
      swiglu_backward_kernel<T><<<grid_for(ctx, n - done), kThreads, 0, ctx.stream>>>(
          g + done, u + done, d + done, dg + done, du + done, n - done);
  });
  LF_CUDA_CHECK_LAUNCH("swiglu_backward_kernel");
}

}  // namespace lmforge::cuda
