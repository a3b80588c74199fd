// Constants, ranges, host data, random tensors and in-place writes; Tensor::to / item.
#include "ops/factory.h"

#include "autograd/function.h"
#include "backend/backend.h"
#include "core/random_kernels.h"
#include "ops/ops.h"

namespace lmforge {

namespace {
void check_writable(const Tensor& t, const char* op) {
  LF_CHECK(!(GradMode::is_enabled() && t.requires_grad() && t.is_leaf()),
           "{}: in-place write to {} which is a leaf that requires grad; do it under NoGradGuard", op, t.str());
}

Tensor random_tensor(const Shape& shape, DType dtype, Device device, Generator& gen, RandomArgs args) {
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  // f64/i64 draws use two 32-bit words per element; everything else one.
  const bool wide = dtype == DType::F64 || args.kind == RandomArgs::Kind::RandInt;
  args.seed = gen.seed();
  args.offset = gen.advance(wide ? philox_blocks_used<double>(n) : philox_blocks_used<float>(n));
  backend_for(device).random(out, args);
  return out;
}
}  // namespace

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  backend_for(device).fill(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double v) { return full(t.shape(), v, t.dtype(), t.device()); }
Tensor scalar_tensor(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

Tensor arange(int64_t n, DType dtype, Device device, double start, double step) {
  LF_CHECK(n >= 0, "arange: negative length {}", n);
  Tensor t = Tensor::empty({n}, dtype, device);
  backend_for(device).arange(t, start, step);
  return t;
}

template <class T>
Tensor from_vector(std::span<const T> values, const Shape& shape, Device device) {
  LF_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: {} values for shape {}",
           values.size(), shape_str(shape));
  Tensor host = Tensor::empty(shape, dtype_of<T>(), Device::cpu());
  if (!values.empty()) std::memcpy(host.data_ptr(), values.data(), values.size() * sizeof(T));
  return device.is_cpu() ? host : host.to(device);
}

template <class T>
std::vector<T> to_vector(const Tensor& t) {
  Tensor host = t.device().is_cpu() ? t : t.detach().to(Device::cpu());
  Tensor typed = Tensor::empty(t.shape(), dtype_of<T>(), Device::cpu());
  backend_for(Device::cpu()).copy(host, typed);
  const T* p = typed.data<T>();
  return std::vector<T>(p, p + typed.numel());
}

#define LMFORGE_INSTANTIATE(T)                                                          \
  template Tensor from_vector<T>(std::span<const T>, const Shape&, Device);           \
  template std::vector<T> to_vector<T>(const Tensor&);
LMFORGE_INSTANTIATE(double)
LMFORGE_INSTANTIATE(float)
LMFORGE_INSTANTIATE(int8_t)
LMFORGE_INSTANTIATE(int16_t)
LMFORGE_INSTANTIATE(int32_t)
LMFORGE_INSTANTIATE(int64_t)
LMFORGE_INSTANTIATE(uint8_t)
LMFORGE_INSTANTIATE(uint16_t)
LMFORGE_INSTANTIATE(uint32_t)
LMFORGE_INSTANTIATE(bf16)
LMFORGE_INSTANTIATE(f16)
#undef LMFORGE_INSTANTIATE
template Tensor from_vector<bool>(std::span<const bool>, const Shape&, Device);

Tensor rand(const Shape& shape, Generator& gen, DType dtype, Device device, double lo, double hi) {
  return random_tensor(shape, dtype, device, gen, {.kind = RandomArgs::Kind::Uniform, .a = lo, .b = hi});
}
Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device, double mean, double std) {
  return random_tensor(shape, dtype, device, gen, {.kind = RandomArgs::Kind::Normal, .a = mean, .b = std});
}
Tensor trunc_normal(const Shape& shape, Generator& gen, double mean, double std, double a, double b, DType dtype,
                    Device device) {
  LF_CHECK(std > 0 && a < b, "trunc_normal: need std > 0 and a < b, got std {}, [{}, {}]", std, a, b);
  return random_tensor(shape, dtype, device, gen,
                       {.kind = RandomArgs::Kind::TruncatedNormal, .a = mean, .b = std, .lo = a, .hi = b});
}
Tensor randint(const Shape& shape, int64_t lo, int64_t hi, Generator& gen, Device device) {
  LF_CHECK(lo < hi, "randint: empty range [{}, {})", lo, hi);
  return random_tensor(shape, DType::I64, device, gen,
                       {.kind = RandomArgs::Kind::RandInt, .a = double(lo), .b = double(hi)});
}
Tensor bernoulli(const Shape& shape, double p, Generator& gen, Device device) {
  LF_CHECK(p >= 0 && p <= 1, "bernoulli: probability {} outside [0, 1]", p);
  return random_tensor(shape, DType::Bool, device, gen, {.kind = RandomArgs::Kind::Bernoulli, .a = p});
}
Tensor randperm(int64_t n, Generator& gen, Device device) {
  Tensor out = Tensor::empty({n}, DType::I64, Device::cpu());
  permutation(out.data<int64_t>(), n, gen.seed(), gen.advance(philox_blocks_used<int64_t>(n)));
  return device.is_cpu() ? out : out.to(device);
}

