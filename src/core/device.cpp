#include "core/device.h"

#include <charconv>

#include "core/error.h"

namespace lmforge {

std::string Device::str() const { return is_cpu() ? "cpu" : fmt::format("cuda:{}", index); }

Device Device::parse(std::string_view s) {
  if (s == "cpu") return cpu();
  if (s == "cuda" || s == "gpu") return cuda(0);
  if (s.starts_with("cuda:")) {
    int idx = -1;
    auto tail = s.substr(5);
    auto [p, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), idx);
    if (ec == std::errc() && p == tail.data() + tail.size() && idx >= 0) return cuda(idx);
  }
  throw Error(fmt::format("unknown device '{}' (expected cpu, cuda or cuda:N)", s));
}

}  // namespace lmforge
