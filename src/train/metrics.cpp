#include "train/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/file_util.h"

namespace lmforge::train {

MetricsLog::MetricsLog(std::string path, int64_t keep_through_step) : path_(std::move(path)) {
  if (keep_through_step >= 0) {
    std::ifstream in(path_, std::ios::binary);
    std::string kept, line;
    while (std::getline(in, line)) {
      try {
        const auto j = nlohmann::json::parse(line);
        if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer()) continue;
        const int64_t step = j["step"].get<int64_t>();
        if (step > keep_through_step) continue;
        kept += line + "\n";
        if (j.contains("event") && j["event"].is_string()) kept_events_.push_back({step, j["event"].get<std::string>()});
      } catch (const nlohmann::json::exception&) {
        // A torn last line from a kill: dropped.
      }
    }
    LF_CHECK(!in.bad(), "cannot read {}", path_);
    // Cut atomically (written aside, fsynced, renamed over): a kill leaves the old history or
    // the cut one, never an empty or half-written file.
    write_file_atomic(path_, kept);
  }
  const int mode = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (keep_through_step >= 0 ? 0 : O_TRUNC);
  fd_ = ::open(path_.c_str(), mode, 0644);
  LF_CHECK(fd_ >= 0, "cannot write {}: {}", path_, std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::write(const nlohmann::ordered_json& record) {
  LF_CHECK(!failed_, "cannot write {}: an earlier write to it failed", path_);
  const std::string s = record.dump() + "\n";
  const char* p = s.data();
  size_t n = s.size();
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      failed_ = true;
      throw Error(fmt::format("cannot write {}: {} (the lines before this one are intact)", path_,
                              w < 0 ? std::strerror(errno) : "nothing written"));
    }
    p += w;
    n -= size_t(w);
  }
}

bool MetricsLog::has_event(int64_t step, std::string_view event) const {
  for (const auto& [s, e] : kept_events_)
    if (s == step && e == event) return true;
  return false;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = int64_t(std::llround(s));
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

std::string format_count(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

}  // namespace lmforge::train
