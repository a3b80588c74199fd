// Page-locked host buffers for copies between the host and one GPU that must not wait for the
// GPU's queued work: a host-to-device copy is staged through one (the caller's memory is free
// again at once, and the DMA runs in stream order), and an asynchronous read lands in one.
//
// A buffer taken from the pool is the caller's until it is given back; giving it back after
// queuing a copy records an event behind that copy. take() prefers a buffer whose copy has
// finished and otherwise makes a new one (up to kMaxBuffers), so consecutive staged copies (a
// batch's inputs and targets, queued while the GPU still runs the previous step) never wait for
// each other; only past that many does a taker wait, on that buffer's event alone (never on the
// stream). Buffers are kept for the life of the pool.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/cuda/cuda_context.h"

namespace lmforge::cuda {

class PinnedPool {
 public:
  struct Buffer {
    void* host = nullptr;
    size_t capacity = 0;
    cudaEvent_t copied = nullptr;  // behind the last copy that used this buffer
  };

  static constexpr size_t kMaxBuffers = 16;

  explicit PinnedPool(const CudaContext& ctx) : ctx_(ctx) {}
  ~PinnedPool();
  PinnedPool(const PinnedPool&) = delete;
  PinnedPool& operator=(const PinnedPool&) = delete;

  // A buffer of at least `bytes` whose previous copy has finished.
  Buffer* take(size_t bytes);
  // Returns a buffer; record_copy: a copy using it was just queued on the context's stream.
  void give(Buffer* b, bool record_copy);
  const CudaContext& context() const { return ctx_; }

 private:
  const CudaContext& ctx_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Buffer>> all_;
  std::vector<Buffer*> free_;
};

}  // namespace lmforge::cuda
