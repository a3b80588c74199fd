#include "core/progress.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace lmforge {

namespace {

constexpr int64_t kRedrawIntervalNs = 125'000'000;

int terminal_width() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

std::string format_amount(double v, ProgressUnit unit) {
  if (unit == ProgressUnit::Bytes) {
    if (v >= 1e9) return fmt::format("{:.2f} GB", v / 1e9);
    if (v >= 1e6) return fmt::format("{:.1f} MB", v / 1e6);
    if (v >= 1e3) return fmt::format("{:.1f} kB", v / 1e3);
    return fmt::format("{:.0f} B", v);
  }
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string format_duration(double s) {
  if (s < 0 || s > 1e7) return "?";
  auto t = static_cast<int64_t>(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, t / 60 % 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

}  // namespace

bool ProgressOptions::stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

ProgressBar::ProgressBar(ProgressOptions options)
    : options_(std::move(options)), start_(std::chrono::steady_clock::now()) {
  total_.store(options_.total, std::memory_order_relaxed);
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::add(uint64_t delta) {
  done_.fetch_add(delta, std::memory_order_relaxed);
  if (options_.enabled) maybe_draw(false);
}

void ProgressBar::set(uint64_t done) {
  done_.store(done, std::memory_order_relaxed);
  if (options_.enabled) maybe_draw(false);
}

void ProgressBar::set_total(uint64_t total) { total_.store(total, std::memory_order_relaxed); }

std::string ProgressBar::render(const ProgressOptions& options, uint64_t done, double seconds, int width) {
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  std::string rate_text = format_amount(rate, options.unit) + "/s";
  if (options.total == 0) {
    return fmt::format("{} {} {} {}", options.label, format_amount(static_cast<double>(done), options.unit),
                       rate_text, format_duration(seconds));
  }
  const double frac = std::min(1.0, static_cast<double>(done) / static_cast<double>(options.total));
  const double eta = rate > 0 ? static_cast<double>(options.total - std::min(done, options.total)) / rate : -1.0;
  std::string tail = fmt::format(" {:3.0f}% {}/{} {} eta {}", frac * 100.0,
                                 format_amount(static_cast<double>(done), options.unit),
                                 format_amount(static_cast<double>(options.total), options.unit), rate_text,
                                 format_duration(eta));
  const int bar_width = std::clamp(width - static_cast<int>(options.label.size() + tail.size()) - 4, 0, 40);
  std::string bar;
  if (bar_width > 0) {
    const int filled = static_cast<int>(frac * bar_width);
    bar = " [" + std::string(filled, '#') + std::string(bar_width - filled, '.') + "]";
  }
  return options.label + bar + tail;
}

void ProgressBar::maybe_draw(bool force) {
  const auto now = std::chrono::steady_clock::now();
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - start_).count();
  if (!force && now_ns - last_draw_ns_.load(std::memory_order_relaxed) < kRedrawIntervalNs) return;
  std::unique_lock lock(draw_mutex_, std::try_to_lock);
  if (!lock.owns_lock() || finished_) return;
  last_draw_ns_.store(now_ns, std::memory_order_relaxed);
  ProgressOptions o = options_;
  o.total = total_.load(std::memory_order_relaxed);
  const int width = terminal_width();
  std::string line = render(o, done(), static_cast<double>(now_ns) * 1e-9, width - 1);
  if (static_cast<int>(line.size()) >= width) line.resize(std::max(0, width - 1));
  std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  std::lock_guard lock(draw_mutex_);
  if (finished_) return;
  finished_ = true;
  if (drawn_) {
    std::fprintf(stderr, "\r\x1b[K");
    std::fflush(stderr);
  }
}

}  // namespace lmforge
