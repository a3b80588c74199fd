// The backward pass and the autograd parts of Tensor.
#include <algorithm>
#include <map>
#include <queue>

#include "autograd/function.h"
#include "ops/ops.h"

namespace lmforge {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<uint64_t> g_next_seq{1};

// Leaves: adds the incoming gradient into meta->grad.
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<AutogradMeta> meta, Shape shape, DType dtype)
      : Node("accumulate_grad", 1), meta_(std::move(meta)), shape_(std::move(shape)), dtype_(dtype) {
    // Lowered to the oldest consumer's number as consumers attach (attach()); ties run op nodes
    // first, so the accumulator runs right after the last node that sends it a gradient, with all
    // of them summed. (Run last of all, every leaf's accumulation would queue after the backward's
    // last kernel, with the GPU idle.)
    seq_ = UINT64_MAX;
  }
  bool accumulates_leaf() const override { return true; }
  TensorList apply(TensorList&& grads) override {
    auto meta = meta_.lock();
    if (!meta || !grads[0].defined()) return {};
    Tensor g = grads[0];
    LF_ASSERT(g.shape() == shape_, "gradient shape {} for a leaf of shape {}", shape_str(g.shape()),
              shape_str(shape_));
    if (g.dtype() != dtype_) g = g.to(dtype_);
    if (!meta->grad.defined()) {
      // Own the memory: the incoming gradient may be a view of something else or broadcast.
      meta->grad = g.is_contiguous() && g.storage().use_count() == 1 ? g : clone(g);
    } else {
      add_(meta->grad, g);
    }
    return {};
  }

 private:
  std::weak_ptr<AutogradMeta> meta_;
  Shape shape_;
  DType dtype_;
};

class LambdaNode final : public Node {
 public:
  LambdaNode(const char* name, std::vector<bool> needs, uint32_t n_out, BackwardFn fn)
      : Node(name, n_out), needs_(std::move(needs)), fn_(std::move(fn)) {}
  TensorList apply(TensorList&& grads) override {
    LF_CHECK(fn_ != nullptr, "backward through '{}' a second time: the graph was freed after the first "
             "backward pass", name_);
    BackwardContext ctx(grads, needs_);
    TensorList out = fn_(ctx);
    fn_ = nullptr;  // releases saved tensors
    out.resize(edges_.size());
    return out;
  }

 private:
  std::vector<bool> needs_;
  BackwardFn fn_;
};

class NoBackwardNode final : public Node {
 public:
  NoBackwardNode(const char* name, uint32_t n_out) : Node(name, n_out) {}
  TensorList apply(TensorList&&) override {
    throw Error(fmt::format("op '{}' has no backward: it is inference-only; call it under NoGradGuard "
                            "or on tensors that do not require grad", name_));
  }
};

AutogradMeta& meta_of(const Tensor& t) {
  auto& impl = t.impl();
  if (!impl.autograd) impl.autograd = std::make_shared<AutogradMeta>();
  return *impl.autograd;
}

void attach(std::shared_ptr<Node> node, const TensorList& inputs, const TensorList& outputs) {
  auto& edges = node->next_edges();
  edges.reserve(inputs.size());
  for (const auto& in : inputs) edges.push_back(in.defined() ? gradient_edge(in) : Edge{});
  for (const auto& e : edges)
    if (e.fn && e.fn->accumulates_leaf()) e.fn->lower_sequence_nr(node->sequence_nr());
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i].defined()) continue;
    auto& m = meta_of(outputs[i]);
    m.requires_grad = true;
    m.grad_fn = node;
    m.output_nr = static_cast<uint32_t>(i);
  }
}

}  // namespace

bool GradMode::is_enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool on) { g_grad_enabled = on; }

Node::Node(std::string name, uint32_t n_outputs)
    : name_(std::move(name)), seq_(g_next_seq.fetch_add(1)), n_outputs_(n_outputs) {}

const Tensor& SavedTensor::get() const {
  if (t_.defined() && t_.version() != version_)
    throw Error(fmt::format("a tensor {} saved for backward was modified in place after it was saved "
                            "(version {} now, {} when saved); use an out-of-place op instead",
                            t_.str(), t_.version(), version_));
  return t_;
}

Edge gradient_edge(const Tensor& t) {
  auto& impl = t.impl();
  if (!impl.autograd || !impl.autograd->requires_grad) return {};
  auto& m = *impl.autograd;
  if (m.grad_fn) return {m.grad_fn, m.output_nr};
  auto acc = m.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(impl.autograd, t.shape(), t.dtype());
    m.grad_accumulator = acc;
  }
  return {acc, 0};
}

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

