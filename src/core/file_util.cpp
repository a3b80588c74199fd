#include "core/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace lmforge {

namespace {
std::string sys_error() { return std::strerror(errno); }

// "config file x.toml", or the bare path.
std::string label(const std::string& path, std::string_view what) {
  return what.empty() ? path : fmt::format("{} {}", what, path);
}
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

void write_file_atomic(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  try {
    write_file_synced(tmp, content);
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    LF_CHECK(!ec, "cannot rename {} to {}: {}", tmp, path, ec.message());
  } catch (...) {
    // A full disk, a directory in the way: the temporary file goes again.
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  fsync_directory(parent.empty() ? std::string(".") : parent.string());
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

void write_directory_atomic(const std::string& dir, const std::function<void(const std::string& tmp)>& fill) {
  namespace fs = std::filesystem;
  fs::path out = fs::absolute(fs::path(dir));
  if (out.filename().empty()) out = out.parent_path();  // "DIR/"
  const fs::path parent = out.parent_path();
  const fs::path tmp = parent / fmt::format(".tmp-{}-{}", out.filename().string(), ::getpid());
  std::error_code ec;
  try {
    fs::create_directories(parent);
    fs::remove_all(tmp, ec);
    fs::create_directory(tmp);
    fill(tmp.string());
    fsync_directory(tmp.string());
    fs::rename(tmp, out);
    fsync_directory(parent.string());
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw Error(fmt::format("writing {} failed: {}", dir, e.what()));
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

std::string read_file(const std::string& path, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LF_CHECK(fd >= 0, "cannot open {}: {}", label(path, what), sys_error());
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw Error(fmt::format("{} is a directory, not a {}", path, what.empty() ? std::string_view("file") : what));
  }
  std::string data;
  if (st.st_size > 0) data.reserve(size_t(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const std::string why = sys_error();
      ::close(fd);
      throw Error(fmt::format("error reading {}: {}", label(path, what), why));
    }
    if (r == 0) break;
    data.append(buf, size_t(r));
  }
  ::close(fd);
  return data;
}

std::shared_ptr<MappedFile> map_file(const std::string& path, std::string_view what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LF_CHECK(fd >= 0, "cannot open {}: {}", label(path, what), sys_error());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = sys_error();
    ::close(fd);
    throw Error(fmt::format("cannot stat {}: {}", label(path, what), why));
  }
  const size_t size = size_t(st.st_size);
  void* p = nullptr;
  if (size > 0) {
    p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const std::string why = sys_error();
      ::close(fd);
      throw Error(fmt::format("cannot map {}: {}", label(path, what), why));
    }
  }
  ::close(fd);
  auto* m = new MappedFile{static_cast<const uint8_t*>(p), size};
  return std::shared_ptr<MappedFile>(m, [](MappedFile* f) {
    if (f->data) ::munmap(const_cast<uint8_t*>(f->data), f->size);
    delete f;
  });
}

}  // namespace lmforge
