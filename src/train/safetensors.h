// The safetensors format (huggingface/safetensors), written and read without dependencies:
//
//   8 bytes   N, the header length, unsigned little-endian
//   N bytes   JSON: {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//             "__metadata__": {"<key>": "<string>", ...}}, padded with spaces to a multiple of 8
//   ...       the tensors' bytes, row-major, little-endian; offsets relative to this point, no holes
//
// The writer adds "lmforge.checksum" to the metadata: a 64-bit hash of the data section (hex),
// which the reader verifies, so a flipped byte is caught as well as a truncation. Files from
// elsewhere (without the key) load unverified. The reader maps the file and checks every size
// and offset against the file before trusting it; any problem is an Error naming the file.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lmforge::train {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Writes `tensors` (any device and layout; each copied to the host as needed) to `path` and
// fsyncs it. Names must be distinct and must not be "__metadata__".
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

class SafetensorsFile {
 public:
  // Maps and validates `path` (header, offsets, sizes, checksum when present).
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  // Names in file order (by data offset).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // A CPU tensor viewing the mapped bytes (read-only; copy it before writing); Error naming the
  // file if there is no such tensor.
  Tensor get(const std::string& name) const;
  // get() for tensors that become float weights or optimizer states: Error naming the file and
  // the tensor unless its dtype is a floating-point one (an I32 or BOOL tensor is not converted
  // into floats) and every value is finite (a NaN or an infinity is reported with its index).
  Tensor get_finite_float(const std::string& name) const;
  NamedTensors all() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Entry {
    DType dtype;
    Shape shape;
    uint64_t begin, end;
  };
  std::string path_;
  std::shared_ptr<void> mapping_;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, Entry> entries_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

// The hash stored as lmforge.checksum (exposed for tests): 64-bit, over `n` bytes.
class Hash64 {
 public:
  void update(const void* data, size_t n);
  uint64_t digest() const;

 private:
  void block(const uint8_t* p);
  uint64_t lanes_[4] = {0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull, 0x27D4EB2F165667C5ull};
  uint8_t buf_[32];
  size_t buffered_ = 0;
  uint64_t total_ = 0;
};

}  // namespace lmforge::train
