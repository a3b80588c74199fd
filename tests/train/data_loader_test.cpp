#include <gtest/gtest.h>

#include <set>

#include "train/data_loader.h"
#include "train/train_test_util.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

class DataLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // Shard `name` holding ids base, base+1, ..., base+n-1.
  void write_counting(const std::string& name, uint32_t base, uint64_t n, uint32_t vocab = 1000) {
    data::ShardWriter w(dir_ + "/" + name, {.bytes_per_token = 2, .vocab_size = vocab, .eot_id = -1});
    std::vector<uint32_t> ids(n);
    for (uint64_t i = 0; i < n; ++i) ids[i] = base + uint32_t(i);
    w.append(ids);
    w.close();
  }
  std::string dir_;
};

TEST_F(DataLoaderTest, OpensShardsInNaturalOrder) {
  write_counting("train_10.bin", 100, 5);
  write_counting("train_2.bin", 200, 5);
  write_counting("val_0.bin", 300, 5);
  TokenShards s = TokenShards::open(dir_, "train_");
  ASSERT_EQ(s.n_shards(), 2u);
  EXPECT_EQ(s.shard(0).at(0), 200u);
  EXPECT_EQ(s.total_tokens(), 10u);
  EXPECT_THROW(TokenShards::open(dir_, "test_"), Error);
}

TEST_F(DataLoaderTest, SamplerWindowsAreConsecutiveAndReproducible) {
  write_counting("train_0.bin", 0, 50);
  write_counting("train_1.bin", 500, 9);  // exactly one window of 8 + 1
  write_counting("train_2.bin", 900, 5);  // too short: never sampled
  TokenShards s = TokenShards::open(dir_, "train_");
  RandomWindowSampler a(s, 8, 42), b(s, 8, 42);
  std::vector<int64_t> x(4 * 8), y(4 * 8), x2(4 * 8), y2(4 * 8);
  std::set<int64_t> firsts;
  for (int rep = 0; rep < 50; ++rep) {
    a.next_batch(4, x, y);
    for (int r = 0; r < 4; ++r) {
      firsts.insert(x[r * 8]);
      for (int t = 0; t < 8; ++t) {
        EXPECT_EQ(y[r * 8 + t], x[r * 8 + t] + 1);
        if (t > 0) {
          EXPECT_EQ(x[r * 8 + t], x[r * 8 + t - 1] + 1);
        }
      }
      EXPECT_TRUE(x[r * 8] < 42 || x[r * 8] == 500) << x[r * 8];
    }
  }
  EXPECT_EQ(a.position(), 200u);
  EXPECT_GT(firsts.size(), 30u);
  // Resuming at a position continues the stream exactly.
  b.set_position(a.position() - 8);
  a.set_position(a.position() - 8);
  a.next_batch(4, x, y);
  b.next_batch(4, x2, y2);
  EXPECT_EQ(x, x2);
  EXPECT_EQ(y, y2);
  RandomWindowSampler c(s, 8, 43);
  c.next_batch(4, x2, y2);
  RandomWindowSampler d(s, 8, 42);
  d.next_batch(4, x, y);
  EXPECT_NE(x, x2) << "another seed should give another order";
}

TEST_F(DataLoaderTest, ValidationCoversEveryTokenOnce) {
  write_counting("val_0.bin", 0, 20);
  write_counting("val_1.bin", 100, 7);
  TokenShards s = TokenShards::open(dir_, "val_");
  ValidationBatches v(s, 8, 3);
  std::vector<int64_t> x(24), y(24), targets;
  int64_t rows, batches = 0;
  while ((rows = v.next(x, y)) > 0) {
    ++batches;
    for (int64_t i = 0; i < rows * 8; ++i) {
      if (y[size_t(i)] == kIgnoreIndex) continue;
      targets.push_back(y[size_t(i)]);
      EXPECT_EQ(y[size_t(i)], x[size_t(i)] + 1);
    }
  }
  EXPECT_EQ(batches, 2);  // windows: 0, 8, 16 of shard 0 and 0 of shard 1
  std::vector<int64_t> want;
  for (int64_t i = 1; i < 20; ++i) want.push_back(i);
  for (int64_t i = 101; i < 107; ++i) want.push_back(i);
  EXPECT_EQ(targets, want);
  ValidationBatches capped(s, 8, 1, 2);
  int64_t n = 0;
  while (capped.next(x, y) > 0) ++n;
  EXPECT_EQ(n, 2);
}

TEST_F(DataLoaderTest, IdsOutsideTheVocabularyAreRejectedNamingTheFile) {
  write_counting("train_0.bin", 0, 10);
  write_counting("train_1.bin", 60, 10);
  TokenShards s = TokenShards::open(dir_, "train_");
  s.validate_ids(100);
  try {
    s.validate_ids(64);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train_1.bin"), std::string::npos) << e.what();
  }
}

TEST(UnigramEntropy, Values) {
  EXPECT_DOUBLE_EQ(unigram_entropy({5, 5}), std::log(2.0));
  EXPECT_DOUBLE_EQ(unigram_entropy({0, 7, 0}), 0.0);
}

}  // namespace
}  // namespace lmforge::train
