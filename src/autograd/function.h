// Recording an op on the tape.
//
//   Tensor out = ...forward...;
//   if (any_requires_grad({a, b}))
//     record_op("mul", {a, b}, {out}, [sa = SavedTensor(a), sb = SavedTensor(b)](BackwardContext& ctx) {
//       TensorList g(2);
//       if (ctx.needs_input_grad(0)) g[0] = ...;   // gradient w.r.t. a, shaped like a
//       if (ctx.needs_input_grad(1)) g[1] = ...;
//       return g;
//     });
//
// Backward functions run with grad mode off and use the ordinary ops. A backward function is
// freed after it runs (a second backward through the same graph is an error).
#pragma once

#include <functional>
#include <initializer_list>

#include "autograd/grad_mode.h"
#include "autograd/node.h"

namespace lmforge {

// A tensor kept for backward, with the storage version at save time: get() fails if the tensor
// was modified in place in between.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t) : t_(t.defined() ? t.detach() : t), version_(t.defined() ? t.version() : 0) {}
  const Tensor& get() const;
  bool defined() const { return t_.defined(); }

 private:
  Tensor t_;
  uint64_t version_ = 0;
};

class BackwardContext {
 public:
  BackwardContext(TensorList& grads, const std::vector<bool>& needs) : grads_(grads), needs_(needs) {}
  // Gradient of output i; undefined if nothing flowed into it.
  const Tensor& grad(size_t i = 0) const { return grads_.at(i); }
  bool needs_input_grad(size_t i) const { return needs_.at(i); }

 private:
  TensorList& grads_;
  const std::vector<bool>& needs_;
};

using BackwardFn = std::function<TensorList(BackwardContext&)>;

// True when grad mode is on and any defined input requires grad.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const TensorList& inputs);

// Creates the node and attaches it to `outputs` (which become non-leaf, requiring grad).
void record_op(const char* name, const TensorList& inputs, const TensorList& outputs, BackwardFn fn);

// For inference-only ops: an output that requires grad but whose backward raises a clear error.
void record_op_without_backward(const char* name, const TensorList& inputs, const TensorList& outputs);

// Backward from several tensors at once, seeds[i] the gradient of roots[i] (each root requires
// grad; shapes match): Tensor::backward with more than one root. Re-entrant: a backward function
// may call it (activation recomputation does).
void run_backward(const TensorList& roots, const TensorList& seeds);

}  // namespace lmforge
