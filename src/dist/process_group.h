// Joins this process to the run's other ranks and returns its communicator.
//
//   CPU ranks:  MPI, so the processes must come from mpirun (or srun with OpenMPI); ranks
//               announced by torchrun-style variables alone are an Error saying so.
//   GPU ranks:  NCCL on GPU LOCAL_RANK; rank 0's unique id travels over MPI when mpirun started
//               the ranks, else over the TCP rendezvous at MASTER_ADDR:MASTER_PORT.
// A single process (no launcher, or a world of 1) gets the SingleProcessCommunicator, except
// under mpirun, where MPI is used even for one rank (it was asked for).
#pragma once

#include <memory>

#include "core/device.h"
#include "dist/communicator.h"
#include "dist/launch_env.h"

namespace lmforge::dist {

struct ProcessGroup {
  std::unique_ptr<Communicator> id_exchange;  // the MPI communicator that carried NCCL's id, kept alive
  std::unique_ptr<Communicator> communicator;
  Device device;                              // this rank's device (cuda:LOCAL_RANK on GPUs)
};

// `device`: the configured train.device; on GPUs its index is replaced by LOCAL_RANK when the
// world has more than one rank. `timeout_seconds` bounds the rendezvous.
ProcessGroup join_process_group(const LaunchEnv& env, Device device, double timeout_seconds);

}  // namespace lmforge::dist
