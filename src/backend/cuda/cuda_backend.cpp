// CudaBackend: the per-device singletons, synchronisation, and the memory, elementwise,
// reduction, sort and indexing methods. (Matrix products and the fused ops are in
// cuda_backend_nn.cpp.)
#include "backend/cuda/cuda_backend.h"

#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <mutex>
#include <utility>

#include "backend/cpu/cpu_types.h"
#include "backend/cuda/cuda_allocator.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/pinned_pool.h"
#include "core/random_kernels.h"

namespace lmforge::cuda {

namespace {

// Host-to-device copies up to this size go through a pinned buffer without waiting for the GPU;
// larger ones (weights being loaded) are copied synchronously.
constexpr size_t kStagedCopyBytes = size_t(8) << 20;

template <int N>
Layout<N> layout_of(const char* op, const Tensor& shape_of, std::array<const Tensor*, N> operands) {
  std::array<const std::vector<int64_t>*, N> strides;
  for (int k = 0; k < N; ++k) strides[k] = &operands[k]->strides();
  Layout<N> L;
  LF_CHECK(make_layout<N>(shape_of.shape(), strides, L),
           "{} on the GPU: {} has more than {} dimensions that cannot be merged; make it contiguous first", op,
           shape_of.str(), kMaxDims);
  return L;
}

}  // namespace

bool CudaBackend::supports(Kernel k, DType t) const {
  if (k == Kernel::gemm_quantized) return gemm_quantized_weight_supported(t);
  return Backend::supports(k, t);
}

void CudaBackend::throw_if_bad_index(const char* op, const Tensor& index, int64_t n) const {
  const int64_t pos = ctx_.take_error_position();
  if (pos < 0) return;
  int64_t value = 0;
  const size_t es = index.element_size();
  LF_CUDA_CHECK(cudaMemcpy(&value, static_cast<const char*>(index.data_ptr()) + pos * int64_t(es), es,
                           cudaMemcpyDeviceToHost));
  if (es == 4) value = static_cast<int32_t>(value);
  throw Error(fmt::format("{}: index {} at position {} is out of range for a dimension of size {}", op, value, pos,
                          n));
}

namespace {
bool is_index_dtype(DType t) { return t == DType::I64 || t == DType::I32; }

// The storage elements [first, last) a view reaches (non-negative strides: every view an op makes).
std::pair<int64_t, int64_t> element_span(const Tensor& t) {
  int64_t last = t.offset() + 1;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.stride(d) < 0) return {0, -1};
    last += (t.size(d) - 1) * t.stride(d);
  }
  return {t.offset(), last};
}
}  // namespace

int64_t CudaBackend::known_index_bound(const Tensor& index) const {
  if (!is_index_dtype(index.dtype()) || index.numel() == 0) return -1;
  const auto [first, last] = element_span(index);
  int64_t best = -1;
  for (const ValidIndex& v : valid_indices_)
    if (v.dtype == index.dtype() && v.ignore_index == kNoIgnoredValue && v.version == index.version() && first >= v.offset &&
        last <= v.offset + v.numel && v.storage.lock() == index.storage() && (best < 0 || v.bound < best))
      best = v.bound;
  return best;
}

bool CudaBackend::index_known_valid(const Tensor& index, int64_t bound, int64_t ignore_index) const {
  const auto [first, last] = element_span(index);
  for (const ValidIndex& v : valid_indices_)
    if (v.dtype == index.dtype() && v.version == index.version() && v.bound <= bound &&
        (v.ignore_index == kNoIgnoredValue || v.ignore_index == ignore_index) && first >= v.offset && last <= v.offset + v.numel &&
        v.storage.lock() == index.storage())
      return true;
  return false;
}

void CudaBackend::remember_valid_index(const Tensor& index, int64_t bound, int64_t ignore_index) {
  // Enough for the routing indices a Mixture-of-Experts model keeps for its backward (a few per
  // layer); entries whose storage is gone make room first.
  constexpr size_t kRemembered = 256;
  if (!is_index_dtype(index.dtype()) || index.numel() == 0 || !index.storage()) return;
  if (valid_indices_.size() >= kRemembered)
    std::erase_if(valid_indices_, [](const ValidIndex& v) { return v.storage.expired(); });
  if (valid_indices_.size() >= kRemembered) valid_indices_.erase(valid_indices_.begin());
  const auto [first, last] = element_span(index);
  if (last <= first) return;
  valid_indices_.push_back({index.storage(), first, last - first, bound, ignore_index, index.dtype(),
                            index.version()});
}

