// The trainer end to end on tiny shards: losses fall, the same seed gives the same run,
// interrupted-and-resumed training gives bit-identical losses, non-finite losses are skipped
// or rolled back, bad shards are rejected before training.
#include <gtest/gtest.h>

#include "train/checkpoint.h"
#include "core/file_util.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;
using test::bits;

class TrainerTest : public test::PatternShardsTest {};

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
  for (Precision precision : {Precision::F32, Precision::BF16, Precision::F16}) {
    const std::string p(to_string(precision));
    SCOPED_TRACE(p);
    RunConfig c = run("unused");
    c.model.dropout = 0.1;  // exercises the dropout generator's saved state
    c.train.precision = precision;
    // f16: the scale grows at steps 3, 6, 9, 12, so the resumed run needs the saved clean-step
    // count (1 at the step-4 checkpoint) to grow at the same steps.
    c.train.loss_scale_init = 1024;
    c.train.loss_scale_growth_interval = 3;
    const std::string dir = root_ + "/" + p;
    // Killed after step 6: the newest checkpoint is step 4, so steps 5 and 6 are redone.
    const test::ResumeRuns r = test::run_interrupted_and_resumed(c, dir, 6);
    EXPECT_EQ(r.interrupted.steps_done, 6);
    ASSERT_EQ(r.resumed.losses.size(), 8u);
    test::expect_resumed_run_identical(r, 4);
    const TrainerState rs = read_trainer_state(r.resumed.last_checkpoint);
    const TrainerState full_state = read_trainer_state(r.full.last_checkpoint);
    EXPECT_EQ(rs.loss_scale, full_state.loss_scale);
    EXPECT_EQ(rs.loss_scale_clean_steps, full_state.loss_scale_clean_steps);
    // f16 saves its scale (grown at steps 3, 6, 9, 12); the others have none.
    EXPECT_EQ(rs.loss_scale, precision == Precision::F16 ? 1024.0 * 16 : 0.0);
    // The metrics file reads as one run: no step logged twice.
    const std::string m = read_file(dir + "/interrupted/metrics.jsonl");
    EXPECT_EQ(m.find("\"step\":5,\"loss\""), m.rfind("\"step\":5,\"loss\""));
    if (precision != Precision::F32) continue;
    // A resume with another model is refused naming the key.
    c.train.out_dir = dir + "/interrupted";
    c.model.n_layers = 3;
    try {
      run_training(c, {.resume = true, .quiet = true});
      FAIL();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("n_layers"), std::string::npos) << e.what();
    }
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

TEST_F(TrainerTest, Bf16TrainingTracksF32) {
  RunConfig c = run("f32");
  c.train.steps = 40;
  c.eval.every = 0;
  c.checkpoint.every = 0;
  const TrainSummary f32 = run_training(c, {.quiet = true});
  c.train.out_dir = root_ + "/bf16";
  c.train.precision = Precision::BF16;
  const TrainSummary bf16 = run_training(c, {.quiet = true});
  ASSERT_EQ(f32.losses.size(), 40u);
  ASSERT_EQ(bf16.losses.size(), 40u);
  auto tail_mean = [](const TrainSummary& s) {
    double sum = 0;
    for (size_t i = s.losses.size() - 5; i < s.losses.size(); ++i) sum += s.losses[i].second;
    return sum / 5;
  };
  EXPECT_LT(tail_mean(f32), f32.losses.front().second - 0.5);  // it did learn
  EXPECT_NEAR(tail_mean(bf16), tail_mean(f32), 0.03 * tail_mean(f32));
  EXPECT_NEAR(*bf16.val_loss, *f32.val_loss, 0.03 * *f32.val_loss);
  EXPECT_NE(bits(bf16.losses.back().second), bits(f32.losses.back().second));  // bf16 did compute in bf16
  // The checkpoint keeps f32 master weights in either case.
  EXPECT_EQ(read_file(bf16.last_checkpoint + "/model.safetensors").size(),
            read_file(f32.last_checkpoint + "/model.safetensors").size());
  const std::string m = read_file(root_ + "/bf16/metrics.jsonl");
  EXPECT_EQ(m.find("loss_scale"), std::string::npos);
}

