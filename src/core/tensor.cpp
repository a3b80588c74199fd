#include "core/tensor.h"

#include <numeric>

namespace lmforge {

std::string shape_str(const Shape& s) {
  if (s.empty()) return "[]";
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* what) {
  int64_t lo = -std::max<int64_t>(ndim, 1), hi = std::max<int64_t>(ndim, 1) - 1;
  LF_CHECK(d >= lo && d <= hi, "{} {} out of range for a tensor with {} dimensions (expected {}..{})",
           what, d, ndim, lo, hi);
  return d < 0 ? d + std::max<int64_t>(ndim, 1) : d;
}

Storage::Storage(size_t n, Device dev) : nbytes(n), device(dev), allocator(&allocator_for(dev)) {
  data = allocator->allocate(n);
}

Storage::Storage(void* d, size_t n, Device dev, std::shared_ptr<void> keep)
    : data(d), nbytes(n), device(dev), keepalive(std::move(keep)) {}

Storage::~Storage() {
  if (allocator && data) allocator->deallocate(data, nbytes);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) LF_CHECK(d >= 0, "negative dimension in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::from_external(void* data, const Shape& shape, DType dtype, Device device,
                             std::shared_ptr<void> keepalive) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(data, static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype),
                                            device, std::move(keepalive));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim())]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim())]; }

bool Tensor::is_contiguous() const { return is_contiguous_from(0); }

bool Tensor::is_contiguous_from(int64_t first_dim) const {
  const auto& sh = shape();
  const auto& st = strides();
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= first_dim; --i) {
    if (sh[i] == 1) continue;
    if (sh[i] == 0) return true;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor[undefined]";
  return fmt::format("Tensor[{}, {}, {}]", dtype_name(dtype()), device().str(), shape_str(shape()));
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(impl().storage->data) + offset() * static_cast<int64_t>(element_size());
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  LF_ASSERT(shape.size() == strides.size());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

}  // namespace lmforge
