// A deadline for blocking calls that wait on other processes (collectives, the rendezvous).
//
// MPI and NCCL wait forever for a rank that stalled, and NCCL does also for one that died. A
// Watchdog owns one thread that sleeps until the armed deadline; if the guarded call has not
// returned by then it prints one line naming the rank, the call and the timeout to stderr and
// ends the process with status 3 (std::_Exit: the blocked call cannot be unwound). mpirun and the
// lmforge launcher then end the remaining ranks, so a run never hangs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace lmforge::dist {

inline constexpr int kWatchdogExitStatus = 3;

class Watchdog {
 public:
  Watchdog();
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // 0 disables the deadline.
  void set_timeout_seconds(double s);
  double timeout_seconds() const { return timeout_seconds_; }
  // Sets `rank` used in the message (-1: none).
  void set_rank(int rank) { rank_ = rank; }

  // Arms the deadline for the duration of one call.
  class Scope {
   public:
    Scope(Watchdog& w, std::string what);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Watchdog& w_;
  };

 private:
  void loop();
  using Clock = std::chrono::steady_clock;
  double timeout_seconds_ = 0;
  int rank_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, stop_ = false;
  Clock::time_point deadline_;
  std::string what_;
  std::thread thread_;
};

}  // namespace lmforge::dist
