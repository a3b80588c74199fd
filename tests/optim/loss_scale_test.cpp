#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "optim/loss_scale.h"

namespace lmforge::optim {
namespace {

using Outcome = DynamicLossScaler::Outcome;

TEST(DynamicLossScaler, OverflowHalvesAndSkipsCleanStepsGrow) {
  DynamicLossScaler s(65536, 3);
  EXPECT_EQ(s.update(INFINITY), Outcome::SkipOverflow);
  EXPECT_EQ(s.scale(), 32768);
  EXPECT_EQ(s.update(NAN), Outcome::SkipOverflow);
  EXPECT_EQ(s.scale(), 16384);
  EXPECT_EQ(s.update(1.0), Outcome::Step);
  EXPECT_EQ(s.update(2.0), Outcome::Step);
  EXPECT_EQ(s.scale(), 16384);
  EXPECT_EQ(s.clean_steps(), 2);
  EXPECT_EQ(s.update(0.5), Outcome::Step);  // the third clean step in a row doubles the scale
  EXPECT_EQ(s.scale(), 32768);
  EXPECT_EQ(s.clean_steps(), 0);
  // An overflow resets the count of clean steps.
  s.update(1.0);
  s.update(1.0);
  s.update(INFINITY);
  EXPECT_EQ(s.scale(), 16384);
  s.update(1.0);
  s.update(1.0);
  EXPECT_EQ(s.scale(), 16384);
}

TEST(DynamicLossScaler, AtTheSmallestScaleANonFiniteGradientIsNotAnOverflow) {
  DynamicLossScaler s(2, 100);
  EXPECT_EQ(s.update(INFINITY), Outcome::SkipOverflow);
  EXPECT_EQ(s.scale(), 1);
  EXPECT_EQ(s.update(INFINITY), Outcome::NonFinite);
  EXPECT_EQ(s.scale(), 1);
}

TEST(DynamicLossScaler, StateRoundTripsAndBadValuesAreRejected) {
  DynamicLossScaler s(1024, 10);
  s.set_state(4096, 7);
  EXPECT_EQ(s.scale(), 4096);
  EXPECT_EQ(s.clean_steps(), 7);
  s.update(1.0);
  s.update(1.0);
  s.update(1.0);
  EXPECT_EQ(s.scale(), 8192);
  EXPECT_THROW(s.set_state(0.5, 0), Error);
  EXPECT_THROW(DynamicLossScaler(INFINITY, 10), Error);
  EXPECT_THROW(DynamicLossScaler(1024, 0), Error);
}

}  // namespace
}  // namespace lmforge::optim
