// A finished or running run directory read back for reports: metrics.jsonl as series over steps,
// its events, and config.toml as flat keys.
//
// Every numeric key of a metrics line is a series ("loss", "val_loss", "loss/z", ...); a key
// holding an array of numbers is a row of an array series ("layers.3.moe.tokens_per_expert", drawn
// as a heatmap over steps). Event lines ({"event": ...}) are kept as events, except "loss_scale",
// whose "scale" becomes the series "loss_scale". Nothing in the file stops the reading: a line
// that is not JSON (a torn last line), a line without an integer step, a null or non-finite
// value (NaN, Infinity: not JSON, accepted as Python's json writes them) is skipped and said in
// `skipped`. A step that comes again after a later one (a run resumed from an earlier checkpoint
// whose metrics were not cut back) replaces that series' points from that step on.
//
// The directory is the one holding metrics.jsonl; a directory whose train/ holds it (the layout
// of scripts/quickstart.sh) is read from there.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lmforge::train {

struct ScalarSeries {
  std::vector<int64_t> steps;  // increasing
  std::vector<double> values;  // finite
};

struct ArraySeries {
  std::vector<int64_t> steps;              // increasing
  std::vector<std::vector<double>> rows;   // one row per step; a non-finite entry is NaN
};

struct RunEvent {
  int64_t step = 0;
  std::string event;   // "nonfinite_loss", "rollback", "checkpoint", ...
  std::string detail;  // the event's other string fields, "key=value" joined by spaces
};

struct RunHistory {
  std::string dir;           // as given
  std::string metrics_path;  // "" when there is none
  std::map<std::string, ScalarSeries> scalars;
  std::map<std::string, ArraySeries> arrays;
  std::vector<RunEvent> events;
  // config.toml as "section.key" -> TOML literal, in file order; empty when the file is missing.
  std::vector<std::pair<std::string, std::string>> config;
  // accounting::estimate_memory of the config (what the trainer prints at start); none when the
  // config is missing or does not load.
  std::optional<int64_t> predicted_memory_bytes;
  std::vector<std::string> skipped;  // what was not read, one sentence each
  int64_t lines_read = 0;            // metrics lines that were used
};

// Never throws for a missing or damaged file: what it could not read is in `skipped`.
RunHistory read_run_history(const std::string& dir);

// The metrics of one metrics.jsonl text (`source` names it in `skipped`); fills scalars, arrays,
// events, skipped and lines_read of `out`.
void parse_metrics_jsonl(const std::string& text, const std::string& source, RunHistory& out);

// "section.key" -> literal of a config.toml as to_toml() writes it ([section] headers, then
// `key = value` lines; comments and blank lines ignored).
std::vector<std::pair<std::string, std::string>> read_flat_toml(const std::string& text);

}  // namespace lmforge::train
