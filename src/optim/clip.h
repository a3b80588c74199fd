// Global-norm gradient clipping (Pascanu et al.): the L2 norm over every gradient together;
// when it exceeds max_norm, all gradients are scaled by max_norm / (norm + 1e-6). The scale is
// returned rather than applied, so the optimizer folds it into its update (AdamW's grad_scale)
// without another pass over the gradients. The clipping policy lives here alone: the AdamW
// kernels only take the multiplier (a host number, or an f64 scalar on the device).
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

// The same without reading anything back: Σ g² over every gradient as an f64 scalar on the
// parameters' device. Given to AdamW::step (DeviceClip), the update clips with it where the
// gradients live and is skipped there when the norm is not finite, so a training step queues its
// update without waiting for the device; the host reads the norm afterwards (clip_norm()).
Tensor grad_norm_squared(const std::vector<nn::NamedParameter>& params);
// The clip_grad_norm norm of a grad_norm_squared value.
double clip_norm(double norm_squared, double grad_scale = 1.0);

// The gradient multiplier of a clipped step: norm = sqrt(norm_squared)·|grad_scale|; above
// max_norm (> 0) the gradients are scaled down to it, else multiplied by grad_scale. False when the
// norm is not finite: the step must change nothing.
bool clip_step_scale(double norm_squared, double grad_scale, double max_norm, double& scale);
// The same multiplier formed where `norm_squared` (an f64 scalar) lives, by elementwise ops in
// the same f64 operations (so bit for bit clip_step_scale's value), and NaN when the norm is not
// finite: AdamWArgs::device_grad_scale, which skips the step for a non-finite value. Nothing is
// read back to the host.
Tensor clip_step_scale_on_device(const Tensor& norm_squared, double grad_scale, double max_norm);

}  // namespace lmforge::optim