void CudaBackend::remember_copied_index(const Tensor& from, const Tensor& out) {
  if (!is_index_dtype(out.dtype())) return;
  const int64_t bound = known_index_bound(from);
  // i64 -> i32 keeps the values only while the bound fits.
  if (bound >= 0 && (out.dtype() == DType::I64 || bound <= int64_t(INT32_MAX) + 1))
    remember_valid_index(out, bound, kNoIgnoredValue);
}

void CudaBackend::check_indices_once(const char* op, const Tensor& index, int64_t n) {
  if (index_known_valid(index, n, kNoIgnoredValue)) return;
  launch_check_indices(ctx_, index.dtype(), index.data_ptr(), index.numel(), n);
  throw_if_bad_index(op, index, n);
  remember_valid_index(index, n, kNoIgnoredValue);
}

namespace {
// A CUDA graph and the allocator pool its kernels' memory came from.
class CudaGraphWork final : public CapturedWork {
 public:
  CudaGraphWork(CudaContext& ctx, cudaGraph_t graph, cudaGraphExec_t exec, int pool)
      : ctx_(ctx), graph_(graph), exec_(exec), pool_(pool) {}
  ~CudaGraphWork() override {
    ctx_.activate();
    (void)cudaStreamSynchronize(ctx_.stream);  // no replay still running
    (void)cudaGraphExecDestroy(exec_);
    (void)cudaGraphDestroy(graph_);
    caching_allocator(ctx_.device).release_pool(pool_);
  }
  void replay() override {
    ctx_.activate();
    LF_CUDA_CHECK(cudaGraphLaunch(exec_, ctx_.stream));
  }

 private:
  CudaContext& ctx_;
  cudaGraph_t graph_;
  cudaGraphExec_t exec_;
  int pool_;
};
}  // namespace

std::unique_ptr<CapturedWork> CudaBackend::capture(const std::function<void()>& f) {
  ctx_.activate();
  CachingAllocator& alloc = caching_allocator(ctx_.device);
  const int pool = alloc.begin_pool();
  cudaGraph_t graph = nullptr;
  // Relaxed: the allocator may still need cudaMalloc for a block its cache lacks.
  cudaError_t err = cudaStreamBeginCapture(ctx_.stream, cudaStreamCaptureModeRelaxed);
  if (err != cudaSuccess) {
    alloc.release_pool(pool);
    LF_CUDA_CHECK(err);
  }
  std::string failure;
  try {
    f();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  err = cudaStreamEndCapture(ctx_.stream, &graph);
  alloc.end_pool();
  if (!failure.empty() || err != cudaSuccess) {
    (void)cudaGetLastError();
    if (graph) (void)cudaGraphDestroy(graph);
    alloc.release_pool(pool);
    throw Error(fmt::format("cuda:{}: capturing a CUDA graph failed: {}", ctx_.device,
                            failure.empty() ? cudaGetErrorString(err) : failure));
  }
  cudaGraphExec_t exec = nullptr;
  err = cudaGraphInstantiate(&exec, graph, 0);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    (void)cudaGraphDestroy(graph);
    alloc.release_pool(pool);
    throw Error(fmt::format("cuda:{}: instantiating a CUDA graph failed: {}", ctx_.device, cudaGetErrorString(err)));
  }
  return std::make_unique<CudaGraphWork>(ctx_, graph, exec, pool);
}

void CudaBackend::synchronize() {
  ctx_.activate();
  LF_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
}

