#include "infer/batch_generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "infer/generate.h"
#include "ops/ops.h"
#include "ops/quantized_matmul.h"

namespace lmforge::infer {

std::string_view to_string(FinishReason r) {
  switch (r) {
    case FinishReason::Length: return "length";
    case FinishReason::Stop: return "stop";
    case FinishReason::Cancelled: return "cancelled";
  }
  return "?";
}

struct BatchGenerator::Slot {
  uint64_t id = 0;
  uint64_t order = 0;  // admission order: prefill goes oldest first
  int64_t index = 0;   // the slot's batch index in the cache
  GenerationRequest request;
  TokenSampler sampler;
  int64_t length = 0;       // positions written to the cache
  size_t prompt_done = 0;   // prompt ids prefilled
  uint32_t last_token = 0;  // the token the next decode step feeds
  int64_t generated = 0;
};

namespace {

// `token` with its log-probability and the `top` most likely ids of `logits` with theirs.
GeneratedToken describe_token(const std::vector<float>& logits, uint32_t token, int64_t top) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (float l : logits) z += std::exp(double(l) - mx);
  const double log_z = double(mx) + std::log(z);
  GeneratedToken out{.id = token, .logprob = float(double(logits[token]) - log_z), .top = {}};
  if (top > 0) {
    std::vector<uint32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0u);
    const auto k = std::min<size_t>(size_t(top), ids.size());
    std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(k), ids.end(), [&](uint32_t a, uint32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (size_t i = 0; i < k; ++i) out.top.emplace_back(ids[i], float(double(logits[ids[i]]) - log_z));
  }
  return out;
}

}  // namespace

BatchGenerator::BatchGenerator(const nn::Transformer& model, BatchOptions options)
    : model_(const_cast<nn::Transformer&>(model)), options_(options) {
  LF_CHECK(options_.max_slots > 0, "batch generation: max_slots must be > 0, got {}", options_.max_slots);
  LF_CHECK(options_.prefill_chunk > 0, "batch generation: prefill_chunk must be > 0, got {}", options_.prefill_chunk);
  LF_CHECK(options_.max_prefill_slots > 0, "batch generation: max_prefill_slots must be > 0, got {}",
           options_.max_prefill_slots);
  const nn::ModelConfig& c = model_.config();
  // The slotted forward gives each row its position inside attention; learned positions are
  // added outside it, the fused GELU MLP and MoE layers do not take the fixed-order path.
  slotted_forward_ = c.position == nn::PositionKind::Rope && c.ffn == nn::FfnKind::SwiGLU && c.n_experts == 0;
  model_.for_each_module([&](const std::string& name, nn::Module& m) {
    if (name == "lm_head") lm_head_ = dynamic_cast<const nn::Linear*>(&m);
  });
  model_.set_training(false);
  cache_ = model_.make_cache(options_.max_slots, c.context_length);
  slots_.resize(size_t(options_.max_slots));
}

BatchGenerator::~BatchGenerator() = default;

uint64_t BatchGenerator::submit(GenerationRequest r) {
  const nn::ModelConfig& c = model_.config();
  LF_CHECK(!r.prompt.empty(), "the prompt has no tokens");
  LF_CHECK(int64_t(r.prompt.size()) < c.context_length,
           "the prompt has {} tokens but the model's context is {} (at most {} prompt tokens)", r.prompt.size(),
           c.context_length, c.context_length - 1);
  for (size_t i = 0; i < r.prompt.size(); ++i)
    LF_CHECK(int64_t(r.prompt[i]) < c.vocab_size, "prompt token {} (at position {}) is outside the vocabulary of {}",
             r.prompt[i], i, c.vocab_size);
  LF_CHECK(r.max_new_tokens >= 1, "max_tokens must be >= 1, got {}", r.max_new_tokens);
  LF_CHECK(r.top_logprobs >= 0 && r.top_logprobs <= kMaxTopLogprobs, "top_logprobs must be in [0, {}], got {}",
           kMaxTopLogprobs, r.top_logprobs);
  r.sampling.validate();
  std::lock_guard lock(mutex_);
  const uint64_t id = next_id_++;
  queue_.emplace_back(id, std::move(r));
  work_.notify_all();
  return id;
}

