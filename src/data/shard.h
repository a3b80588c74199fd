// Token shards: a 1024-byte header of 256 little-endian int32 words, then the token ids, raw.
//
//   word   meaning
//   0      magic 0x53464D4C (the bytes "LMFS" at the start of the file)
//   1      format version, 1
//   2      bytes per token: 2 (uint16 ids) or 4 (uint32 ids)
//   3, 4   number of tokens: low and high 32 bits (an unsigned 64-bit count)
//   5      vocabulary size of the tokenizer (every id is below it)
//   6      end-of-text id, or -1 when there is none
//   7, 8   number of documents begun in this shard (a document starts right after an
//          end-of-text id, or at the first token of a corpus): low and high 32 bits
//   9      header size in bytes, 1024
//   10..255 zero (reserved)
//   1024.. ids, count * bytes-per-token bytes, little-endian; nothing after them
//
// Python reads one with: np.memmap(path, dtype=np.uint16 (or uint32), mode="r", offset=1024).
// docs/FORMATS.md holds the same table. The writer writes to "<path>.tmp-<pid>", fsyncs it,
// renames it over <path> and fsyncs the directory, so a shard is either complete or absent.
// The reader maps the file read-only and checks magic, version, width and that the file is
// exactly header + count * width bytes; any mismatch is an Error naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/file_util.h"

namespace lmforge::data {

inline constexpr int32_t kShardMagic = 0x53464D4C;  // "LMFS"
inline constexpr int32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 1024;

struct ShardInfo {
  int bytes_per_token = 2;  // 2 or 4
  uint64_t n_tokens = 0;
  uint32_t vocab_size = 0;
  int64_t eot_id = -1;      // -1: none
  uint64_t n_documents = 0;
};

// The narrowest width (2 or 4 bytes) that holds every id below vocab_size.
int bytes_per_token_for_vocab(size_t vocab_size);

// The header bytes for info (exposed for tests that build broken files).
std::vector<uint8_t> encode_shard_header(const ShardInfo& info);

class ShardWriter {
 public:
  struct Options {
    int bytes_per_token = 2;
    uint32_t vocab_size = 0;
    int64_t eot_id = -1;
  };
  // Creates the temporary file; throws Error naming path when it cannot.
  ShardWriter(std::string path, Options options);
  ~ShardWriter();  // without close(): removes the temporary file
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends ids; each must be below vocab_size (else Error naming the file and the id).
  void append(std::span<const uint32_t> ids);
  void add_documents(uint64_t n) { info_.n_documents += n; }
  uint64_t n_tokens() const { return info_.n_tokens; }
  const std::string& path() const { return path_; }
  // Writes the header, fsyncs, renames into place. Idempotent.
  void close();

 private:
  void flush_buffer();

  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  ShardInfo info_;
  std::vector<uint8_t> buffer_;
  bool closed_ = false;
};

class ShardReader {
 public:
  // Maps and validates the file (see the file comment); throws Error naming it.
  explicit ShardReader(std::string path);

  const std::string& path() const { return path_; }
  const ShardInfo& info() const { return info_; }
  uint64_t size() const { return info_.n_tokens; }
  int bytes_per_token() const { return info_.bytes_per_token; }
  // The ids as stored; Error when the shard has the other width.
  std::span<const uint16_t> u16() const;
  std::span<const uint32_t> u32() const;
  // Id i of either width; i < size() is checked (InternalError otherwise).
  uint32_t at(uint64_t i) const {
    check_index(i);
    return info_.bytes_per_token == 2 ? reinterpret_cast<const uint16_t*>(data_)[i]
                                      : reinterpret_cast<const uint32_t*>(data_)[i];
  }
  // Copies ids [begin, begin + out.size()) into out.
  void read(uint64_t begin, std::span<uint32_t> out) const;
  // Error naming the file and the position and value of the first id >= vocab_size.
  void validate_ids(uint32_t vocab_size) const;

 private:
  void check_index(uint64_t i) const;

  std::string path_;
  ShardInfo info_;
  std::shared_ptr<MappedFile> map_;  // core/file_util.h
  const uint8_t* data_ = nullptr;    // the first id, inside map_
};

}  // namespace lmforge::data
