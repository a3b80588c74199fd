// One trainer per run directory: a second trainer (another process holding RUN_DIR/.lock) is
// refused with the directory and the holder's pid, before it writes anything; a holder killed
// with SIGKILL leaves no stale lock. (Only rank 0 of a data-parallel run takes the lock; the
// data-parallel tests run their ranks on one run directory.)
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "train/run_dir_lock.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

class RunDirLockTest : public test::PatternShardsTest {};

using test::error_of;

// A child process that takes the lock on `dir` and then waits to be killed.
class LockHoldingChild {
 public:
  explicit LockHoldingChild(const std::string& dir) {
    int ready[2];
    LF_ASSERT(::pipe(ready) == 0);
    pid_ = ::fork();
    LF_ASSERT(pid_ >= 0);
    if (pid_ == 0) {
      ::close(ready[0]);
      try {
        RunDirLock lock(dir);
        const char ok = 1;
        if (::write(ready[1], &ok, 1) != 1) ::_exit(2);
        for (;;) ::pause();
      } catch (...) {
        ::_exit(1);
      }
    }
    ::close(ready[1]);
    char ok = 0;
    locked_ = ::read(ready[0], &ok, 1) == 1 && ok == 1;
    ::close(ready[0]);
  }
  ~LockHoldingChild() { kill(); }
  // SIGKILL, as a crash or `kill -9` would end a trainer; the kernel releases its flock.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool locked() const { return locked_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool locked_ = false;
};

TEST_F(RunDirLockTest, ASecondTrainerIsRefusedUntilTheHolderDies) {
  RunConfig c = run("shared");
  fs::create_directories(c.train.out_dir);
  LockHoldingChild holder(c.train.out_dir);
  ASSERT_TRUE(holder.locked());

  const std::string e = error_of([&] { run_training(c, {.quiet = true}); });
  EXPECT_NE(e.find("run directory " + c.train.out_dir + " is in use by another training process (pid " +
                   std::to_string(holder.pid()) + ","), std::string::npos) << e;
  EXPECT_NE(e.find(c.train.out_dir + "/.lock"), std::string::npos) << e;
  // Refused before it wrote anything into the directory.
  EXPECT_FALSE(fs::exists(c.train.out_dir + "/metrics.jsonl"));
  EXPECT_FALSE(fs::exists(c.train.out_dir + "/checkpoints"));
  // --resume takes the same lock.
  EXPECT_NE(error_of([&] { run_training(c, {.resume = true, .quiet = true}); }).find("is in use"), std::string::npos);

  holder.kill();
  const TrainSummary s = run_training(c, {.quiet = true});
  EXPECT_EQ(s.steps_done, c.train.steps);
  // The file names its last holder; the lock was the flock, not the file.
  EXPECT_EQ(read_file(c.train.out_dir + "/.lock"), std::to_string(::getpid()) + "\n");
}

TEST_F(RunDirLockTest, TwoLocksInOneProcessConflictToo) {
  const std::string dir = root_ + "/same";
  fs::create_directories(dir);
  std::optional<RunDirLock> first(std::in_place, dir);
  const std::string e = error_of([&] { RunDirLock second(dir); });
  EXPECT_NE(e.find("(pid " + std::to_string(::getpid()) + ","), std::string::npos) << e;
  first.reset();
  EXPECT_NO_THROW(RunDirLock again(dir));
}

}  // namespace
}  // namespace lmforge::train
