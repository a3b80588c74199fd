#include "nn/module.h"

namespace lmforge::nn {

Tensor Module::register_parameter(const std::string& name, Tensor value, ParamKind kind) {
  for (const auto& p : params_) LF_ASSERT(p.name != name, "parameter '{}' registered twice", name);
  value.set_requires_grad(true);
  params_.push_back({name, value, kind});
  return value;
}

void Module::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  for (const auto& p : params_) out.push_back({prefix + p.name, p.tensor, p.kind});
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<NamedParameter> Module::named_parameters() const {
  std::vector<NamedParameter> out;
  collect("", out);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : named_parameters()) n += p.tensor.numel();
  return n;
}

void Module::zero_grad() const {
  for (const auto& p : named_parameters()) p.tensor.zero_grad();
}

void Module::set_training(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->set_training(on);
}

}  // namespace lmforge::nn
