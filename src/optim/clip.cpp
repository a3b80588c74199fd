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

bool clip_step_scale(double sq, double grad_scale, double max_norm, double& scale) {
  const double norm = clip_norm(sq, grad_scale);
  scale = max_norm > 0 && norm > max_norm ? grad_scale * max_norm / (norm + 1e-6) : grad_scale;
  return std::isfinite(norm);
}

Tensor clip_step_scale_on_device(const Tensor& sq, double grad_scale, double max_norm) {
  LF_CHECK(sq.dtype() == DType::F64 && sq.numel() == 1, "clip: the squared gradient norm must be an f64 scalar, "
           "got {}", sq.str());
  NoGradGuard no_grad;
  // mul and add by a scalar are one rounding each (x·a + 0, x·1 + b), as on the host.
  const Tensor norm = mul(sqrt(sq), std::abs(grad_scale));
  Tensor scale = full_like(norm, grad_scale);
  if (max_norm > 0)
    scale = where(gt(norm, full_like(norm, max_norm)), div(full_like(norm, grad_scale * max_norm), add(norm, 1e-6)),
                  scale);
  // norm - norm is +0 for a finite norm and NaN otherwise.
  return add(scale, sub(norm, norm));
}

ClipResult clip_grad_norm(const std::vector<nn::NamedParameter>& params, double max_norm, double grad_scale) {
  const double sq = sum_of_squares(gradients(params));  // one pass over all gradients, one read
  ClipResult r;
  r.norm = clip_norm(sq, grad_scale);
  // The multiplier clip_step_scale_on_device forms on the device from the same value.
  if (!clip_step_scale(sq, grad_scale, max_norm, r.scale)) r.scale = grad_scale;
  return r;
}

Tensor grad_norm_squared(const std::vector<nn::NamedParameter>& params) {
  LF_CHECK(!params.empty(), "grad_norm_squared: no parameters");
  return sum_of_squares_tensor(gradients(params), params[0].tensor.device());
}

}  // namespace lmforge::optim
