// Continuous batching: batched generation equals one-at-a-time generation token for token, a
// request's tokens do not depend on what else runs (batch invariance), and slots are freed on
// cancel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "infer/batch_generate.h"
#include "infer/generate.h"
#include "infer/quantize.h"
#include "nn/model_test_util.h"
#include "ops/ops.h"

namespace lmforge::infer {
namespace {

// Llama-style (RoPE, SwiGLU, GQA), wide enough that greedy decoding has no near-ties.
nn::ModelConfig llama_config() {
  nn::ModelConfig c = test::tiny_config();
  c.vocab_size = 37;
  c.context_length = 40;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 64;
  c.init_std = 0.5;
  return c;
}

// GPT-2-style (learned positions, GELU, biases, untied head): the slot-by-slot decode path.
nn::ModelConfig gpt2_config() {
  nn::ModelConfig c = llama_config();
  c.position = nn::PositionKind::Learned;
  c.ffn = nn::FfnKind::GELU;
  c.norm = nn::NormKind::LayerNorm;
  c.bias = true;
  c.tied_embeddings = false;
  return c;
}

std::vector<uint32_t> prompt_of(int64_t n, uint32_t salt, int64_t vocab) {
  std::vector<uint32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(uint32_t((i * 7 + salt * 5 + 3) % vocab));
  return p;
}

// Seven requests of different prompt lengths, budgets and sampling settings.
std::vector<GenerationRequest> mixed_requests(int64_t vocab) {
  std::vector<GenerationRequest> rs;
  for (uint32_t i = 0; i < 7; ++i) {
    GenerationRequest r{.prompt = prompt_of(1 + (i * 5) % 13, i, vocab), .max_new_tokens = 6 + i * 3};
    if (i % 2) r.sampling = {.temperature = 0.9, .top_k = 10, .top_p = 0.95};
    else r.sampling = {.temperature = 0};
    r.seed = 100 + i;
    rs.push_back(std::move(r));
  }
  return rs;
}

std::vector<std::vector<uint32_t>> one_at_a_time(const nn::Transformer& model, const std::vector<GenerationRequest>& rs,
                                                 const BatchOptions& o) {
  std::vector<std::vector<uint32_t>> out;
  for (const auto& r : rs) out.push_back(generate_batch(model, {r}, o)[0]);
  return out;
}

void expect_batched_equals_alone(const nn::ModelConfig& c) {
  auto model = test::make_model(c);
  const auto rs = mixed_requests(c.vocab_size);
  const auto alone = one_at_a_time(*model, rs, {.max_slots = 1, .prefill_chunk = 4});
  for (const BatchOptions o : {BatchOptions{.max_slots = 3, .prefill_chunk = 4, .max_prefill_slots = 1},
                               BatchOptions{.max_slots = 8, .prefill_chunk = 4, .max_prefill_slots = 3}}) {
    const auto batched = generate_batch(*model, rs, o);
    ASSERT_EQ(batched.size(), rs.size());
    for (size_t i = 0; i < rs.size(); ++i) {
      EXPECT_EQ(batched[i], alone[i]) << "request " << i << " with " << o.max_slots << " slots";
      EXPECT_EQ(int64_t(batched[i].size()), rs[i].max_new_tokens) << i;
    }
  }
}

TEST(BatchGenerate, BatchedEqualsOneAtATimeSlotted) { expect_batched_equals_alone(llama_config()); }

TEST(BatchGenerate, BatchedEqualsOneAtATimeSlotBySlot) { expect_batched_equals_alone(gpt2_config()); }

TEST(BatchGenerate, QuantizedModelBatchedEqualsOneAtATime) {
  const nn::ModelConfig c = llama_config();
  auto model = test::make_model(c);
  quantize_model(*model, {.format = QuantFormat::Int8});
  const auto rs = mixed_requests(c.vocab_size);
  EXPECT_EQ(generate_batch(*model, rs, {.max_slots = 4, .prefill_chunk = 4}),
            one_at_a_time(*model, rs, {.max_slots = 1, .prefill_chunk = 4}));
}

TEST(BatchGenerate, GreedyMatchesTheSingleSequenceGenerator) {
  // infer::generate() prefills the whole prompt at once and decodes through the BLAS GEMM; the
  // batch path must choose the same greedy tokens.
  for (const nn::ModelConfig& c : {llama_config(), gpt2_config()}) {
    auto model = test::make_model(c);
    for (uint32_t salt = 0; salt < 3; ++salt) {
      const auto prompt = prompt_of(5 + salt * 4, salt, c.vocab_size);
      const auto reference = generate(*model, prompt, {.max_new_tokens = 12, .sampling = {.temperature = 0}});
      GenerationRequest r{.prompt = prompt, .max_new_tokens = 12, .sampling = {.temperature = 0}};
      EXPECT_EQ(generate_batch(*model, {r}, {.max_slots = 2, .prefill_chunk = 64})[0], reference) << salt;
    }
  }
}

TEST(BatchGenerate, ARequestsTokensDoNotDependOnItsNeighbours) {
  // The same request alone, then joining mid-way a batch of others with other prompts: the
  // tokens, and the log-probabilities, are identical bit for bit.
  const nn::ModelConfig c = llama_config();
  auto model = test::make_model(c);
  GenerationRequest probe{.prompt = prompt_of(9, 42, c.vocab_size), .max_new_tokens = 20,
                          .sampling = {.temperature = 1.1, .top_p = 0.9}, .seed = 7};
  std::vector<float> alone_lp, batched_lp;
  probe.on_token = [&](const GeneratedToken& t) { alone_lp.push_back(t.logprob); return true; };
  const auto alone = generate_batch(*model, {probe}, {.max_slots = 6, .prefill_chunk = 4})[0];

  BatchGenerator gen(*model, {.max_slots = 6, .prefill_chunk = 4, .max_prefill_slots = 2});
  std::vector<uint32_t> batched;
  for (uint32_t i = 0; i < 4; ++i)
    gen.submit({.prompt = prompt_of(3 + i, i, c.vocab_size), .max_new_tokens = 30, .sampling = {.temperature = 0}});
  for (int s = 0; s < 5; ++s) gen.step();  // the others are running when the probe joins
  probe.on_token = [&](const GeneratedToken& t) {
    batched.push_back(t.id);
    batched_lp.push_back(t.logprob);
    return true;
  };
  gen.submit(probe);
  gen.submit({.prompt = prompt_of(11, 9, c.vocab_size), .max_new_tokens = 5, .sampling = {.temperature = 0}});
  gen.run_until_idle();
  EXPECT_EQ(batched, alone);
  EXPECT_EQ(batched_lp, alone_lp);
}

TEST(BatchGenerate, TopLogprobsAreTheFullForwardsMostLikelyTokens) {
  // Each generated token's log-probability and its top alternatives against a log-softmax of
  // the logits of one full forward over the prompt and the tokens generated so far.
  const nn::ModelConfig c = llama_config();
  auto model = test::make_model(c);
  const auto prompt = prompt_of(5, 3, c.vocab_size);
  std::vector<GeneratedToken> seen;
  GenerationRequest r{.prompt = prompt, .max_new_tokens = 6, .sampling = {.temperature = 0.8}, .seed = 11,
                      .top_logprobs = 4};
  r.on_token = [&](const GeneratedToken& t) { seen.push_back(t); return true; };
  generate_batch(*model, {r}, {.max_slots = 2, .prefill_chunk = 3});
  ASSERT_EQ(seen.size(), 6u);
  std::vector<uint32_t> ids = prompt;
  for (const GeneratedToken& t : seen) {
    std::vector<int64_t> v(ids.begin(), ids.end());
    NoGradGuard no_grad;
    const Tensor logits = model->forward(from_vector<int64_t>(v, {1, int64_t(v.size())}, model->device()));
    const std::vector<float> last = to_vector<float>(cast(logits.narrow(1, int64_t(v.size()) - 1, 1), DType::F32));
    double z = 0;
    for (float l : last) z += std::exp(double(l));
    std::vector<double> lp(last.size());
    for (size_t i = 0; i < last.size(); ++i) lp[i] = double(last[i]) - std::log(z);
    EXPECT_NEAR(t.logprob, lp[t.id], 1e-4);
    ASSERT_EQ(t.top.size(), 4u);
    std::vector<size_t> order(lp.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lp[a] > lp[b]; });
    for (size_t k = 0; k < 4; ++k) {
      EXPECT_EQ(t.top[k].first, order[k]) << "alternative " << k;
      EXPECT_NEAR(t.top[k].second, lp[order[k]], 1e-4);
    }
    ids.push_back(t.id);
  }
  GenerationRequest too_many{.prompt = prompt, .top_logprobs = kMaxTopLogprobs + 1};
  BatchGenerator gen(*model, {.max_slots = 1});
  EXPECT_THROW(gen.submit(too_many), Error);
}

TEST(BatchGenerate, StopTokensCancelAndContextEnd) {
  const nn::ModelConfig c = llama_config();
  auto model = test::make_model(c);
  const auto prompt = prompt_of(6, 1, c.vocab_size);
  const auto free_run = generate_batch(*model, {{.prompt = prompt, .max_new_tokens = 10, .sampling = {.temperature = 0}}},
                                       {.max_slots = 2})[0];
  // A stop token ends the request right after it is generated.
  GenerationRequest stop{.prompt = prompt, .max_new_tokens = 10, .sampling = {.temperature = 0},
                         .stop_tokens = {free_run[3]}};
  std::optional<FinishReason> reason;
  stop.on_finish = [&](FinishReason r) { reason = r; };
  const auto stopped = generate_batch(*model, {stop}, {.max_slots = 2})[0];
  const auto first = size_t(std::find(free_run.begin(), free_run.end(), free_run[3]) - free_run.begin());
  EXPECT_EQ(stopped, std::vector<uint32_t>(free_run.begin(), free_run.begin() + long(first) + 1));
  EXPECT_EQ(reason, FinishReason::Stop);
  // The context (40) bounds the tokens: 34 prompt ids and 6 new ones fill it, and the last
  // position's prediction is a 7th token (as infer::generate does).
  GenerationRequest longp{.prompt = prompt_of(34, 2, c.vocab_size), .max_new_tokens = 100};
  longp.on_finish = [&](FinishReason r) { reason = r; };
  EXPECT_EQ(generate_batch(*model, {longp}, {.max_slots = 1})[0].size(), 7u);
  EXPECT_EQ(reason, FinishReason::Length);
  // Cancelling frees the slot at the next step: a waiting request takes it.
  BatchGenerator gen(*model, {.max_slots = 1});
  std::vector<FinishReason> reasons;
  const uint64_t a = gen.submit({.prompt = prompt, .max_new_tokens = 30,
                                 .on_finish = [&](FinishReason r) { reasons.push_back(r); }});
  gen.submit({.prompt = prompt, .max_new_tokens = 2, .on_finish = [&](FinishReason r) { reasons.push_back(r); }});
  gen.step();
  gen.step();
  EXPECT_EQ(gen.running(), 1);
  EXPECT_EQ(gen.waiting(), 1);
  gen.cancel(a);
  gen.step();
  EXPECT_EQ(reasons, std::vector<FinishReason>{FinishReason::Cancelled});
  EXPECT_EQ(gen.waiting(), 0);
  gen.run_until_idle();
  EXPECT_EQ(reasons, (std::vector<FinishReason>{FinishReason::Cancelled, FinishReason::Length}));
  // Requests that cannot run are refused with the field named.
  EXPECT_THROW(gen.submit({.prompt = {}}), Error);
  EXPECT_THROW(gen.submit({.prompt = prompt_of(40, 0, c.vocab_size)}), Error);  // no room for a new token
  EXPECT_THROW(gen.submit({.prompt = {uint32_t(c.vocab_size)}}), Error);
  EXPECT_THROW(gen.submit({.prompt = prompt, .max_new_tokens = 0}), Error);
  EXPECT_THROW(gen.submit({.prompt = prompt, .sampling = {.temperature = -1}}), Error);
}

}  // namespace
}  // namespace lmforge::infer
