#include "train/sweep.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/text_util.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/report.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

// A value as part of a directory name: quotes dropped, anything but [A-Za-z0-9.+-] as '-'.
std::string name_part(std::string_view value) {
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
    value = value.substr(1, value.size() - 2);
  std::string out;
  for (char c : value) out += (std::isalnum(uint8_t(c)) || c == '.' || c == '+' || c == '-') ? c : '-';
  return out.empty() ? "empty" : out;
}

std::string sweep_title(const SweepPlan& plan) {
  std::string out = "lmforge sweep:";
  if (plan.variants.empty()) return out;
  for (const auto& a : plan.variants.front().assignments) {
    out += ' ';
    out.append(a, 0, a.find('='));
  }
  return out;
}

}  // namespace

SweepAxis parse_sweep_axis(std::string_view spec) {
  const size_t eq = spec.find('=');
  LF_CHECK(eq != std::string_view::npos && eq > 0, "--vary {}: expected section.key=value1,value2,...", spec);
  SweepAxis axis{.key = std::string(trim_blanks(spec.substr(0, eq))), .values = {}};
  std::string_view rest = spec.substr(eq + 1);
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view v = trim_blanks(rest.substr(0, comma));
    LF_CHECK(!v.empty(), "--vary {}: an empty value in the list", spec);
    axis.values.emplace_back(v);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return axis;
}

SweepPlan plan_sweep(std::string_view base_toml, std::string_view base_source,
                     const std::vector<std::string>& base_overrides, const std::vector<SweepAxis>& axes,
                     const std::string& output_dir) {
  LF_CHECK(!axes.empty(), "sweep: nothing to vary; give at least one --vary section.key=value1,value2");
  std::set<std::string> seen;
  size_t total = 1;
  for (const auto& a : axes) {
    LF_CHECK(seen.insert(a.key).second, "--vary {}: the key is varied twice", a.key);
    LF_CHECK(a.key != "train.out_dir", "--vary train.out_dir: the sweep chooses each run's directory under --output");
    LF_CHECK(!a.values.empty(), "--vary {}: no values", a.key);
    total *= a.values.size();
  }

  // Each key and value checked alone first, so the message names the --vary that is wrong.
  for (const auto& a : axes)
    for (const auto& v : a.values) {
      RunConfig probe;
      try {
        apply_override(probe, a.key + "=" + v);
      } catch (const Error& e) {
        throw Error(fmt::format("--vary {}={}: {}", a.key, v, e.what()));
      }
    }

  SweepPlan plan{.output_dir = output_dir, .variants = {}};
  const int width = int(fmt::format("{}", total).size());
  std::vector<size_t> index(axes.size(), 0);
  for (size_t n = 0; n < total; ++n) {
    SweepVariant v;
    std::string label;
    for (size_t k = 0; k < axes.size(); ++k) {
      v.assignments.push_back(axes[k].key + "=" + axes[k].values[index[k]]);
      const std::string short_key = axes[k].key.substr(axes[k].key.rfind('.') + 1);
      label += (k ? "_" : "") + short_key + "=" + name_part(axes[k].values[index[k]]);
    }
    v.name = fmt::format("{:0{}}-{}", n + 1, std::max(width, 2), label);
    const std::string dir = (fs::path(output_dir) / v.name).string();
    std::vector<std::string> overrides = base_overrides;
    overrides.insert(overrides.end(), v.assignments.begin(), v.assignments.end());
    overrides.push_back("train.out_dir=" + dir);
    try {
      v.config = parse_run_config(base_toml, base_source, overrides);
    } catch (const Error& e) {
      throw Error(fmt::format("sweep run {} ({}): {}", v.name, fmt::join(v.assignments, " "), e.what()));
    }
    LF_CHECK(list_checkpoints(dir).empty(),
             "sweep run {}: {} already holds checkpoints (an earlier sweep?); choose another --output", v.name, dir);
    plan.variants.push_back(std::move(v));
    // The next combination: the last axis moves fastest.
    for (size_t k = axes.size(); k-- > 0;) {
      if (++index[k] < axes[k].values.size()) break;
      index[k] = 0;
    }
  }
  return plan;
}

std::vector<SweepRunResult> run_sweep(const SweepPlan& plan, const std::function<void(const std::string&)>& progress) {
  std::vector<SweepRunResult> results;
  std::vector<std::string> dirs;
  const size_t n = plan.variants.size();
  const std::string report = (fs::path(plan.output_dir) / "report.html").string();
  for (size_t i = 0; i < n; ++i) {
    const SweepVariant& v = plan.variants[i];
    progress(fmt::format("[{}/{}] {}: {} -> {}", i + 1, n, v.name, fmt::join(v.assignments, " "), v.config.train.out_dir));
    SweepRunResult r{.name = v.name, .ok = false, .error = {}, .summary = {}};
    const auto t0 = std::chrono::steady_clock::now();
    try {
      r.summary = run_training(v.config, {.quiet = true});
      r.ok = true;
    } catch (const Error& e) {
      r.error = e.what();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r.ok) {
      const auto& s = r.summary;
      progress(fmt::format("[{}/{}] {}: {} steps | val loss {} | val bits/byte {} | {} tok/s | {}", i + 1, n, v.name,
                           s.steps_done, s.val_loss ? fmt::format("{:.4f}", *s.val_loss) : "n/a",
                           s.val_bits_per_byte ? fmt::format("{:.4f}", *s.val_bits_per_byte) : "n/a",
                           format_count(s.tokens_per_second), format_duration(seconds)));
    } else {
      progress(fmt::format("[{}/{}] {}: failed after {}: {}", i + 1, n, v.name, format_duration(seconds), r.error));
    }
    results.push_back(std::move(r));
    dirs.push_back(v.config.train.out_dir);
    try {
      write_report(dirs, report, sweep_title(plan));
    } catch (const Error& e) {
      progress(fmt::format("report not written: {}", e.what()));
    }
  }
  return results;
}

}  // namespace lmforge::train
