#include "data/corpus_tokenize_meta.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace lmforge::data {

namespace {

class Sha256 {
 public:
  void update(const uint8_t* p, size_t n) {
    total_ += n;
    while (n > 0) {
      const size_t take = std::min(n, size_t{64} - fill_);
      std::memcpy(block_.data() + fill_, p, take);
      fill_ += take;
      p += take;
      n -= take;
      if (fill_ == 64) {
        compress(block_.data());
        fill_ = 0;
      }
    }
  }

  std::string hex() {
    const uint64_t bits = total_ * 8;
    const uint8_t pad = 0x80;
    update(&pad, 1);
    const uint8_t zero = 0;
    while (fill_ != 56) update(&zero, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
    update(len, 8);
    std::string out;
    for (const uint32_t v : h_) out += fmt::format("{:08x}", v);
    return out;
  }

 private:
  static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

  void compress(const uint8_t* b) {
    static constexpr uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      w[i] = static_cast<uint32_t>(b[4 * i]) << 24 | static_cast<uint32_t>(b[4 * i + 1]) << 16 |
             static_cast<uint32_t>(b[4 * i + 2]) << 8 | b[4 * i + 3];
    }
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h_[0], bb = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & bb) ^ (a & c) ^ (bb & c));
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = bb;
      bb = a;
      a = t1 + t2;
    }
    h_[0] += a;
    h_[1] += bb;
    h_[2] += c;
    h_[3] += d;
    h_[4] += e;
    h_[5] += f;
    h_[6] += g;
    h_[7] += h;
  }

  std::array<uint32_t, 8> h_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<uint8_t, 64> block_{};
  size_t fill_ = 0;
  uint64_t total_ = 0;
};

nlohmann::json split_json(const std::vector<ShardSummary>& shards, uint64_t tokens, uint64_t documents) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : shards) list.push_back({{"file", s.file}, {"tokens", s.tokens}, {"documents", s.documents}});
  return {{"tokens", tokens}, {"documents", documents}, {"shards", list}};
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  Sha256 h;
  h.update(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return h.hex();
}

std::string sha256_file_hex(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LF_CHECK(fd >= 0, "cannot open {}: {}", path, std::strerror(errno));
  Sha256 h;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    const ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int e = errno;
      ::close(fd);
      throw Error(fmt::format("cannot read {}: {}", path, std::strerror(e)));
    }
    if (r == 0) break;
    h.update(buf.data(), static_cast<size_t>(r));
  }
  ::close(fd);
  return h.hex();
}

void write_meta_json(const tok::Tokenizer& tokenizer, const TokenizeOptions& options, const TokenizeSummary& summary) {
  namespace fs = std::filesystem;
  nlohmann::json tok = {{"path", options.tokenizer_path.empty() ? tokenizer.source() : options.tokenizer_path},
                        {"vocab_size", tokenizer.vocab_size()},
                        {"eot_token", options.eot_token},
                        {"eot_id", *tokenizer.special_id(options.eot_token)}};
  if (!options.tokenizer_path.empty()) tok["sha256"] = sha256_file_hex(options.tokenizer_path);
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& p : options.inputs) {
    std::error_code ec;
    const auto size = fs::file_size(p, ec);
    inputs.push_back({{"path", p}, {"bytes", ec ? 0 : size}});
  }
  nlohmann::json meta = {
      {"format", "lmforge-shards"},
      {"version", 1},
      {"header_bytes", 1024},
      {"dtype", summary.bytes_per_token_stored == 2 ? "uint16" : "uint32"},
      {"tokenizer", tok},
      {"documents", document_mode_name(options.documents)},
      {"jsonl_field", options.jsonl_field},
      {"val_fraction", options.val_fraction},
      {"shard_tokens", options.shard_tokens},
      {"inputs", inputs},
      {"train", split_json(summary.train_shards, summary.train_tokens, summary.train_documents)},
      {"val", split_json(summary.val_shards, summary.val_tokens, summary.val_documents)},
      {"bytes", summary.bytes},
      {"tokens", summary.tokens},
      {"bytes_per_token", summary.bytes_per_token()},
      {"invalid_utf8_sequences", summary.invalid_utf8},
      {"forced_cuts", summary.forced_cuts},
  };
  const fs::path final_path = fs::path(options.output_dir) / "meta.json";
  const fs::path tmp = fs::path(options.output_dir) / fmt::format("meta.json.tmp-{}", ::getpid());
  {
    std::ofstream f(tmp);
    LF_CHECK(f.good(), "cannot write {}", tmp.string());
    f << meta.dump(2) << "\n";
    f.flush();
    LF_CHECK(f.good(), "cannot write {}", tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, final_path, ec);
  LF_CHECK(!ec, "cannot rename {} to {}: {}", tmp.string(), final_path.string(), ec.message());
}

}  // namespace lmforge::data
