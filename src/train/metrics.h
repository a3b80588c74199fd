// metrics.jsonl: one JSON object per line, appended and flushed as training goes.
//
//   training lines  {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu" (against
//                    train.peak_tflops, or the measured matmul peak: accounting/matmul_peak.h; null
//                    above it), "mfu_above_peak", "peak_memory_bytes", "tokens", "elapsed_s"}
//   validation      {"step", "val_loss", "val_perplexity", "val_bits_per_byte" (null without a
//                    tokenizer), "val_tokens"}
//   events          {"step", "event": "nonfinite_loss" | "rollback" | "checkpoint", ...}
//
// On resume the file is cut back to the lines of steps up to the checkpoint's, so it reads as
// one uninterrupted run. The cut is atomic: the kept lines go to a temporary file that is fsynced
// and renamed over metrics.jsonl, so a kill at any moment leaves either the old history or the
// cut one, never an empty or half-written file; then lines are appended. Every line is flushed
// to the file as it is written (a kill loses none that write() returned from), and a failed
// write (a full disk) is an Error naming the file: the run stops instead of losing its history
// silently.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmforge::train {

class MetricsLog {
 public:
  // keep_through_step < 0: start a new file; otherwise keep existing lines with step <= it
  // (lines that do not parse, such as one torn by a kill, are dropped).
  MetricsLog(std::string path, int64_t keep_through_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  // Appends one line and flushes it; Error naming the file when it cannot.
  void write(const nlohmann::ordered_json& record);
  // True when a kept line (from before this log was opened) has this step and "event".
  bool has_event(int64_t step, std::string_view event) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;          // opened with O_APPEND: each line is one write()
  bool failed_ = false;  // a write failed: the file may end in a partial line, so nothing more is appended
  std::vector<std::pair<int64_t, std::string>> kept_events_;  // (step, event) of kept lines
};

// "1h02m", "4m05s", "12s"
std::string format_duration(double seconds);
// "12.3k", "1.20M"
std::string format_count(double v);

}  // namespace lmforge::train
