// RunDirLock: flock(2) on RUN_DIR/.lock, the holder's pid written into the file.
#include "train/run_dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace lmforge::train {

namespace {

// The pid the holder wrote, or "unknown" (it may be between its flock and its write).
std::string read_holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  long pid = 0;
  if (n > 0 && std::from_chars(buf, buf + n, pid).ec == std::errc() && pid > 0) return std::to_string(pid);
  return "unknown";
}

}  // namespace

RunDirLock::RunDirLock(const std::string& run_dir) {
  const std::string path = (std::filesystem::path(run_dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  LF_CHECK(fd_ >= 0, "cannot open the run directory's lock file {}: {}", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = err == EWOULDBLOCK ? read_holder_pid(fd_) : "";
    ::close(fd_);
    fd_ = -1;
    LF_CHECK(err != EWOULDBLOCK, "run directory {} is in use by another training process (pid {}, holding {}); "
             "wait for it to finish or stop it, or choose another train.out_dir", run_dir, holder, path);
    throw Error(fmt::format("cannot lock {}: {}", path, std::strerror(err)));
  }
  // The pid is only a message for a refused trainer: the lock is the flock, not the file's content.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int err = errno;
    ::close(fd_);
    throw Error(fmt::format("cannot write {}: {}", path, std::strerror(err)));
  }
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor of the open file releases the flock
}

}  // namespace lmforge::train
