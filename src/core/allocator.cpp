#include "core/allocator.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace lmforge {
namespace {

// Blocks of 1 MiB and more are cached by size class (four classes per power of two) and
// reused: a training step allocates the same shapes every time, and fresh large blocks come
// from mmap with a page fault per 4 KiB touched. Smaller blocks go straight to malloc.
class CpuAllocator final : public Allocator {
 public:
  ~CpuAllocator() override {
    for (auto& [size, blocks] : cache_)
      for (void* p : blocks) std::free(p);
  }
  void* allocate(size_t nbytes) override {
    const size_t rounded = size_class(nbytes);
    void* p = nullptr;
    if (rounded >= kCacheMin) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = cache_.find(rounded);
      if (it != cache_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= static_cast<int64_t>(rounded);
      }
    }
    if (!p) p = std::aligned_alloc(kCpuAlignment, rounded);
    if (!p && rounded >= kCacheMin) {
      release_cache();
      p = std::aligned_alloc(kCpuAlignment, rounded);
    }
    if (!p)
      throw Error(fmt::format("out of CPU memory: requested {} bytes with {} bytes in use", nbytes, in_use_.load()));
    int64_t now = in_use_ += static_cast<int64_t>(nbytes);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {}
    ++n_alloc_;
    return p;
  }
  void deallocate(void* ptr, size_t nbytes) override {
    in_use_ -= static_cast<int64_t>(nbytes);
    const size_t rounded = size_class(nbytes);
    if (rounded >= kCacheMin) {
      std::lock_guard<std::mutex> lock(mu_);
      cache_[rounded].push_back(ptr);
      cached_bytes_ += static_cast<int64_t>(rounded);
      return;
    }
    std::free(ptr);
  }
  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return {in_use_.load(), peak_.load(), in_use_.load() + cached_bytes_, n_alloc_.load()};
  }
  void reset_peak() override { peak_.store(in_use_.load()); }
  Device device() const override { return Device::cpu(); }

 private:
  static constexpr size_t kCacheMin = size_t(1) << 20;
  static size_t size_class(size_t nbytes) {
    size_t n = std::max<size_t>((nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment, kCpuAlignment);
    if (n < kCacheMin) return n;
    // Round up to a quarter of the enclosing power of two.
    size_t p = size_t(1) << (63 - __builtin_clzll(n));
    size_t step = p / 4;
    return (n + step - 1) / step * step;
  }
  void release_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : cache_)
      for (void* p : blocks) std::free(p);
    cache_.clear();
    cached_bytes_ = 0;
  }

  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> cache_;
  int64_t cached_bytes_ = 0;
  std::atomic<int64_t> in_use_{0}, peak_{0}, n_alloc_{0};
};

}  // namespace

#ifdef LMFORGE_WITH_CUDA
// backend/cuda/: the caching allocator of GPU `index`; throws Error when there is no such GPU.
Allocator* cuda_allocator(int index);
#endif

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) {
    static CpuAllocator cpu;
    return cpu;
  }
#ifdef LMFORGE_WITH_CUDA
  return *cuda_allocator(d.index);
#else
  throw Error(fmt::format("device {} is not available: lmforge was built without CUDA support "
                          "(configure with -DLMFORGE_CUDA=ON on a machine with nvcc)", d.str()));
#endif
}

}  // namespace lmforge