// Events around f's work on the stream, behind a busy-wait kernel: while the device waits, the
// host runs f (checks, launches), so by the time the start event is reached f's kernels are
// queued and the events time them alone. A host part longer than the wait shows as device time.
CudaBackend::Timing CudaBackend::time_on_device(const std::function<void()>& f) {
  constexpr double kLeadSeconds = 500e-6;
  ctx_.activate();
  LF_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
  cudaEvent_t start = nullptr, stop = nullptr;
  LF_CUDA_CHECK(cudaEventCreate(&start));
  LF_CUDA_CHECK(cudaEventCreate(&stop));
  float ms = 0;
  double host_s = 0;
  try {
    cuda::launch_busy_wait(ctx_, kLeadSeconds);
    LF_CUDA_CHECK(cudaEventRecord(start, ctx_.stream));
    const auto t0 = std::chrono::steady_clock::now();
    f();
    host_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    LF_CUDA_CHECK(cudaEventRecord(stop, ctx_.stream));
    LF_CUDA_CHECK(cudaEventSynchronize(stop));
    LF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  } catch (...) {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    throw;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return {double(ms) * 1e-3, host_s};
}

// ---- memory ----

void CudaBackend::do_copy(const Tensor& src, const Tensor& dst) {
  const bool src_host = src.device().is_cpu(), dst_host = dst.device().is_cpu();
  if (src_host || dst_host) {
    LF_CHECK(src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous(),
             "copy between {} and {}: host<->device copies need contiguous tensors of one dtype", src.str(),
             dst.str());
    activate();
    if (src.nbytes() == 0) return;
    if (src_host && src.nbytes() <= kStagedCopyBytes) {
      // Staged through a pinned buffer: the caller's memory is free again at once, the copy runs
      // in stream order, and the host does not wait for the kernels queued before it (a training
      // step's batch goes up while the previous step's update still runs).
      if (!pinned_) pinned_ = std::make_shared<PinnedPool>(ctx_);
      PinnedPool::Buffer* b = pinned_->take(src.nbytes());
      std::memcpy(b->host, src.data_ptr(), src.nbytes());
      const cudaError_t err =
          cudaMemcpyAsync(dst.data_ptr(), b->host, src.nbytes(), cudaMemcpyHostToDevice, ctx_.stream);
      pinned_->give(b, err == cudaSuccess);
      LF_CUDA_CHECK(err);
      return;
    }
    // Pageable host memory: the copy is complete (device to host) or staged (host to device)
    // when the call returns; waiting for the stream as well makes both directions plainly
    // synchronous, so the host may reuse or free its buffer at once.
    LF_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), src.nbytes(),
                                  src_host ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, ctx_.stream));
    LF_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream));
    return;
  }
  activate();
  if (src.numel() == 0) return;
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    if (src.data_ptr() != dst.data_ptr())
      LF_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), src.nbytes(), cudaMemcpyDeviceToDevice,
                                    ctx_.stream));
    remember_copied_index(src, dst);
    return;
  }
  launch_copy(ctx_, src.dtype(), src.data_ptr(), dst.dtype(), dst.data_ptr(), layout_of<2>("copy", dst, {&src, &dst}));
  remember_copied_index(src, dst);
}

namespace {
class CudaPendingRead final : public PendingRead {
 public:
  CudaPendingRead(std::shared_ptr<PinnedPool> pool, PinnedPool::Buffer* b, size_t bytes)
      : pool_(std::move(pool)), buffer_(b), bytes_(bytes) {}
  ~CudaPendingRead() override {
    if (buffer_) pool_->give(buffer_, false);  // its event already follows the copy
  }
  const std::vector<unsigned char>& wait() override {
    if (buffer_) {
      pool_->context().activate();
      LF_CUDA_CHECK(cudaEventSynchronize(buffer_->copied));
      const auto* p = static_cast<const unsigned char*>(buffer_->host);
      values_.assign(p, p + bytes_);
      pool_->give(buffer_, false);
      buffer_ = nullptr;
    }
    return values_;
  }

 private:
  std::shared_ptr<PinnedPool> pool_;
  PinnedPool::Buffer* buffer_;
  size_t bytes_;
  std::vector<unsigned char> values_;
};
}  // namespace

