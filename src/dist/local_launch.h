// `lmforge train --nproc N` on one machine: the ranks are copies of this process.
//
//   GPUs: run_local_ranks() forks N children that exec this executable with the same arguments
//         and RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, MASTER_PORT (a free port, or
//         the one in the environment) and NCCL_NVLS_ENABLE=0 set; each takes GPU LOCAL_RANK. The
//         parent waits; when a rank fails it stops the others (SIGTERM, then SIGKILL after 10 s)
//         and reports the rank and its status.
//   CPUs: the ranks talk MPI, so exec_under_mpirun() replaces this process with
//         `mpirun -np N --bind-to none [--oversubscribe] [--allow-run-as-root] <this executable> <args>`
//         (OMP_NUM_THREADS, when unset, becomes the cores divided among the ranks); without
//         mpirun on PATH it is an Error saying what to install.
#pragma once

#include <string>
#include <vector>

namespace lmforge::dist {

// This process's arguments, argv[0] included (/proc/self/cmdline).
std::vector<std::string> own_command_line();
// Runs the ranks and returns when all have ended; Error naming the first rank that failed.
void run_local_ranks(int nproc);
// Does not return on success.
void exec_under_mpirun(int nproc);

}  // namespace lmforge::dist
