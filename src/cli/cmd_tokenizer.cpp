// lmforge tokenizer <subcommand>: the parent of the commands registered with
// LMFORGE_SUBCOMMAND("tokenizer", ...), and the I/O helpers of tokenizer_io.h.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "cli/command.h"
#include "cli/tokenizer_io.h"
#include "core/error.h"

namespace lmforge::cli {

std::string read_text_input(const std::string& path) {
  const bool is_stdin = path.empty() || path == "-";
  std::FILE* f = is_stdin ? stdin : std::fopen(path.c_str(), "rb");
  LF_CHECK(f != nullptr, "cannot open {}: {}", path, std::strerror(errno));
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  if (!is_stdin) std::fclose(f);
  LF_CHECK(!failed, "error reading {}", is_stdin ? "standard input" : path);
  return data;
}

TextOutput::TextOutput(const std::string& path) : path_(path.empty() ? "-" : path) {
  if (path_ == "-") {
    f_ = stdout;
  } else {
    tmp_ = path_ + ".tmp";
    f_ = std::fopen(tmp_.c_str(), "wb");
    LF_CHECK(f_ != nullptr, "cannot write {}: {}", tmp_, std::strerror(errno));
    owned_ = true;
  }
}

TextOutput::~TextOutput() {
  if (owned_ && f_) {  // not closed: an error is unwinding; drop the partial output
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void TextOutput::write(std::string_view bytes) {
  LF_CHECK(std::fwrite(bytes.data(), 1, bytes.size(), f_) == bytes.size(), "error writing {}: {}",
           path_ == "-" ? "standard output" : path_, std::strerror(errno));
}

void TextOutput::close() {
  LF_CHECK(std::fflush(f_) == 0, "error writing {}: {}", path_ == "-" ? "standard output" : path_,
           std::strerror(errno));
  if (owned_) {
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0 || std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      const std::string reason = std::strerror(errno);
      std::remove(tmp_.c_str());
      throw Error(fmt::format("error writing {}: {}", path_, reason));
    }
  }
}

void append_token_ids(std::string& out, const std::vector<uint32_t>& ids, char sep) {
  char buf[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += sep;
    const auto r = std::to_chars(buf, buf + sizeof buf, ids[i]);
    out.append(buf, r.ptr);
  }
}

namespace {

LMFORGE_COMMAND("tokenizer", "Byte-level BPE tokenizers: encode, decode, info, train", [](CLI::App&) {});

}  // namespace
}  // namespace lmforge::cli
