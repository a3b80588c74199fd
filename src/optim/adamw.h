// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), as torch.optim.AdamW:
// bias-corrected moments, weight decay applied to the parameter (p -= lr·wd·p) rather than
// added to the gradient. The update of all parameters is one multi-tensor backend call
// (Backend::adamw_multi_step: a single launch for f32 parameters on the GPU), so it runs on
// whatever device the parameters live on. Under mixed precision the same pass writes each
// parameter's compute copy (nn/compute_copy.h) and marks it fresh, so the next forward pass
// needs no cast.
//
// Parameter groups: matrices decay; norms, biases and embeddings do not unless the options say
// so (decaying a norm gain pulls it toward zero, which only fights the norm). A tied output
// projection is the token embedding and follows the embedding rule.
//
// State: per parameter exp_avg and exp_avg_sq (f32; f64 for f64 parameters), created zeroed, and
// the step count. state_tensors()/load_state() move it in and out of checkpoints.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"

namespace lmforge::optim {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_norms = false;
  bool decay_biases = false;
  bool decay_embeddings = false;
};

class AdamW {
 public:
  AdamW(const std::vector<nn::NamedParameter>& params, AdamWOptions options);

  // One update with learning rate `lr`; every gradient is multiplied by grad_scale first
  // (global-norm clipping, averaging). Parameters without a gradient are left as they are.
  // Increments the step count (bias corrections use the new count).
  void step(double lr, double grad_scale = 1.0);
  // Clipping decided on the parameters' device (optim/clip.h grad_norm_squared): the gradients
  // are multiplied by grad_scale, and scaled down to max_norm (> 0) when their norm exceeds it;
  // when the norm is not finite the device leaves every parameter and moment as it was, and the
  // caller, on reading the norm, calls cancel_step().
  struct DeviceClip {
    Tensor norm_squared;
    double max_norm = 0;
  };
  void step(double lr, double grad_scale, const DeviceClip& clip);
  // Undoes the step count of the last step(), whose update the device skipped.
  void cancel_step();

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t step) { step_ = step; }
  const AdamWOptions& options() const { return options_; }
  // Whether the parameter called `name` is decayed.
  bool decays(const std::string& name) const;

  // "<param>.exp_avg" and "<param>.exp_avg_sq" for every parameter, in parameter order.
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Copies saved moments in; each named tensor must exist with the parameter's shape, else an
  // Error naming it and `source`.
  void load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t step,
                  const std::string& source);

 private:
  struct Slot {
    std::string name;
    Tensor param, exp_avg, exp_avg_sq;
    double weight_decay = 0;
    std::shared_ptr<nn::ComputeCopy> compute_copy;  // may be null
  };
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

}  // namespace lmforge::optim
