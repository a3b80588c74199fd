// Per-kernel time profile: where a training step spends its time, by backend kernel.
//
// When enabled (op_profile::enable(), or LMFORGE_PROFILE=1 in the environment at the first
// kernel call), every Backend entry point (backend.h) times its call (Backend::time_on_device):
// the device time of the call's kernel(s) alone, and the host time spent in the call, attributed
// to "kernel kind dtype", e.g. "gemm bf16->bf16" or "binary add bf16". Kernels a kernel calls
// itself (a GEMM's epilogue) count in its time. Every call runs on an idle device (nothing
// overlaps), which slows a run down; the profile is for finding the hot spots, not for measuring
// throughput.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lmforge::op_profile {

struct Entry {
  std::string name;
  int64_t calls = 0;
  double seconds = 0;       // on the device
  double host_seconds = 0;  // in the host's part of the call (checks, launches)
};

void enable(bool on = true);
bool enabled();
// Adds one call of `name` taking `seconds` on the device and `host_seconds` on the host (the
// Backend entry points record every kernel call).
void record(const std::string& name, double seconds, double host_seconds = 0);
// Clears the accumulated times (e.g. after warm-up steps).
void reset();
// Entries by decreasing time.
std::vector<Entry> entries();
// A table: kernel, calls, total ms, share, mean µs on the device, mean µs on the host.
std::string report(int max_rows = 40);

}  // namespace lmforge::op_profile