std::unique_ptr<PendingRead> CudaBackend::do_read_async(const Tensor& src) {
  activate();
  if (!pinned_) pinned_ = std::make_shared<PinnedPool>(ctx_);
  PinnedPool::Buffer* b = pinned_->take(src.nbytes());
  const cudaError_t err = src.nbytes() == 0 ? cudaSuccess
                                            : cudaMemcpyAsync(b->host, src.data_ptr(), src.nbytes(),
                                                              cudaMemcpyDeviceToHost, ctx_.stream);
  if (err != cudaSuccess) {
    pinned_->give(b, false);
    LF_CUDA_CHECK(err);
  }
  LF_CUDA_CHECK(cudaEventRecord(b->copied, ctx_.stream));
  return std::make_unique<CudaPendingRead>(pinned_, b, src.nbytes());
}

void CudaBackend::do_fill(const Tensor& dst, double value) {
  activate();
  if (dst.numel() == 0) return;
  uint64_t bits = 0;
  dispatch_dtype(dst.dtype(), [&](auto t0) {
    using T = decltype(t0);
    const T v = cpu::store<T>(value);  // the CPU's conversion, so both backends fill the same bits
    std::memcpy(&bits, &v, sizeof(T));
  });
  if (dst.is_contiguous() && (bits == 0 || dst.element_size() == 1)) {
    LF_CUDA_CHECK(cudaMemsetAsync(dst.data_ptr(), int(bits & 0xFF), dst.nbytes(), ctx_.stream));
    return;
  }
  launch_fill(ctx_, int(dst.element_size()), dst.data_ptr(), layout_of<1>("fill", dst, {&dst}), bits);
}

void CudaBackend::do_arange(const Tensor& dst, double start, double step) {
  activate();
  launch_arange(ctx_, dst.dtype(), dst.data_ptr(), dst.numel(), start, step);
  // Whole non-negative steps from a whole non-negative start: the values lie in [0, last + 1).
  const double last = start + double(dst.numel() - 1) * step;
  if (dst.numel() > 0 && start >= 0 && step >= 0 && start == std::floor(start) && step == std::floor(step) &&
      last < 9.0e15)
    remember_valid_index(dst, int64_t(last) + 1, kNoIgnoredValue);
}

void CudaBackend::do_random(const Tensor& dst, const RandomArgs& a) {
  activate();  // the arguments were checked by the entry point, by core/random_kernels.h's rules
  launch_random(ctx_, dst.dtype(), dst.data_ptr(), dst.numel(), a);
}

// ---- elementwise ----

void CudaBackend::do_unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha, double beta) {
  activate();
  launch_unary(ctx_, op, x.dtype(), x.data_ptr(), out.data_ptr(), layout_of<2>("unary", out, {&x, &out}), alpha,
               beta);
}

void CudaBackend::do_binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  activate();
  launch_binary(ctx_, op, a.dtype(), a.data_ptr(), b.data_ptr(), out.data_ptr(),
                layout_of<3>("binary", out, {&a, &b, &out}));
}

void CudaBackend::do_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  activate();
  launch_where(ctx_, out.dtype(), cond.data_ptr(), a.data_ptr(), b.data_ptr(), out.data_ptr(),
               layout_of<4>("where", out, {&cond, &a, &b, &out}));
}

// ---- reductions and row-wise ops ----

void CudaBackend::do_reduce(ReduceOp op, const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) {
  activate();
  launch_reduce(ctx_, op, x.dtype(), x.data_ptr(), out.dtype(), out.data_ptr(), outer, r, inner);
}

void CudaBackend::do_argmax(const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner) {
  activate();
  if (r == 0) return;
  launch_argmax(ctx_, x.dtype(), x.data_ptr(), static_cast<int64_t*>(out.data_ptr()), outer, r, inner);
}

void CudaBackend::do_cumsum_last(const Tensor& x, const Tensor& out) {
  activate();
  const int64_t n = x.dim() == 0 ? 1 : x.size(-1), rows = n ? x.numel() / n : 0;
  launch_cumsum(ctx_, x.dtype(), x.data_ptr(), out.data_ptr(), rows, n);
}

void CudaBackend::do_softmax_forward(const Tensor& x, const Tensor& y, bool log) {
  activate();
  const int64_t n = x.size(-1), rows = n ? x.numel() / n : 0;
  launch_softmax(ctx_, x.dtype(), x.data_ptr(), y.data_ptr(), rows, n, log);
}

