#include "optim/clip.h"

#include <cmath>

#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge::optim {

namespace {
TensorList gradients(const std::vector<nn::NamedParameter>& params) {
  TensorList grads;
  for (const auto& p : params) grads.push_back(p.tensor.grad());
  return grads;
}
}  // namespace

double clip_norm(double norm_squared, double grad_scale) { return std::sqrt(norm_squared) * std::abs(grad_scale); }

ClipResult clip_grad_norm(const std::vector<nn::NamedParameter>& params, double max_norm, double grad_scale) {
  const double sq = sum_of_squares(gradients(params));  // one pass over all gradients, one read
  ClipResult r;
  r.norm = clip_norm(sq, grad_scale);
  // The multiplier AdamW's device-side clip forms from the same value (backend.h).
  if (!clip_step_scale(sq, grad_scale, max_norm, r.scale)) r.scale = grad_scale;
  return r;
}

Tensor grad_norm_squared(const std::vector<nn::NamedParameter>& params) {
  LF_CHECK(!params.empty(), "grad_norm_squared: no parameters");
  return sum_of_squares_tensor(gradients(params), params[0].tensor.device());
}

}  // namespace lmforge::optim
