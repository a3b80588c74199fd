#include "nn/aux_report.h"

#include "autograd/grad_mode.h"
#include "ops/ops.h"

namespace lmforge::nn {

Tensor AuxReport::loss_sum() const {
  Tensor total;
  for (const auto& [name, value] : losses_) {
    LF_ASSERT(value.numel() == 1, "auxiliary loss {} must be a scalar", name);
    total = total.defined() ? total + value : value;
  }
  return total;
}

void StepStats::add(int64_t layer, const AuxReport& report) {
  NoGradGuard no_grad;
  const std::string prefix = fmt::format("layers.{}.", layer);
  const auto accumulate = [&](const std::string& key, const Tensor& v, bool summed) {
    auto it = values_.find(key);
    if (it == values_.end() || !summed) values_[key] = clone(v.detach());
    else it->second = it->second + v.detach();
  };
  for (const auto& [name, value] : report.losses()) accumulate(prefix + "loss." + name, value, true);
  for (const auto& s : report.stats()) accumulate(prefix + s.name, s.value, s.summed);
}

void StepStats::clear() {
  values_.clear();
  micro_batches_ = 0;
}

Tensor StepStats::get(const std::string& key) const {
  const auto it = values_.find(key);
  return it == values_.end() ? Tensor() : it->second;
}

std::map<std::string, Tensor> StepStats::loss_totals() const {
  NoGradGuard no_grad;
  std::map<std::string, Tensor> out;
  for (const auto& [key, value] : values_) {
    const size_t at = key.find(".loss.");
    if (!key.starts_with("layers.") || at == std::string::npos) continue;
    const std::string name = key.substr(at + 6);
    auto it = out.find(name);
    if (it == out.end()) out.emplace(name, value);
    else it->second = it->second + value;
  }
  return out;
}

}  // namespace lmforge::nn
