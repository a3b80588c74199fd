#include "dist/local_launch.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "core/error.h"

namespace lmforge::dist {

namespace {

// A TCP port nobody listens on right now (the kernel's pick for port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  LF_CHECK(fd >= 0, "--nproc: socket() failed: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  LF_CHECK(ok, "--nproc: could not find a free port for the rendezvous; set MASTER_PORT");
  return ntohs(a.sin_port);
}

std::vector<char*> c_args(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return "ended";
}

}  // namespace

std::vector<std::string> own_command_line() {
  // /proc files report no size: read to the end.
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < raw.size(); ++i)
    if (raw[i] == '\0') args.push_back(raw.substr(start, i - start)), start = i + 1;
  if (start < raw.size()) args.push_back(raw.substr(start));
  return args;
}

void run_local_ranks(int nproc) {
  LF_CHECK(nproc >= 1, "--nproc must be >= 1, got {}", nproc);
  std::vector<std::string> args = own_command_line();
  LF_CHECK(!args.empty(), "--nproc: cannot read this process's command line");
  const std::string port = std::getenv("MASTER_PORT") ? std::getenv("MASTER_PORT") : std::to_string(free_port());
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    LF_CHECK(pid >= 0, "--nproc: fork() failed: {}", std::strerror(errno));
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", port.c_str(), 1);
      // NVLink SHARP (multicast) buffers are not needed for data parallel and fail on some hosts.
      ::setenv("NCCL_NVLS_ENABLE", "0", 1);
      auto argv = c_args(args);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "error: rank %d: exec of /proc/self/exe failed: %s\n", r, std::strerror(errno));
      std::_Exit(127);
    }
    pids.push_back(pid);
  }
  std::string failure;
  size_t running = pids.size();
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    --running;
    size_t rank = 0;
    while (rank < pids.size() && pids[rank] != pid) ++rank;
    if (rank == pids.size()) continue;
    pids[rank] = -1;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok || !failure.empty()) continue;
    failure = fmt::format("rank {} of {} {}", rank, nproc, describe_status(status));
    // The others would wait for it until their timeout: stop them now.
    for (pid_t p : pids)
      if (p > 0) ::kill(p, SIGTERM);
    std::thread([pids] {
      std::this_thread::sleep_for(std::chrono::seconds(10));
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL);
    }).detach();
  }
  LF_CHECK(failure.empty(), "--nproc {}: {}; the other ranks were stopped", nproc, failure);
}

void exec_under_mpirun(int nproc) {
  LF_CHECK(nproc >= 1, "--nproc must be >= 1, got {}", nproc);
  std::string mpirun;
  if (const char* path = std::getenv("PATH")) {
    std::string p(path);
    for (size_t start = 0; start <= p.size();) {
      const size_t end = std::min(p.find(':', start), p.size());
      const std::string cand = p.substr(start, end - start) + "/mpirun";
      if (end > start && ::access(cand.c_str(), X_OK) == 0) {
        mpirun = cand;
        break;
      }
      start = end + 1;
    }
  }
  LF_CHECK(!mpirun.empty(), "--nproc {} on the CPU runs the ranks under MPI, and mpirun is not on PATH: install "
           "openmpi-bin, or start the ranks yourself with mpirun -np {} lmforge train ...", nproc, nproc);
  std::vector<std::string> args{mpirun, "-np", std::to_string(nproc), "--bind-to", "none"};
  const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (cores > 0 && nproc > cores) args.push_back("--oversubscribe");
  if (::geteuid() == 0) args.push_back("--allow-run-as-root");
  if (!std::getenv("OMP_NUM_THREADS"))
    ::setenv("OMP_NUM_THREADS", std::to_string(std::max<long>(1, cores / nproc)).c_str(), 1);
  std::vector<std::string> self = own_command_line();
  self[0] = "/proc/self/exe";
  // mpirun's children are not this process: name the executable itself.
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  LF_CHECK(n > 0, "--nproc: cannot resolve /proc/self/exe");
  self[0] = std::string(exe, size_t(n));
  args.insert(args.end(), self.begin(), self.end());
  std::fflush(stdout);
  std::fflush(stderr);
  auto argv = c_args(args);
  ::execv(mpirun.c_str(), argv.data());
  throw Error(fmt::format("--nproc: exec of {} failed: {}", mpirun, std::strerror(errno)));
}

}  // namespace lmforge::dist
