#include "backend/op_profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>

namespace lmforge::op_profile {

namespace {

struct Totals {
  std::mutex mutex;
  std::map<std::string, Entry> by_name;
};

Totals& totals() {
  static Totals t;
  return t;
}

std::atomic<int> state{-1};  // -1: not decided yet (LMFORGE_PROFILE decides), 0 off, 1 on

}  // namespace

void enable(bool on) { state.store(on ? 1 : 0); }

bool enabled() {
  int s = state.load();
  if (s < 0) {
    const char* e = std::getenv("LMFORGE_PROFILE");
    s = e && *e && std::string(e) != "0" ? 1 : 0;
    state.store(s);
  }
  return s == 1;
}

void reset() {
  std::lock_guard<std::mutex> lock(totals().mutex);
  totals().by_name.clear();
}

void record(const std::string& name, double seconds, double host_seconds) {
  std::lock_guard<std::mutex> lock(totals().mutex);
  Entry& e = totals().by_name[name];
  if (e.name.empty()) e.name = name;
  ++e.calls;
  e.seconds += seconds;
  e.host_seconds += host_seconds;
}

std::vector<Entry> entries() {
  std::vector<Entry> out;
  {
    std::lock_guard<std::mutex> lock(totals().mutex);
    for (const auto& [name, e] : totals().by_name) out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.seconds > b.seconds; });
  return out;
}

std::string report(int max_rows) {
  const std::vector<Entry> all = entries();
  double total = 0, host_total = 0;
  for (const Entry& e : all) {
    total += e.seconds;
    host_total += e.host_seconds;
  }
  std::string s = fmt::format("{:<36} {:>8} {:>11} {:>7} {:>10} {:>10}\n", "kernel", "calls", "total ms", "share",
                              "mean us", "host us");
  int rows = 0;
  for (const Entry& e : all) {
    if (rows++ == max_rows) {
      s += fmt::format("... {} more\n", all.size() - size_t(max_rows));
      break;
    }
    const double calls = e.calls ? double(e.calls) : 1.0;
    s += fmt::format("{:<36} {:>8} {:>11.3f} {:>6.1f}% {:>10.1f} {:>10.1f}\n", e.name, e.calls, e.seconds * 1e3,
                     total > 0 ? 100 * e.seconds / total : 0.0, e.seconds * 1e6 / calls, e.host_seconds * 1e6 / calls);
  }
  s += fmt::format("{:<36} {:>8} {:>11.3f} {:>7} {:>10} {:>10.3f} ms\n", "total", "", total * 1e3, "", "",
                   host_total * 1e3);
  return s;
}

}  // namespace lmforge::op_profile
