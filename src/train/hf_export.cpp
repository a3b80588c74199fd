#include "train/hf_export.h"


#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/file_util.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/quantized_checkpoint.h"

namespace lmforge::train {

namespace fs = std::filesystem;

namespace {

// "model.layers.{L}.mlp.{rest}" -> (L, rest); L = -1 for any other name.
std::pair<int64_t, std::string> mlp_tensor(const std::string& name) {
  const std::string prefix = "model.layers.";
  if (!name.starts_with(prefix)) return {-1, ""};
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || name.compare(dot, 5, ".mlp.") != 0) return {-1, ""};
  return {std::stoll(name.substr(prefix.size(), dot - prefix.size())), name.substr(dot + 5)};
}

}  // namespace

NamedTensors hf_export_tensors(const nn::Transformer& model) {
  NoGradGuard no_grad;  // the per-expert rows are views of the parameters, not part of any graph
  const nn::ModelConfig& c = model.config();
  const HfArchitecture arch = hf_architecture(c);
  const bool mixtral = arch == HfArchitecture::Mixtral, deepseek = arch == HfArchitecture::DeepseekV3;
  // Per-expert names of the stacked tensors, in Mixtral's spelling or the Qwen/DeepSeek one.
  const auto expert_name = [&](int64_t layer, int64_t e, const std::string& stacked) {
    if (mixtral) {
      const char* w = stacked == "gate_proj" ? "w1" : stacked == "up_proj" ? "w3" : "w2";
      return fmt::format("model.layers.{}.block_sparse_moe.experts.{}.{}.weight", layer, e, w);
    }
    return fmt::format("model.layers.{}.mlp.experts.{}.{}.weight", layer, e, stacked);
  };

  NamedTensors all;
  for (const auto& p : model.named_parameters()) all.push_back({p.name, p.tensor});
  for (const auto& [name, b] : model.named_buffers()) all.push_back({name, b});
  std::set<int64_t> has_bias;  // MoE layers whose balancing bias the model holds
  for (const auto& [name, t] : all) {
    const auto [layer, rest] = mlp_tensor(name);
    if (layer >= 0 && rest == "gate.e_score_correction_bias") has_bias.insert(layer);
  }

  NamedTensors out;
  for (const auto& [name, t] : all) {
    const auto [layer, rest] = mlp_tensor(name);
    if (layer < 0 || !c.is_moe_layer(layer)) {
      out.push_back({name, t});
      continue;
    }
    if (rest.starts_with("experts.")) {
      const std::string stacked = rest.substr(8);
      LF_ASSERT(t.dim() == 3 && t.size(0) == c.n_experts, "{}: stacked experts expected, got shape {}", name,
                shape_str(t.shape()));
      for (int64_t e = 0; e < c.n_experts; ++e) out.push_back({expert_name(layer, e, stacked), select(t, 0, e)});
      continue;
    }
    if (mixtral) {
      LF_ASSERT(rest == "gate.weight", "{}: unexpected tensor in a Mixtral MoE layer", name);
      out.push_back({fmt::format("model.layers.{}.block_sparse_moe.gate.weight", layer), t});
      continue;
    }
    out.push_back({name, t});
    if (deepseek && rest == "gate.weight") {
      // HF DeepSeek-V3 always has the bias (a buffer it loads); zeros choose as no bias does.
      if (!has_bias.count(layer))
        out.push_back({fmt::format("model.layers.{}.mlp.gate.e_score_correction_bias", layer),
                       zeros({c.n_experts}, DType::F32, t.device())});
      // HF builds the shared experts whatever their count: width 0 when there are none.
      if (c.n_shared_experts == 0) {
        const DType dt = t.dtype();
        const std::string p = fmt::format("model.layers.{}.mlp.shared_experts.", layer);
        out.push_back({p + "gate_proj.weight", zeros({0, c.d_model}, dt, t.device())});
        out.push_back({p + "up_proj.weight", zeros({0, c.d_model}, dt, t.device())});
        out.push_back({p + "down_proj.weight", zeros({c.d_model, 0}, dt, t.device())});
      }
    }
  }
  // DeepSeek-V3's MTP layers carry their own copies of the embedding and the output head.
  Tensor embedding;
  for (const auto& [name, t] : all)
    if (name == "model.embed_tokens.weight") embedding = t;
  LF_ASSERT(embedding.defined(), "the model has no model.embed_tokens.weight");
  for (int64_t k = 1; k <= c.mtp_depth; ++k) {
    const std::string p = fmt::format("model.layers.{}.", c.n_layers + k - 1);
    out.push_back({p + "embed_tokens.weight", embedding});
    out.push_back({p + "shared_head.head.weight", model.output_weight()});
  }
  return out;
}

HfExportSummary export_hf(const std::string& path, const std::string& output) {
  std::error_code ec;
  LF_CHECK(!output.empty(), "export: --output is empty");
  LF_CHECK(!fs::exists(output, ec), "export: {} already exists; choose a new --output directory", output);
  const std::string dir = resolve_checkpoint_dir(path);
  LF_CHECK(!fs::is_regular_file(fs::path(dir) / kQuantizationFile, ec), "export: {} is a quantized inference "
           "checkpoint; export the checkpoint it was quantized from", dir);
  const LoadedModel loaded = load_checkpoint_model(dir, Device::cpu(), Precision::F32);
  const nn::ModelConfig& c = loaded.model->config();
  HfExportSummary summary{.checkpoint = loaded.dir, .architecture = hf_architecture(c)};
  const NamedTensors tensors = hf_export_tensors(*loaded.model);
  summary.tensors = int64_t(tensors.size());
  int64_t eos = -1;
  if (loaded.tokenizer)
    if (const auto eot = loaded.tokenizer->find_eot_id()) eos = *eot;

  write_directory_atomic(output, [&](const std::string& dir) {
    const fs::path tmp(dir);
    write_safetensors((tmp / "model.safetensors").string(), tensors, {{"lmforge.exported_from", loaded.dir}});
    write_file_synced((tmp / "config.json").string(), hf_export_config_json(c, eos));
    if (eos >= 0) {
      nlohmann::ordered_json g;
      g["bos_token_id"] = eos;
      g["eos_token_id"] = eos;
      write_file_synced((tmp / "generation_config.json").string(), g.dump(2) + "\n");
    }
    const fs::path tokenizer = fs::path(loaded.dir) / "tokenizer.json";
    std::error_code ec;
    if (fs::is_regular_file(tokenizer, ec)) {
      fs::copy_file(tokenizer, tmp / "tokenizer.json");
      fsync_file((tmp / "tokenizer.json").string());
      summary.tokenizer = true;
    }
  });
  return summary;
}

}  // namespace lmforge::train
