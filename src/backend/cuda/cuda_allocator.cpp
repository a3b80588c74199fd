#include "backend/cuda/cuda_allocator.h"

#include <array>
#include <atomic>
#include <bit>

#include "backend/cuda/cuda_context.h"
#include "core/error.h"

namespace lmforge::cuda {

namespace {
constexpr size_t kSmallGranule = 512;
constexpr size_t kSmallLimit = size_t(1) << 20;

std::string gib(int64_t bytes) { return fmt::format("{:.2f} GiB", double(bytes) / double(1 << 30)); }
}  // namespace

size_t CachingAllocator::size_class(size_t nbytes) {
  if (nbytes <= kSmallLimit) return std::max<size_t>(kSmallGranule, (nbytes + kSmallGranule - 1) / kSmallGranule * kSmallGranule);
  // Four classes per power of two: 2^k, 1.25·2^k, 1.5·2^k, 1.75·2^k.
  const int top = std::bit_width(nbytes - 1) - 1;  // 2^top < nbytes <= 2^(top+1)
  const size_t step = size_t(1) << (top - 2);
  return (nbytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t cls = size_class(nbytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* p = nullptr;
  auto it = free_.find(cls);
  if (active_pool_) {
    auto& pool = pool_free_[active_pool_];
    auto pit = pool.find(cls);
    if (pit != pool.end() && !pit->second.empty()) {
      p = pit->second.back();
      pit->second.pop_back();
    }
  }
  if (p) {
  } else if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    cuda_context(device_).activate();
    cudaError_t err = cudaMalloc(&p, cls);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      release_cached_locked();
      err = cudaMalloc(&p, cls);
    }
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      (void)cudaGetLastError();
      throw Error(fmt::format(
          "out of GPU memory on cuda:{}: requested {} bytes ({}); {} in use by tensors, peak {}, {} reserved by "
          "lmforge; the device has {} free of {} ({}). Try a smaller batch (or gradient accumulation), "
          "activation recomputation, or a lower-precision dtype",
          device_, nbytes, gib(int64_t(nbytes)), gib(in_use_), gib(peak_), gib(reserved_), gib(int64_t(free_b)),
          gib(int64_t(total_b)), cudaGetErrorName(err)));
    }
    reserved_ += int64_t(cls);
  }
  live_.emplace(p, cls);
  if (active_pool_) pool_of_[p] = active_pool_;
  in_use_ += int64_t(cls);
  peak_ = std::max(peak_, in_use_);
  ++n_alloc_;
  return p;
}

void CachingAllocator::deallocate(void* ptr, size_t) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(ptr);
  LF_ASSERT(it != live_.end(), "cuda:{} allocator: freeing a pointer it did not allocate", device_);
  const size_t cls = it->second;
  live_.erase(it);
  in_use_ -= int64_t(cls);
  if (auto pool = pool_of_.find(ptr); pool != pool_of_.end()) pool_free_[pool->second][cls].push_back(ptr);
  else free_[cls].push_back(ptr);
}

int CachingAllocator::begin_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  LF_CHECK(active_pool_ == 0, "cuda:{} allocator: a graph pool is already active", device_);
  active_pool_ = next_pool_++;
  pool_free_[active_pool_];
  return active_pool_;
}

void CachingAllocator::end_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  active_pool_ = 0;
}

void CachingAllocator::release_pool(int id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (active_pool_ == id) active_pool_ = 0;
  auto pool = pool_free_.find(id);
  if (pool != pool_free_.end()) {
    for (auto& [cls, blocks] : pool->second)
      for (void* b : blocks) free_[cls].push_back(b);
    pool_free_.erase(pool);
  }
  // Blocks of the pool still held by tensors return to the common cache when freed.
  std::erase_if(pool_of_, [id](const auto& e) { return e.second == id; });
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {in_use_, peak_, reserved_, n_alloc_};
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  peak_ = in_use_;
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  if (free_.empty()) return;
  cuda_context(device_).activate();
  // cudaFree waits for the device, so no kernel still uses a cached block when it is released.
  for (auto& [cls, blocks] : free_) {
    for (void* p : blocks) {
      LF_CUDA_CHECK(cudaFree(p));
      reserved_ -= int64_t(cls);
    }
  }
  free_.clear();
}

CachingAllocator& caching_allocator(int index) {
  static std::array<std::atomic<CachingAllocator*>, 64> allocators{};
  static std::mutex mutex;
  cuda_context(index);  // throws a clear Error for a missing GPU or a bad index
  if (CachingAllocator* a = allocators[index].load(std::memory_order_acquire)) return *a;
  std::lock_guard<std::mutex> lock(mutex);
  if (!allocators[index].load()) allocators[index].store(new CachingAllocator(index), std::memory_order_release);
  return *allocators[index].load();
}

}  // namespace lmforge::cuda

namespace lmforge {
// core/allocator.cpp: the allocator behind every Storage on cuda:index.
Allocator* cuda_allocator(int index) { return &cuda::caching_allocator(index); }
}  // namespace lmforge
