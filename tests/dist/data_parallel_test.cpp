// Data parallel in one process: the trainer driven through a world-1 communicator takes the
// data-parallel code paths (bucketed reduction, the ZeRO shard optimizer, gathered checkpoints)
// and must reproduce the plain single-process run bit for bit; the sampler's row slices
// partition the windows one process draws. Runs of several ranks are in mpirun_training_test.cpp.
#include <gtest/gtest.h>

#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "train/data_loader.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::dist {
namespace {

class DataParallelTest : public test::PatternShardsTest {};

TEST_F(DataParallelTest, ZeroStagesAtWorldOneReproduceTheSingleProcessRun) {
  train::RunConfig c = run("plain");
  const train::TrainSummary plain = train::run_training(c, {.quiet = true});
  for (int zero : {0, 1, 2}) {
    SCOPED_TRACE(zero);
    c.train.out_dir = root_ + "/zero" + std::to_string(zero);
    c.dist.zero = zero;
    c.dist.bucket_mb = 0.001;  // 262 elements: many buckets, parameters split across them
    SingleProcessCommunicator comm;
    const train::TrainSummary dp = train::run_training(c, {.quiet = true, .communicator = &comm});
    // Losses, validation, and the checkpoint's weights and (gathered) optimizer state.
    test::expect_identical_runs(plain, dp);
  }
}

TEST_F(DataParallelTest, ShardedOptimizerResumesBitIdentically) {
  train::RunConfig c = run("unused");
  c.dist.zero = 2;
  c.dist.bucket_mb = 0.001;
  SingleProcessCommunicator comm;
  train::TrainSummary full, interrupted, resumed;
  c.train.out_dir = root_ + "/full";
  full = train::run_training(c, {.quiet = true, .communicator = &comm});
  c.train.out_dir = root_ + "/interrupted";
  interrupted = train::run_training(c, {.quiet = true, .stop_after_step = 6, .communicator = &comm});
  resumed = train::run_training(c, {.resume = true, .quiet = true, .communicator = &comm});
  EXPECT_EQ(interrupted.steps_done, 6);
  train::TrainSummary tail = full;
  tail.losses.erase(tail.losses.begin(), tail.losses.begin() + 4);  // the step-4 checkpoint
  test::expect_identical_runs(resumed, tail);
}

TEST_F(DataParallelTest, ShardsPartitionTheFlatParameterVector) {
  // 3 parameters of 5, 4 and 3 elements in a world of 1: one shard of 12; the shard optimizer
  // updates the parameters where they live.
  SingleProcessCommunicator comm;
  std::vector<nn::NamedParameter> params;
  for (int64_t n : {5, 4, 3}) {
    Tensor p = full({n}, 1.0);
    p.set_requires_grad(true);
    params.push_back({.name = "p" + std::to_string(n), .tensor = p});
  }
  DataParallel dp(comm, params, {.zero_stage = 1, .bucket_elements = 5, .adamw = {.weight_decay = 0}});
  EXPECT_EQ(dp.total_elements(), 12);
  EXPECT_EQ(dp.shard_elements(), 12);
  for (auto& p : params) p.tensor.set_grad(full(p.tensor.shape(), 2.0));
  dp.sync_gradients();
  // Σ g² = 12 · 4.
  EXPECT_EQ(to_vector<double>(dp.grad_norm_squared().to(DType::F64)).at(0), 48.0);
  dp.step(0.1, 1.0, {});
  // The first AdamW step moves every element by lr (m̂ / √v̂ = 1 for a constant gradient).
  for (const auto& p : params)
    for (float v : to_vector<float>(p.tensor)) EXPECT_NEAR(v, 0.9f, 1e-6f);
}

TEST(RandomWindowSamplerRows, RankSlicesPartitionTheGlobalBatch) {
  const std::string dir = test::temp_dir("sampler_rows");
  std::filesystem::remove_all(dir);
  test::write_pattern_shards(dir, 16, 500, 50);
  const train::TokenShards shards = train::TokenShards::open(dir, "train_");
  const int64_t t = 8, batch = 4;
  train::RandomWindowSampler whole(shards, t, 5), rank0(shards, t, 5), rank1(shards, t, 5);
  for (int step = 0; step < 3; ++step) {
    std::vector<int64_t> x(batch * t), y(batch * t), x0(2 * t), y0(2 * t), x1(2 * t), y1(2 * t);
    whole.next_batch(batch, x, y);
    rank0.next_batch_rows(batch, 0, 2, x0, y0);
    rank1.next_batch_rows(batch, 2, 2, x1, y1);
    x0.insert(x0.end(), x1.begin(), x1.end());
    y0.insert(y0.end(), y1.begin(), y1.end());
    EXPECT_EQ(x0, x);
    EXPECT_EQ(y0, y);
    EXPECT_EQ(rank0.position(), whole.position());
    EXPECT_EQ(rank1.position(), whole.position());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lmforge::dist
