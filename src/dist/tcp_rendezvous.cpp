#include "dist/tcp_rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "core/error.h"

namespace lmforge::dist {

namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { if (fd_ >= 0) ::close(fd_); }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept { std::swap(fd_, o.fd_); return *this; }
  int get() const { return fd_; }

 private:
  int fd_;
};

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? int(std::min<int64_t>(left, 1 << 30)) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout.
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

void send_all(int fd, const void* data, size_t n, Clock::time_point deadline, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    LF_CHECK(wait_for(fd, POLLOUT, deadline), "rendezvous: timed out sending to {}", what);
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    LF_CHECK(k > 0, "rendezvous: sending to {} failed: {}", what, std::strerror(errno));
    p += k, n -= size_t(k);
  }
}

void recv_all(int fd, void* data, size_t n, Clock::time_point deadline, const std::string& what) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    LF_CHECK(wait_for(fd, POLLIN, deadline), "rendezvous: timed out waiting for {}", what);
    const ssize_t k = ::recv(fd, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    LF_CHECK(k > 0, "rendezvous: {} closed the connection", what);
    p += k, n -= size_t(k);
  }
}

std::string serve(int port, int world_size, const std::string& payload, Clock::time_point deadline,
                  double timeout_seconds) {
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  LF_CHECK(listener.get() >= 0, "rendezvous: socket() failed: {}", std::strerror(errno));
  const int one = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons(uint16_t(port));
  LF_CHECK(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0,
           "rendezvous: rank 0 cannot listen on port {} (MASTER_PORT): {}; choose a free port", port,
           std::strerror(errno));
  LF_CHECK(::listen(listener.get(), 128) == 0, "rendezvous: listen() failed: {}", std::strerror(errno));
  std::vector<Fd> peers;
  std::set<int> missing;
  for (int r = 1; r < world_size; ++r) missing.insert(r);
  while (!missing.empty()) {
    if (!wait_for(listener.get(), POLLIN, deadline)) {
      std::string list;
      for (int r : missing) list += (list.empty() ? "" : ", ") + std::to_string(r);
      throw Error(fmt::format("rendezvous: rank(s) {} did not connect to rank 0 on port {} within {} s "
                              "(dist.timeout_s); check MASTER_ADDR / MASTER_PORT and that every rank started",
                              list, port, timeout_seconds));
    }
    Fd peer(::accept(listener.get(), nullptr, nullptr));
    if (peer.get() < 0) continue;
    uint32_t rank_be = 0;
    recv_all(peer.get(), &rank_be, sizeof rank_be, deadline, "a connecting rank");
    const int r = int(ntohl(rank_be));
    LF_CHECK(missing.erase(r) == 1, "rendezvous: two processes claim rank {} (or it is outside the world of {})", r,
             world_size);
    peers.push_back(std::move(peer));
  }
  const uint64_t n = payload.size();
  for (const Fd& p : peers) {
    send_all(p.get(), &n, sizeof n, deadline, "a rank");
    send_all(p.get(), payload.data(), payload.size(), deadline, "a rank");
  }
  // Each rank answers once it has read everything, so none is left reading a closed socket.
  for (const Fd& p : peers) {
    char ack = 0;
    recv_all(p.get(), &ack, 1, deadline, "a rank's acknowledgement");
  }
  return payload;
}

std::string fetch(const std::string& host, int port, int rank, Clock::time_point deadline, double timeout_seconds) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const std::string where = fmt::format("rank 0 at {}:{} (MASTER_ADDR:MASTER_PORT)", host, port);
  const int gai = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  LF_CHECK(gai == 0, "rendezvous: cannot resolve MASTER_ADDR {}: {}", host, ::gai_strerror(gai));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, ::freeaddrinfo);
  for (;;) {
    for (addrinfo* a = found; a; a = a->ai_next) {
      Fd fd(::socket(a->ai_family, a->ai_socktype, a->ai_protocol));
      if (fd.get() < 0) continue;
      if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0) continue;
      const uint32_t rank_be = htonl(uint32_t(rank));
      send_all(fd.get(), &rank_be, sizeof rank_be, deadline, where);
      uint64_t n = 0;
      recv_all(fd.get(), &n, sizeof n, deadline, where);
      LF_CHECK(n <= (1u << 20), "rendezvous: {} announced {} bytes; is another service listening there?", where, n);
      std::string out(size_t(n), '\0');
      recv_all(fd.get(), out.data(), out.size(), deadline, where);
      const char ack = 1;
      send_all(fd.get(), &ack, 1, deadline, where);
      return out;
    }
    LF_CHECK(ms_left(deadline) > 0, "rendezvous: could not reach {} within {} s (dist.timeout_s)", where,
             timeout_seconds);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

std::string tcp_broadcast_from_rank0(const std::string& master_addr, int master_port, int rank, int world_size,
                                     const std::string& payload, double timeout_seconds) {
  if (world_size <= 1) return payload;
  LF_CHECK(master_port > 0, "rendezvous: MASTER_PORT is not set; rank 0 listens there (e.g. MASTER_PORT=29500)");
  LF_CHECK(rank == 0 || !master_addr.empty(), "rendezvous: MASTER_ADDR is not set; it names rank 0's host");
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_seconds > 0 ? timeout_seconds : 1e9));
  if (rank == 0) return serve(master_port, world_size, payload, deadline, timeout_seconds);
  return fetch(master_addr, master_port, rank, deadline, timeout_seconds);
}

}  // namespace lmforge::dist