// A gradient overflow under f16 skips the update and halves the scale, and is not a bad step. Run
// A overflows its first batch (a loss hook makes the scaled gradients exceed f16); run B starts at
// half A's scale and has its first batch rejected as non-finite instead. Both drop the same batch
// and then train at the same scale, so they are bit-identical only if A's skipped step left the
// weights, the moments and the gradients untouched.
TEST_F(TrainerTest, F16OverflowSkipsTheStepAndHalvesTheScale) {
  RunConfig c = run("overflow");
  c.train.batch_tokens = 0;  // one micro-batch per step: a rejected step consumes one batch
  c.train.precision = Precision::F16;
  c.train.loss_scale_init = 65536;
  c.eval.every = 0;
  c.checkpoint.every = 0;
  int calls_a = 0, calls_b = 0;
  const TrainSummary a = run_training(c, {.quiet = true, .loss_hook = [&](int64_t, Tensor& loss) {
                                            if (calls_a++ == 0) loss = loss * 1e30;  // finite, overflows f16
                                          }});
  c.train.out_dir = root_ + "/nonfinite";
  c.train.loss_scale_init = 32768;
  const TrainSummary b = run_training(c, {.quiet = true, .loss_hook = [&](int64_t, Tensor& loss) {
                                            if (calls_b++ == 0) loss = loss * NAN;
                                          }});
  EXPECT_TRUE(a.bad_steps.empty());
  EXPECT_EQ(b.bad_steps, std::vector<int64_t>{1});
  EXPECT_EQ(a.steps_done, 12);
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i)
    EXPECT_EQ(bits(a.losses[i].second), bits(b.losses[i].second)) << "step " << a.losses[i].first;
  EXPECT_EQ(read_file(a.last_checkpoint + "/model.safetensors"), read_file(b.last_checkpoint + "/model.safetensors"));
  EXPECT_EQ(read_file(a.last_checkpoint + "/optimizer.safetensors"),
            read_file(b.last_checkpoint + "/optimizer.safetensors"));
  const std::string m = read_file(root_ + "/overflow/metrics.jsonl");
  EXPECT_NE(m.find("{\"step\":1,\"event\":\"loss_scale\",\"scale\":32768.0,\"reason\":\"overflow\"}"),
            std::string::npos) << m;
  EXPECT_EQ(m.find("nonfinite_loss"), std::string::npos) << m;
  EXPECT_EQ(read_trainer_state(a.last_checkpoint).loss_scale, 32768.0);
}

TEST_F(TrainerTest, F16ScaleGrowsAfterCleanSteps) {
  RunConfig c = run("growth");
  c.train.precision = Precision::F16;
  c.train.loss_scale_init = 256;
  c.train.loss_scale_growth_interval = 5;
  const TrainSummary s = run_training(c, {.quiet = true});
  EXPECT_EQ(s.steps_done, 12);
  const TrainerState st = read_trainer_state(s.last_checkpoint);
  EXPECT_EQ(st.loss_scale, 1024.0);  // doubled after steps 5 and 10
  EXPECT_EQ(st.loss_scale_clean_steps, 2);
  const std::string m = read_file(root_ + "/growth/metrics.jsonl");
  EXPECT_NE(m.find("{\"step\":5,\"event\":\"loss_scale\",\"scale\":512.0,\"reason\":\"growth\"}"),
            std::string::npos) << m;
  for (const auto& [step, loss] : s.losses) EXPECT_TRUE(std::isfinite(loss)) << step;
  EXPECT_LT(s.losses.back().second, s.losses.front().second - 0.3);
}

TEST_F(TrainerTest, NonFiniteLossIsSkipped) {
  RunConfig c = run("skip");
  // Step 3 fails twice: the hook runs once a micro-batch (two a step), and the first micro-batch of
  // each of the first two attempts goes non-finite.
  ASSERT_EQ(c.accumulation_steps(), 2);
  int hits = 0;
  const TrainSummary s = run_training(c, {.quiet = true, .loss_hook = [&](int64_t step, Tensor& loss) {
                                            if (step == 2 && hits < 4 && hits++ % 2 == 0) loss = loss * NAN;
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
