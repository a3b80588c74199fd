#include "core/allocator.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/error.h"

namespace lmforge {
namespace {

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    if (rounded == 0) rounded = kCpuAlignment;
    void* p = std::aligned_alloc(kCpuAlignment, rounded);
    if (!p)
      throw Error(fmt::format("out of CPU memory: requested {} bytes with {} bytes in use", nbytes,
                              in_use_.load()));
    int64_t now = in_use_ += static_cast<int64_t>(nbytes);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {}
    ++n_alloc_;
    return p;
  }
  void deallocate(void* ptr, size_t nbytes) override {
    std::free(ptr);
    in_use_ -= static_cast<int64_t>(nbytes);
  }
  AllocatorStats stats() const override {
    return {in_use_.load(), peak_.load(), in_use_.load(), n_alloc_.load()};
  }
  void reset_peak() override { peak_.store(in_use_.load()); }
  Device device() const override { return Device::cpu(); }

 private:
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
