// Continuous batching: many generation requests share one model and one slotted KV cache.
//
// A BatchGenerator holds up to max_slots sequences, each in its own slot of one KV cache
// (nn/kv_cache.h) at its own length. Requests wait in a queue and join as soon as a slot is free;
// they leave when done, cancelled, or when their callback says stop. Each step():
//   1. frees the slots of cancelled requests;
//   2. admits waiting requests (first come, first served) to free slots;
//   3. prefills: the oldest max_prefill_slots slots still reading their prompt each run their next
//      chunk of at most prefill_chunk prompt tokens, so a long prompt never stalls the running
//      streams for more than one chunk; the last chunk yields the first new token;
//   4. decodes: every other running slot feeds its last token, all of them as one batch [B, 1]
//      through the slotted forward (each row attends to its own slot at its own position);
//      models whose forward cannot run slotted (learned positions, the fused GELU MLP) decode
//      slot by slot instead;
//   5. samples each slot's next token with the slot's own sampler and seed, reports it, and frees
//      the slots of finished requests.
//
// Determinism (batch invariance): a request's tokens depend on its prompt, options and seed only,
// never on what else is running. Prefill chunks start at multiples of prefill_chunk of the
// request's own prompt, whatever else is queued; decoding and the logits run every Linear through
// the fixed-order kernel (nn/layers.h: FixedOrderLinearScope), whose rows are independent of the
// batch size; attention, norms and elementwise ops are computed per row. So one request alone,
// or batched with any others, gives the same tokens bit for bit.
//
// Threads: submit() and cancel() may be called from any thread; step() / run() from one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "infer/sampling.h"
#include "nn/transformer.h"

namespace lmforge::infer {

// The most alternatives a request may ask for per token (OpenAI's chat API allows 20).
inline constexpr int64_t kMaxTopLogprobs = 20;

enum class FinishReason { Length, Stop, Cancelled };
std::string_view to_string(FinishReason r);  // "length" | "stop" | "cancelled"

// A generated token: its log-probability under the model (log-softmax of the raw logits, before
// temperature and truncation) and, when the request asks for them, the most likely tokens of that
// step with theirs, most likely first (ties: the lower id first).
struct GeneratedToken {
  uint32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<uint32_t, float>> top;  // top_logprobs entries (id, log-probability)
};

struct GenerationRequest {
  std::vector<uint32_t> prompt;  // 1 to context_length - 1 ids, each below vocab_size
  int64_t max_new_tokens = 16;   // stops earlier at the end of the context (reason Length)
  SamplingOptions sampling{};
  uint64_t seed = 0;
  std::vector<uint32_t> stop_tokens{};  // generating one ends the request (reason Stop), it is reported
  int64_t top_logprobs = 0;             // alternatives reported with each token, 0 to kMaxTopLogprobs
  // Called on the stepping thread with each new token; returning false ends the request (reason Stop).
  std::function<bool(const GeneratedToken& token)> on_token{};
  // Called once, last, on the stepping thread.
  std::function<void(FinishReason reason)> on_finish{};
};

struct BatchOptions {
  int64_t max_slots = 8;          // sequences decoded together
  int64_t prefill_chunk = 64;     // prompt tokens per slot per step
  int64_t max_prefill_slots = 1;  // slots prefilling in one step
};

class BatchGenerator {
 public:
  BatchGenerator(const nn::Transformer& model, BatchOptions options);
  ~BatchGenerator();

  // Queues a request; returns its id. Error (naming the field) for a request that cannot run.
  uint64_t submit(GenerationRequest request);
  // Ends a request at the next step (its on_finish gets Cancelled); unknown ids are ignored.
  void cancel(uint64_t id);
  // One scheduling step (above). Returns false when there was nothing to do.
  bool step();
  // Steps until nothing is running or waiting.
  void run_until_idle();
  // Steps while there is work, sleeps when there is none, returns once `stop` is set (a server's
  // engine thread). stop is checked at least every wake_up() or 100 ms.
  void run(const std::atomic<bool>& stop);
  void wake_up();

  int64_t running() const;
  int64_t waiting() const;
  const nn::Transformer& model() const { return model_; }

 private:
  struct Slot;
  void admit();
  void free_cancelled();
  void prefill(Slot& slot);
  void decode(const std::vector<Slot*>& slots);
  // Samples from `hidden_row`'s logits ([1, C] hidden state), reports, finishes if done.
  void emit(Slot& slot, const Tensor& hidden_row);
  void finish(Slot& slot, FinishReason reason);
  Tensor logits_of(const Tensor& hidden) const;
  nn::KVCache slot_view(int64_t slot, int64_t length);

  nn::Transformer& model_;
  BatchOptions options_;
  bool slotted_forward_;  // the model's forward supports slotted rows
  const nn::Linear* lm_head_ = nullptr;
  nn::KVCache cache_;     // [max_slots, context_length, ...] per layer
  std::vector<std::unique_ptr<Slot>> slots_;  // null: free
  uint64_t admitted_ = 0;

  mutable std::mutex mutex_;  // guards the members below
  std::condition_variable work_;
  std::deque<std::pair<uint64_t, GenerationRequest>> queue_;
  std::set<uint64_t> cancelled_;
  uint64_t next_id_ = 1;
  int64_t running_ = 0;
};

// Runs `requests` (their callbacks may be empty) through one BatchGenerator to completion and
// returns each one's new tokens, in order.
std::vector<std::vector<uint32_t>> generate_batch(const nn::Transformer& model, std::vector<GenerationRequest> requests,
                                                  const BatchOptions& options);

}  // namespace lmforge::infer
