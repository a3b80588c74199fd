#include "train/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace lmforge::train {

namespace {
std::string sys_error() { return std::strerror(errno); }
}  // namespace

SyncedWriter::SyncedWriter(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LF_CHECK(fd_ >= 0, "cannot create {}: {}", path, sys_error());
}

SyncedWriter::~SyncedWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void SyncedWriter::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    LF_CHECK(w > 0, "cannot write {}: {}", path_, sys_error());
    p += w;
    n -= size_t(w);
  }
}

void SyncedWriter::pwrite(const void* data, size_t n, uint64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, p, n, off_t(offset));
    if (w < 0 && errno == EINTR) continue;
    LF_CHECK(w > 0, "cannot write {}: {}", path_, sys_error());
    p += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
}

void SyncedWriter::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0) {
    const std::string why = sys_error();
    ::close(fd);
    throw Error(fmt::format("cannot sync {}: {}", path_, why));
  }
  LF_CHECK(::close(fd) == 0, "cannot close {}: {}", path_, sys_error());
}

void write_file_synced(const std::string& path, std::string_view content) {
  SyncedWriter w(path);
  w.write(content);
  w.close();
}

void fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LF_CHECK(fd >= 0, "cannot open {}: {}", path, sys_error());
  const int rc = ::fsync(fd);
  const std::string why = rc != 0 ? sys_error() : "";
  ::close(fd);
  LF_CHECK(rc == 0, "cannot sync {}: {}", path, why);
}

void fsync_directory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  LF_CHECK(fd >= 0, "cannot open directory {}: {}", path, sys_error());
  const int rc = ::fsync(fd);
  const std::string why = rc != 0 ? sys_error() : "";
  ::close(fd);
  LF_CHECK(rc == 0, "cannot sync directory {}: {}", path, why);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LF_CHECK(in.good(), "cannot open {}", path);
  std::stringstream ss;
  ss << in.rdbuf();
  LF_CHECK(!in.bad(), "cannot read {}", path);
  return ss.str();
}

std::shared_ptr<MappedFile> map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LF_CHECK(fd >= 0, "cannot open {}: {}", path, sys_error());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = sys_error();
    ::close(fd);
    throw Error(fmt::format("cannot stat {}: {}", path, why));
  }
  const size_t size = size_t(st.st_size);
  void* p = nullptr;
  if (size > 0) {
    p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const std::string why = sys_error();
      ::close(fd);
      throw Error(fmt::format("cannot map {}: {}", path, why));
    }
  }
  ::close(fd);
  auto* m = new MappedFile{static_cast<const uint8_t*>(p), size};
  return std::shared_ptr<MappedFile>(m, [](MappedFile* f) {
    if (f->data) ::munmap(const_cast<uint8_t*>(f->data), f->size);
    delete f;
  });
}

}  // namespace lmforge::train
