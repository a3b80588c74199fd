// CPU SwiGLU, forward and backward.
//
//   gate, up, out, dout, dgate, dup [N, F] contiguous, one dtype of f64, f32, bf16, f16 (fp8 SwiGLU is
//   composed by ops/nn_ops.cpp).
//   out   = silu(gate)·up,  silu(g) = g·σ(g)
//   dgate = dout·up·σ(g)·(1 + g·(1 - σ(g)))
//   dup   = dout·silu(g)
//   Elementwise over the flat buffer; σ uses exp_fast so the f32 loop vectorises.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

void CpuBackend::do_swiglu_forward(const Tensor& gate, const Tensor& up, const Tensor& out) {
  dispatch_fused(gate.dtype(), "swiglu", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    const T* gs = static_cast<const T*>(gate.data_ptr());
    const T* us = static_cast<const T*>(up.data_ptr());
    T* os = static_cast<T*>(out.data_ptr());
    parallel_for(gate.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) {
        const A g = load(gs[i]);
        os[i] = store<T>(g * sigmoid_fast(g) * load(us[i]));
      }
    });
  });
}

void CpuBackend::do_swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,
                                    const Tensor& dup) {
  dispatch_fused(gate.dtype(), "swiglu_backward", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    const T* gs = static_cast<const T*>(gate.data_ptr());
    const T* us = static_cast<const T*>(up.data_ptr());
    const T* ds = static_cast<const T*>(dout.data_ptr());
    T* dgs = static_cast<T*>(dgate.data_ptr());
    T* dus = static_cast<T*>(dup.data_ptr());
    parallel_for(gate.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t i = b; i < e; ++i) {
        const A g = load(gs[i]), u = load(us[i]), d = load(ds[i]);
        const A s = sigmoid_fast(g);
        dgs[i] = store<T>(d * u * s * (A(1) + g * (A(1) - s)));
        dus[i] = store<T>(d * g * s);
      }
    });
  });
}

}  // namespace lmforge
