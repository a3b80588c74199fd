#include "backend/backend.h"

#include <chrono>
#include <iterator>

#include "backend/cpu/cpu_backend.h"

namespace lmforge {
#ifdef LMFORGE_WITH_CUDA
// backend/cuda/: the backend of GPU `index`; throws Error when there is no such GPU.
Backend* cuda_backend(int index);
#endif

Backend& backend_for(Device d) {
  if (d.is_cpu()) {
    static CpuBackend cpu;
    return cpu;
  }
#ifdef LMFORGE_WITH_CUDA
  return *cuda_backend(d.index);
#else
  throw Error(fmt::format("device {} is not available: lmforge was built without CUDA support "
                          "(configure with -DLMFORGE_CUDA=ON on a machine with nvcc)", d.str()));
#endif
}

const char* kernel_name(Kernel k) {
  static const char* names[] = {
#define LMFORGE_KERNEL_NAME(ret, name, params) #name,
      LMFORGE_BACKEND_KERNELS(LMFORGE_KERNEL_NAME) LMFORGE_BACKEND_OPTIONAL_KERNELS(LMFORGE_KERNEL_NAME)
#undef LMFORGE_KERNEL_NAME
  };
  const auto i = size_t(k);
  return i < std::size(names) ? names[i] : "?";
}

bool is_fused_dtype(DType t) {
  return t == DType::F64 || t == DType::F32 || t == DType::BF16 || t == DType::F16;
}

bool Backend::supports(Kernel k, DType t) const {
  switch (k) {
    case Kernel::cross_entropy_forward:
    case Kernel::cross_entropy_backward:
    case Kernel::rms_norm_forward:
    case Kernel::rms_norm_backward:
    case Kernel::layer_norm_forward:
    case Kernel::layer_norm_backward:
    case Kernel::rope:
    case Kernel::swiglu_forward:
    case Kernel::swiglu_backward:
    case Kernel::attention_forward:
    case Kernel::attention_backward: return is_fused_dtype(t);
#define LMFORGE_KERNEL_CASE(ret, name, params) case Kernel::name:
      LMFORGE_BACKEND_OPTIONAL_KERNELS(LMFORGE_KERNEL_CASE) return false;
#undef LMFORGE_KERNEL_CASE
    default: return true;
  }
}

void Backend::do_gemm_quantized(const QuantizedGemmArgs& args) {
  throw Error(fmt::format("quantized ({}) weights are not supported on {}; load the checkpoint on the CPU or "
                          "quantize it to bf16 / f16", dtype_name(args.weight.dtype()), device().str()));
}

void apply_gemm_epilogue(Backend& backend, const GemmArgs& g) {
  LF_ASSERT(g.batch == 1);
  if (g.gelu_tanh_grad) {
    LF_ASSERT(!g.bias.defined() && !g.gelu_tanh && !g.bias_grad.defined() && g.pre_gelu.defined());
    const Tensor c = g.c.as_strided({g.m, g.n}, {g.ldc, 1}, g.c.offset());
    const Tensor pre = g.pre_gelu.as_strided({g.m, g.n}, {g.ldc, 1}, g.pre_gelu.offset());
    backend.binary(BinaryOp::GeluTanhBackward, pre, c, c);
    return;
  }
  if (g.bias_grad.defined()) {
    LF_ASSERT(!g.bias.defined() && !g.gelu_tanh && g.trans_a && g.lda == g.m);
    // op(A) = Aᵀ with A a contiguous [k, m]: the sums run down A's columns.
    backend.reduce(ReduceOp::Sum, g.a.as_strided({g.k, g.m}, {g.m, 1}, g.a.offset()), g.bias_grad, 1, g.k, g.m);
    return;
  }
  const Tensor c = g.c.as_strided({g.m, g.n}, {g.ldc, 1}, g.c.offset());
  if (g.bias.defined())
    backend.binary(BinaryOp::Add, c, g.bias.as_strided({g.m, g.n}, {0, g.bias.stride(0)}, g.bias.offset()), c);
  if (g.gelu_tanh) {
    if (g.pre_gelu.defined()) backend.copy(c, g.pre_gelu.as_strided({g.m, g.n}, {g.ldc, 1}, g.pre_gelu.offset()));
    backend.unary(UnaryOp::GeluTanh, c, c);
  }
}

Backend::Timing Backend::time_on_device(const std::function<void()>& f) {
  synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const auto t1 = std::chrono::steady_clock::now();
  synchronize();
  const auto t2 = std::chrono::steady_clock::now();
  return {std::chrono::duration<double>(t2 - t0).count(), std::chrono::duration<double>(t1 - t0).count()};
}

std::unique_ptr<CapturedWork> Backend::capture(const std::function<void()>&) { return nullptr; }

}  // namespace lmforge
