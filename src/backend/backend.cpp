#include "backend/backend.h"

#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include "backend/cpu/cpu_backend.h"
#include "backend/op_profile.h"
#include "backend/profiling_backend.h"

namespace lmforge {
#ifdef LMFORGE_WITH_CUDA
// backend/cuda/: the backend of GPU `index`; throws Error when there is no such GPU.
Backend* cuda_backend(int index);
#endif

namespace {

Backend& device_backend(Device d) {
  if (d.is_cpu()) {
    static CpuBackend cpu;
    return cpu;
  }
#ifdef LMFORGE_WITH_CUDA
  return *cuda_backend(d.index);
#else
  throw Error(fmt::format("device {} is not available: lmforge was built without CUDA support "
                          "(configure with -DLMFORGE_CUDA=ON on a machine with nvcc)", d.str()));
#endif
}

// One timing wrapper per device, made the first time profiling asks for it.
Backend& profiling_backend(Device d) {
  static std::mutex mutex;
  static std::map<std::pair<int, int>, std::unique_ptr<ProfilingBackend>> wrappers;
  Backend& inner = device_backend(d);
  std::lock_guard<std::mutex> lock(mutex);
  auto& w = wrappers[{int(d.type), d.index}];
  if (!w) w = std::make_unique<ProfilingBackend>(inner);
  return *w;
}

}  // namespace

namespace {
class ReadDone final : public PendingRead {
 public:
  explicit ReadDone(std::vector<unsigned char> bytes) : bytes_(std::move(bytes)) {}
  const std::vector<unsigned char>& wait() override { return bytes_; }

 private:
  std::vector<unsigned char> bytes_;
};
}  // namespace

bool resolve_clip_on_host(AdamWArgs& args) {
  if (!args.clip_norm_sq.defined()) return true;
  LF_CHECK(args.clip_norm_sq.dtype() == DType::F64 && args.clip_norm_sq.numel() == 1,
           "adamw_multi_step: clip_norm_sq must be an f64 scalar, got {}", args.clip_norm_sq.str());
  const double sq = args.clip_norm_sq.item();
  args.clip_norm_sq = Tensor();
  return clip_step_scale(sq, args.grad_scale, args.max_norm, args.grad_scale);
}

std::unique_ptr<PendingRead> Backend::read_async(const Tensor& src) {
  LF_ASSERT(src.is_contiguous(), "read_async needs a contiguous tensor, got {}", src.str());
  const Tensor host = src.device().is_cpu() ? src : src.to(Device::cpu());
  const auto* p = static_cast<const unsigned char*>(host.data_ptr());
  return std::make_unique<ReadDone>(std::vector<unsigned char>(p, p + host.nbytes()));
}

void apply_gemm_epilogue(Backend& backend, const GemmArgs& g) {
  LF_ASSERT(g.batch == 1);
  if (g.gelu_tanh_grad) {
    LF_ASSERT(!g.bias.defined() && !g.gelu_tanh && !g.bias_grad.defined() && g.pre_gelu.defined());
    const Tensor c = g.c.as_strided({g.m, g.n}, {g.ldc, 1}, g.c.offset());
    const Tensor pre = g.pre_gelu.as_strided({g.m, g.n}, {g.ldc, 1}, g.pre_gelu.offset());
    backend.binary(BinaryOp::GeluTanhBackward, pre, c, c);
    return;
  }
  if (g.bias_grad.defined()) {
    LF_ASSERT(!g.bias.defined() && !g.gelu_tanh && g.trans_a && g.lda == g.m);
    // op(A) = Aᵀ with A a contiguous [k, m]: the sums run down A's columns.
    backend.reduce(ReduceOp::Sum, g.a.as_strided({g.k, g.m}, {g.m, 1}, g.a.offset()), g.bias_grad, 1, g.k, g.m);
    return;
  }
  const Tensor c = g.c.as_strided({g.m, g.n}, {g.ldc, 1}, g.c.offset());
  if (g.bias.defined())
    backend.binary(BinaryOp::Add, c, g.bias.as_strided({g.m, g.n}, {0, g.bias.stride(0)}, g.bias.offset()), c);
  if (g.gelu_tanh) {
    if (g.pre_gelu.defined()) backend.copy(c, g.pre_gelu.as_strided({g.m, g.n}, {g.ldc, 1}, g.pre_gelu.offset()));
    backend.unary(UnaryOp::GeluTanh, c, c);
  }
}

Backend::Timing Backend::time_on_device(const std::function<void()>& f) {
  synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const auto t1 = std::chrono::steady_clock::now();
  synchronize();
  const auto t2 = std::chrono::steady_clock::now();
  return {std::chrono::duration<double>(t2 - t0).count(), std::chrono::duration<double>(t1 - t0).count()};
}

Backend& backend_for(Device d) { return op_profile::enabled() ? profiling_backend(d) : device_backend(d); }

}  // namespace lmforge
