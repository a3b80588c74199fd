#include "dist/mpi_communicator.h"

#include "core/error.h"

#ifdef LMFORGE_WITH_MPI
// The C API only: OpenMPI's mpi.h would otherwise pull in its C++ bindings, which need
// libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstring>
#include <exception>
#include <mutex>

#include "core/float_convert.h"
#endif

namespace lmforge::dist {

#ifndef LMFORGE_WITH_MPI

bool mpi_available() { return false; }
std::unique_ptr<Communicator> make_mpi_communicator() {
  throw Error("this lmforge was built without MPI (install libopenmpi-dev and rebuild: CMake finds it and enables "
              "LMFORGE_MPI); the CPU data-parallel backend needs it");
}

#else

namespace {

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(fmt::format("{} failed: {} (another rank may have died)", call, std::string(text, size_t(len))));
}

template <uint16_t (*Narrow)(float), float (*Widen)(uint16_t)>
void sum_16bit(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = Narrow(Widen(a[i]) + Widen(b[i]));
}
uint16_t to_bf16(float x) { return float_to_bf16_bits(x); }
float from_bf16(uint16_t b) { return bf16_bits_to_float(b); }
uint16_t to_f16(float x) { return float_to_f16_bits(x); }
float from_f16(uint16_t b) { return f16_bits_to_float(b); }

MPI_Op g_bf16_sum = MPI_OP_NULL, g_f16_sum = MPI_OP_NULL;
std::mutex g_mu;
int g_users = 0;
bool g_we_initialised = false;

MPI_Datatype mpi_type(DType d) {
  switch (d) {
    case DType::F64: return MPI_DOUBLE;
    case DType::F32: return MPI_FLOAT;
    case DType::BF16:
    case DType::F16: return MPI_UINT16_T;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    default: break;
  }
  throw Error(fmt::format("MPI communicator: no MPI type for {}", dtype_name(d)));
}

MPI_Op sum_op(DType d) {
  if (d == DType::BF16) return g_bf16_sum;
  if (d == DType::F16) return g_f16_sum;
  return MPI_SUM;
}

int int_count(int64_t n, const char* collective) {
  LF_CHECK(n <= INT_MAX, "MPI {}: {} elements exceed MPI's int count; use smaller buckets (dist.bucket_mb)",
           collective, n);
  return int(n);
}

constexpr int64_t kPiece = int64_t(1) << 30;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    std::lock_guard lock(g_mu);
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      g_we_initialised = true;
    }
    if (g_users++ == 0) {
      check_mpi(MPI_Op_create(&sum_16bit<to_bf16, from_bf16>, 1, &g_bf16_sum), "MPI_Op_create");
      check_mpi(MPI_Op_create(&sum_16bit<to_f16, from_f16>, 1, &g_f16_sum), "MPI_Op_create");
    }
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    // Leaving on an error: the other ranks may be inside a collective, and MPI_Finalize would
    // wait for them. Exiting without it makes mpirun end the job at once.
    if (std::uncaught_exceptions() > 0) return;
    std::lock_guard lock(g_mu);
    MPI_Comm_free(&comm_);
    if (--g_users == 0) {
      MPI_Op_free(&g_bf16_sum);
      MPI_Op_free(&g_f16_sum);
      int finalised = 0;
      MPI_Finalized(&finalised);
      if (g_we_initialised && !finalised) MPI_Finalize();
    }
  }
  int rank() const override { return rank_; }
  int world_size() const override { return size_; }
  std::string_view backend_name() const override { return "mpi"; }
  DeviceType device_type() const override { return DeviceType::CPU; }

 protected:
  void do_all_reduce_sum(Tensor& t) override {
    auto* p = static_cast<char*>(t.data_ptr());
    const size_t es = t.element_size();
    for (int64_t done = 0; done < t.numel(); done += kPiece) {
      const int n = int(std::min(kPiece, t.numel() - done));
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, p + size_t(done) * es, n, mpi_type(t.dtype()), sum_op(t.dtype()), comm_),
                "MPI_Allreduce");
    }
  }
  void do_reduce_scatter_sum(const Tensor& input, Tensor& output) override {
    check_mpi(MPI_Reduce_scatter_block(input.data_ptr(), output.data_ptr(), int_count(output.numel(), "reduce_scatter"),
                                       mpi_type(input.dtype()), sum_op(input.dtype()), comm_),
              "MPI_Reduce_scatter_block");
  }
  void do_all_gather(const Tensor& input, Tensor& output) override {
    int_count(output.numel(), "all_gather");
    const MPI_Datatype type = mpi_type(input.dtype());
    check_mpi(MPI_Allgather(input.data_ptr(), int(input.numel()), type, output.data_ptr(), int(input.numel()), type,
                            comm_),
              "MPI_Allgather");
  }
  void do_all_to_all(const Tensor& input, const std::vector<int64_t>& send_rows, Tensor& output,
                     const std::vector<int64_t>& recv_rows) override {
    const int64_t in_row = input.shape()[0] > 0 ? input.numel() / input.shape()[0] : 0;
    const int64_t out_row = output.shape()[0] > 0 ? output.numel() / output.shape()[0] : 0;
    const int64_t row = std::max(in_row, out_row);
    const size_t w = static_cast<size_t>(size_);
    std::vector<int> sc(w), sd(w), rc(w), rd(w);
    int64_t s_off = 0, r_off = 0;
    for (size_t q = 0; q < size_t(size_); ++q) {
      sc[q] = int_count(send_rows[q] * row, "all_to_all");
      rc[q] = int_count(recv_rows[q] * row, "all_to_all");
      sd[q] = int_count(s_off, "all_to_all");
      rd[q] = int_count(r_off, "all_to_all");
      s_off += send_rows[q] * row;
      r_off += recv_rows[q] * row;
    }
    const MPI_Datatype type = mpi_type(input.dtype());
    check_mpi(MPI_Alltoallv(input.data_ptr(), sc.data(), sd.data(), type, output.data_ptr(), rc.data(), rd.data(),
                            type, comm_),
              "MPI_Alltoallv");
  }
  void do_broadcast(Tensor& t, int root) override {
    auto* p = static_cast<char*>(t.data_ptr());
    const size_t es = t.element_size();
    for (int64_t done = 0; done < t.numel(); done += kPiece) {
      const int n = int(std::min(kPiece, t.numel() - done));
      check_mpi(MPI_Bcast(p + size_t(done) * es, n, mpi_type(t.dtype()), root, comm_), "MPI_Bcast");
    }
  }
  void do_barrier() override { check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool mpi_available() { return true; }
std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

#endif

}  // namespace lmforge::dist
