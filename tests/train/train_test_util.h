// Token shards, run configs and run comparisons for the trainer tests (CPU and GPU).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <filesystem>

#include "data/shard.h"
#include "test_util.h"
#include "nn/model_test_util.h"
#include "train/config.h"
#include "core/file_util.h"
#include "optim/adamw.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace lmforge::test {

// Writes DIR/train_000000.bin and DIR/val_000000.bin holding a learnable sequence: a repeating
// pattern of period 7 over ids [0, vocab) with every fifth token random.
inline void write_pattern_shards(const std::string& dir, int64_t vocab, uint64_t n_train, uint64_t n_val) {
  std::filesystem::create_directories(dir);
  Generator g(77);
  auto write = [&](const std::string& name, uint64_t n) {
    data::ShardWriter w((std::filesystem::path(dir) / name).string(),
                        {.bytes_per_token = 2, .vocab_size = uint32_t(vocab), .eot_id = -1});
    std::vector<int64_t> noise = to_vector<int64_t>(randint({int64_t(n)}, 0, vocab, g));
    std::vector<uint32_t> ids(n);
    for (uint64_t i = 0; i < n; ++i) ids[i] = i % 5 == 4 ? uint32_t(noise[i]) : uint32_t((i * 3) % 7 % vocab);
    w.append(ids);
    w.close();
  };
  write("train_000000.bin", n_train);
  write("val_000000.bin", n_val);
}

inline train::RunConfig tiny_run(const std::string& data_dir, const std::string& out_dir) {
  train::RunConfig c;
  c.model = tiny_config();
  c.model.vocab_size = 16;
  c.model.context_length = 16;
  c.model.d_model = 16;
  c.model.n_heads = 2;
  c.model.d_ff = 32;
  c.model.init_std = 0.02;
  c.data.path = data_dir;
  c.train.steps = 12;
  c.train.micro_batch_size = 2;
  c.train.seq_len = 8;
  c.train.batch_tokens = 32;  // 2 micro-batches
  c.train.out_dir = out_dir;
  c.train.log_every = 1;
  c.optim.lr = 1e-2;
  c.optim.min_lr = 1e-3;
  c.optim.warmup_steps = 2;
  c.eval.every = 4;
  c.checkpoint.every = 4;
  c.checkpoint.keep_last = 2;
  return c;
}

// A test with its own directory (named after the test, removed afterwards) holding the pattern
// shards in root_/data; run(name) is tiny_run() into root_/name.
class PatternShardsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    data_ = root_ + "/data";
    write_pattern_shards(data_, 16, 4000, 600);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  train::RunConfig run(const std::string& name) { return tiny_run(data_, root_ + "/" + name); }
  std::string root_, data_;
};

// The bits of a double, so that equality means bit-identical (and NaN equals NaN).
inline uint64_t bits(double v) {
  uint64_t b;
  std::memcpy(&b, &v, 8);
  return b;
}

// Two runs of the same config: every training loss, the validation loss, the weights and the
// optimizer state of their last checkpoints are bit-identical.
inline void expect_identical_runs(const train::TrainSummary& a, const train::TrainSummary& b) {
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i)
    EXPECT_EQ(bits(a.losses[i].second), bits(b.losses[i].second)) << "step " << a.losses[i].first;
  ASSERT_TRUE(a.val_loss && b.val_loss);
  EXPECT_EQ(bits(*a.val_loss), bits(*b.val_loss));
  for (const char* file : {"/model.safetensors", "/optimizer.safetensors"})
    EXPECT_EQ(read_file(a.last_checkpoint + file), read_file(b.last_checkpoint + file)) << file;
}

struct ResumeRuns {
  train::TrainSummary full, interrupted, resumed;
};

// Runs `c` uninterrupted into ROOT/full, then into ROOT/interrupted stopped after step
// `stop_after` (as if killed) and resumed from its newest checkpoint.
inline ResumeRuns run_interrupted_and_resumed(train::RunConfig c, const std::string& root, int64_t stop_after) {
  ResumeRuns r;
  c.train.out_dir = root + "/full";
  r.full = train::run_training(c, {.quiet = true});
  c.train.out_dir = root + "/interrupted";
  r.interrupted = train::run_training(c, {.quiet = true, .stop_after_step = stop_after});
  r.resumed = train::run_training(c, {.resume = true, .quiet = true});
  return r;
}

// The resumed run redid the steps after `checkpoint_step` exactly as the uninterrupted one.
inline void expect_resumed_run_identical(const ResumeRuns& r, int64_t checkpoint_step) {
  ASSERT_FALSE(r.resumed.losses.empty());
  EXPECT_EQ(r.resumed.losses.front().first, checkpoint_step + 1);
  EXPECT_EQ(r.resumed.steps_done, r.full.steps_done);
  train::TrainSummary tail = r.full;
  tail.losses.erase(tail.losses.begin(), tail.losses.begin() + checkpoint_step);
  expect_identical_runs(r.resumed, tail);
}

// A tiny model, its optimizer, trainer state, schedule and run config: the contents of a
// checkpoint, for tests that save, load and damage checkpoints.
struct CheckpointFixture {
  nn::ModelConfig config = test::tiny_config();
  std::unique_ptr<nn::Transformer> model = test::make_model(config);
  optim::AdamW opt{model->named_parameters(), {}};
  train::TrainerState state;
  optim::LrSchedule sched;
  train::RunConfig run;
  CheckpointFixture() {
    run.model = config;
    run.data.path = "unused";
    run.validate();
  }
  train::CheckpointContents contents() {
    return {.model = *model, .optimizer = opt, .state = state, .schedule = sched, .config = run};
  }
  std::string save(const std::string& dir, int64_t step, int64_t keep_last = 3) {
    state.step = step;
    opt.set_step_count(step);
    return train::save_checkpoint(dir, contents(), keep_last);
  }
};

}  // namespace lmforge::test
