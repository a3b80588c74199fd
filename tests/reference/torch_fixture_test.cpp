// Whole-model reference: lmforge against fixtures written by plain PyTorch
// (tests/reference/make_torch_fixture.py; tests/fixtures/torch_reference/README.md).
//
// For each architecture variant (together they take every value of every architecture switch),
// the fixture's initial weights are loaded into an lmforge Transformer through the checkpoint
// loader, so its parameter names must be exactly the model's, and the test compares:
//   logits and loss at the initial weights; every parameter's gradient (and no parameter lacks
//   one); then three training steps on the same batch (loss, global gradient norm, clipping,
//   AdamW with decoupled weight decay on the projection matrices only) and every parameter
//   after them.
// The reference is computed in f64. The model runs twice, in f32 and in f64, each against
// relative bounds about ten times the worst it showed on these models (Bound below):
//
//                         f32                               f64
//   logits                2e-4 (floor 1% of the largest)    1e-12 (floor 1%)
//   loss                  1e-5                              1e-14
//   gradients             1e-3 (floor 1% of the largest)    1e-12 (floor 1%)
//   gradient norm         1e-5                              1e-13
//   after 3 AdamW steps   1e-6 + 1% of Σ lr absolute        1e-13 + 1e-10 · Σ lr absolute
//
// A semantic difference (interleaved RoPE pairs, erf-GELU, eps outside the square root, a decayed
// norm gain, no clipping, a different GQA head mapping) fails both, by orders of magnitude.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "nn/transformer.h"
#include "ops/ops.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;

// The variants make_torch_fixture.py writes; each must exist (a missing one fails its test).
const std::vector<std::string> kVariants = {"llama", "gpt2", "qwen3_gqa_zloss", "post_layernorm_mqa",
                                            "post_rmsnorm_learned_gqa", "pre_layernorm_nobias_mqa"};

fs::path fixture_root() { return fs::path(LMFORGE_FIXTURES_DIR) / "torch_reference"; }

// How far a result may be from the f64 reference: element i passes when
//   |actual_i - expected_i| <= rel · (|expected_i| + floor · max_j |expected_j|) + abs,
// a relative bound whose floor keeps elements that are small by cancellation from demanding more
// digits than the whole tensor has.
struct Bound {
  double rel;
  double floor = 0;
  double abs = 0;
};

// The values of the table at the top of the file; observed worst cases are a tenth or less.
struct Bounds {
  Bound logits, loss, grad, grad_norm;
  // Parameters after the three steps: rel for the value, and `lr_share` of Σ lr (how far AdamW can
  // move a parameter) for the update. An element whose gradient is tiny gets an update of about
  // ±lr from its sign alone, so rounding in it shows up at the scale of lr, not of the parameter.
  double after_rel, lr_share;
  double epsilon;  // of the dtype: gradients that are zero by construction come out as rounding noise
};
constexpr Bounds kF32Bounds{.logits = {2e-4, 1e-2}, .loss = {1e-5}, .grad = {1e-3, 1e-2}, .grad_norm = {1e-5},
                            .after_rel = 1e-6, .lr_share = 1e-2, .epsilon = 1.2e-7};
constexpr Bounds kF64Bounds{.logits = {1e-12, 1e-2}, .loss = {1e-14}, .grad = {1e-12, 1e-2}, .grad_norm = {1e-13},
                            .after_rel = 1e-13, .lr_share = 1e-10, .epsilon = 2.3e-16};

::testing::AssertionResult near(const std::string& what, const Tensor& actual, const Tensor& expected, Bound b) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(actual.shape()) << ", reference "
                                         << shape_str(expected.shape());
  const std::vector<double> a = to_vector<double>(contiguous(actual)), e = to_vector<double>(contiguous(expected));
  double scale = 0;
  for (double x : e) scale = std::max(scale, std::abs(x));
  size_t worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    const double allowed = b.rel * (std::abs(e[i]) + b.floor * scale) + b.abs;
    const double ratio = std::abs(a[i] - e[i]) / allowed;
    if (!(ratio <= worst_ratio)) {  // NaN counts as the worst
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (worst_ratio <= 1) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": element " << worst << " is " << a[worst] << ", reference "
                                       << e[worst] << " (" << worst_ratio << "x the allowed difference; "
                                       << e.size() << " elements)";
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (double x : to_vector<double>(contiguous(t))) m = std::max(m, std::abs(x));
  return m;
}

// The fixture's model: its keys are [model] keys (ModelConfig::visit_fields); the others keep
// their defaults (no dropout: the reference has none).
nn::ModelConfig model_config(const nlohmann::json& j) {
  nn::ModelConfig c;
  size_t used = 0;
  c.visit_fields([&]<class T>(std::string_view name, T& value, std::string_view) {
    const auto it = j.find(std::string(name));
    if (it == j.end()) return;
    ++used;
    if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double> || std::is_same_v<T, bool> ||
                  std::is_same_v<T, std::string>)
      value = it->get<T>();
    else
      nn::parse_enum(it->get<std::string>(), "model." + std::string(name), value);
  });
  EXPECT_EQ(used, j.size()) << "the fixture names a key that is not a [model] key: " << j.dump();
  return c;
}

struct Case {
  std::string variant;
  DType dtype;
};

class TorchFixture : public ::testing::TestWithParam<Case> {};

