// Whole files on POSIX, one copy for every layer: reading, durable and atomic writing, read-only
// mappings. Every failure is an Error naming the path and the system's reason.
//
// Durable means fsynced: write_file_synced and SyncedWriter::close() fsync the file; a rename is
// durable once its directory is fsynced (fsync_directory). write_file_atomic does both: the
// content goes to "<path>.tmp", is fsynced, renamed over <path>, and the directory is fsynced, so
// a crash leaves the old file or the new one, never half of one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace lmforge {

// An open file written front to back; close() fsyncs. Without close() the destructor closes
// without syncing (the caller is unwinding from an error anyway).
class SyncedWriter {
 public:
  explicit SyncedWriter(const std::string& path);
  ~SyncedWriter();
  SyncedWriter(const SyncedWriter&) = delete;
  SyncedWriter& operator=(const SyncedWriter&) = delete;
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // Overwrites bytes at `offset` (already written).
  void pwrite(const void* data, size_t n, uint64_t offset);
  void close();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Writes `content` to `path` and fsyncs it.
void write_file_synced(const std::string& path, std::string_view content);
// Writes `content` to path + ".tmp", fsyncs it, renames it over `path` and fsyncs the directory.
// On any failure the temporary file is removed again and `path` is left as it was.
void write_file_atomic(const std::string& path, std::string_view content);
// Creates the new directory `dir` (a trailing '/' allowed) all at once: fill(tmp) writes its
// files into a temporary sibling ".tmp-<name>-<pid>", which is fsynced and renamed to `dir`, and
// the parent directory fsynced. On any failure the temporary directory is removed and `dir` does
// not appear; a filesystem error becomes an Error naming `dir`. The caller checks beforehand
// that `dir` does not exist (and says so in its own words).
void write_directory_atomic(const std::string& dir, const std::function<void(const std::string& tmp)>& fill);
// fsyncs a file written by other means.
void fsync_file(const std::string& path);
// fsyncs a directory, so renames and new entries in it are durable.
void fsync_directory(const std::string& path);

// The file's bytes. `what` names the kind of file in messages ("cannot open config file x.toml");
// empty: just the path.
std::string read_file(const std::string& path, std::string_view what = {});

// A read-only mapping of a whole file; `data` stays valid while the returned pointer lives (null
// for an empty file). `what` as for read_file.
struct MappedFile {
  const uint8_t* data = nullptr;
  size_t size = 0;
};
std::shared_ptr<MappedFile> map_file(const std::string& path, std::string_view what = {});

}  // namespace lmforge