void BatchGenerator::cancel(uint64_t id) {
  std::lock_guard lock(mutex_);
  cancelled_.insert(id);
  work_.notify_all();
}

void BatchGenerator::wake_up() {
  std::lock_guard lock(mutex_);
  work_.notify_all();
}

int64_t BatchGenerator::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

int64_t BatchGenerator::waiting() const {
  std::lock_guard lock(mutex_);
  return int64_t(queue_.size());
}

void BatchGenerator::free_cancelled() {
  std::set<uint64_t> ids;
  std::vector<GenerationRequest> dropped;  // cancelled while still queued
  {
    std::lock_guard lock(mutex_);
    if (cancelled_.empty()) return;
    ids.swap(cancelled_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (ids.count(it->first)) {
        dropped.push_back(std::move(it->second));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& r : dropped)
    if (r.on_finish) r.on_finish(FinishReason::Cancelled);
  for (auto& s : slots_)
    if (s && ids.count(s->id)) finish(*s, FinishReason::Cancelled);
}

void BatchGenerator::admit() {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < slots_.size() && !queue_.empty(); ++i) {
    if (slots_[i]) continue;
    auto [id, request] = std::move(queue_.front());
    queue_.pop_front();
    TokenSampler sampler(request.sampling, request.seed);  // the request's own generator
    slots_[i] = std::make_unique<Slot>(Slot{.id = id, .order = admitted_++, .index = int64_t(i),
                                            .request = std::move(request), .sampler = std::move(sampler)});
    ++running_;
  }
}

nn::KVCache BatchGenerator::slot_view(int64_t slot, int64_t length) {
  nn::KVCache view{.batch = 1, .capacity = cache_.capacity, .length = length};
  for (const auto& l : cache_.layers) view.layers.push_back({.k = l.k.narrow(0, slot, 1), .v = l.v.narrow(0, slot, 1)});
  return view;
}

Tensor BatchGenerator::logits_of(const Tensor& hidden) const {
  if (!model_.device().is_cpu()) {  // no fixed-order kernel there: the model's own product
    if (lm_head_) return lm_head_->forward(hidden);
    return linear(hidden, cast(model_.output_weight(), hidden.dtype()));
  }
  nn::FixedOrderLinearScope fixed_order;
  return lm_head_ ? lm_head_->forward(hidden) : linear_fixed_order(hidden, model_.output_weight());
}

void BatchGenerator::finish(Slot& slot, FinishReason reason) {
  std::unique_ptr<Slot> owned = std::move(slots_[size_t(slot.index)]);
  {
    std::lock_guard lock(mutex_);
    --running_;
  }
  if (owned->request.on_finish) owned->request.on_finish(reason);
}

void BatchGenerator::emit(Slot& slot, const Tensor& hidden_row) {
  const std::vector<float> logits = to_vector<float>(cast(logits_of(hidden_row), DType::F32));
  const auto token = uint32_t(slot.sampler.sample(logits));
  slot.last_token = token;
  ++slot.generated;
  const GenerationRequest& r = slot.request;
  const bool go_on = r.on_token ? r.on_token(describe_token(logits, token, r.top_logprobs)) : true;
  const bool stop_token = std::find(r.stop_tokens.begin(), r.stop_tokens.end(), token) != r.stop_tokens.end();
  if (!go_on || stop_token) finish(slot, FinishReason::Stop);
  else if (slot.generated >= r.max_new_tokens || slot.length >= cache_.capacity) finish(slot, FinishReason::Length);
}

void BatchGenerator::prefill(Slot& slot) {
  const auto& prompt = slot.request.prompt;
  const size_t n = std::min(prompt.size() - slot.prompt_done, size_t(options_.prefill_chunk));
  nn::KVCache view = slot_view(slot.index, slot.length);
  const Tensor ids = ids_tensor(std::span(prompt).subspan(slot.prompt_done, n), model_.device());
  const Tensor h = model_.hidden(ids, &view);  // [1, n, C]
  slot.length += int64_t(n);
  slot.prompt_done += n;
  if (slot.prompt_done == prompt.size()) emit(slot, h.narrow(1, int64_t(n) - 1, 1).reshape({1, h.size(2)}));
}

void BatchGenerator::decode(const std::vector<Slot*>& slots) {
  const int64_t d = model_.config().d_model;
  if (!slotted_forward_) {
    for (Slot* s : slots) {
      nn::KVCache view = slot_view(s->index, s->length);
      const uint32_t id[1] = {s->last_token};
      const Tensor h = model_.hidden(ids_tensor(id, model_.device()), &view);
      s->length += 1;
      emit(*s, h.reshape({1, d}));
    }
    return;
  }
  nn::SlotRows rows;
  std::vector<uint32_t> ids;
  for (const Slot* s : slots) {
    rows.slots.push_back(s->index);
    rows.positions.push_back(s->length);
    ids.push_back(s->last_token);
  }
  for (auto& l : cache_.layers) l.slot_rows = &rows;
  cache_.length = 0;  // each row's position is in `rows`
  Tensor h;
  try {
    std::optional<nn::FixedOrderLinearScope> fixed_order;
    if (model_.device().is_cpu()) fixed_order.emplace();
    h = model_.hidden(ids_tensor(ids, model_.device(), int64_t(ids.size())), &cache_);  // [B, 1, C]
  } catch (...) {
    for (auto& l : cache_.layers) l.slot_rows = nullptr;
    throw;
  }
  for (auto& l : cache_.layers) l.slot_rows = nullptr;
  for (size_t r = 0; r < slots.size(); ++r) {
    slots[r]->length += 1;
    emit(*slots[r], h.narrow(0, int64_t(r), 1).reshape({1, d}));
  }
}

bool BatchGenerator::step() {
  NoGradGuard no_grad;
  free_cancelled();
  admit();
  std::vector<Slot*> prefilling, decoding;
  for (auto& s : slots_)
    if (s) (s->prompt_done < s->request.prompt.size() ? prefilling : decoding).push_back(s.get());
  if (prefilling.empty() && decoding.empty()) return false;
  std::sort(prefilling.begin(), prefilling.end(), [](const Slot* a, const Slot* b) { return a->order < b->order; });
  const size_t n_prefill = std::min(prefilling.size(), size_t(options_.max_prefill_slots));
  for (size_t i = 0; i < n_prefill; ++i) prefill(*prefilling[i]);
  if (!decoding.empty()) decode(decoding);
  return true;
}

void BatchGenerator::run_until_idle() {
  while (step()) {
  }
}

void BatchGenerator::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    if (step()) continue;
    std::unique_lock lock(mutex_);
    work_.wait_for(lock, std::chrono::milliseconds(100),
                   [&] { return stop.load() || !queue_.empty() || !cancelled_.empty(); });
  }
}

std::vector<std::vector<uint32_t>> generate_batch(const nn::Transformer& model, std::vector<GenerationRequest> requests,
                                                  const BatchOptions& options) {
  BatchGenerator gen(model, options);
  std::vector<std::vector<uint32_t>> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    GenerationRequest r = std::move(requests[i]);
    auto user = std::move(r.on_token);
    r.on_token = [&out, i, user](const GeneratedToken& token) {
      out[i].push_back(token.id);
      return user ? user(token) : true;
    };
    gen.submit(std::move(r));
  }
  gen.run_until_idle();
  return out;
}

}  // namespace lmforge::infer
