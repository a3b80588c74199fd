// The clipping multiplier formed where the norm lives (clip_step_scale_on_device) against the
// host's formula written out here: bit for bit the same f64 value, and NaN (the step is skipped)
// when the norm is not finite.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ops/ops.h"
#include "optim/clip.h"

namespace lmforge::optim {
namespace {

TEST(Clip, MultiplierOnTheDeviceIsTheHostsBitForBit) {
  for (double sq : {0.0, 1e-12, 0.3, 2.25, 17.0, 1e6, 3.3e300}) {
    for (double grad_scale : {1.0, 0.25, 1.0 / 65536}) {
      for (double max_norm : {0.0, -1.0, 0.5, 1.0, 1e9}) {
        const double norm = std::sqrt(sq) * std::abs(grad_scale);
        const double want = max_norm > 0 && norm > max_norm ? grad_scale * max_norm / (norm + 1e-6) : grad_scale;
        double host = 0;
        EXPECT_TRUE(clip_step_scale(sq, grad_scale, max_norm, host));
        EXPECT_EQ(host, want);
        const Tensor device = clip_step_scale_on_device(from_vector<double>({sq}, {}), grad_scale, max_norm);
        EXPECT_EQ(device.item(), want) << "sq " << sq << " grad_scale " << grad_scale << " max_norm " << max_norm;
      }
    }
  }
}

TEST(Clip, NonFiniteNormSkipsTheStep) {
  for (double sq : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    for (double max_norm : {0.0, 1.0}) {
      double host = 0;
      EXPECT_FALSE(clip_step_scale(sq, 0.5, max_norm, host));
      EXPECT_TRUE(std::isnan(clip_step_scale_on_device(from_vector<double>({sq}, {}), 0.5, max_norm).item()));
    }
  }
  EXPECT_THROW(clip_step_scale_on_device(from_vector<float>({1.0f}, {}), 1.0, 1.0), Error);
}

}  // namespace
}  // namespace lmforge::optim
