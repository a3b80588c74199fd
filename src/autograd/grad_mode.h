// Whether operations record themselves for backward. Off inside a NoGradGuard (evaluation,
// optimizer updates, and the backward pass itself).
#pragma once

namespace lmforge {

struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool on);
};

// Sets grad mode for a scope and restores the previous one.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled) : prev_(GradMode::is_enabled()) { GradMode::set_enabled(enabled); }
  ~GradModeGuard() { GradMode::set_enabled(prev_); }
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool prev_;
};

class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

}  // namespace lmforge
