// The caching allocator of one GPU (implements core/allocator.h).
//
// cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, so freed blocks
// are kept and handed out again. Requests are rounded up to a size class (multiples of 512 bytes
// up to 1 MiB, then four classes per power of two, so at most 25% is lost to rounding), and a
// free block is reused only for its own class. Every block is used on the device's one stream
// (cuda_context.h), so a block freed by the host may be reused at once: the next kernel is
// ordered after every kernel that used it.
//
// Out of memory: the cached free blocks are returned to the driver and the request retried once;
// if it still fails, Error reports the request, the bytes in use, the peak, the bytes reserved,
// the device's free and total memory, and what to try.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"

namespace lmforge::cuda {

class CachingAllocator final : public Allocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  AllocatorStats stats() const override;
  void reset_peak() override;
  Device device() const override { return Device::cuda(device_); }
  // Returns every cached (free) block to the driver.
  void release_cached();

  static size_t size_class(size_t nbytes);

 private:
  void release_cached_locked();

  int device_;
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;     // size class -> cached blocks
  std::unordered_map<void*, size_t> live_;        // block -> size class
  int64_t in_use_ = 0, peak_ = 0, reserved_ = 0, n_alloc_ = 0;
};

// The allocator of GPU `index` (never destroyed; see cuda_context.cpp).
CachingAllocator& caching_allocator(int index);

}  // namespace lmforge::cuda
