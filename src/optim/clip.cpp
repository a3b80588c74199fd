#include "optim/clip.h"

#include <cmath>

#include "ops/ops.h"

namespace lmforge::optim {

ClipResult clip_grad_norm(const std::vector<nn::NamedParameter>& params, double max_norm, double grad_scale) {
  TensorList grads;
  for (const auto& p : params) grads.push_back(p.tensor.grad());
  const double sq = sum_of_squares(grads);  // one pass over all gradients, one read of the result
  ClipResult r;
  r.norm = std::sqrt(sq) * std::abs(grad_scale);
  r.scale = grad_scale;
  if (max_norm > 0 && std::isfinite(r.norm) && r.norm > max_norm) r.scale = grad_scale * max_norm / (r.norm + 1e-6);
  return r;
}

}  // namespace lmforge::optim
