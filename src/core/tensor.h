// Tensor: a cheap handle on ref-counted storage — dtype, device, shape, strides (in elements)
// and a storage offset (in elements). Copying a Tensor copies the handle; views share storage.
//
// Conventions (as PyTorch): row-major, the last dimension is the contiguous one, Linear weights
// are [out, in]. Shapes are noted at every use as in llm.c: B batch, T time, C channels,
// H heads, D head dim, V vocab.
//
// This layer holds no arithmetic. Differentiable operations (views included, because a view of a
// tensor that requires grad must pass gradients back) are free functions in ops/; the few
// members below that forward to them (reshape, contiguous, to, item, ...) are defined there.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/dtype.h"

namespace lmforge {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
// Wraps a possibly negative dimension index into [0, ndim); throws Error naming `what`.
int64_t wrap_dim(int64_t d, int64_t ndim, const char* what = "dim");

// Ref-counted memory block on one device. `version` counts in-place writes through any view,
// so autograd can detect a saved tensor that was modified after it was saved.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Allocator* allocator = nullptr;          // null: memory owned by `keepalive` (e.g. an mmap)
  std::shared_ptr<void> keepalive;
  std::atomic<uint64_t> version{0};

  Storage(size_t nbytes, Device device);   // allocates through allocator_for(device)
  Storage(void* data, size_t nbytes, Device device, std::shared_ptr<void> keepalive);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

class Node;  // autograd/node.h
struct AutogradMeta;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;
  DType dtype = DType::F32;
  std::shared_ptr<AutogradMeta> autograd;  // null for tensors outside autograd
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- construction (uninitialised memory; ops/factory.h has zeros, ones, randn, ...) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  // Wraps memory owned elsewhere (kept alive by `keepalive`), e.g. a memory-mapped shard.
  static Tensor from_external(void* data, const Shape& shape, DType dtype, Device device,
                              std::shared_ptr<void> keepalive);

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(impl().shape); }
  size_t element_size() const { return dtype_size(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }
  bool is_contiguous() const;
  // Dims first_dim.. form one dense row-major block (each index of the dims before them starts
  // such a block; size-1 dims may have any stride).
  bool is_contiguous_from(int64_t first_dim) const;
  std::string str() const;  // "Tensor[f32, cpu, 2x3]"

  // ---- data ----
  void* data_ptr() const;  // address of element 0 (storage + offset)
  template <class T>
  T* data() const {
    LF_CHECK(dtype_of<T>() == dtype(), "tensor of dtype {} accessed as {}", dtype_name(dtype()),
             dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_ptr());
  }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  bool shares_storage(const Tensor& other) const {
    return defined() && other.defined() && storage() == other.storage();
  }
  // A view on the same storage with other sizes/strides; no autograd (ops/view.h wraps it).
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;
  uint64_t version() const { return storage()->version.load(); }
  void bump_version() const { storage()->version.fetch_add(1); }

  // ---- autograd (autograd/engine.cpp) ----
  bool requires_grad() const;
  // Marks a leaf as a parameter whose gradient accumulates into grad().
  Tensor& set_requires_grad(bool on);
  bool is_leaf() const;
  Tensor grad() const;        // undefined until a backward pass reaches this tensor
  void set_grad(const Tensor& g) const;
  void zero_grad() const;     // drops the gradient
  const std::shared_ptr<Node>& grad_fn() const;
  // Same storage, outside autograd.
  Tensor detach() const;
  // Reverse-mode pass from this tensor: from a scalar with gradient 1, or with `grad` given.
  void backward(const Tensor& grad = Tensor()) const;

  // ---- conveniences forwarding to ops (defined in ops/) ----
  Tensor contiguous() const;
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const Shape& order) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  double item() const;        // the value of a one-element tensor, as double

  TensorImpl& impl() const {
    LF_CHECK(impl_ != nullptr, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

using TensorList = std::vector<Tensor>;

}  // namespace lmforge
