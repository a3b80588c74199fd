// The trainer under faults: a rollback that diverges again stops instead of looping, a resume
// never starts afresh past an incomplete checkpoint, a validation split with nothing to predict
// stops the run before its first step, a checkpoint line lost to a kill is written again on
// resume, and a failed metrics write stops the run with an error.
#include <gtest/gtest.h>

#include <set>

#include "core/file_util.h"
#include "train/checkpoint.h"
#include "train/disk_full.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

class TrainerFaultsTest : public test::PatternShardsTest {};

using test::error_of;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_F(TrainerFaultsTest, ARollbackThatDivergesAgainStops) {
  // Step 6 always diverges and step 5, replayed after each rollback to step 4, never does: each
  // rollback was followed by one finite step that reset the count of bad steps, for ever.
  RunConfig c = run("diverge");
  c.train.on_nan = OnNan::Rollback;
  c.train.max_bad_steps = 4;
  int64_t calls = 0;
  const std::string e = error_of([&] {
    run_training(c, {.quiet = true, .loss_hook = [&](int64_t step, Tensor& loss) {
                       if (++calls > 2000) throw std::runtime_error("the rollback loop does not stop");
                       if (step == 5) loss = loss * NAN;
                     }});
  });
  EXPECT_NE(e.find("4 non-finite steps"), std::string::npos) << e;
  EXPECT_NE(e.find("step 6"), std::string::npos) << e;
  const std::string m = read_file(root_ + "/diverge/metrics.jsonl");
  EXPECT_EQ(count(m, "\"event\":\"rollback\""), 3u) << m;
}

TEST_F(TrainerFaultsTest, AFailureThatTheRunGetsPastDoesNotCount) {
  // Bad steps that the run gets past between them are not "in a row": five isolated failures
  // with max_bad_steps = 2 still finish.
  RunConfig c = run("isolated");
  c.train.max_bad_steps = 2;
  std::set<int64_t> failed;
  const TrainSummary s = run_training(c, {.quiet = true, .loss_hook = [&](int64_t step, Tensor& loss) {
                                            if (step % 2 == 1 && failed.insert(step).second) loss = loss * NAN;
                                          }});
  EXPECT_EQ(s.steps_done, 12);
  EXPECT_EQ(s.bad_steps.size(), 6u);
}

TEST_F(TrainerFaultsTest, ResumeRefusesToPassOverAnIncompleteCheckpoint) {
  RunConfig c = run("incomplete");
  run_training(c, {.quiet = true, .stop_after_step = 4});
  const std::string ck = root_ + "/incomplete/checkpoints/step_4";
  fs::remove(ck + "/optimizer.safetensors");
  const std::string before = read_file(root_ + "/incomplete/metrics.jsonl");
  // It used to start from scratch and write over the history.
  const std::string e = error_of([&] { run_training(c, {.resume = true, .quiet = true}); });
  EXPECT_NE(e.find(ck), std::string::npos) << e;
  EXPECT_NE(e.find("optimizer.safetensors"), std::string::npos) << e;
  EXPECT_EQ(read_file(root_ + "/incomplete/metrics.jsonl"), before);
}

TEST_F(TrainerFaultsTest, AValidationSplitWithNothingToPredictStopsBeforeTraining) {
  const std::string data = root_ + "/tiny_val";
  test::write_pattern_shards(data, 16, 4000, 1);
  RunConfig c = test::tiny_run(data, root_ + "/tinyval");
  c.eval.every = 0;  // validation only at the end
  // It used to train every step and fail at the final evaluation, before the last checkpoint.
  const std::string e = error_of([&] { run_training(c, {.quiet = true}); });
  EXPECT_NE(e.find(data + "/val_000000.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("nothing to predict"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(root_ + "/tinyval/checkpoints"));
}

TEST_F(TrainerFaultsTest, ACheckpointLineLostToAKillIsWrittenOnResume) {
  RunConfig c = run("lost");
  const TrainSummary full = run_training(c, {.quiet = true});
  const std::string expected = read_file(root_ + "/lost/metrics.jsonl");
  // Killed between step 8's checkpoint rename and its metrics line: the line is missing.
  c.train.out_dir = root_ + "/lost2";
  run_training(c, {.quiet = true, .stop_after_step = 8});
  const std::string path = root_ + "/lost2/metrics.jsonl";
  std::string m = read_file(path);
  const std::string line = "{\"step\":8,\"event\":\"checkpoint\",\"path\":\"" + root_ + "/lost2/checkpoints/step_8\"}\n";
  ASSERT_NE(m.find(line), std::string::npos) << m;
  m.erase(m.find(line), line.size());
  write_file_synced(path, m);
  run_training(c, {.resume = true, .quiet = true});
  const std::string resumed = read_file(path);
  EXPECT_EQ(count(resumed, "{\"step\":8,\"event\":\"checkpoint\""), 1u) << resumed;
  // In the same place as in the uninterrupted run: after step 8's lines, before step 9's.
  auto position = [](const std::string& s, const std::string& what) { return s.find(what); };
  EXPECT_LT(position(resumed, "{\"step\":8,\"event\":\"checkpoint\""), position(resumed, "{\"step\":9,"));
  EXPECT_GT(position(resumed, "{\"step\":8,\"event\":\"checkpoint\""), position(resumed, "{\"step\":8,\"val_loss\""));
  EXPECT_EQ(count(resumed, "\"event\":\"checkpoint\""), count(expected, "\"event\":\"checkpoint\""));
}

TEST_F(TrainerFaultsTest, AFailedMetricsWriteStopsTheRun) {
  RunConfig c = run("full");
  c.checkpoint.every = 0;
  c.checkpoint.at_end = false;
  c.train.steps = 200;
  std::string e;
  {
    // Every file may grow to 4 kB: metrics.jsonl (about 250 bytes a step) fills up first.
    test::DiskFullAfter full(4096);
    e = error_of([&] { run_training(c, {.quiet = true}); });
  }
  EXPECT_NE(e.find(root_ + "/full/metrics.jsonl"), std::string::npos) << e;
  EXPECT_NE(e.find("File too large"), std::string::npos) << e;
}

}  // namespace
}  // namespace lmforge::train
