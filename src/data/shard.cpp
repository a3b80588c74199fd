#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace lmforge::data {

static_assert(std::endian::native == std::endian::little, "shards are little-endian; add byte swapping");

namespace {

constexpr size_t kWriteBufferBytes = size_t{4} << 20;

void put_i32(std::vector<uint8_t>& h, int word, uint32_t v) { std::memcpy(h.data() + 4 * word, &v, 4); }
uint32_t get_u32(const uint8_t* h, int word) {
  uint32_t v;
  std::memcpy(&v, h + 4 * word, 4);
  return v;
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    LF_CHECK(w > 0, "cannot write shard {}: {}", path, std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void fsync_directory_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const std::filesystem::path dir = parent.empty() ? std::filesystem::path(".") : parent;
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

int bytes_per_token_for_vocab(size_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

std::vector<uint8_t> encode_shard_header(const ShardInfo& info) {
  std::vector<uint8_t> h(kShardHeaderBytes, 0);
  put_i32(h, 0, static_cast<uint32_t>(kShardMagic));
  put_i32(h, 1, static_cast<uint32_t>(kShardVersion));
  put_i32(h, 2, static_cast<uint32_t>(info.bytes_per_token));
  put_i32(h, 3, static_cast<uint32_t>(info.n_tokens));
  put_i32(h, 4, static_cast<uint32_t>(info.n_tokens >> 32));
  put_i32(h, 5, info.vocab_size);
  put_i32(h, 6, static_cast<uint32_t>(static_cast<int32_t>(info.eot_id)));
  put_i32(h, 7, static_cast<uint32_t>(info.n_documents));
  put_i32(h, 8, static_cast<uint32_t>(info.n_documents >> 32));
  put_i32(h, 9, static_cast<uint32_t>(kShardHeaderBytes));
  return h;
}

// ---------------------------------------------------------------------------------------------
// Writer

ShardWriter::ShardWriter(std::string path, Options options) : path_(std::move(path)) {
  LF_CHECK(options.bytes_per_token == 2 || options.bytes_per_token == 4,
           "shard {}: bytes per token must be 2 or 4, not {}", path_, options.bytes_per_token);
  LF_CHECK(options.vocab_size > 0, "shard {}: vocab size must be positive", path_);
  LF_CHECK(options.bytes_per_token == 4 || options.vocab_size <= 65536,
           "shard {}: a vocabulary of {} ids does not fit uint16", path_, options.vocab_size);
  LF_CHECK(options.eot_id < static_cast<int64_t>(options.vocab_size), "shard {}: end-of-text id {} >= vocab size {}",
           path_, options.eot_id, options.vocab_size);
  info_.bytes_per_token = options.bytes_per_token;
  info_.vocab_size = options.vocab_size;
  info_.eot_id = options.eot_id;
  tmp_path_ = path_ + ".tmp-" + std::to_string(::getpid());
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  LF_CHECK(fd_ >= 0, "cannot create shard {}: {}", tmp_path_, std::strerror(errno));
  // Room for the header, written at close() once the count is known.
  buffer_.assign(kShardHeaderBytes, 0);
  buffer_.reserve(kWriteBufferBytes + kShardHeaderBytes);
}

ShardWriter::~ShardWriter() {
  if (!closed_ && fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_path_.c_str());
  }
}

void ShardWriter::append(std::span<const uint32_t> ids) {
  LF_ASSERT(!closed_, "append after close");
  const uint32_t max_id = ids.empty() ? 0 : *std::max_element(ids.begin(), ids.end());
  if (!ids.empty() && max_id >= info_.vocab_size) {
    const auto it = std::find_if(ids.begin(), ids.end(), [&](uint32_t v) { return v >= info_.vocab_size; });
    throw Error(fmt::format("shard {}: id {} at position {} is not below the vocab size {}", path_, *it,
                            info_.n_tokens + static_cast<uint64_t>(it - ids.begin()), info_.vocab_size));
  }
  size_t i = 0;
  while (i < ids.size()) {
    if (buffer_.size() >= kWriteBufferBytes) flush_buffer();
    const size_t room = (kWriteBufferBytes + kShardHeaderBytes - buffer_.size()) / info_.bytes_per_token;
    const size_t n = std::min(room, ids.size() - i);
    const size_t at = buffer_.size();
    buffer_.resize(at + n * info_.bytes_per_token);
    if (info_.bytes_per_token == 2) {
      auto* out = reinterpret_cast<uint16_t*>(buffer_.data() + at);
      for (size_t k = 0; k < n; ++k) out[k] = static_cast<uint16_t>(ids[i + k]);
    } else {
      std::memcpy(buffer_.data() + at, ids.data() + i, n * 4);
    }
    i += n;
  }
  info_.n_tokens += ids.size();
}

void ShardWriter::flush_buffer() {
  write_all(fd_, buffer_.data(), buffer_.size(), tmp_path_);
  buffer_.clear();
}

void ShardWriter::close() {
  if (closed_) return;
  flush_buffer();
  const std::vector<uint8_t> header = encode_shard_header(info_);
  LF_CHECK(::pwrite(fd_, header.data(), header.size(), 0) == static_cast<ssize_t>(header.size()),
           "cannot write shard header {}: {}", tmp_path_, std::strerror(errno));
  LF_CHECK(::fsync(fd_) == 0, "cannot sync shard {}: {}", tmp_path_, std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp_path_.c_str());
    closed_ = true;
    throw Error(fmt::format("cannot rename shard {} to {}: {}", tmp_path_, path_, std::strerror(e)));
  }
  fsync_directory_of(path_);
  closed_ = true;
}

// ---------------------------------------------------------------------------------------------
// Reader

ShardReader::ShardReader(std::string path) : path_(std::move(path)) {
  map_ = map_file(path_, "shard");
  const uint64_t file_bytes = map_->size;
  LF_CHECK(file_bytes >= kShardHeaderBytes, "shard {} is truncated: {} bytes, shorter than the {}-byte header", path_,
           file_bytes, kShardHeaderBytes);
  const uint8_t* h = map_->data;
  try {
    const uint32_t magic = get_u32(h, 0);
    LF_CHECK(magic == static_cast<uint32_t>(kShardMagic),
             "{} is not a token shard: magic number {:#010x}, expected {:#010x} (\"LMFS\")", path_, magic,
             static_cast<uint32_t>(kShardMagic));
    const uint32_t version = get_u32(h, 1);
    LF_CHECK(version == static_cast<uint32_t>(kShardVersion), "shard {} has format version {}; this build reads {}",
             path_, version, kShardVersion);
    const uint32_t width = get_u32(h, 2);
    LF_CHECK(width == 2 || width == 4, "shard {} is corrupt: {} bytes per token (expected 2 or 4)", path_, width);
    const uint32_t header_bytes = get_u32(h, 9);
    LF_CHECK(header_bytes == kShardHeaderBytes, "shard {} is corrupt: header size {} (expected {})", path_,
             header_bytes, kShardHeaderBytes);
    info_.bytes_per_token = static_cast<int>(width);
    info_.n_tokens = get_u32(h, 3) | static_cast<uint64_t>(get_u32(h, 4)) << 32;
    info_.vocab_size = get_u32(h, 5);
    info_.eot_id = static_cast<int32_t>(get_u32(h, 6));
    info_.n_documents = get_u32(h, 7) | static_cast<uint64_t>(get_u32(h, 8)) << 32;
    const uint64_t payload = file_bytes - kShardHeaderBytes;
    LF_CHECK(info_.n_tokens <= payload / width && payload == info_.n_tokens * width,
             "shard {} is {}: the header says {} tokens ({} bytes) but the file holds {} bytes after the header",
             path_, payload < info_.n_tokens * width ? "truncated" : "corrupt (extra bytes at the end)",
             info_.n_tokens, info_.n_tokens * width, payload);
    LF_CHECK(info_.eot_id >= -1 && (info_.eot_id < 0 || static_cast<uint64_t>(info_.eot_id) < info_.vocab_size ||
                                    info_.vocab_size == 0),
             "shard {} is corrupt: end-of-text id {} with vocab size {}", path_, info_.eot_id, info_.vocab_size);
  } catch (...) {
    map_.reset();
    throw;
  }
  data_ = h + kShardHeaderBytes;
  if (info_.n_tokens > 0) ::madvise(const_cast<uint8_t*>(map_->data), map_->size, MADV_WILLNEED);
}

std::span<const uint16_t> ShardReader::u16() const {
  LF_CHECK(info_.bytes_per_token == 2, "shard {} holds uint32 ids, not uint16", path_);
  return {reinterpret_cast<const uint16_t*>(data_), static_cast<size_t>(info_.n_tokens)};
}

std::span<const uint32_t> ShardReader::u32() const {
  LF_CHECK(info_.bytes_per_token == 4, "shard {} holds uint16 ids, not uint32", path_);
  return {reinterpret_cast<const uint32_t*>(data_), static_cast<size_t>(info_.n_tokens)};
}

void ShardReader::check_index(uint64_t i) const {
  LF_ASSERT(i < info_.n_tokens, "index {} out of range for shard {} of {} tokens", i, path_, info_.n_tokens);
}

void ShardReader::read(uint64_t begin, std::span<uint32_t> out) const {
  LF_ASSERT(begin <= info_.n_tokens && out.size() <= info_.n_tokens - begin, "read [{}, +{}) out of range for {}",
            begin, out.size(), path_);
  if (out.empty()) return;  // an empty shard maps nothing: data_ may be null
  if (info_.bytes_per_token == 4) {
    std::memcpy(out.data(), data_ + begin * 4, out.size() * 4);
  } else {
    const auto* p = reinterpret_cast<const uint16_t*>(data_) + begin;
    for (size_t k = 0; k < out.size(); ++k) out[k] = p[k];
  }
}

void ShardReader::validate_ids(uint32_t vocab_size) const {
  auto check = [&](auto ids) {
    // Scan in blocks with a branch-free max; locate the offender only when a block fails.
    constexpr size_t kBlock = 1 << 16;
    for (size_t b = 0; b < ids.size(); b += kBlock) {
      const auto block = ids.subspan(b, std::min(kBlock, ids.size() - b));
      uint32_t mx = 0;
      for (const auto v : block) mx = std::max<uint32_t>(mx, v);
      if (mx < vocab_size) continue;
      for (size_t k = 0; k < block.size(); ++k) {
        if (block[k] >= vocab_size) {
          throw Error(fmt::format("shard {}: token {} at position {} is not below the vocab size {}", path_,
                                  static_cast<uint32_t>(block[k]), b + k, vocab_size));
        }
      }
    }
  };
  if (info_.bytes_per_token == 2) {
    check(u16());
  } else {
    check(u32());
  }
}

}  // namespace lmforge::data
