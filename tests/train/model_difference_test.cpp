// model_difference names the first [model] key on which a checkpoint and a config disagree, with
// each side's value under its own label.
#include <gtest/gtest.h>

#include "train/config.h"

namespace lmforge::train {
namespace {

TEST(ModelDifference, LabelsEachSidesValue) {
  nn::ModelConfig checkpoint, config;
  EXPECT_EQ(model_difference(checkpoint, config), "");
  checkpoint.n_layers = 6;
  config.n_layers = 4;
  EXPECT_EQ(model_difference(checkpoint, config), "model.n_layers (checkpoint: 6, config: 4)");
  checkpoint.n_layers = 4;
  config.norm = nn::NormKind::LayerNorm;
  EXPECT_EQ(model_difference(checkpoint, config), "model.norm (checkpoint: \"rmsnorm\", config: \"layernorm\")");
  config.norm = nn::NormKind::RmsNorm;
  config.n_experts = 8;  // a key declared after the dense ones is compared too
  EXPECT_EQ(model_difference(checkpoint, config), "model.n_experts (checkpoint: 0, config: 8)");
}

// Every [model] key reaches the TOML reader, --set and the resolved config from the one field list.
TEST(ModelDifference, EveryModelFieldIsAConfigKey) {
  std::vector<std::string> keys;
  for (const auto& [key, help] : config_keys())
    if (key.starts_with("model.")) keys.push_back(key);
  std::vector<std::string> fields;
  nn::ModelConfig c;
  c.visit_fields([&](std::string_view name, const auto&, std::string_view) { fields.push_back("model." + std::string(name)); });
  EXPECT_EQ(keys, fields);
  RunConfig r;
  apply_override(r, "model.router=expert_choice");
  apply_override(r, "model.moe_layers=\"every:2\"");
  EXPECT_EQ(r.model.router, nn::RouterKind::ExpertChoice);
  EXPECT_EQ(r.model.moe_layers, "every:2");
  EXPECT_NE(to_toml(r).find("router = \"expert_choice\""), std::string::npos);
}

}  // namespace
}  // namespace lmforge::train
