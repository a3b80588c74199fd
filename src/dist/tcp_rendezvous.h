// The smallest rendezvous a NCCL communicator needs outside mpirun: rank 0 listens on
// MASTER_ADDR:MASTER_PORT, every other rank connects and receives rank 0's bytes (the NCCL
// unique id). Plain POSIX sockets, length-prefixed messages, every wait bounded by
// `timeout_seconds`: a rank that never shows up or a rank 0 that is not listening is an Error
// naming the address and the ranks still missing, never a hang.
#pragma once

#include <string>

namespace lmforge::dist {

// Rank 0 returns `payload` after every other rank has received it; the others return what rank
// 0 sent. world_size 1 returns payload at once.
std::string tcp_broadcast_from_rank0(const std::string& master_addr, int master_port, int rank, int world_size,
                                     const std::string& payload, double timeout_seconds);

}  // namespace lmforge::dist
