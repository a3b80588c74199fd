// A full disk for tests, without root or a small filesystem: while a DiskFullAfter lives, a
// write that would make any file larger than `bytes` fails with EFBIG (RLIMIT_FSIZE, with
// SIGXFSZ ignored so the write returns an error instead of killing the process). Each CTest case
// runs in its own process, so the limit touches nothing else; the destructor restores it.
#pragma once

#include <sys/resource.h>

#include <csignal>
#include <cstdint>

namespace lmforge::test {

class DiskFullAfter {
 public:
  explicit DiskFullAfter(uint64_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old_);
    rlimit lim = old_;
    lim.rlim_cur = rlim_t(bytes);
    setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~DiskFullAfter() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  DiskFullAfter(const DiskFullAfter&) = delete;
  DiskFullAfter& operator=(const DiskFullAfter&) = delete;

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

}  // namespace lmforge::test
