// Collective communication between the ranks of a data-parallel run.
//
// One interface, three implementations: SingleProcessCommunicator (world 1: every collective is
// the identity or a copy), MpiCommunicator (CPU tensors, OpenMPI; dist/mpi_communicator.h) and
// NcclCommunicator (CUDA tensors; dist/nccl_communicator.h). No collective algorithm is written
// here: each call is one MPI or NCCL call on contiguous buffers.
//
// Contract of every collective (checked once here, for every backend; an Error names the
// collective and the argument):
//   - tensors are contiguous, on the backend's device kind, of one dtype among f64, f32, bf16,
//     f16 (reductions) plus i32 and i64 (all_gather, broadcast, all_to_all and Sum);
//   - every rank calls the same collectives in the same order with the same sizes (a mismatch is
//     the caller's bug: MPI and NCCL hang or fail, the watchdog below turns a hang into an error);
//   - reductions of bf16 / f16 add in f32 and round once per addition on MPI (a custom MPI op)
//     and as NCCL does on the GPU; Avg is Sum followed by a multiply by 1 / world_size (exact for
//     a power-of-two world).
// Sizes:
//   all_reduce(t):                  t in place
//   reduce_scatter(in, out):        in.numel() = world · out.numel(); rank r gets the reduction of
//                                   in[r·n, (r+1)·n) over ranks
//   all_gather(in, out):            out.numel() = world · in.numel(); out[r·n, (r+1)·n) = rank r's in
//   all_to_all(in, send, out, recv): rows along dim 0 (a row is numel / shape[0] elements); rank r
//                                   sends send[q] consecutive rows to rank q, in rank order, and
//                                   receives recv[q] rows from rank q, in rank order (expert parallel)
//   broadcast(t, root):             t in place, root's value everywhere
//
// A rank that dies or stalls must not hang the others: every collective runs under a watchdog
// (timeout_seconds(), train's dist.timeout_s). When it expires the process prints which
// collective on which rank timed out and exits with status 3, which makes mpirun and the
// lmforge launcher end the other ranks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace lmforge::dist {

enum class ReduceOp { Sum, Avg };

class Watchdog;

class Communicator {
 public:
  virtual ~Communicator();

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // "single", "mpi" or "nccl".
  virtual std::string_view backend_name() const = 0;
  // The device kind this communicator moves (CPU for single and MPI, CUDA for NCCL).
  virtual DeviceType device_type() const = 0;

  void all_reduce(Tensor& t, ReduceOp op);
  void reduce_scatter(const Tensor& input, Tensor& output, ReduceOp op);
  void all_gather(const Tensor& input, Tensor& output);
  void all_to_all(const Tensor& input, const std::vector<int64_t>& send_rows, Tensor& output,
                  const std::vector<int64_t>& recv_rows);
  void broadcast(Tensor& t, int root);
  void barrier();

  // Seconds a collective may take before the watchdog ends the process (0: no watchdog).
  void set_timeout_seconds(double seconds);
  double timeout_seconds() const;

 protected:
  Communicator();
  // Implementations: arguments already checked; sums only (Avg is applied afterwards).
  virtual void do_all_reduce_sum(Tensor& t) = 0;
  virtual void do_reduce_scatter_sum(const Tensor& input, Tensor& output) = 0;
  virtual void do_all_gather(const Tensor& input, Tensor& output) = 0;
  virtual void do_all_to_all(const Tensor& input, const std::vector<int64_t>& send_rows, Tensor& output,
                             const std::vector<int64_t>& recv_rows) = 0;
  virtual void do_broadcast(Tensor& t, int root) = 0;
  virtual void do_barrier() = 0;

 private:
  void check_tensor(std::string_view collective, std::string_view arg, const Tensor& t) const;
  std::unique_ptr<Watchdog> watchdog_;
};

// World 1: reductions and broadcast leave the tensor as it is, gathers copy.
class SingleProcessCommunicator final : public Communicator {
 public:
  explicit SingleProcessCommunicator(DeviceType device_type = DeviceType::CPU) : device_type_(device_type) {}
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string_view backend_name() const override { return "single"; }
  DeviceType device_type() const override { return device_type_; }

 protected:
  void do_all_reduce_sum(Tensor&) override {}
  void do_reduce_scatter_sum(const Tensor& input, Tensor& output) override;
  void do_all_gather(const Tensor& input, Tensor& output) override;
  void do_all_to_all(const Tensor& input, const std::vector<int64_t>& send_rows, Tensor& output,
                     const std::vector<int64_t>& recv_rows) override;
  void do_broadcast(Tensor&, int) override {}
  void do_barrier() override {}

 private:
  DeviceType device_type_;
};

}  // namespace lmforge::dist
