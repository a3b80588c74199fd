// MFU's denominator and MFU itself.
//
// The peak is the matmul rate this machine reaches, measured with square GEMMs through the
// backend. A measurement can only come out too low (another process took a core, the GPU clock
// had not risen yet), never too high, so the best measurement is the estimate: each measurement
// is the best of several repetitions after a warm-up, and resolve_matmul_peak() keeps the best
// one ever made for this machine, device and dtype in a small cache file
// ($XDG_CACHE_HOME/lmforge/matmul_peak.json, else ~/.cache/lmforge/matmul_peak.json), so a start
// on a busy machine does not lower it. A configured peak (train.peak_tflops) replaces all of it.
//
// An MFU above 100% is not a utilisation: the peak was underestimated (measured under load, or
// configured too low). It is reported as such, never as a number (Mfu::above_peak).
#pragma once

#include <optional>
#include <string>

#include "core/device.h"
#include "core/dtype.h"

namespace lmforge::accounting {

// Peak FLOP/s of matrix multiplication on `device` in `dtype`: the best of several timed
// repetitions of square GEMMs after a warm-up (about half a second on a CPU).
double measure_matmul_peak(Device device, DType dtype = DType::F32);

// $XDG_CACHE_HOME/lmforge/matmul_peak.json, else $HOME/.cache/lmforge/matmul_peak.json; empty
// when neither variable is set.
std::string default_peak_cache_path();

struct MatmulPeak {
  double flops = 0;            // the peak MFU is computed against
  std::string source;          // one line saying where it came from, for the run's log
};

// The peak for MFU: `configured_tflops` when > 0 (nothing measured); else a measurement now,
// raised to the best earlier one in `cache_path` for the same machine, device and dtype, and the
// cache updated. An empty cache_path measures without a cache. A cache file that is not one is
// replaced (the peak is then this measurement), one that cannot be written is left as it is; the
// source line says so. Neither stops a run: the cache only helps.
MatmulPeak resolve_matmul_peak(Device device, DType dtype, double configured_tflops,
                               const std::string& cache_path);

// What identifies the hardware a peak belongs to: host name, CPU model and thread count, or the
// GPU models, and the dtype.
std::string peak_cache_key(Device device, DType dtype);

struct Mfu {
  std::optional<double> value;  // achieved / peak, when at most 1
  bool above_peak = false;      // achieved > peak: the peak was underestimated
};
Mfu model_flops_utilization(double achieved_flops, double peak_flops);
// "mfu 41.3%", or "mfu >100% (peak underestimated)".
std::string format_mfu(const Mfu& mfu);

}  // namespace lmforge::accounting
