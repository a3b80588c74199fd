// CpuBackend's capabilities: every required kernel (backend.h's defaults), and the optional
// quantized GEMM for the weight dtypes gemm_quantized_cpu.cpp has loops for.
#include "backend/cpu/cpu_backend.h"

namespace lmforge {

bool CpuBackend::supports(Kernel k, DType t) const {
  if (k == Kernel::gemm_quantized)
    return t == DType::I8 || t == DType::F8E4M3 || t == DType::BF16 || t == DType::F16 || t == DType::F32;
  return Backend::supports(k, t);
}

}  // namespace lmforge
