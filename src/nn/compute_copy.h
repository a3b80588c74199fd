// Compute copies of parameters for mixed precision (as PyTorch autocast with f32 master weights).
//
// The model keeps its parameters (the masters) in f32: checkpoints, gradients and the optimizer
// states stay f32. With a compute dtype of bf16 or f16 the forward pass reads each weight through
// compute_copy_of(), which returns a copy in the compute dtype. The copy is cached per parameter
// and made again only when the master's storage version differs from the version it was made
// from, so an initialisation, a checkpoint load or an optimizer step (all bump the version) can
// never leave a stale copy. optim::AdamW writes the copy in the same pass as the update and
// marks it fresh, so in steady state no separate cast runs.
//
// The returned tensor is an autograd node: its backward casts the incoming gradient (compute
// dtype) to the master's dtype, so the engine accumulates f32 gradients into master.grad().
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace lmforge::nn {

struct ComputeCopy {
  Tensor tensor;                // undefined until first needed
  uint64_t source_version = 0;  // the master's storage version the copy was made from

  // Whether `tensor` holds `master` rounded to `dtype` as of the master's current version.
  bool fresh_for(const Tensor& master, DType dtype) const;
  // Records that `tensor` now holds the master's current value (a writer that filled it itself).
  void mark_fresh(const Tensor& master) { source_version = master.version(); }
};

// `master` in `dtype`, through `cache`: the master itself when dtype is its dtype; otherwise the
// cached copy (refreshed first when stale) as a new autograd node whose gradient flows to master.
Tensor compute_copy_of(const Tensor& master, ComputeCopy& cache, DType dtype);

}  // namespace lmforge::nn
