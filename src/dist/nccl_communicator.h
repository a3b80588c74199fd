// The NCCL backend of dist::Communicator: CUDA tensors of one GPU per rank, each collective one
// NCCL call on the stream every kernel of that GPU runs on (backend/cuda/cuda_context.h), so it
// is ordered after the backward that produced the gradients without a host synchronisation.
// The call then waits for the stream (polling NCCL's asynchronous error state), so the
// watchdog of dist/communicator.h bounds a collective whose peer died.
//
// Built with LMFORGE_CUDA when CMake finds nccl.h and libnccl (the CUDA toolkit ships them):
// LMFORGE_WITH_NCCL. The unique id that ties the ranks together is made by rank 0
// (nccl_unique_id) and handed to the others by the caller: over MPI under mpirun, else over the
// TCP rendezvous (dist/tcp_rendezvous.h).
#pragma once

#include <memory>
#include <string>

#include "dist/communicator.h"

namespace lmforge::dist {

bool nccl_available();
// 128 opaque bytes (ncclUniqueId) for ncclCommInitRank; Error without NCCL.
std::string nccl_unique_id();
// Rank `rank` of `world_size` on GPU `device`, joined through `unique_id`.
std::unique_ptr<Communicator> make_nccl_communicator(int rank, int world_size, int device,
                                                     const std::string& unique_id);

}  // namespace lmforge::dist
