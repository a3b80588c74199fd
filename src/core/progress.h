// A one-line terminal progress bar on stderr.
//
// It draws only when stderr is a terminal (so logs and pipes stay clean) unless told otherwise,
// redraws at most ~8 times a second, and can be advanced from several threads at once: add()
// is one relaxed atomic add plus a clock read (so call it per block of work, not per byte), and
// only one thread redraws at a time (try_lock; the others skip). finish() (or the destructor) clears the line so that what
// is printed next starts on a clean line.
//
//   ProgressBar bar({.label = "counting", .total = file_bytes, .unit = ProgressUnit::Bytes});
//   bar.add(n);            // from any thread
//   bar.finish();
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace lmforge {

// Seconds of steady-clock time since t0.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

enum class ProgressUnit { Count, Bytes };

struct ProgressOptions {
  std::string label;
  uint64_t total = 0;  // 0: unknown total (no bar, no ETA; just the count and rate)
  ProgressUnit unit = ProgressUnit::Count;
  // Draw or not; by default only when stderr is a terminal.
  bool enabled = stderr_is_terminal();

  static bool stderr_is_terminal();
};

class ProgressBar {
 public:
  explicit ProgressBar(ProgressOptions options);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void add(uint64_t delta);
  void set(uint64_t done);
  void set_total(uint64_t total);
  uint64_t done() const { return done_.load(std::memory_order_relaxed); }
  bool enabled() const { return options_.enabled; }
  // Clears the bar's line (idempotent).
  void finish();

  // The text of the bar for a given state, without control characters (exposed for tests).
  static std::string render(const ProgressOptions& options, uint64_t done, double seconds, int width);

 private:
  void maybe_draw(bool force);

  ProgressOptions options_;
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> total_{0};
  std::atomic<int64_t> last_draw_ns_{0};
  std::chrono::steady_clock::time_point start_;
  std::mutex draw_mutex_;
  bool drawn_ = false;
  bool finished_ = false;
};

}  // namespace lmforge
