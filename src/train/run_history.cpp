#include "train/run_history.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "accounting/accounting.h"
#include "core/error.h"
#include "core/text_util.h"
#include "train/config.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Python's json module writes NaN, Infinity and -Infinity as bare words, which are not JSON.
// They become null (outside strings) so the rest of such a line is still read; `replaced` counts them.
std::string nonfinite_words_to_null(const std::string& line, int& replaced) {
  std::string out;
  out.reserve(line.size());
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < line.size()) out += line[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    const std::string_view rest(line.data() + i, line.size() - i);
    for (std::string_view word : {"-Infinity", "Infinity", "NaN"}) {
      if (rest.starts_with(word)) {
        out += "null";
        i += word.size() - 1;
        ++replaced;
        goto next;
      }
    }
    out += c;
  next:;
  }
  return out;
}

// Drops the points at and after `step` (a step seen again), then appends.
template <class Series, class Value>
int64_t append_point(Series& s, int64_t step, Value&& v) {
  int64_t replaced = 0;
  if (!s.steps.empty() && step <= s.steps.back()) {
    const auto it = std::lower_bound(s.steps.begin(), s.steps.end(), step);
    const auto k = it - s.steps.begin();
    replaced = int64_t(s.steps.size()) - k;
    s.steps.erase(it, s.steps.end());
    if constexpr (std::is_same_v<Series, ScalarSeries>) s.values.erase(s.values.begin() + k, s.values.end());
    else s.rows.erase(s.rows.begin() + k, s.rows.end());
  }
  s.steps.push_back(step);
  if constexpr (std::is_same_v<Series, ScalarSeries>) s.values.push_back(v);
  else s.rows.push_back(std::forward<Value>(v));
  return replaced;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void parse_metrics_jsonl(const std::string& text, const std::string& source, RunHistory& out) {
  struct Dropped {
    int64_t count = 0, first_step = 0;
  };
  std::map<std::string, Dropped> nonfinite;  // key -> null / NaN values skipped
  std::vector<std::string> bad_lines;        // "line 7 (not JSON)"
  std::set<std::string> nested_keys;
  int64_t replaced_points = 0, max_step = std::numeric_limits<int64_t>::min();
  std::vector<std::string> restarts;

  std::istringstream in(text);
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim_blanks(line).empty()) continue;
    int words = 0;
    json j = json::parse(nonfinite_words_to_null(line, words), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      bad_lines.push_back(fmt::format("line {} (not a JSON object{})", line_no,
                                      line_no > 0 && in.peek() == EOF ? ", a torn last line?" : ""));
      continue;
    }
    if (!j.contains("step") || !j["step"].is_number_integer()) {
      bad_lines.push_back(fmt::format("line {} (no integer \"step\")", line_no));
      continue;
    }
    const int64_t step = j["step"].get<int64_t>();
    if (step < max_step)
      restarts.push_back(fmt::format("step {} at line {} after step {}", step, line_no, max_step));
    max_step = std::max(max_step, step);
    ++out.lines_read;

    const bool is_event = j.contains("event") && j["event"].is_string();
    std::string event_name, detail;
    int numeric_fields = 0;
    if (is_event) {
      event_name = j["event"].get<std::string>();
      for (const auto& [k, v] : j.items())
        if (k != "step" && k != "event" && (v.is_number() || v.is_null())) ++numeric_fields;
    }
    for (const auto& [k, v] : j.items()) {
      if (k == "step" || k == "event") continue;
      if (v.is_string()) {
        if (is_event) detail += fmt::format("{}{}={}", detail.empty() ? "" : " ", k, v.get<std::string>());
        continue;
      }
      // An event's numbers are series named after it: {"event": "loss_scale", "scale": s} is "loss_scale".
      const std::string key = !is_event ? k : numeric_fields == 1 ? event_name : event_name + "/" + k;
      if (v.is_null() || (v.is_number() && !std::isfinite(v.get<double>()))) {
        auto& d = nonfinite[key];
        if (d.count++ == 0) d.first_step = step;
      } else if (v.is_number()) {
        replaced_points += append_point(out.scalars[key], step, v.get<double>());
      } else if (v.is_array() && !v.empty()) {
        std::vector<double> row;
        bool numeric = true;
        for (const auto& e : v) {
          if (e.is_number()) row.push_back(e.get<double>());
          else if (e.is_null()) row.push_back(std::nan(""));
          else numeric = false;
        }
        if (!numeric) {
          nested_keys.insert(key);
          continue;
        }
        replaced_points += append_point(out.arrays[key], step, std::move(row));
      }
    }
    if (is_event && event_name != "loss_scale") out.events.push_back({.step = step, .event = event_name, .detail = detail});
  }

  if (!bad_lines.empty()) {
    std::string list;
    for (size_t i = 0; i < bad_lines.size() && i < 5; ++i) list += (i ? ", " : "") + bad_lines[i];
    if (bad_lines.size() > 5) list += fmt::format(" and {} more", bad_lines.size() - 5);
    out.skipped.push_back(fmt::format("{}: skipped {} unreadable line(s): {}", source, bad_lines.size(), list));
  }
  for (const auto& [key, d] : nonfinite)
    out.skipped.push_back(fmt::format("{}: \"{}\" is null or not finite at {} step(s) (first at step {}); those "
                                      "points are left out",
                                      source, key, d.count, d.first_step));
  for (const auto& key : nested_keys)
    out.skipped.push_back(fmt::format("{}: \"{}\" holds arrays of non-numbers; not drawn", source, key));
  if (!restarts.empty())
    out.skipped.push_back(fmt::format("{}: steps go back ({}{}): a resumed run; the later lines replace {} earlier "
                                      "point(s) from there on",
                                      source, restarts.front(), restarts.size() > 1 ? fmt::format(" and {} more",
                                                                                                restarts.size() - 1)
                                                                                  : "",
                                      replaced_points));
}