Tensor& fill_(Tensor& t, double value) {
  check_writable(t, "fill_");
  backend_for(t).fill(t, value);
  t.bump_version();
  return t;
}
Tensor& zero_(Tensor& t) { return fill_(t, 0.0); }

Tensor& copy_(Tensor& dst, const Tensor& src) {
  check_writable(dst, "copy_");
  Tensor s = src.shape() == dst.shape() ? src : expand(src, dst.shape());
  if (s.device() == dst.device()) {
    backend_for(dst).copy(s, dst);
  } else {
    // Host <-> device: the CUDA backend copies between a contiguous host tensor and its memory.
    Backend& gpu = backend_for(dst.device().is_cpu() ? s.device() : dst.device());
    if (dst.is_contiguous() && s.is_contiguous() && s.dtype() == dst.dtype()) {
      gpu.copy(s, dst);
    } else if (dst.device().is_cpu()) {
      Tensor staged = Tensor::empty(s.shape(), s.dtype(), s.device());
      backend_for(s).copy(s, staged);
      Tensor host = Tensor::empty(s.shape(), s.dtype(), Device::cpu());
      gpu.copy(staged, host);
      backend_for(dst).copy(host, dst);
    } else {
      Tensor host = Tensor::empty(s.shape(), dst.dtype(), Device::cpu());
      backend_for(s).copy(s, host);
      Tensor staged = Tensor::empty(s.shape(), dst.dtype(), dst.device());
      gpu.copy(host, staged);
      gpu.copy(staged, dst);
    }
  }
  dst.bump_version();
  return dst;
}

Tensor& uniform_(Tensor& t, Generator& gen, double lo, double hi) {
  NoGradGuard g;
  Tensor r = rand(t.shape(), gen, t.dtype(), t.device(), lo, hi);
  return copy_(t, r);
}
Tensor& normal_(Tensor& t, Generator& gen, double mean, double std) {
  NoGradGuard g;
  Tensor r = randn(t.shape(), gen, t.dtype(), t.device(), mean, std);
  return copy_(t, r);
}
Tensor& trunc_normal_(Tensor& t, Generator& gen, double mean, double std, double a, double b) {
  NoGradGuard g;
  Tensor r = trunc_normal(t.shape(), gen, mean, std, a, b, t.dtype(), t.device());
  return copy_(t, r);
}

// ---- Tensor conversions ----
Tensor Tensor::to(DType dtype) const { return cast(*this, dtype); }

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = Tensor::empty(shape(), dtype(), device);
  {
    NoGradGuard g;
    copy_(out, *this);
  }
  if (any_requires_grad({*this})) {
    Device from = this->device();
    record_op("to_device", {*this}, {out},
              [from](BackwardContext& ctx) -> TensorList { return {ctx.grad().to(from)}; });
  }
  return out;
}

double Tensor::item() const {
  LF_CHECK(numel() == 1, "item() on {} which has {} elements", str(), numel());
  return to_vector<double>(*this)[0];
}

}  // namespace lmforge
