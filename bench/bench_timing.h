// Timing shared by the bench programs: the mean milliseconds of `iters` back-to-back calls of f
// after one warm-up call, the device synchronised before and after (so queued GPU work counts).
#pragma once

#include <chrono>

#include "backend/backend.h"

namespace lmforge::bench {

template <class F>
double time_ms(Backend& be, int iters, F&& f) {
  f();
  be.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  be.synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
}

}  // namespace lmforge::bench
