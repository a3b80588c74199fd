// The caching allocator of one GPU (implements core/allocator.h).
//
// cudaMalloc and cudaFree synchronise the device and cost tens of microseconds, so freed blocks
// are kept and handed out again. Requests are rounded up to a size class (multiples of 512 bytes
// up to 1 MiB, then four classes per power of two, so at most 25% is lost to rounding), and a
// free block is reused only for its own class. Every block is used on the device's one stream
// (cuda_context.h), so a block freed by the host may be reused at once: the next kernel is
// ordered after every kernel that used it.
//
// Graph pools: while a CUDA graph is being captured, the blocks its kernels use must not be
// handed to other work afterwards, since every replay writes them again. Between begin_pool()
// and end_pool() every request is served from the active pool (its free blocks, then the common
// cache's, then the driver) and the block belongs to the pool for good: freed, it returns to the
// pool, which only later captures into the same pool draw from. release_pool() hands the pool's
// blocks back to the common cache once its graph is destroyed.
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
  // Graph pools (above). begin_pool makes a new pool active and returns its id (> 0).
  int begin_pool();
  void end_pool();
  void release_pool(int id);

  static size_t size_class(size_t nbytes);

 private:
  void release_cached_locked();

  int device_;
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;     // size class -> cached blocks
  std::unordered_map<void*, size_t> live_;        // block -> size class
  std::unordered_map<void*, int> pool_of_;        // block -> graph pool, for blocks that belong to one
  std::map<int, std::map<size_t, std::vector<void*>>> pool_free_;  // pool -> its free blocks by class
  int active_pool_ = 0, next_pool_ = 1;
  int64_t in_use_ = 0, peak_ = 0, reserved_ = 0, n_alloc_ = 0;
};

// The allocator of GPU `index` (never destroyed; see cuda_context.cpp).
CachingAllocator& caching_allocator(int index);

}  // namespace lmforge::cuda
