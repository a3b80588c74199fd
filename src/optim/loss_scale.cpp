#include "optim/loss_scale.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lmforge::optim {

DynamicLossScaler::DynamicLossScaler(double initial_scale, int64_t growth_interval)
    : scale_(initial_scale), growth_interval_(growth_interval) {
  LF_CHECK(initial_scale >= kMinScale && std::isfinite(initial_scale),
           "loss scale must be a finite number >= {}, got {}", kMinScale, initial_scale);
  LF_CHECK(growth_interval > 0, "loss-scale growth interval must be > 0, got {}", growth_interval);
}

void DynamicLossScaler::set_state(double scale, int64_t clean_steps) {
  LF_CHECK(scale >= kMinScale && std::isfinite(scale), "loss scale must be a finite number >= {}, got {}", kMinScale,
           scale);
  LF_CHECK(clean_steps >= 0, "loss-scale clean steps must be >= 0, got {}", clean_steps);
  scale_ = scale;
  clean_steps_ = clean_steps;
}

DynamicLossScaler::Outcome DynamicLossScaler::update(double grad_norm) {
  if (!std::isfinite(grad_norm)) {
    clean_steps_ = 0;
    if (scale_ <= kMinScale) return Outcome::NonFinite;
    scale_ = std::max(kMinScale, scale_ / 2);
    return Outcome::SkipOverflow;
  }
  if (++clean_steps_ >= growth_interval_) {
    clean_steps_ = 0;
    // Doubling cannot overflow a double in any real run; stay finite regardless.
    if (std::isfinite(scale_ * 2)) scale_ *= 2;
  }
  return Outcome::Step;
}

}  // namespace lmforge::optim
