// safetensors files and checkpoint directories: round trips, and truncated or corrupted files
// rejected naming the file; a failed write leaves the previous checkpoint intact.
#include <gtest/gtest.h>

#include <fstream>

#include "nn/model_test_util.h"
#include "optim/adamw.h"
#include "train/checkpoint.h"
#include "core/file_util.h"
#include "train/safetensors.h"

#include "train/train_test_util.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

using test::error_of;

void truncate_file(const std::string& path, uint64_t size) { fs::resize_file(path, size); }

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c;
  f.read(&c, 1);
  c ^= 0x20;
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CheckpointTest, SafetensorsRoundTripsEveryDtypeAndLayout) {
  Generator g(1);
  const Tensor a = randn({3, 5}, g);
  const Tensor b = from_vector<int64_t>({1, -2, 3}, {3});
  const Tensor c = randn({4, 2}, g, DType::F64).transpose(0, 1);  // non-contiguous
  const Tensor d = from_vector<uint16_t>({7}, {1});
  const std::string p = dir_ + "/t.safetensors";
  write_safetensors(p, {{"a", a}, {"b", b}, {"c", c}, {"d", d}}, {{"note", "hi"}});
  SafetensorsFile f(p);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(f.metadata().at("note"), "hi");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(to_vector<float>(f.get("a")), to_vector<float>(a));
  EXPECT_EQ(to_vector<int64_t>(f.get("b")), to_vector<int64_t>(b));
  EXPECT_EQ(f.get("c").shape(), (Shape{2, 4}));
  EXPECT_EQ(to_vector<double>(f.get("c")), to_vector<double>(c));
  EXPECT_EQ(to_vector<uint16_t>(f.get("d")), std::vector<uint16_t>{7});
  // The layout is the published one: 8-byte length, JSON, data.
  const std::string raw = read_file(p);
  uint64_t n = 0;
  std::memcpy(&n, raw.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(raw[8], '{');
  EXPECT_EQ(raw.size(), 8 + n + 15 * 4 + 3 * 8 + 8 * 8 + 2);
}

TEST_F(CheckpointTest, TruncatedOrCorruptedSafetensorsAreRejectedNamingTheFile) {
  Generator g(2);
  const std::string p = dir_ + "/m.safetensors";
  write_safetensors(p, {{"w", randn({16, 16}, g)}});
  const uint64_t size = fs::file_size(p);
  const std::string copy = dir_ + "/copy.safetensors";
  fs::copy_file(p, copy);
  truncate_file(p, size - 10);
  std::string e = error_of([&] { SafetensorsFile f(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  truncate_file(p, 5);
  e = error_of([&] { SafetensorsFile f(p); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // A flipped data byte: caught by the checksum.
  flip_byte(copy, size - 3);
  e = error_of([&] { SafetensorsFile f(copy); });
  EXPECT_NE(e.find(copy), std::string::npos) << e;
  EXPECT_NE(e.find("checksum mismatch"), std::string::npos) << e;
  // A flipped header byte.
  flip_byte(copy, size - 3);
  flip_byte(copy, 9);
  e = error_of([&] { SafetensorsFile f(copy); });
  EXPECT_NE(e.find(copy), std::string::npos) << e;
}

TEST_F(CheckpointTest, SaveLoadRoundTripAndKeepLast) {
  test::CheckpointFixture fx;
  fx.state.sampler_position = 123;
  fx.state.dropout_rng = {5, 77};
  for (int64_t step : {10, 20, 30}) {
    fx.state.step = step;
    fx.opt.set_step_count(step);
    save_checkpoint(dir_, fx.contents(), 2);
  }
  const auto all = list_checkpoints(dir_);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].first, 20);
  EXPECT_EQ(latest_checkpoint(dir_), dir_ + "/checkpoints/step_30");
  for (const char* f : {"model.safetensors", "config.json", "optimizer.safetensors", "trainer_state.json", "config.toml"})
    EXPECT_TRUE(fs::exists(dir_ + "/checkpoints/step_30/" + f)) << f;
  const std::string cj = read_file(dir_ + "/checkpoints/step_30/config.json");
  EXPECT_NE(cj.find("\"model_type\": \"llama\""), std::string::npos) << cj;
  LoadedModel m = load_checkpoint_model(dir_, Device::cpu());
  EXPECT_EQ(m.dir, dir_ + "/checkpoints/step_30");
  const auto a = fx.model->named_parameters(), b = m.model->named_parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(to_vector<float>(a[i].tensor), to_vector<float>(b[i].tensor));
  const TrainerState s = read_trainer_state(m.dir);
  EXPECT_EQ(s.step, 30);
  EXPECT_EQ(s.sampler_position, 123u);
  EXPECT_EQ(s.dropout_rng, (GeneratorState{5, 77}));
  optim::AdamW opt2(m.model->named_parameters(), {});
  load_optimizer_state(opt2, m.dir);
  EXPECT_EQ(opt2.step_count(), 30);

  // The forward's precision is the loader's choice (auto: f32 on the CPU); weights stay f32.
  EXPECT_EQ(m.model->activation_dtype(), DType::F32);
  LoadedModel h = load_checkpoint_model(dir_, Device::cpu(), Precision::BF16);
  EXPECT_EQ(h.model->activation_dtype(), DType::BF16);
  EXPECT_EQ(h.model->named_parameters()[0].tensor.dtype(), DType::F32);
  const Tensor ids = test::random_ids(1, 5, h.model->config().vocab_size, 3);
  NoGradGuard no_grad;
  const Tensor lf = m.model->forward(ids), lh = h.model->forward(ids);
  EXPECT_EQ(lh.dtype(), DType::BF16);
  const std::vector<double> a32 = to_vector<double>(lf), a16 = to_vector<double>(lh);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < a32.size(); ++i) {
    worst = std::max(worst, std::abs(a32[i] - a16[i]));
    scale = std::max(scale, std::abs(a32[i]));
  }
  EXPECT_GT(worst, 0.0) << "bf16 logits identical to f32: the precision was not applied";
  EXPECT_LT(worst, 0.05 * scale + 1e-3) << "bf16 logits far from f32";
  EXPECT_EQ(compute_dtype_for(Precision::Auto, true), DType::BF16);
  EXPECT_EQ(compute_dtype_for(Precision::Auto, false), DType::F32);
}

TEST(TrainerStateJson, LossScaleRoundTripsAndIsOptional) {
  const optim::LrSchedule sched{.kind = optim::ScheduleKind::Cosine, .lr = 1e-3, .min_lr = 1e-4, .warmup_steps = 2,
                                .decay_steps = 10};
  TrainerState s;
  s.step = 7;
  s.loss_scale = 8192;
  s.loss_scale_clean_steps = 13;
  const std::string text = trainer_state_json(s, sched);
  TrainerState r = parse_trainer_state(text, "state.json");
  EXPECT_EQ(r.loss_scale, 8192.0);
  EXPECT_EQ(r.loss_scale_clean_steps, 13);
  // A state without loss scaling (f32 / bf16 runs, or written before f16 existed) has no field
  // and loads with scale 0, which the trainer replaces by train.loss_scale_init.
  s.loss_scale = 0;
  const std::string plain = trainer_state_json(s, sched);
  EXPECT_EQ(plain.find("loss_scale"), std::string::npos) << plain;
  r = parse_trainer_state(plain, "state.json");
  EXPECT_EQ(r.loss_scale, 0.0);
  EXPECT_EQ(r.loss_scale_clean_steps, 0);
  std::string bad = text;
  bad.replace(bad.find("8192.0"), 6, "-1.0");
  EXPECT_NE(error_of([&] { parse_trainer_state(bad, "bad.json"); }).find("bad.json: bad loss scale"),
            std::string::npos);
}

TEST_F(CheckpointTest, TruncatedCheckpointIsRejectedNamingTheFile) {
  test::CheckpointFixture fx;
  fx.state.step = 5;
  const std::string ck = save_checkpoint(dir_, fx.contents(), 3);
  const std::string model = ck + "/model.safetensors";
  truncate_file(model, fs::file_size(model) / 2);
  std::string e = error_of([&] { load_checkpoint_model(ck, Device::cpu()); });
  EXPECT_NE(e.find(model), std::string::npos) << e;
  const std::string state = ck + "/trainer_state.json";
  truncate_file(state, fs::file_size(state) / 2);
  e = error_of([&] { read_trainer_state(ck); });
  EXPECT_NE(e.find(state), std::string::npos) << e;
  const std::string opt = ck + "/optimizer.safetensors";
  flip_byte(opt, fs::file_size(opt) - 1);
  optim::AdamW o(fx.model->named_parameters(), {});
  e = error_of([&] { load_optimizer_state(o, ck); });
  EXPECT_NE(e.find(opt), std::string::npos) << e;
  EXPECT_NE(e.find("corrupted"), std::string::npos) << e;
}

TEST_F(CheckpointTest, WeightsOfAnotherModelAreRejected) {
  test::CheckpointFixture fx;
  const std::string ck = save_checkpoint(dir_, fx.contents(), 3);
  nn::ModelConfig other = test::tiny_config();
  other.d_ff = 24;
  nn::Transformer m(other);
  const std::string e = error_of([&] { load_model_weights(m, ck + "/model.safetensors"); });
  EXPECT_NE(e.find("mlp.gate_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("shape"), std::string::npos) << e;
}

TEST_F(CheckpointTest, FailedWriteLeavesThePreviousCheckpointIntact) {
  test::CheckpointFixture fx;
  fx.state.step = 1;
  const std::string first = save_checkpoint(dir_, fx.contents(), 3);
  const std::string before = read_file(first + "/model.safetensors");
  // Step 2 fails half-way (a tensor name clash is refused by the writer after model.safetensors).
  fx.state.step = 2;
  std::vector<nn::NamedParameter> clash = fx.model->named_parameters();
  clash.push_back(clash[0]);
  optim::AdamW bad(clash, {});
  CheckpointContents c = fx.contents();
  const CheckpointContents broken{.model = c.model, .optimizer = bad, .state = c.state, .schedule = c.schedule,
                                  .config = c.config};
  EXPECT_THROW(save_checkpoint(dir_, broken, 3), Error);
  EXPECT_EQ(latest_checkpoint(dir_), first);
  EXPECT_FALSE(fs::exists(dir_ + "/checkpoints/step_2"));
  EXPECT_EQ(read_file(first + "/model.safetensors"), before);
  for (const auto& e : fs::directory_iterator(dir_ + "/checkpoints"))
    EXPECT_FALSE(e.path().filename().string().starts_with(".tmp")) << e.path();
  // Overwriting the same step (after a rollback) replaces it whole.
  fx.state.step = 1;
  EXPECT_EQ(save_checkpoint(dir_, fx.contents(), 3), first);
}

}  // namespace
}  // namespace lmforge::train
