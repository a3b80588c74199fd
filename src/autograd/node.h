// The define-by-run tape. Every differentiable op that sees an input requiring grad creates a
// Node holding its backward (with the tensors it saved) and edges to the nodes that produced
// its inputs; its outputs point back at the node. Tensor::backward() walks the nodes in reverse
// creation order (autograd/engine.cpp).
//
// Op authors use record_op() (autograd/function.h); nothing else needs to know these types.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lmforge {

class Node;

// Gradient for one input flows into output slot `input_nr` of `fn` (null: input needs no grad).
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
};

class Node {
 public:
  explicit Node(std::string name, uint32_t n_outputs);
  virtual ~Node() = default;
  // grads[i] is the gradient of output i (undefined if none reached it); returns one gradient
  // per edge (undefined where the input needs none).
  virtual TensorList apply(TensorList&& grads) = 0;

  const std::string& name() const { return name_; }
  uint64_t sequence_nr() const { return seq_; }
  // A leaf's gradient accumulator: it takes the sequence number of its oldest consumer (see
  // engine.cpp), so it runs as soon as every gradient for its leaf has arrived.
  virtual bool accumulates_leaf() const { return false; }
  void lower_sequence_nr(uint64_t s) {
    if (s < seq_) seq_ = s;
  }
  uint32_t n_outputs() const { return n_outputs_; }
  std::vector<Edge>& next_edges() { return edges_; }

 protected:
  std::string name_;
  uint64_t seq_;
  uint32_t n_outputs_;
  std::vector<Edge> edges_;
};

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;           // null for leaves
  uint32_t output_nr = 0;
  std::weak_ptr<Node> grad_accumulator;    // leaves: the node that adds into `grad`
};

// The edge through which a gradient reaches `t` (null fn if t does not require grad).
Edge gradient_edge(const Tensor& t);

}  // namespace lmforge
