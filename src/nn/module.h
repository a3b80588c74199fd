// Module: the base of everything that owns parameters.
//
// A module registers its parameters and child modules by name; named_parameters() walks them
// depth-first in registration order and joins the names with dots, so the Transformer's
// parameters come out with the tensor names HF transformers uses for Llama
// ("model.layers.0.self_attn.q_proj.weight"). That order is also the order in which weights are
// initialised and written to checkpoints, so it is part of what makes a seed reproducible.
//
// Parameters are Tensor handles: the module keeps one, the optimizer another, and loading a
// checkpoint copies values into the existing storage (copy_), so every holder sees them.
//
// Mixed precision: set_compute_dtype(bf16) makes the modules read their weights through
// compute_copy(), a cached bf16 copy of each f32 parameter (nn/compute_copy.h). The copy lives
// with the parameter's entry and is shared with whoever holds the NamedParameter (the optimizer
// writes it during its update).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/compute_copy.h"

namespace lmforge::nn {

// What a parameter is, which decides its initialisation and its optimizer group.
enum class ParamKind {
  Matrix,          // a projection read by the residual stream's input side: decays
  ResidualMatrix,  // a projection writing into the residual stream (o_proj, down_proj): decays
  Embedding,       // token or position embeddings (and a tied output projection)
  Norm,            // norm gains, initialised to one
  Bias,            // biases, initialised to zero
};

struct NamedParameter {
  std::string name;
  Tensor tensor;
  ParamKind kind = ParamKind::Matrix;
  std::shared_ptr<ComputeCopy> compute_copy = nullptr;  // the parameter's cached compute-dtype copy
};

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its children, depth-first in registration order.
  std::vector<NamedParameter> named_parameters() const;
  // Buffers: state that is saved and loaded with the weights but not trained by gradient (an
  // MoE router's load-balancing bias), named and ordered as parameters are.
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  int64_t parameter_count() const;
  // Drops every parameter's gradient.
  void zero_grad() const;
  // Training mode (dropout on) or evaluation mode, for this module and its children.
  void set_training(bool on);
  bool training() const { return training_; }
  // The dtype the forward pass computes in, for this module and its children; cached copies of
  // another dtype are dropped. Unset (the default): each parameter's own dtype.
  void set_compute_dtype(DType dtype);
  std::optional<DType> compute_dtype() const { return compute_dtype_; }
  // `param`, one of this module's own parameters, in the compute dtype (compute_copy_of): the
  // parameter itself when no compute dtype is set or it is the parameter's dtype.
  Tensor compute_copy(const Tensor& param) const;
  // Calls f(name, module) for this module (name "") and every descendant, depth-first in
  // registration order, named as named_parameters() names them ("model.layers.0.mlp.up_proj").
  void for_each_module(const std::function<void(const std::string&, Module&)>& f);

 protected:
  // Drops one of this module's own parameters (a layer that keeps its weight in another form
  // from now on, as a quantized Linear does); its storage is freed with the last handle.
  void release_parameter(const Tensor& param);
  // Marks `value` as a parameter (requires grad) and keeps a handle to it under `name`.
  Tensor register_parameter(const std::string& name, Tensor value, ParamKind kind);
  // Keeps a handle to `value` (no gradient) under `name` as a buffer.
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  M* register_module(const std::string& name, std::unique_ptr<M> child) {
    M* raw = child.get();
    children_.push_back({name, std::move(child)});
    return raw;
  }

 private:
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const;
  void collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;
  void visit(const std::string& name, const std::function<void(const std::string&, Module&)>& f);

  std::vector<NamedParameter> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
  bool training_ = true;
  std::optional<DType> compute_dtype_;
};

// A module that only groups children under one name ("model", "layers").
class ModuleGroup : public Module {
 public:
  template <class M>
  M* add(const std::string& name, std::unique_ptr<M> child) {
    return register_module(name, std::move(child));
  }
};

}  // namespace lmforge::nn
