#include "backend/cuda/pinned_pool.h"

#include <algorithm>

namespace lmforge::cuda {

PinnedPool::~PinnedPool() {
  // Destructors must not throw: errors at process exit are ignored.
  for (auto& b : all_) {
    if (b->copied) cudaEventDestroy(b->copied);
    if (b->host) cudaFreeHost(b->host);
  }
}

PinnedPool::Buffer* PinnedPool::take(size_t bytes) {
  ctx_.activate();
  Buffer* b = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // The smallest free buffer that fits and whose last copy has finished; failing that, a new
    // buffer (up to kMaxBuffers), so that a copy never waits for another still queued behind the
    // GPU's work; failing that, the smallest that fits, waited for below.
    auto pick = free_.end(), waitable = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      if ((*it)->capacity < bytes) continue;
      if (waitable == free_.end() || (*it)->capacity < (*waitable)->capacity) waitable = it;
      const cudaError_t q = cudaEventQuery((*it)->copied);
      if (q == cudaErrorNotReady) continue;
      LF_CUDA_CHECK(q);
      if (pick == free_.end() || (*it)->capacity < (*pick)->capacity) pick = it;
    }
    if (pick == free_.end() && all_.size() >= kMaxBuffers) pick = waitable;
    if (pick != free_.end()) {
      b = *pick;
      free_.erase(pick);
    }
  }
  if (!b) {
    auto owned = std::make_unique<Buffer>();
    owned->capacity = std::max<size_t>(bytes, size_t(64) << 10);
    LF_CUDA_CHECK(cudaMallocHost(&owned->host, owned->capacity));
    LF_CUDA_CHECK(cudaEventCreateWithFlags(&owned->copied, cudaEventDisableTiming));
    b = owned.get();
    std::lock_guard<std::mutex> lock(mutex_);
    all_.push_back(std::move(owned));
    return b;
  }
  LF_CUDA_CHECK(cudaEventSynchronize(b->copied));
  return b;
}

void PinnedPool::give(Buffer* b, bool record_copy) {
  if (record_copy) LF_CUDA_CHECK(cudaEventRecord(b->copied, ctx_.stream));
  std::lock_guard<std::mutex> lock(mutex_);
  free_.push_back(b);
}

}  // namespace lmforge::cuda
