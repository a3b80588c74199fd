// Where this process sits in a multi-process run, read from the launcher's environment.
//
// Recognised, first match wins:
//   mpirun (OpenMPI):  OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
//   torchrun, and `lmforge train --nproc N`: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
//   Slurm (srun):      SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (MASTER_ADDR / MASTER_PORT as set
//                      by the batch script)
// None of them: a single process (rank 0 of 1). A variable that is set but not a number in range
// is an Error naming it.
#pragma once

#include <string>

namespace lmforge::dist {

enum class Launcher { None, Mpirun, Torchrun, Slurm };
const char* launcher_name(Launcher l);

struct LaunchEnv {
  Launcher launcher = Launcher::None;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;  // "" when not set
  int master_port = 0;      // 0 when not set
};

LaunchEnv read_launch_env();

}  // namespace lmforge::dist
