#include "autograd/recompute.h"

#include <vector>

namespace lmforge {

namespace {

// Puts a generator back in its current state when the scope ends (null: nothing to do).
class GeneratorStateGuard {
 public:
  explicit GeneratorStateGuard(Generator* gen) : gen_(gen), state_(gen ? gen->state() : GeneratorState{}) {}
  ~GeneratorStateGuard() {
    if (gen_) gen_->set_state(state_);
  }
  GeneratorStateGuard(const GeneratorStateGuard&) = delete;
  GeneratorStateGuard& operator=(const GeneratorStateGuard&) = delete;

 private:
  Generator* gen_;
  GeneratorState state_;
};

thread_local int recompute_depth = 0;

// Marks the scope as a recomputation (is_recomputing()).
class RecomputeScope {
 public:
  RecomputeScope() { ++recompute_depth; }
  ~RecomputeScope() { --recompute_depth; }
  RecomputeScope(const RecomputeScope&) = delete;
  RecomputeScope& operator=(const RecomputeScope&) = delete;
};

}  // namespace

bool is_recomputing() { return recompute_depth > 0; }

TensorList checkpoint(const char* name, const CheckpointFn& fn, const TensorList& inputs, Generator* rng) {
  if (!any_requires_grad(inputs)) return fn(inputs);
  const GeneratorState rng_at_forward = rng ? rng->state() : GeneratorState{};
  TensorList detached;
  for (const Tensor& t : inputs) detached.push_back(t.defined() ? t.detach() : Tensor());
  TensorList outputs;
  {
    NoGradGuard no_grad;
    outputs = fn(detached);
  }
  // Fresh handles: an output may be an input passed through, whose own history must not change.
  for (Tensor& t : outputs)
    if (t.defined()) t = t.detach();
  std::vector<SavedTensor> saved;
  for (const Tensor& t : inputs) saved.emplace_back(t);
  record_op(name, inputs, outputs,
            [fn, saved = std::move(saved), rng, rng_at_forward](BackwardContext& ctx) -> TensorList {
              TensorList x;
              for (size_t i = 0; i < saved.size(); ++i) {
                if (!saved[i].defined()) {
                  x.push_back(Tensor());
                  continue;
                }
                Tensor xi = saved[i].get().detach();
                if (ctx.needs_input_grad(i)) xi.set_requires_grad(true);
                x.push_back(xi);
              }
              TensorList y;
              {
                // Grad mode on whatever the caller's (a backward runs with it off); the forward's
                // generator state for the recomputation, the present one back afterwards.
                GradModeGuard grad_on(true);
                GeneratorStateGuard keep_rng(rng);
                RecomputeScope recomputing;
                if (rng) rng->set_state(rng_at_forward);
                y = fn(x);
              }
              TensorList roots, seeds;
              for (size_t j = 0; j < y.size(); ++j) {
                const Tensor& g = ctx.grad(j);
                if (!y[j].defined() || !g.defined() || !y[j].requires_grad()) continue;
                roots.push_back(y[j]);
                seeds.push_back(g);
              }
              if (!roots.empty()) run_backward(roots, seeds);
              TensorList grads(x.size());
              for (size_t i = 0; i < x.size(); ++i)
                if (x[i].defined() && ctx.needs_input_grad(i)) grads[i] = x[i].grad();
              return grads;
            });
  return outputs;
}

}  // namespace lmforge
