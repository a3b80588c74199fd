// Timing shared by the bench programs: the mean milliseconds of `iters` back-to-back calls of f
// after one warm-up call, the device synchronised before and after (so queued GPU work counts).
#pragma once

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "backend/backend.h"

namespace lmforge::bench {

// The value of `--iters N` on the command line, else `fallback` (the kernel benches' one flag).
inline int iters_flag(int argc, char** argv, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--iters") == 0) return std::atoi(argv[i + 1]);
  return fallback;
}

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
