// Checkpoints under faults and bad contents: leftovers of a killed prune are cleaned up by the
// next save, incomplete checkpoints are listed, and weights that are not floats, hold NaN, or do
// not match the checkpoint's config.json are rejected naming the file and the tensor or key.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nn/model_test_util.h"
#include "optim/adamw.h"
#include "train/checkpoint.h"
#include "core/file_util.h"
#include "train/hf_config.h"
#include "train/safetensors.h"

#include "train/train_test_util.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

using test::error_of;

class CheckpointFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CheckpointFaultsTest, LeftoversOfAKilledPruneAreRemovedByTheNextSave) {
  test::CheckpointFixture fx;
  for (int64_t step : {1, 2, 3}) fx.save(dir_, step, 2);
  const std::string root = dir_ + "/checkpoints";
  // What a prune killed mid-way leaves: a renamed-out checkpoint being deleted, and (from a
  // version that deleted in place) an older step_N with some of its files gone.
  fs::create_directories(root + "/.old-step_1-4242");
  std::ofstream(root + "/.old-step_1-4242/model.safetensors") << "partial";
  fs::create_directories(root + "/step_0");
  std::ofstream(root + "/step_0/config.toml") << "partial";
  EXPECT_TRUE(incomplete_checkpoints(dir_).empty());  // older than the newest complete one: litter
  fx.save(dir_, 4, 2);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step_3", "step_4"}));
  // An incomplete step_N newer than every complete one is not litter: a resume would pass over
  // it, so it is listed (the trainer refuses to resume), and pruning leaves it alone.
  fs::create_directories(root + "/step_9");
  std::ofstream(root + "/step_9/model.safetensors") << "x";
  fx.save(dir_, 5, 2);
  EXPECT_TRUE(fs::exists(root + "/step_9"));
  const auto incomplete = incomplete_checkpoints(dir_);
  ASSERT_EQ(incomplete.size(), 1u);
  EXPECT_EQ(incomplete[0].first, root + "/step_9");
  EXPECT_EQ(incomplete[0].second, "config.json");
}

// A safetensors file with the tensor `name` replaced by `replacement` (every tensor is copied
// out of the mapping first: the file is rewritten in place).
void rewrite_weights(const std::string& path, const std::string& name, const Tensor& replacement) {
  NamedTensors tensors;
  {
    SafetensorsFile f(path);
    for (const auto& [n, t] : f.all()) tensors.push_back({n, n == name ? replacement : clone(t)});
  }
  write_safetensors(path, tensors);
}

TEST_F(CheckpointFaultsTest, NonFloatTensorsAreNotConvertedIntoWeights) {
  test::CheckpointFixture fx;
  const std::string ck = fx.save(dir_, 1);
  const std::string weights = ck + "/model.safetensors";
  const auto p = fx.model->named_parameters()[1];
  for (DType bad : {DType::I32, DType::Bool, DType::U8}) {
    SCOPED_TRACE(std::string(dtype_name(bad)));
    rewrite_weights(weights, p.name, zeros(p.tensor.shape(), bad));
    const std::string e = error_of([&] { load_checkpoint_model(ck, Device::cpu()); });
    EXPECT_NE(e.find(weights), std::string::npos) << e;
    EXPECT_NE(e.find(p.name), std::string::npos) << e;
    EXPECT_NE(e.find("not as a floating-point type"), std::string::npos) << e;
  }
  // Other float widths are weights like f32 (converted on load).
  rewrite_weights(weights, p.name, p.tensor.to(DType::BF16));
  EXPECT_NO_THROW(load_checkpoint_model(ck, Device::cpu()));
}

TEST_F(CheckpointFaultsTest, NonFiniteWeightsAndMomentsAreRejected) {
  test::CheckpointFixture fx;
  const std::string ck = fx.save(dir_, 1);
  const auto p = fx.model->named_parameters()[2];
  std::vector<float> v = to_vector<float>(p.tensor);
  for (float bad : {NAN, INFINITY}) {
    v[5] = bad;
    rewrite_weights(ck + "/model.safetensors", p.name, from_vector<float>(v, p.tensor.shape()));
    const std::string e = error_of([&] { load_checkpoint_model(ck, Device::cpu()); });
    EXPECT_NE(e.find(p.name), std::string::npos) << e;
    EXPECT_NE(e.find("flat index 5"), std::string::npos) << e;
  }
  const std::string moment = p.name + ".exp_avg_sq";
  rewrite_weights(ck + "/optimizer.safetensors", moment, full(p.tensor.shape(), NAN));
  // (the rewrite drops the step metadata; put it back so only the NaN is wrong)
  {
    SafetensorsFile f(ck + "/optimizer.safetensors");
    NamedTensors t;
    for (const auto& [n, x] : f.all()) t.push_back({n, clone(x)});
    write_safetensors(ck + "/optimizer.safetensors", t, {{"lmforge.optimizer_step", "1"}});
  }
  optim::AdamW o(fx.model->named_parameters(), {});
  const std::string e = error_of([&] { load_optimizer_state(o, ck); });
  EXPECT_NE(e.find(moment), std::string::npos) << e;
}

TEST_F(CheckpointFaultsTest, ConfigJsonMustDescribeTheSameModel) {
  test::CheckpointFixture fx;
  const std::string ck = fx.save(dir_, 1);
  EXPECT_NO_THROW(load_checkpoint_model(ck, Device::cpu()));
  const std::string cj = ck + "/config.json";
  nlohmann::json j = nlohmann::json::parse(read_file(cj));
  j["num_hidden_layers"] = j["num_hidden_layers"].get<int64_t>() + 1;
  write_file_synced(cj, j.dump(2));
  std::string e = error_of([&] { load_checkpoint_model(ck, Device::cpu()); });
  EXPECT_NE(e.find(cj), std::string::npos) << e;
  EXPECT_NE(e.find("num_hidden_layers"), std::string::npos) << e;
  j = nlohmann::json::parse(hf_config_json(fx.run.model, -1));
  j["extra_key"] = 1;
  write_file_synced(cj, j.dump(2));
  e = error_of([&] { load_checkpoint_model(ck, Device::cpu()); });
  EXPECT_NE(e.find("extra_key"), std::string::npos) << e;
}

}  // namespace
}  // namespace lmforge::train
