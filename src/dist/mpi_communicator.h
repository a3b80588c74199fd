// The MPI backend of dist::Communicator: CPU tensors, one MPI call per collective on
// MPI_COMM_WORLD (duplicated), for processes started by mpirun (or srun with MPI support).
//
// Built only when CMake finds MPI (LMFORGE_WITH_MPI, the optional component LMFORGE_MPI);
// mpi_available() says whether it is, and make_mpi_communicator() is an Error otherwise.
// bf16 and f16 sums use MPI user operations that add in f32 and round once per addition (MPI
// has no 16-bit float types). MPI counts are ints: a collective is split into pieces of at most
// 2^30 elements where the call allows it (all_reduce, broadcast), else larger calls are an
// Error; the data-parallel buckets stay far below that.
//
// Errors from MPI return to the caller as an Error (MPI_ERRORS_RETURN) instead of aborting the
// job, so the message reaches the user; the process then exits and mpirun ends the others.
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace lmforge::dist {

bool mpi_available();
// Initialises MPI on first use (thread level FUNNELED: only the calling thread talks to MPI);
// MPI is finalised when the last communicator made here is destroyed.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace lmforge::dist
