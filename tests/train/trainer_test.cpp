// The trainer end to end on tiny shards: losses fall, the same seed gives the same run,
// interrupted-and-resumed training gives bit-identical losses, non-finite losses are skipped
// or rolled back, bad shards are rejected before training.
#include <gtest/gtest.h>

#include "train/checkpoint.h"
#include "train/file_util.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    data_ = root_ + "/data";
    test::write_pattern_shards(data_, 16, 4000, 600);
  }
  void TearDown() override { fs::remove_all(root_); }
  RunConfig run(const std::string& name) { return test::tiny_run(data_, root_ + "/" + name); }
  std::string root_, data_;
};

TEST_F(TrainerTest, LossFallsAndRunIsReproducible) {
  RunConfig c = run("a");
  c.model.dropout = 0.1;
  const TrainSummary a = run_training(c, {.quiet = true});
  c.train.out_dir = root_ + "/b";
  const TrainSummary b = run_training(c, {.quiet = true});
  ASSERT_EQ(a.losses.size(), 12u);
  test::expect_identical_runs(a, b);
  EXPECT_LT(a.losses.back().second, a.losses.front().second - 0.3);
  // metrics.jsonl: a training line per step, validation lines, checkpoint events.
  const std::string m = read_file(root_ + "/a/metrics.jsonl");
  EXPECT_NE(m.find("\"step\":12,\"loss\":"), std::string::npos) << m;
  EXPECT_NE(m.find("\"val_loss\""), std::string::npos);
  // MFU against the matmul peak measured at start: a number, never null.
  EXPECT_EQ(m.find("\"mfu\":null"), std::string::npos);
  EXPECT_NE(m.find("\"mfu\":"), std::string::npos);
  EXPECT_TRUE(fs::exists(root_ + "/a/config.toml"));
  // A second fresh run into a directory with checkpoints is refused (nothing gets overwritten).
  EXPECT_THROW(run_training(c, {.quiet = true}), Error);
}

TEST_F(TrainerTest, ResumedRunIsBitIdentical) {
  RunConfig c = run("full");
  c.model.dropout = 0.1;  // exercises the dropout generator's saved state
  // Killed after step 6: the newest checkpoint is step 4, so steps 5 and 6 are redone.
  const test::ResumeRuns r = test::run_interrupted_and_resumed(c, root_, 6);
  EXPECT_EQ(r.interrupted.steps_done, 6);
  ASSERT_EQ(r.resumed.losses.size(), 8u);
  test::expect_resumed_run_identical(r, 4);
  // The metrics file reads as one run: no step logged twice.
  const std::string m = read_file(root_ + "/interrupted/metrics.jsonl");
  EXPECT_EQ(m.find("\"step\":5,\"loss\""), m.rfind("\"step\":5,\"loss\""));
  // A resume with another model is refused naming the key.
  c.train.out_dir = root_ + "/interrupted";
  c.model.n_layers = 3;
  try {
    run_training(c, {.resume = true, .quiet = true});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_layers"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTest, CheckpointAtEndCanBeTurnedOff) {
  RunConfig c = run("periodic");
  c.train.peak_tflops = 1;  // no matmul-peak measurement at start
  c.checkpoint.every = 5;
  c.checkpoint.at_end = false;
  const TrainSummary periodic = run_training(c, {.quiet = true});
  EXPECT_EQ(periodic.steps_done, 12);
  std::vector<int64_t> steps;
  for (const auto& [step, dir] : list_checkpoints(root_ + "/periodic")) steps.push_back(step);
  EXPECT_EQ(steps, (std::vector<int64_t>{5, 10}));  // none at step 12
  EXPECT_EQ(periodic.last_checkpoint, list_checkpoints(root_ + "/periodic").back().second);

  c.train.out_dir = root_ + "/none";
  c.checkpoint.every = 0;
  const TrainSummary none = run_training(c, {.quiet = true});
  EXPECT_EQ(none.steps_done, 12);
  EXPECT_TRUE(none.last_checkpoint.empty());
  EXPECT_TRUE(list_checkpoints(root_ + "/none").empty());
  EXPECT_EQ(read_file(root_ + "/none/metrics.jsonl").find("\"event\":\"checkpoint\""), std::string::npos);
  EXPECT_TRUE(none.val_loss.has_value());  // validation at the end is unaffected
}

TEST_F(TrainerTest, NonFiniteLossIsSkipped) {
  RunConfig c = run("skip");
  int hits = 0;
  const TrainSummary s = run_training(c, {.quiet = true, .loss_hook = [&](int64_t step, Tensor& loss) {
                                            if (step == 2 && hits++ < 2) loss = loss * NAN;
                                          }});
  EXPECT_EQ(s.bad_steps, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(s.steps_done, 12);
  for (const auto& [step, loss] : s.losses) EXPECT_TRUE(std::isfinite(loss)) << step;
  const std::string m = read_file(root_ + "/skip/metrics.jsonl");
  EXPECT_NE(m.find("{\"step\":3,\"event\":\"nonfinite_loss\",\"action\":\"skip\"}"), std::string::npos) << m;
}

TEST_F(TrainerTest, NonFiniteLossRollsBackToTheLastCheckpoint) {
  RunConfig c = run("rollback");
  c.train.on_nan = OnNan::Rollback;
  int hits = 0;
  const TrainSummary s = run_training(c, {.quiet = true, .loss_hook = [&](int64_t step, Tensor& loss) {
                                            if (step == 5 && hits++ == 0) loss = loss * INFINITY;
                                          }});
  EXPECT_EQ(s.bad_steps, std::vector<int64_t>{6});
  EXPECT_EQ(s.steps_done, 12);
  // Steps 5 and 6 run again after the rollback to step 4.
  int64_t fives = 0;
  for (const auto& [step, loss] : s.losses) fives += step == 5;
  EXPECT_EQ(fives, 2);
  const std::string m = read_file(root_ + "/rollback/metrics.jsonl");
  EXPECT_NE(m.find("\"event\":\"rollback\""), std::string::npos) << m;
}

TEST_F(TrainerTest, TooManyBadStepsStop) {
  RunConfig c = run("stop");
  c.train.max_bad_steps = 3;
  EXPECT_THROW(run_training(c, {.quiet = true, .loss_hook = [](int64_t, Tensor& l) { l = l * NAN; }}), Error);
}

TEST_F(TrainerTest, ShardsWithIdsOutsideTheVocabularyAreRejectedBeforeTraining) {
  RunConfig c = run("vocab");
  c.model.vocab_size = 5;
  try {
    run_training(c, {.quiet = true});
    FAIL();
  } catch (const Error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("train_000000.bin"), std::string::npos) << w;
    EXPECT_NE(w.find("model.vocab_size = 5"), std::string::npos) << w;
  }
  EXPECT_FALSE(fs::exists(root_ + "/vocab/metrics.jsonl"));
}

}  // namespace
}  // namespace lmforge::train
