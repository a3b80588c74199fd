// metrics.jsonl: one JSON object per line, appended and flushed as training goes.
//
//   training lines  {"step", "loss", "lr", "grad_norm", "tokens_per_s", "mfu" (against
//                    train.peak_tflops, or the matmul peak measured at start), "peak_memory_bytes", "tokens", "elapsed_s"}
//   validation      {"step", "val_loss", "val_perplexity", "val_bits_per_byte" (null without a
//                    tokenizer), "val_tokens"}
//   events          {"step", "event": "nonfinite_loss" | "rollback" | "checkpoint", ...}
//
// On resume the file is cut back to the lines of steps up to the checkpoint's, so it reads as
// one uninterrupted run.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace lmforge::train {

class MetricsLog {
 public:
  // keep_through_step < 0: start a new file; otherwise keep existing lines with step <= it.
  MetricsLog(std::string path, int64_t keep_through_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const nlohmann::ordered_json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

// "1h02m", "4m05s", "12s"
std::string format_duration(double seconds);
// "12.3k", "1.20M"
std::string format_count(double v);

}  // namespace lmforge::train
