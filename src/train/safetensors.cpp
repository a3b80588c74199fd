#include "train/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "ops/ops.h"
#include "core/file_util.h"

namespace lmforge::train {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

constexpr const char* kChecksumKey = "lmforge.checksum";
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

const char* st_dtype_name(DType t) {
  switch (t) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::F8E4M3: return "F8_E4M3";
    case DType::F8E5M2: return "F8_E5M2";
    case DType::I8: return "I8";
    case DType::I16: return "I16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
    case DType::U16: return "U16";
    case DType::U32: return "U32";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

bool parse_st_dtype(const std::string& s, DType& out) {
  for (int i = 0; i < kNumDTypes; ++i) {
    const DType t = static_cast<DType>(i);
    if (s == st_dtype_name(t)) {
      out = t;
      return true;
    }
  }
  return false;
}

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full;

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

// A contiguous host copy of t (t itself when it already is one).
Tensor host_contiguous(const Tensor& t) {
  NoGradGuard no_grad;
  Tensor h = t.detach();
  if (!h.device().is_cpu()) h = h.to(Device::cpu());
  return contiguous(h);
}

std::string header_text(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata,
                        const std::string& checksum) {
  nlohmann::ordered_json j;
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata) meta[k] = v;
  meta[kChecksumKey] = checksum;
  j["__metadata__"] = meta;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t n = t.nbytes();
    j[name] = {{"dtype", st_dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string s = j.dump();
  while (s.size() % 8) s += ' ';
  return s;
}

}  // namespace

void Hash64::block(const uint8_t* p) {
  for (int i = 0; i < 4; ++i) lanes_[i] = rotl(lanes_[i] + load64(p + 8 * i) * kP2, 31) * kP1;
}

void Hash64::update(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  total_ += n;
  if (buffered_ > 0) {
    const size_t take = std::min(n, 32 - buffered_);
    std::memcpy(buf_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    n -= take;
    if (buffered_ < 32) return;
    block(buf_);
    buffered_ = 0;
  }
  for (; n >= 32; p += 32, n -= 32) block(p);
  std::memcpy(buf_, p, n);
  buffered_ = n;
}

uint64_t Hash64::digest() const {
  uint64_t h = rotl(lanes_[0], 1) + rotl(lanes_[1], 7) + rotl(lanes_[2], 12) + rotl(lanes_[3], 18);
  h ^= total_ * kP1;
  for (size_t i = 0; i < buffered_; ++i) h = rotl(h ^ (uint64_t(buf_[i]) * kP2), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  return h;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    LF_CHECK(tensors[i].first != "__metadata__", "{}: a tensor may not be called __metadata__", path);
    for (size_t j = 0; j < i; ++j)
      LF_CHECK(tensors[i].first != tensors[j].first, "{}: tensor name '{}' appears twice", path, tensors[i].first);
  }
  // The header (with a placeholder checksum of the same length) goes first; the data follows and
  // is hashed as it streams out; then the header is rewritten with the real checksum.
  const std::string placeholder = header_text(tensors, metadata, hex64(0));
  SyncedWriter w(path);
  const uint64_t n = placeholder.size();
  w.write(&n, 8);
  w.write(placeholder);
  Hash64 hash;
  for (const auto& [name, t] : tensors) {
    const Tensor h = host_contiguous(t);
    w.write(h.data_ptr(), h.nbytes());
    hash.update(h.data_ptr(), h.nbytes());
  }
  const std::string header = header_text(tensors, metadata, hex64(hash.digest()));
  LF_ASSERT(header.size() == placeholder.size());
  w.pwrite(header.data(), header.size(), 8);
  w.close();
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  auto m = map_file(path);
  mapping_ = m;
  const size_t size = m->size;
  LF_CHECK(size >= 8, "{}: not a safetensors file (only {} bytes; the file is truncated)", path, size);
  uint64_t header_len = 0;
  std::memcpy(&header_len, m->data, 8);
  LF_CHECK(header_len <= kMaxHeaderBytes && header_len <= size - 8,
           "{}: header length {} does not fit in the file of {} bytes (the file is truncated or not safetensors)",
           path, header_len, size);
  const char* hp = reinterpret_cast<const char*>(m->data + 8);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(hp, hp + header_len);
  } catch (const std::exception& e) {
    throw Error(fmt::format("{}: the header is not valid JSON ({}); the file is corrupted", path, e.what()));
  }
  LF_CHECK(j.is_object(), "{}: the header is not a JSON object; the file is corrupted", path);
  data_ = m->data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::vector<std::pair<uint64_t, std::string>> order;
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "__metadata__") {
        LF_CHECK(it->is_object(), "{}: __metadata__ is not an object", path);
        for (auto mt = it->begin(); mt != it->end(); ++mt) {
          LF_CHECK(mt->is_string(), "{}: metadata value '{}' is not a string", path, mt.key());
          metadata_[mt.key()] = mt->get<std::string>();
        }
        continue;
      }
      const auto& e = *it;
      LF_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
               "{}: tensor '{}' lacks dtype, shape or data_offsets", path, it.key());
      Entry en{};
      LF_CHECK(parse_st_dtype(e["dtype"].get<std::string>(), en.dtype), "{}: tensor '{}' has unknown dtype {}", path,
               it.key(), e["dtype"].dump());
      for (const auto& d : e["shape"]) {
        LF_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, "{}: tensor '{}' has a bad shape {}", path,
                 it.key(), e["shape"].dump());
        en.shape.push_back(d.get<int64_t>());
      }
      const auto& off = e["data_offsets"];
      LF_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
               "{}: tensor '{}' has bad data_offsets {}", path, it.key(), off.dump());
      en.begin = off[0].get<uint64_t>();
      en.end = off[1].get<uint64_t>();
      LF_CHECK(en.begin <= en.end, "{}: tensor '{}' has data_offsets {} with begin > end", path, it.key(), off.dump());
      uint64_t expect = dtype_size(en.dtype);
      for (int64_t d : en.shape) {
        LF_CHECK(d == 0 || expect <= UINT64_MAX / uint64_t(d), "{}: tensor '{}' is too large", path, it.key());
        expect *= uint64_t(d);
      }
      LF_CHECK(en.end - en.begin == expect, "{}: tensor '{}' of shape {} and dtype {} needs {} bytes but its "
               "data_offsets span {}", path, it.key(), shape_str(en.shape), st_dtype_name(en.dtype), expect,
               en.end - en.begin);
      LF_CHECK(en.end <= data_size, "{}: tensor '{}' ends at byte {} of the data but the file holds only {} data "
               "bytes; the file is truncated", path, it.key(), en.end, data_size);
      order.push_back({en.begin, it.key()});
      entries_[it.key()] = en;
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: malformed header ({}); the file is corrupted", path, e.what()));
  }
  std::sort(order.begin(), order.end());
  uint64_t covered = 0;
  for (const auto& [begin, name] : order) {
    LF_CHECK(begin == covered, "{}: tensor '{}' starts at byte {} but the previous data ends at {} (overlap or "
             "hole); the file is corrupted", path, name, begin, covered);
    covered = entries_[name].end;
    names_.push_back(name);
  }
  LF_CHECK(covered == data_size, "{}: the header describes {} data bytes but the file holds {}; the file is {}",
           path, covered, data_size, covered > data_size ? "truncated" : "corrupted (trailing bytes)");
  if (auto it = metadata_.find(kChecksumKey); it != metadata_.end()) {
    Hash64 h;
    h.update(data_, data_size);
    LF_CHECK(hex64(h.digest()) == it->second, "{}: checksum mismatch (stored {}, computed {}); the file is "
             "corrupted", path, it->second, hex64(h.digest()));
  }
}

Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = entries_.find(name);
  LF_CHECK(it != entries_.end(), "{}: no tensor named '{}'", path_, name);
  const Entry& e = it->second;
  return Tensor::from_external(const_cast<uint8_t*>(data_ + e.begin), e.shape, e.dtype, Device::cpu(), mapping_);
}

Tensor SafetensorsFile::get_finite_float(const std::string& name) const {
  const Tensor t = get(name);
  LF_CHECK(is_floating(t.dtype()), "{}: tensor '{}' is stored as {}, not as a floating-point type (F32, F16, BF16, "
           "F64, F8_*); it cannot be loaded as weights", path_, name, st_dtype_name(t.dtype()));
  NoGradGuard no_grad;
  const Tensor f = t.dtype() == DType::F32 ? t : t.to(DType::F32);
  const float* p = static_cast<const float*>(f.data_ptr());
  const int64_t n = f.numel();
  for (int64_t i = 0; i < n; ++i)
    LF_CHECK(std::isfinite(p[i]), "{}: tensor '{}' holds {} at flat index {}; the weights are not usable (a run "
             "that diverged, or a corrupted file)", path_, name, p[i], i);
  return t;
}

NamedTensors SafetensorsFile::all() const {
  NamedTensors out;
  for (const auto& n : names_) out.push_back({n, get(n)});
  return out;
}

}  // namespace lmforge::train
