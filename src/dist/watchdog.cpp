#include "dist/watchdog.h"

#include <cstdio>
#include <cstdlib>

namespace lmforge::dist {

Watchdog::Watchdog() : thread_([this] { loop(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Watchdog::set_timeout_seconds(double s) {
  std::lock_guard lock(mu_);
  timeout_seconds_ = s > 0 ? s : 0;
}

Watchdog::Scope::Scope(Watchdog& w, std::string what) : w_(w) {
  {
    std::lock_guard lock(w_.mu_);
    if (w_.timeout_seconds_ <= 0) return;
    w_.armed_ = true;
    w_.what_ = std::move(what);
    w_.deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(w_.timeout_seconds_));
  }
  w_.cv_.notify_all();
}

Watchdog::Scope::~Scope() {
  std::lock_guard lock(w_.mu_);
  w_.armed_ = false;
}

void Watchdog::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (!armed_) {
      cv_.wait(lock);
      continue;
    }
    const auto deadline = deadline_;
    cv_.wait_until(lock, deadline);
    if (armed_ && !stop_ && deadline_ == deadline && Clock::now() >= deadline) {
      const std::string who = rank_ >= 0 ? "rank " + std::to_string(rank_) : std::string("this process");
      std::fprintf(stderr,
                   "error: %s: %s did not complete within %g s (dist.timeout_s): another rank has died or stalled; "
                   "ending this rank\n",
                   who.c_str(), what_.c_str(), timeout_seconds_);
      std::fflush(stderr);
      std::_Exit(kWatchdogExitStatus);
    }
  }
}

}  // namespace lmforge::dist
