// What a layer reports besides its output: auxiliary losses and statistics.
//
// A residual branch (a feed-forward network such as a Mixture-of-Experts layer, or a sequence
// mixer) may add to the training objective (a load-balancing loss, a router z-loss) and may
// report statistics (tokens per expert, dropped tokens). It writes both into an AuxReport that
// its block hands it for one forward:
//
//   - add_loss(name, value): a weighted, differentiable f32 scalar. The block sums a layer's
//     losses into ResidualStream::aux, which travels with the residual stream to the model's
//     loss (nn/transformer.h), so the term's gradient reaches the branch through the ordinary
//     tape, scaled exactly as the language-model loss is (gradient accumulation, f16 loss
//     scaling) and through recomputed blocks too (the aux sum is one of a recomputed block's
//     outputs).
//   - add_stat(name, value): any tensor, detached (kept as is on the device: no host sync).
//
// The model gathers every layer's report into its StepStats under "layers.{i}.{name}" (losses
// as "layers.{i}.loss.{name}"), summed over the training forwards since the last clear(): the
// trainer clears them at the start of a step and writes them to metrics.jsonl at log steps.
// Forwards in evaluation mode and the recomputation of a block during backward add nothing.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lmforge::nn {

class AuxReport {
 public:
  // `value`: a scalar in the router's dtype (f32, or f64 in an f64 model), already multiplied by
  // its coefficient; it joins the objective.
  void add_loss(std::string name, Tensor value) { losses_.emplace_back(std::move(name), std::move(value)); }
  // `value`: detached here; any shape and dtype. summed: added up over the forwards of a step
  // (counts); else the step keeps the latest value (a state such as a bias).
  void add_stat(std::string name, const Tensor& value, bool summed = true) {
    stats_.push_back({std::move(name), value.detach(), summed});
  }
  struct Stat {
    std::string name;
    Tensor value;
    bool summed = true;
  };

  const std::vector<std::pair<std::string, Tensor>>& losses() const { return losses_; }
  const std::vector<Stat>& stats() const { return stats_; }
  // The sum of the losses (differentiable), or undefined when there are none.
  Tensor loss_sum() const;

 private:
  std::vector<std::pair<std::string, Tensor>> losses_;
  std::vector<Stat> stats_;
};

// Statistics of the training forwards since the last clear(), by key, summed (counts add up
// over micro-batches; divide loss values by micro_batches() for the step's mean).
class StepStats {
 public:
  // Adds the report of layer `layer` (detached).
  void add(int64_t layer, const AuxReport& report);
  void clear();
  void count_micro_batch() { ++micro_batches_; }
  int64_t micro_batches() const { return micro_batches_; }
  // Keys in sorted order.
  const std::map<std::string, Tensor>& values() const { return values_; }
  // The value of `key`, or undefined.
  Tensor get(const std::string& key) const;
  // Each loss name summed over the layers ("moe_balance" -> Σ_i layers.{i}.loss.moe_balance).
  std::map<std::string, Tensor> loss_totals() const;

 private:
  std::map<std::string, Tensor> values_;
  int64_t micro_batches_ = 0;
};

}  // namespace lmforge::nn
