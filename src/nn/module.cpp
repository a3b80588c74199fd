#include "nn/module.h"

#include <algorithm>

namespace lmforge::nn {

Tensor Module::register_parameter(const std::string& name, Tensor value, ParamKind kind) {
  for (const auto& p : params_) LF_ASSERT(p.name != name, "parameter '{}' registered twice", name);
  value.set_requires_grad(true);
  params_.push_back({name, value, kind, std::make_shared<ComputeCopy>()});
  return value;
}

void Module::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  for (const auto& p : params_) out.push_back({prefix + p.name, p.tensor, p.kind, p.compute_copy});
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  for (const auto& [n, t] : buffers_) LF_ASSERT(n != name, "buffer '{}' registered twice", name);
  buffers_.emplace_back(name, value);
  return value;
}

void Module::collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, t] : buffers_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect_buffers(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect_buffers("", out);
  return out;
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

void Module::set_compute_dtype(DType dtype) {
  LF_CHECK(is_floating(dtype), "set_compute_dtype: the compute dtype must be floating, got {}", dtype_name(dtype));
  compute_dtype_ = dtype;
  for (auto& p : params_)
    if (p.compute_copy->tensor.defined() && p.compute_copy->tensor.dtype() != dtype) *p.compute_copy = {};
  for (auto& [name, child] : children_) child->set_compute_dtype(dtype);
}

Tensor Module::compute_copy(const Tensor& param) const {
  if (!param.defined() || !compute_dtype_ || *compute_dtype_ == param.dtype()) return param;
  for (const auto& p : params_)
    if (p.tensor.impl_ptr() == param.impl_ptr()) return compute_copy_of(p.tensor, *p.compute_copy, *compute_dtype_);
  LF_ASSERT(false, "compute_copy: {} is not a parameter of this module", param.str());
  return param;
}

void Module::for_each_module(const std::function<void(const std::string&, Module&)>& f) { visit("", f); }

void Module::visit(const std::string& name, const std::function<void(const std::string&, Module&)>& f) {
  f(name, *this);
  for (auto& [child_name, child] : children_) child->visit(name.empty() ? child_name : name + "." + child_name, f);
}

void Module::release_parameter(const Tensor& param) {
  const auto it = std::find_if(params_.begin(), params_.end(),
                               [&](const NamedParameter& p) { return p.tensor.impl_ptr() == param.impl_ptr(); });
  LF_ASSERT(it != params_.end(), "release_parameter: {} is not a parameter of this module", param.str());
  params_.erase(it);
}

}  // namespace lmforge::nn
