#include "backend/cuda/multi_tensor_table.h"

#include <cstring>

namespace lmforge::cuda {

MultiTensorTable::~MultiTensorTable() {
  // Destructors must not throw: errors at process exit are ignored.
  if (copied_) cudaEventDestroy(copied_);
  if (pinned_) cudaFreeHost(pinned_);
  if (device_) cudaFree(device_);
}

const void* MultiTensorTable::upload(const std::vector<MultiTensorEntry>& entries, int64_t& n_chunks) {
  std::vector<MultiTensorChunk> chunks;
  for (size_t t = 0; t < entries.size(); ++t)
    for (int64_t s = 0; s < entries[t].n; s += kMultiTensorChunk) chunks.push_back({int64_t(t), s});
  n_chunks = int64_t(chunks.size());
  const size_t eb = entries.size() * sizeof(MultiTensorEntry), cb = chunks.size() * sizeof(MultiTensorChunk);
  host_.resize(eb + cb);
  if (eb) std::memcpy(host_.data(), entries.data(), eb);
  if (cb) std::memcpy(host_.data() + eb, chunks.data(), cb);
  if (host_ == last_ && device_) return device_;

  ctx_.activate();
  if (!copied_) LF_CUDA_CHECK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming));
  LF_CUDA_CHECK(cudaEventSynchronize(copied_));  // the previous upload has left the pinned buffer
  if (host_.size() > capacity_) {
    // Kernels still queued may read the old device table: wait for them before freeing it.
    LF_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    if (pinned_) LF_CUDA_CHECK(cudaFreeHost(pinned_));
    if (device_) LF_CUDA_CHECK(cudaFree(device_));
    pinned_ = device_ = nullptr;
    capacity_ = host_.size() * 2;
    LF_CUDA_CHECK(cudaMallocHost(&pinned_, capacity_));
    LF_CUDA_CHECK(cudaMalloc(&device_, capacity_));
  }
  std::memcpy(pinned_, host_.data(), host_.size());
  LF_CUDA_CHECK(cudaMemcpyAsync(device_, pinned_, host_.size(), cudaMemcpyHostToDevice, ctx_.stream));
  LF_CUDA_CHECK(cudaEventRecord(copied_, ctx_.stream));
  last_ = host_;
  return device_;
}

}  // namespace lmforge::cuda
