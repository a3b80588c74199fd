#include "dist/process_group.h"

#include <cstring>

#include "core/error.h"
#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"
#include "dist/tcp_rendezvous.h"
#include "ops/ops.h"

namespace lmforge::dist {

ProcessGroup join_process_group(const LaunchEnv& env, Device device, double timeout_seconds) {
  ProcessGroup g;
  g.device = device;
  if (env.launcher == Launcher::None || (env.world_size == 1 && env.launcher != Launcher::Mpirun)) {
    g.communicator = std::make_unique<SingleProcessCommunicator>(device.type);
    return g;
  }
  if (device.is_cpu()) {
    LF_CHECK(env.launcher == Launcher::Mpirun,
             "{} ranks on the CPU were announced by {} variables, but CPU ranks communicate through MPI: start them "
             "with `mpirun -np {} lmforge train ...` (or `lmforge train --nproc {}`)",
             env.world_size, launcher_name(env.launcher), env.world_size, env.world_size);
    g.communicator = make_mpi_communicator();
    LF_CHECK(g.communicator->world_size() == env.world_size,
             "mpirun announced {} ranks but MPI reports {}: is this lmforge built against the MPI that mpirun "
             "belongs to?", env.world_size, g.communicator->world_size());
    return g;
  }
  // GPUs: one per rank on each node.
  if (env.world_size > 1) g.device = Device::cuda(env.local_rank);
  std::string id;
  if (env.launcher == Launcher::Mpirun && mpi_available()) {
    g.id_exchange = make_mpi_communicator();
    g.id_exchange->set_timeout_seconds(timeout_seconds);
    const std::string mine = env.rank == 0 ? nccl_unique_id() : std::string(128, '\0');
    std::vector<int32_t> words(mine.size() / 4);
    std::memcpy(words.data(), mine.data(), mine.size());
    Tensor t = from_vector<int32_t>(words, {int64_t(words.size())}, Device::cpu());
    g.id_exchange->broadcast(t, 0);
    words = to_vector<int32_t>(t);
    id.assign(reinterpret_cast<const char*>(words.data()), words.size() * 4);
  } else {
    id = tcp_broadcast_from_rank0(env.master_addr, env.master_port, env.rank, env.world_size,
                                  env.rank == 0 ? nccl_unique_id() : std::string(), timeout_seconds);
  }
  g.communicator = make_nccl_communicator(env.rank, env.world_size, g.device.index, id);
  return g;
}

}  // namespace lmforge::dist