bool any_requires_grad(const TensorList& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record_op(const char* name, const TensorList& inputs, const TensorList& outputs, BackwardFn fn) {
  std::vector<bool> needs;
  needs.reserve(inputs.size());
  for (const auto& in : inputs) needs.push_back(in.defined() && in.requires_grad());
  auto node = std::make_shared<LambdaNode>(name, std::move(needs), static_cast<uint32_t>(outputs.size()),
                                           std::move(fn));
  attach(std::move(node), inputs, outputs);
}

void record_op_without_backward(const char* name, const TensorList& inputs, const TensorList& outputs) {
  attach(std::make_shared<NoBackwardNode>(name, static_cast<uint32_t>(outputs.size())), inputs, outputs);
}

// ---- Tensor's autograd members ----

bool Tensor::requires_grad() const {
  const auto& a = impl().autograd;
  return a && a->requires_grad;
}

Tensor& Tensor::set_requires_grad(bool on) {
  auto& m = meta_of(*this);
  LF_CHECK(!m.grad_fn || on, "set_requires_grad(false) on {}, which is the output of op '{}': use detach()",
           str(), m.grad_fn->name());
  LF_CHECK(!on || is_floating(dtype()), "only floating-point tensors can require grad, got {}", str());
  m.requires_grad = on;
  return *this;
}

bool Tensor::is_leaf() const {
  const auto& a = impl().autograd;
  return !a || !a->grad_fn;
}

Tensor Tensor::grad() const {
  const auto& a = impl().autograd;
  return a ? a->grad : Tensor();
}

void Tensor::set_grad(const Tensor& g) const { meta_of(*this).grad = g; }

void Tensor::zero_grad() const {
  if (impl().autograd) impl().autograd->grad = Tensor();
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  const auto& a = impl().autograd;
  return a ? a->grad_fn : none;
}

Tensor Tensor::detach() const { return as_strided(shape(), strides(), offset()); }

void Tensor::backward(const Tensor& grad_in) const {
  LF_CHECK(requires_grad(), "backward() on {} which does not require grad (no parameter reaches it, "
           "or it was computed under NoGradGuard)", str());
  Tensor seed = grad_in;
  if (!seed.defined()) {
    LF_CHECK(numel() == 1, "backward() without a gradient needs a one-element tensor, got {}; pass the "
             "gradient explicitly", str());
    seed = ones_like(*this);
  }
  run_backward({*this}, {seed});
}

void run_backward(const TensorList& roots, const TensorList& seeds) {
  LF_CHECK(roots.size() == seeds.size(), "backward: {} roots but {} gradients", roots.size(), seeds.size());
  for (size_t i = 0; i < roots.size(); ++i) {
    LF_CHECK(roots[i].requires_grad(), "backward() on {} which does not require grad", roots[i].str());
    LF_CHECK(seeds[i].shape() == roots[i].shape(), "backward(): gradient shape {} does not match tensor shape {}",
             shape_str(seeds[i].shape()), shape_str(roots[i].shape()));
  }
  NoGradGuard no_grad;

  // Pending gradients per node, summed as they arrive; nodes run in decreasing creation order,
  // which is a valid reverse topological order for a define-by-run tape. A leaf's accumulator
  // carries its oldest consumer's number and runs after the op nodes of that number.
  struct ByNewest {
    bool operator()(const Node* a, const Node* b) const {
      if (a->sequence_nr() != b->sequence_nr()) return a->sequence_nr() < b->sequence_nr();
      return a->accumulates_leaf() && !b->accumulates_leaf();
    }
  };
  std::map<Node*, std::pair<std::shared_ptr<Node>, TensorList>> pending;
  std::priority_queue<Node*, std::vector<Node*>, ByNewest> ready;
  auto deliver = [&](const Edge& e, Tensor g) {
    if (!e.fn || !g.defined()) return;
    auto it = pending.find(e.fn.get());
    if (it == pending.end()) {
      it = pending.emplace(e.fn.get(), std::make_pair(e.fn, TensorList(e.fn->n_outputs()))).first;
      ready.push(e.fn.get());
    }
    Tensor& slot = it->second.second.at(e.input_nr);
    slot = slot.defined() ? add(slot, g) : g;
  };
  for (size_t i = 0; i < roots.size(); ++i) deliver(gradient_edge(roots[i]), seeds[i]);
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    auto entry = std::move(pending.at(n));
    pending.erase(n);
    TensorList out;
    try {
      out = n->apply(std::move(entry.second));
    } catch (const Error& e) {
      throw Error(fmt::format("in backward of '{}': {}", n->name(), e.what()));
    }
    auto& edges = n->next_edges();
    for (size_t i = 0; i < edges.size() && i < out.size(); ++i) deliver(edges[i], std::move(out[i]));
  }
}

}  // namespace lmforge
