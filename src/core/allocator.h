// Memory for tensor storage comes from an Allocator per device. The CPU allocator hands out
// 64-byte-aligned blocks; the CUDA backend installs a caching allocator with the same
// interface (blocks reused, peak statistics, a clear out-of-memory report).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace lmforge {

struct AllocatorStats {
  int64_t bytes_in_use = 0;   // held by live storages
  int64_t peak_bytes_in_use = 0;
  int64_t bytes_reserved = 0; // held from the system (>= in use for a caching allocator)
  int64_t n_allocations = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual Device device() const = 0;
};

inline constexpr size_t kCpuAlignment = 64;

// The allocator for a device (the CUDA backend provides the caching allocator); asking for a
// GPU in a build without CUDA, or for a missing GPU, throws Error.
Allocator& allocator_for(Device d);

}  // namespace lmforge