TEST_P(TorchFixture, LogitsLossGradientsAndThreeAdamWStepsMatch) {
  const auto [variant, dtype] = GetParam();
  const Bounds& bounds = dtype == DType::F64 ? kF64Bounds : kF32Bounds;
  const fs::path dir = fixture_root() / variant;
  std::ifstream jf(dir / "fixture.json");
  ASSERT_TRUE(jf) << "missing " << (dir / "fixture.json");
  const nlohmann::json meta = nlohmann::json::parse(jf);
  const nlohmann::json& o = meta.at("optim");

  nn::Transformer model(model_config(meta.at("model")), nn::TensorOptions{.dtype = dtype});
  train::load_model_weights(model, (dir / "model.safetensors").string());  // names must match exactly
  const train::SafetensorsFile ref((dir / "reference.safetensors").string());
  const Tensor ids = ref.get("input_ids"), targets = ref.get("targets");
  const std::vector<nn::NamedParameter> params = model.named_parameters();

  // Every gradient in the fixture belongs to a parameter and every parameter has one.
  std::set<std::string> ref_grads;
  for (const std::string& n : ref.names())
    if (n.starts_with("grad.")) ref_grads.insert(n.substr(5));
  std::set<std::string> names;
  for (const auto& p : params) names.insert(p.name);
  ASSERT_EQ(names, ref_grads);

  EXPECT_TRUE(near("logits", model.forward(ids), ref.get("logits"), bounds.logits));
  Tensor loss = model.loss(ids, targets);
  EXPECT_TRUE(near("loss", loss, ref.get("loss"), bounds.loss));
  loss.backward();
  // A gradient that is zero by construction (the key bias without RoPE or QK-norm: it shifts all
  // of a query's scores alike, which the softmax ignores) is rounding noise of about
  // epsilon · (gradient scale) here, checked as such; AdamW turns that noise into updates of about
  // lr · min(1, noise / eps) per step (twice that bounds them: the normalised step m̂/√v̂ can exceed
  // 1 a little), which is how far those parameters may move.
  double grad_scale = 0;
  for (const auto& p : params) grad_scale = std::max(grad_scale, max_abs(ref.get("grad." + p.name)));
  const double noise = 100 * bounds.epsilon * grad_scale;
  std::set<std::string> zero_grad;
  for (const auto& p : params) {
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name << " has no gradient";
    const Tensor expected = ref.get("grad." + p.name);
    const bool zero = max_abs(expected) <= 1e-12 * grad_scale;
    if (zero) zero_grad.insert(p.name);
    EXPECT_TRUE(near("grad " + p.name, p.tensor.grad(), expected, zero ? Bound{.rel = 0, .abs = noise} : bounds.grad));
  }

  // Three steps as the trainer takes them: gradient norm on the device, clipped inside the update.
  optim::AdamW opt(params, {.beta1 = o.at("beta1"), .beta2 = o.at("beta2"), .eps = o.at("eps"),
                            .weight_decay = o.at("weight_decay")});
  const std::vector<double> lrs = o.at("lr");
  const double max_norm = o.at("grad_clip");
  const std::vector<double> step_loss = to_vector<double>(ref.get("step_loss"));
  const std::vector<double> step_norm = to_vector<double>(ref.get("step_grad_norm"));
  ASSERT_EQ(lrs.size(), 3u);
  for (size_t s = 0; s < lrs.size(); ++s) {
    model.zero_grad();
    Tensor l = model.loss(ids, targets);
    l.backward();
    const Tensor sq = optim::grad_norm_squared(params);
    const std::string at = "step " + std::to_string(s + 1);
    EXPECT_TRUE(near(at + " loss", l, scalar_tensor(step_loss[s], DType::F64), bounds.loss));
    EXPECT_TRUE(near(at + " gradient norm", scalar_tensor(optim::clip_norm(sq.item()), DType::F64),
                     scalar_tensor(step_norm[s], DType::F64), bounds.grad_norm));
    opt.step(lrs[s], 1.0, {.norm_squared = sq, .max_norm = max_norm});
  }
  double lr_sum = 0;
  for (double lr : lrs) lr_sum += lr;
  const double adam_eps = o.at("eps");
  for (const auto& p : params) {
    const Bound b = zero_grad.count(p.name)
                        ? Bound{.rel = bounds.after_rel, .abs = 2 * lr_sum * std::min(1.0, noise / adam_eps)}
                        : Bound{.rel = bounds.after_rel, .abs = bounds.lr_share * lr_sum};
    EXPECT_TRUE(near("after 3 steps " + p.name, p.tensor, ref.get("after_steps." + p.name), b));
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const auto& v : kVariants)
    for (DType dt : {DType::F32, DType::F64}) out.push_back({v, dt});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Variants, TorchFixture, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.variant + "_" + std::string(dtype_name(info.param.dtype));
                         });

// A fixture directory the test does not know would be silently unchecked.
TEST(TorchFixtureSet, EveryFixtureDirectoryIsTested) {
  std::set<std::string> dirs;
  for (const auto& e : fs::directory_iterator(fixture_root()))
    if (e.is_directory()) dirs.insert(e.path().filename().string());
  EXPECT_EQ(dirs, std::set<std::string>(kVariants.begin(), kVariants.end()));
}

}  // namespace
}  // namespace lmforge
