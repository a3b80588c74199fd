#include "backend/backend.h"

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

}  // namespace lmforge
