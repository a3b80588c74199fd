#include "optim/clip.h"

#include <cmath>

#include "ops/ops.h"

namespace lmforge::optim {

ClipResult clip_grad_norm(const std::vector<nn::NamedParameter>& params, double max_norm, double grad_scale) {
  double sq = 0;
  for (const auto& p : params) {
    const Tensor g = p.tensor.grad();
    if (g.defined()) sq += sum_of_squares(g);
  }
  ClipResult r;
  r.norm = std::sqrt(sq) * std::abs(grad_scale);
  r.scale = grad_scale;
  if (max_norm > 0 && std::isfinite(r.norm) && r.norm > max_norm) r.scale = grad_scale * max_norm / (r.norm + 1e-6);
  return r;
}

}  // namespace lmforge::optim
