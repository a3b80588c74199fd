// Temporary device memory for one launch sequence, from the device's caching allocator. Freed
// when it goes out of scope, without waiting: the allocator hands the block to the next request,
// whose kernels run on the same stream after the ones that used it.
#pragma once

#include <cstddef>

#include "backend/cuda/cuda_allocator.h"

namespace lmforge::cuda {

class Scratch {
 public:
  Scratch() = default;
  Scratch(int device, size_t nbytes) : device_(device), nbytes_(nbytes) {
    if (nbytes) ptr_ = caching_allocator(device).allocate(nbytes);
  }
  ~Scratch() {
    if (ptr_) caching_allocator(device_).deallocate(ptr_, nbytes_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Scratch(Scratch&& o) noexcept : device_(o.device_), nbytes_(o.nbytes_), ptr_(o.ptr_) { o.ptr_ = nullptr; }
  Scratch& operator=(Scratch&& o) noexcept {
    if (this != &o) {
      if (ptr_) caching_allocator(device_).deallocate(ptr_, nbytes_);
      device_ = o.device_; nbytes_ = o.nbytes_; ptr_ = o.ptr_; o.ptr_ = nullptr;
    }
    return *this;
  }
  template <class T = void>
  T* get() const { return static_cast<T*>(ptr_); }

 private:
  int device_ = 0;
  size_t nbytes_ = 0;
  void* ptr_ = nullptr;
};

}  // namespace lmforge::cuda
