#include "nn/compute_copy.h"

#include "autograd/function.h"
#include "ops/ops.h"

namespace lmforge::nn {

bool ComputeCopy::fresh_for(const Tensor& master, DType dtype) const {
  return tensor.defined() && tensor.dtype() == dtype && tensor.shape() == master.shape() &&
         source_version == master.version();
}

Tensor compute_copy_of(const Tensor& master, ComputeCopy& cache, DType dtype) {
  if (master.dtype() == dtype) return master;
  if (!cache.fresh_for(master, dtype)) {
    NoGradGuard no_grad;
    if (cache.tensor.defined() && cache.tensor.dtype() == dtype && cache.tensor.shape() == master.shape())
      copy_(cache.tensor, master);  // reuse the memory; copy_ bumps the copy's version
    else
      cache.tensor = cast(master.detach(), dtype).contiguous();
    cache.mark_fresh(master);
  }
  // A fresh handle per use: each forward gets its own node, the storage is shared.
  Tensor out = cache.tensor.detach();
  if (any_requires_grad({master}))
    record_op("compute_copy", {master}, {out}, [from = master.dtype()](BackwardContext& ctx) -> TensorList {
      return {cast(ctx.grad(), from)};
    });
  return out;
}

}  // namespace lmforge::nn
