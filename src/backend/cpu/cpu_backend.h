// The CPU reference backend: OpenMP-parallel C++ kernels, GEMM through OpenBLAS. The kernels
// (backend.h's do_ methods) are defined across backend/cpu/*.cpp, one file per kernel family.
#pragma once

#include "backend/backend.h"

namespace lmforge {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu(); }
  bool supports(Kernel k, DType t) const override;

 protected:
  LMFORGE_BACKEND_KERNEL_OVERRIDES
  void do_gemm_quantized(const QuantizedGemmArgs& args) override;

 private:
  // The product alone (do_gemm applies the epilogue).
  void gemm_product(const GemmArgs& args);
};

}  // namespace lmforge
