#include "dist/nccl_communicator.h"

#include "core/error.h"

#ifdef LMFORGE_WITH_NCCL
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "backend/cuda/cuda_context.h"
#endif

namespace lmforge::dist {

#ifndef LMFORGE_WITH_NCCL

bool nccl_available() { return false; }
std::string nccl_unique_id() {
  throw Error("this lmforge was built without NCCL (build with LMFORGE_CUDA on a machine whose CUDA toolkit has "
              "nccl.h); data parallel on GPUs needs it");
}
std::unique_ptr<Communicator> make_nccl_communicator(int, int, int, const std::string&) {
  return (void)nccl_unique_id(), nullptr;
}

#else

namespace {

void check_nccl(ncclResult_t r, const char* call) {
  if (r == ncclSuccess || r == ncclInProgress) return;
  throw Error(fmt::format("{} failed: {} (another rank may have died)", call, ncclGetErrorString(r)));
}

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::F64: return ncclFloat64;
    case DType::F32: return ncclFloat32;
    case DType::BF16: return ncclBfloat16;
    case DType::F16: return ncclFloat16;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
    default: break;
  }
  throw Error(fmt::format("NCCL communicator: no NCCL type for {}", dtype_name(d)));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(int rank, int world_size, int device, const std::string& unique_id)
      : rank_(rank), size_(world_size), ctx_(cuda::cuda_context(device)) {
    ncclUniqueId id;
    LF_CHECK(unique_id.size() == sizeof id.internal, "NCCL: the unique id has {} bytes, expected {}",
             unique_id.size(), sizeof id.internal);
    std::memcpy(id.internal, unique_id.data(), sizeof id.internal);
    ctx_.activate();
    check_nccl(ncclCommInitRank(&comm_, world_size, id, rank), "ncclCommInitRank");
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string_view backend_name() const override { return "nccl"; }
  DeviceType device_type() const override { return DeviceType::CUDA; }

 protected:
  void do_all_reduce_sum(Tensor& t) override {
    ctx_.activate();
    check_nccl(ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.dtype()), ncclSum, comm_,
                             ctx_.stream),
               "ncclAllReduce");
    wait();
  }
  void do_reduce_scatter_sum(const Tensor& input, Tensor& output) override {
    ctx_.activate();
    check_nccl(ncclReduceScatter(input.data_ptr(), output.data_ptr(), size_t(output.numel()),
                                 nccl_type(input.dtype()), ncclSum, comm_, ctx_.stream),
               "ncclReduceScatter");
    wait();
  }
  void do_all_gather(const Tensor& input, Tensor& output) override {
    ctx_.activate();
    check_nccl(ncclAllGather(input.data_ptr(), output.data_ptr(), size_t(input.numel()), nccl_type(input.dtype()),
                             comm_, ctx_.stream),
               "ncclAllGather");
    wait();
  }
  void do_all_to_all(const Tensor& input, const std::vector<int64_t>& send_rows, Tensor& output,
                     const std::vector<int64_t>& recv_rows) override {
    ctx_.activate();
    const int64_t in_row = input.shape()[0] > 0 ? input.numel() / input.shape()[0] : 0;
    const int64_t out_row = output.shape()[0] > 0 ? output.numel() / output.shape()[0] : 0;
    const int64_t row = std::max(in_row, out_row);
    const size_t es = input.element_size();
    const ncclDataType_t type = nccl_type(input.dtype());
    auto* src = static_cast<const char*>(input.data_ptr());
    auto* dst = static_cast<char*>(output.data_ptr());
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    int64_t s_off = 0, r_off = 0;
    for (int q = 0; q < size_; ++q) {
      const int64_t s = send_rows[size_t(q)] * row, r = recv_rows[size_t(q)] * row;
      if (s > 0) check_nccl(ncclSend(src + size_t(s_off) * es, size_t(s), type, q, comm_, ctx_.stream), "ncclSend");
      if (r > 0) check_nccl(ncclRecv(dst + size_t(r_off) * es, size_t(r), type, q, comm_, ctx_.stream), "ncclRecv");
      s_off += s, r_off += r;
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    wait();
  }
  void do_broadcast(Tensor& t, int root) override {
    ctx_.activate();
    check_nccl(ncclBroadcast(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.dtype()), root, comm_,
                             ctx_.stream),
               "ncclBroadcast");
    wait();
  }
  void do_barrier() override {
    // A one-element all-reduce: NCCL has no barrier of its own.
    ctx_.activate();
    if (!barrier_word_) check_cuda(cudaMalloc(&barrier_word_, sizeof(float)), "cudaMalloc");
    check_nccl(ncclAllReduce(barrier_word_, barrier_word_, 1, ncclFloat32, ncclSum, comm_, ctx_.stream),
               "ncclAllReduce");
    wait();
  }

 private:
  static void check_cuda(cudaError_t e, const char* call) {
    if (e != cudaSuccess) throw Error(fmt::format("{} failed: {}", call, cudaGetErrorString(e)));
  }
  // Until the stream has run the collective; a peer's failure surfaces as an asynchronous NCCL
  // error, a peer that vanished as a wait the watchdog ends.
  void wait() {
    for (int spins = 0;; ++spins) {
      const cudaError_t q = cudaStreamQuery(ctx_.stream);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) check_cuda(q, "cudaStreamQuery");
      ncclResult_t async = ncclSuccess;
      check_nccl(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
      check_nccl(async, "an NCCL collective");
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  int rank_, size_;
  cuda::CudaContext& ctx_;
  ncclComm_t comm_ = nullptr;
  void* barrier_word_ = nullptr;
};

}  // namespace

bool nccl_available() { return true; }

std::string nccl_unique_id() {
  ncclUniqueId id;
  check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  return std::string(id.internal, sizeof id.internal);
}

std::unique_ptr<Communicator> make_nccl_communicator(int rank, int world_size, int device,
                                                     const std::string& unique_id) {
  return std::make_unique<NcclCommunicator>(rank, world_size, device, unique_id);
}

#endif

}  // namespace lmforge::dist
