// Data errors a new user meets: a directory without validation shards, and validation shards
// with nothing to predict; each message names the files and says what to do.
#include <gtest/gtest.h>

#include "nn/model_test_util.h"
#include "train/data_loader.h"
#include "train/evaluate.h"
#include "train/train_test_util.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

class DataLoaderErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write_shard(const std::string& name, uint64_t n) {
    data::ShardWriter w(dir_ + "/" + name, {.bytes_per_token = 2, .vocab_size = 11, .eot_id = -1});
    std::vector<uint32_t> ids(n, 3);
    w.append(ids);
    w.close();
  }
  std::string dir_;
};

using test::error_of;

TEST_F(DataLoaderErrors, NoValidationShardsPointsAtTheFlagThatWritesThem) {
  write_shard("train_000000.bin", 100);
  const std::string e = error_of([&] { TokenShards::open(dir_, "val_"); });
  EXPECT_NE(e.find(dir_), std::string::npos) << e;
  EXPECT_NE(e.find("--val-fraction"), std::string::npos) << e;
  EXPECT_NE(e.find("data.val_path"), std::string::npos) << e;
}

TEST_F(DataLoaderErrors, ValidationShardsWithNothingToPredictAreNamed) {
  write_shard("val_000000.bin", 1);
  write_shard("val_000001.bin", 0);
  const TokenShards val = TokenShards::open(dir_, "val_");
  ValidationBatches batches(val, 4, 2);
  EXPECT_EQ(batches.n_windows(), 0);
  nn::ModelConfig c = test::tiny_config();
  auto model = test::make_model(c);
  const std::string e = error_of([&] { evaluate(*model, batches, 2, 4, nullptr); });
  EXPECT_NE(e.find(dir_ + "/val_000000.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("at least 2 tokens"), std::string::npos) << e;
}

}  // namespace
}  // namespace lmforge::train
