// The world-1 communicator against the identity, the contract checks every backend shares, the
// watchdog that ends a stalled collective, the launcher environment and the TCP rendezvous.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "dist/communicator.h"
#include "dist/launch_env.h"
#include "dist/tcp_rendezvous.h"
#include "dist/watchdog.h"
#include "ops/ops.h"

namespace lmforge::dist {
namespace {

TEST(SingleProcessCommunicator, CollectivesAreTheIdentity) {
  SingleProcessCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.world_size(), 1);
  const std::vector<float> v{1.5f, -2.f, 3.25f, 0.f};
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) {
    Tensor t = from_vector<float>(v, {4});
    comm.all_reduce(t, op);
    EXPECT_EQ(to_vector<float>(t), v);
    Tensor out = zeros({4});
    comm.reduce_scatter(from_vector<float>(v, {4}), out, op);
    EXPECT_EQ(to_vector<float>(out), v);
  }
  Tensor gathered = zeros({4});
  comm.all_gather(from_vector<float>(v, {4}), gathered);
  EXPECT_EQ(to_vector<float>(gathered), v);
  Tensor rows = zeros({2, 2});
  comm.all_to_all(from_vector<float>(v, {2, 2}), {2}, rows, {2});
  EXPECT_EQ(to_vector<float>(rows), v);
  Tensor b = from_vector<float>(v, {4});
  comm.broadcast(b, 0);
  EXPECT_EQ(to_vector<float>(b), v);
  comm.barrier();
}

TEST(SingleProcessCommunicator, ContractViolationsAreErrors) {
  SingleProcessCommunicator comm;
  Tensor out = zeros({3});
  EXPECT_THROW(comm.reduce_scatter(zeros({4}), out, ReduceOp::Sum), Error);  // 4 != 1 · 3
  EXPECT_THROW(comm.all_gather(zeros({4}), out), Error);
  Tensor f = zeros({4});
  Tensor d = zeros({4}, DType::F64);
  EXPECT_THROW(comm.all_gather(f, d), Error);  // dtypes differ
  Tensor strided = zeros({4, 4}).transpose(0, 1);
  EXPECT_THROW(comm.all_reduce(strided, ReduceOp::Sum), Error);  // not contiguous
  Tensor ints = zeros({4}, DType::I64);
  EXPECT_THROW(comm.all_reduce(ints, ReduceOp::Avg), Error);  // an average of integers
  EXPECT_NO_THROW(comm.all_reduce(ints, ReduceOp::Sum));
  Tensor rows = zeros({2, 2});
  EXPECT_THROW(comm.all_to_all(zeros({2, 2}), {1}, rows, {2}), Error);  // counts do not add up
  EXPECT_THROW(comm.broadcast(f, 1), Error);                             // no rank 1
  Tensor bytes = zeros({4}, DType::U8);
  EXPECT_THROW(comm.all_reduce(bytes, ReduceOp::Sum), Error);
}

// A guarded call that outlives the timeout ends the process with kWatchdogExitStatus (in a
// child, so the test process lives on); one that returns in time does not.
TEST(Watchdog, EndsAStalledCallAndLeavesAPromptOneAlone) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Watchdog w;
    w.set_rank(1);
    w.set_timeout_seconds(0.2);
    { Watchdog::Scope s(w, "a prompt call"); }
    Watchdog::Scope s(w, "a stalled call");
    for (;;) ::pause();
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kWatchdogExitStatus);
}

class LaunchEnvTest : public ::testing::Test {
 protected:
  void SetUp() override { clear(); }
  void TearDown() override { clear(); }
  static void clear() {
    for (const char* v : {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "RANK",
                          "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "MASTER_ADDR",
                          "MASTER_PORT"})
      ::unsetenv(v);
  }
};

TEST_F(LaunchEnvTest, ReadsEachLauncher) {
  EXPECT_EQ(read_launch_env().launcher, Launcher::None);
  EXPECT_EQ(read_launch_env().world_size, 1);

  ::setenv("SLURM_PROCID", "3", 1), ::setenv("SLURM_NTASKS", "8", 1), ::setenv("SLURM_LOCALID", "1", 1);
  LaunchEnv e = read_launch_env();
  EXPECT_EQ(e.launcher, Launcher::Slurm);
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);

  // torchrun's variables win over Slurm's (torchrun inside an allocation).
  ::setenv("RANK", "5", 1), ::setenv("WORLD_SIZE", "6", 1), ::setenv("LOCAL_RANK", "2", 1);
  ::setenv("MASTER_ADDR", "node7", 1), ::setenv("MASTER_PORT", "29500", 1);
  e = read_launch_env();
  EXPECT_EQ(e.launcher, Launcher::Torchrun);
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 6);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29500);

  // mpirun's win over both.
  ::setenv("OMPI_COMM_WORLD_RANK", "1", 1), ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  ::setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1", 1);
  e = read_launch_env();
  EXPECT_EQ(e.launcher, Launcher::Mpirun);
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 2);
  EXPECT_EQ(e.local_rank, 1);
}

TEST_F(LaunchEnvTest, BadValuesNameTheVariable) {
  ::setenv("WORLD_SIZE", "2", 1);
  ::setenv("RANK", "2", 1);  // out of range
  try {
    read_launch_env();
    FAIL() << "accepted RANK=2 of 2";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("RANK=2"), std::string::npos) << e.what();
  }
  ::setenv("RANK", "one", 1);
  EXPECT_THROW(read_launch_env(), Error);
  ::unsetenv("RANK");
  EXPECT_THROW(read_launch_env(), Error);  // WORLD_SIZE without RANK
}

// A port that is free now (the kernel's pick, released), for the rendezvous tests.
int some_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(TcpRendezvous, EveryRankReceivesRankZerosBytes) {
  const int port = some_free_port();
  const std::string payload("unique id \0 with a zero byte", 28);
  std::vector<std::string> got(3);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 3; ++r)
    ranks.emplace_back([&, r] {
      got[size_t(r)] = tcp_broadcast_from_rank0("127.0.0.1", port, r, 3, r == 0 ? payload : "", 30);
    });
  for (auto& t : ranks) t.join();
  for (const auto& g : got) EXPECT_EQ(g, payload);
}

TEST(TcpRendezvous, AMissingRankIsAnErrorNotAHang) {
  const int port = some_free_port();
  try {
    tcp_broadcast_from_rank0("127.0.0.1", port, 0, 2, "x", 0.3);
    FAIL() << "rank 0 returned without rank 1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank(s) 1 did not connect"), std::string::npos) << e.what();
  }
  // Nobody listens: a connecting rank gives up at its deadline.
  EXPECT_THROW(tcp_broadcast_from_rank0("127.0.0.1", port, 1, 2, "", 0.3), Error);
  EXPECT_THROW(tcp_broadcast_from_rank0("127.0.0.1", 0, 1, 2, "", 0.3), Error);  // MASTER_PORT unset
}

}  // namespace
}  // namespace lmforge::dist
