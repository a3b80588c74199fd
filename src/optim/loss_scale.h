// Dynamic loss scaling for f16 training (Micikevicius et al., "Mixed Precision Training"; as
// torch.cuda.amp.GradScaler). f16 keeps 5 exponent bits: small gradients flush to zero unless
// the loss is multiplied by a large scale before backward. The gradients are unscaled in the
// optimizer (AdamW's grad_scale = 1 / scale, folded into clipping), never in a separate pass.
//
// After each backward: a non-finite gradient norm means the scale overflowed f16. The step is
// skipped (no update, the gradients dropped) and the scale halved; growth_interval clean steps
// in a row double it. At the smallest scale (1) a non-finite gradient is not an overflow of the
// scale but a real one, and is left to the trainer's non-finite-step handling.
#pragma once

#include <cstdint>

namespace lmforge::optim {

class DynamicLossScaler {
 public:
  static constexpr double kMinScale = 1.0;

  DynamicLossScaler(double initial_scale, int64_t growth_interval);

  double scale() const { return scale_; }
  int64_t clean_steps() const { return clean_steps_; }
  // Restores a saved state (checkpoint resume).
  void set_state(double scale, int64_t clean_steps);

  enum class Outcome { Step, SkipOverflow, NonFinite };
  // Called once per optimizer step with the (unscaled) gradient norm. Step: take the step (the
  // scale may have doubled); SkipOverflow: skip it, the scale was halved; NonFinite: a
  // non-finite gradient at the smallest scale (the scale is unchanged).
  Outcome update(double grad_norm);

 private:
  double scale_;
  int64_t growth_interval_;
  int64_t clean_steps_ = 0;
};

}  // namespace lmforge::optim