void CudaBackend::do_softmax_backward(const Tensor& y, const Tensor& dy, const Tensor& dx, bool log) {
  activate();
  const int64_t n = y.size(-1), rows = n ? y.numel() / n : 0;
  launch_softmax_backward(ctx_, y.dtype(), y.data_ptr(), dy.data_ptr(), dx.data_ptr(), rows, n, log);
}

void CudaBackend::do_logsumexp_last(const Tensor& x, const Tensor& out) {
  activate();
  launch_logsumexp(ctx_, x.dtype(), x.data_ptr(), out.data_ptr(), out.numel(), x.size(-1));
}

void CudaBackend::do_topk_last(const Tensor& x, int64_t k, bool largest, const Tensor& values, const Tensor& indices) {
  activate();
  const int64_t n = x.size(-1), rows = n ? x.numel() / n : values.numel() / std::max<int64_t>(k, 1);
  if (n == 0) return;
  launch_sort_rows(ctx_, x.dtype(), x.data_ptr(), rows, n, k, largest, values.data_ptr(),
                   static_cast<int64_t*>(indices.data_ptr()));
  remember_valid_index(indices, n, kNoIgnoredValue);  // positions in a row of n
}

void CudaBackend::do_sort_last(const Tensor& x, bool descending, const Tensor& values, const Tensor& indices) {
  activate();
  const int64_t n = x.dim() ? x.size(-1) : 1, rows = n ? x.numel() / n : 0;
  if (n == 0) return;
  launch_sort_rows(ctx_, x.dtype(), x.data_ptr(), rows, n, n, descending, values.data_ptr(),
                   static_cast<int64_t*>(indices.data_ptr()));
  remember_valid_index(indices, n, kNoIgnoredValue);  // positions in a row of n
}

// ---- indexing ----

void CudaBackend::do_index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n,
                                  int64_t inner) {
  activate();
  const int64_t m = index.numel();
  check_indices_once("index_select", index, n);
  launch_index_select(ctx_, x.dtype(), index.dtype(), x.data_ptr(), index.data_ptr(), out.data_ptr(), outer, n, inner,
                      m);
  remember_copied_index(x, out);
}

void CudaBackend::do_index_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n,
                               int64_t inner) {
  activate();
  const int64_t m = index.numel();
  check_indices_once("index_add", index, n);
  launch_index_add(ctx_, dst.dtype(), index.dtype(), dst.data_ptr(), index.data_ptr(), src.data_ptr(), outer, n,
                   inner, m);
}

void CudaBackend::do_gather(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n,
                            int64_t inner) {
  activate();
  const int64_t m = outer * inner != 0 ? index.numel() / (outer * inner) : 0;
  check_indices_once("gather", index, n);
  launch_gather(ctx_, x.dtype(), index.dtype(), x.data_ptr(), index.data_ptr(), out.data_ptr(), outer, n, inner, m);
  remember_copied_index(x, out);
}

void CudaBackend::do_scatter_add(const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n,
                                 int64_t inner) {
  activate();
  const int64_t m = outer * inner != 0 ? index.numel() / (outer * inner) : 0;
  check_indices_once("scatter_add", index, n);
  launch_scatter_add(ctx_, dst.dtype(), index.dtype(), dst.data_ptr(), index.data_ptr(), src.data_ptr(), outer, n,
                     inner, m);
}

}  // namespace lmforge::cuda

namespace lmforge {
// backend/backend.cpp: the backend of GPU `index` (never destroyed; see cuda_context.cpp).
Backend* cuda_backend(int index) {
  static std::array<std::atomic<cuda::CudaBackend*>, 64> backends{};
  static std::mutex mutex;
  cuda::CudaContext& ctx = cuda::cuda_context(index);  // throws a clear Error for a missing GPU
  if (cuda::CudaBackend* b = backends[index].load(std::memory_order_acquire)) return b;
  std::lock_guard<std::mutex> lock(mutex);
  if (!backends[index].load()) backends[index].store(new cuda::CudaBackend(ctx), std::memory_order_release);
  return backends[index].load();
}
}  // namespace lmforge
