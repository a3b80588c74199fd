#include "tokenizer/file_io.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace lmforge::tok::detail {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LF_CHECK(in.good(), "cannot open {}: {}", path, std::strerror(errno));
  std::error_code ec;
  LF_CHECK(!std::filesystem::is_directory(path, ec), "{} is a directory, not a tokenizer file", path);
  std::string data;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec) data.reserve(size);
  data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  LF_CHECK(!in.bad(), "error reading {}", path);
  return data;
}

void write_file_atomic(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    LF_CHECK(out.good(), "cannot write {}: {}", tmp, std::strerror(errno));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    LF_CHECK(out.good(), "error writing {}: {}", tmp, std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  LF_CHECK(!ec, "cannot rename {} to {}: {}", tmp, path, ec.message());
}

}  // namespace lmforge::tok::detail
