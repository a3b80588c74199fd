#include "train/quantized_checkpoint.h"


#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "ops/ops.h"
#include "core/file_util.h"
#include "train/safetensors.h"

namespace lmforge::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormatKey = "lmforge.quantization";
constexpr const char* kGroupKey = "lmforge.group_size";

std::string scale_name(const std::string& layer) { return layer + ".weight_scale"; }

// A tensor of the file copied to `device` into its own aligned storage (the mapped bytes need not
// be aligned for the dtype, and the file may be replaced while the model runs).
Tensor owned_copy(const Tensor& src, Device device) {
  Tensor t = Tensor::empty(src.shape(), src.dtype(), device);
  copy_(t, src);
  return t;
}

}  // namespace

void save_quantized_checkpoint(const nn::Transformer& model0, const std::string& format, int64_t group_size,
                               const std::string& source_dir, const std::string& out_dir) {
  auto& model = const_cast<nn::Transformer&>(model0);  // for_each_module visits mutably; nothing changes
  NamedTensors tensors;
  for (const auto& p : model.named_parameters()) tensors.push_back({p.name, p.tensor});
  model.for_each_module([&](const std::string& name, nn::Module& m) {
    const auto* linear = dynamic_cast<const nn::Linear*>(&m);
    if (!linear || !linear->quantized_weight()) return;
    const QuantizedWeight& q = *linear->quantized_weight();
    tensors.push_back({name + ".weight", q.data});
    if (q.scale.defined()) tensors.push_back({scale_name(name), q.scale});
  });
  std::error_code ec;
  LF_CHECK(!fs::exists(out_dir, ec), "quantize: the output {} exists already; choose another --output", out_dir);
  write_directory_atomic(out_dir, [&](const std::string& dir) {
    const fs::path tmp(dir);
    write_safetensors((tmp / "model.safetensors").string(), tensors,
                      {{kFormatKey, format}, {kGroupKey, std::to_string(group_size)}});
    nlohmann::ordered_json j;
    j["format"] = format;
    j["group_size"] = group_size;
    j["source"] = fs::absolute(source_dir).string();
    write_file_synced((tmp / kQuantizationFile).string(), j.dump(2) + "\n");
    for (const char* f : {"config.json", "config.toml", "tokenizer.json"}) {
      const fs::path src = fs::path(source_dir) / f;
      if (!fs::is_regular_file(src, ec)) continue;
      write_file_synced((tmp / f).string(), read_file(src.string()));
    }
  });
}

void load_quantized_model_weights(nn::Transformer& model, const std::string& path) {
  SafetensorsFile f(path);
  NoGradGuard no_grad;
  const auto fmt_it = f.metadata().find(kFormatKey);
  LF_CHECK(fmt_it != f.metadata().end(), "{}: metadata '{}' is missing: not a quantized checkpoint", path,
           kFormatKey);
  int64_t group_size = 0;
  if (const auto it = f.metadata().find(kGroupKey); it != f.metadata().end()) {
    try {
      group_size = std::stoll(it->second);
    } catch (const std::exception&) {
      throw Error(fmt::format("{}: metadata '{}' = '{}' is not a number", path, kGroupKey, it->second));
    }
  }
  std::unordered_set<std::string> used;
  // Quantized layers first: installing them drops their f32 weight parameters, so the plain
  // parameters left afterwards are exactly the tensors the file stores unquantized.
  model.for_each_module([&](const std::string& name, nn::Module& m) {
    auto* linear = dynamic_cast<nn::Linear*>(&m);
    if (!linear) return;
    const std::string wname = name + ".weight";
    LF_CHECK(f.contains(wname), "{}: tensor '{}' is missing (the checkpoint is for another model)", path, wname);
    const Tensor data = f.get(wname);
    if (data.dtype() == DType::F32) return;  // stored unquantized: loaded as a plain parameter below
    QuantizedWeight q{.data = owned_copy(data, model.device()), .scale = Tensor(), .group_size = 0};
    if (data.dtype() == DType::I8 || data.dtype() == DType::F8E4M3) {
      LF_CHECK(f.contains(scale_name(name)), "{}: tensor '{}' ({}) has no scales '{}'", path, wname,
               dtype_name(data.dtype()), scale_name(name));
      q.scale = owned_copy(f.get(scale_name(name)), model.device());
      q.group_size = group_size > 0 ? group_size : data.dim() == 2 ? data.size(1) : 0;
      used.insert(scale_name(name));
    }
    try {
      linear->set_quantized_weight(std::move(q));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: tensor '{}': {}", path, wname, e.what()));
    }
    used.insert(wname);
  });
  for (auto p : model.named_parameters()) {
    LF_CHECK(f.contains(p.name), "{}: tensor '{}' is missing (the checkpoint is for another model)", path, p.name);
    const Tensor src = f.get(p.name);
    LF_CHECK(src.shape() == p.tensor.shape(), "{}: tensor '{}' has shape {} but the model needs {}", path, p.name,
             shape_str(src.shape()), shape_str(p.tensor.shape()));
    copy_(p.tensor, src);
    p.tensor.bump_version();
    used.insert(p.name);
  }
  for (const auto& n : f.names())
    LF_CHECK(used.count(n), "{}: tensor '{}' does not belong to this model", path, n);
}

}  // namespace lmforge::train
