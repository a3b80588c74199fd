// The device-side table of a multi-tensor launch (kernels.h: MultiTensorEntry, MultiTensorChunk).
//
// Built on the host each call; uploaded only when it differs from the table uploaded last (the
// pointers and sizes of the parameters do not change between steps, so in steady state nothing
// is copied). An upload goes through a pinned host buffer with cudaMemcpyAsync on the context's
// stream; an event recorded after it guards the pinned buffer, so the next upload waits only for
// that copy, never for the kernels. The device buffer is private to this table: every kernel
// reading it runs on the same stream, before any later upload overwrites it.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cuda/cuda_context.h"
#include "backend/cuda/kernels.h"

namespace lmforge::cuda {

class MultiTensorTable {
 public:
  explicit MultiTensorTable(const CudaContext& ctx) : ctx_(ctx) {}
  ~MultiTensorTable();
  MultiTensorTable(const MultiTensorTable&) = delete;
  MultiTensorTable& operator=(const MultiTensorTable&) = delete;

  // Entries and their chunks (every tensor of n > 0 split into kMultiTensorChunk pieces); returns
  // the device address of the table and sets n_chunks.
  const void* upload(const std::vector<MultiTensorEntry>& entries, int64_t& n_chunks);

 private:
  const CudaContext& ctx_;
  std::vector<unsigned char> host_, last_;  // this call's table; the one on the device
  void* pinned_ = nullptr;
  void* device_ = nullptr;
  size_t capacity_ = 0;
  cudaEvent_t copied_ = nullptr;
};

}  // namespace lmforge::cuda
