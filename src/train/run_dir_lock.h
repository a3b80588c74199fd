// One trainer per run directory. Two trainers on the same directory would both append to
// metrics.jsonl and write checkpoints over each other, so training and resuming take an exclusive
// flock(2) on RUN_DIR/.lock for as long as they run. The kernel drops the lock when the process
// ends, however it ends (kill -9 included), so a lock is never left stale; the file itself stays
// and holds the pid of its last holder, which a refused trainer names in its error.
#pragma once

#include <string>

namespace lmforge::train {

class RunDirLock {
 public:
  // Creates RUN_DIR/.lock if needed and locks it; Error naming the directory and the holder's pid
  // when another process (or another RunDirLock of this one) holds it. `run_dir` must exist.
  explicit RunDirLock(const std::string& run_dir);
  ~RunDirLock();
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace lmforge::train