std::vector<std::pair<std::string, std::string>> read_flat_toml(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line, section;
  while (std::getline(in, line)) {
    const std::string_view l = trim_blanks(line);
    if (l.empty() || l.front() == '#') continue;
    if (l.front() == '[' && l.back() == ']') {
      section = std::string(trim_blanks(l.substr(1, l.size() - 2)));
      continue;
    }
    const size_t eq = l.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string key(trim_blanks(l.substr(0, eq)));
    out.push_back({section.empty() ? key : section + "." + key, std::string(trim_blanks(l.substr(eq + 1)))});
  }
  return out;
}

RunHistory read_run_history(const std::string& dir) {
  RunHistory h;
  h.dir = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    h.skipped.push_back(fmt::format("{}: not a directory; nothing drawn for it", dir));
    return h;
  }
  fs::path root = dir;
  if (!fs::exists(root / "metrics.jsonl", ec) && fs::exists(root / "train" / "metrics.jsonl", ec)) root /= "train";
  const fs::path metrics = root / "metrics.jsonl";
  if (fs::exists(metrics, ec)) {
    h.metrics_path = metrics.string();
    parse_metrics_jsonl(read_text(metrics), h.metrics_path, h);
    if (h.lines_read == 0) h.skipped.push_back(fmt::format("{}: no metrics lines yet", h.metrics_path));
  } else {
    h.skipped.push_back(fmt::format("{}: no metrics.jsonl (nor train/metrics.jsonl); nothing drawn for it", dir));
  }

  const fs::path config = root / "config.toml";
  if (!fs::exists(config, ec)) {
    h.skipped.push_back(fmt::format("{}: no config.toml; its config keys and predicted memory are left out", dir));
    return h;
  }
  const std::string text = read_text(config);
  h.config = read_flat_toml(text);
  try {
    const RunConfig c = parse_run_config(text, config.string());
    h.predicted_memory_bytes = accounting::estimate_memory(c.model, {.micro_batch_size = c.train.micro_batch_size,
                                                                     .seq_len = c.seq_len(),
                                                                     .compute_dtype = c.compute_dtype(),
                                                                     .recompute_blocks = c.train.recompute_blocks})
                                   .total;
  } catch (const Error& e) {
    h.skipped.push_back(fmt::format("{}: predicted memory left out: the config does not load here ({})",
                                    config.string(), e.what()));
  }
  return h;
}

}  // namespace lmforge::train
