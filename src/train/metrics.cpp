#include "train/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace lmforge::train {

MetricsLog::MetricsLog(std::string path, int64_t keep_through_step) : path_(std::move(path)) {
  std::vector<std::string> kept;
  if (keep_through_step >= 0) {
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      try {
        const auto j = nlohmann::json::parse(line);
        if (j.contains("step") && j["step"].is_number_integer() && j["step"].get<int64_t>() <= keep_through_step)
          kept.push_back(line);
      } catch (const nlohmann::json::exception&) {
        // A torn last line from a crash: dropped.
      }
    }
  }
  f_ = std::fopen(path_.c_str(), "w");
  LF_CHECK(f_ != nullptr, "cannot write {}: {}", path_, std::strerror(errno));
  for (const auto& l : kept) std::fprintf(f_, "%s\n", l.c_str());
  std::fflush(f_);
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::write(const nlohmann::ordered_json& record) {
  const std::string s = record.dump();
  std::fprintf(f_, "%s\n", s.c_str());
  std::fflush(f_);
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
