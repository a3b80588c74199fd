// Start-up check that every rank of a data-parallel run trains the same thing with the same
// program: each rank hashes its resolved config (as the caller renders it, without what may
// differ per rank such as the GPU index) and its executable, the hashes are all-gathered, and
// every rank raises the same Error naming the first rank that differs from rank 0. Without it a
// rank started with another --set or an older binary would silently train something else or
// hang in a collective of another size.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dist/communicator.h"

namespace lmforge::dist {

// FNV-1a, 64 bits.
uint64_t fnv1a64(std::string_view bytes, uint64_t seed = 0xcbf29ce484222325ull);
// The hash of this process's executable (/proc/self/exe), computed once.
uint64_t executable_build_id();
// `device`: where the communicator's tensors live (the CPU for MPI, this rank's GPU for NCCL).
void check_ranks_agree(Communicator& comm, Device device, const std::string& resolved_config, uint64_t build_id);

}  // namespace lmforge::dist
