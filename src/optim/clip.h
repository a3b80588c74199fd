// Global-norm gradient clipping (Pascanu et al.): the L2 norm over every gradient together;
// when it exceeds max_norm, all gradients are scaled by max_norm / (norm + 1e-6). The scale is
// returned rather than applied, so the optimizer folds it into its update (AdamW's grad_scale)
// without another pass over the gradients.
#pragma once

#include <vector>

#include "nn/module.h"

namespace lmforge::optim {

struct ClipResult {
  double norm = 0;   // the global norm before clipping (inf or NaN if a gradient is)
  double scale = 1;  // multiply the gradients by this
};

// grad_scale: a factor the gradients will be multiplied by anyway (counted in the norm).
// max_norm <= 0 disables clipping (the norm is still measured).
ClipResult clip_grad_norm(const std::vector<nn::NamedParameter>& params, double max_norm, double grad_scale = 1.0);

}  // namespace lmforge::optim
