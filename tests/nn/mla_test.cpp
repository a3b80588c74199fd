// Multi-head Latent Attention (nn/mla.h): the module against a plain-loop reference of
// DeepSeek-V3's attention, both expanded (training) and through the compressed cache with the
// absorbed projections; whole-model gradients against central finite differences in f64;
// decoding with the compressed cache (step by step, prefill and steps, slotted, batched
// generation) against a full forward; the cache's measured bytes against the accounting formula;
// parameter and FLOP counts; the config's errors; the HF DeepSeek-V3 config.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "accounting/accounting.h"
#include "infer/batch_generate.h"
#include "infer/generate.h"
#include "nn/init.h"
#include "nn/mla.h"
#include "nn/model_test_util.h"
#include "train/hf_config.h"

namespace lmforge::nn {
namespace {

// The tiny model with MLA: 3 heads (q/k head 3 + 4, value head 2: all three widths differ),
// a latent of 5 and a query rank of 6 (d_model 8).
ModelConfig mla_config(int64_t q_lora_rank = 6) {
  ModelConfig c = test::tiny_config();
  c.attention = AttentionKind::MLA;
  c.n_heads = 3;
  c.q_lora_rank = q_lora_rank;
  c.kv_lora_rank = 5;
  c.qk_nope_head_dim = 3;
  c.qk_rope_head_dim = 4;
  c.v_head_dim = 2;
  return c;
}

// ---- the plain-loop reference ----

using Weights = std::map<std::string, std::vector<double>>;

// y = W x (+ b); W [out, in] row-major.
std::vector<double> affine(const Weights& w, const std::string& name, const std::vector<double>& x, int64_t out) {
  const std::vector<double>& m = w.at(name + ".weight");
  const int64_t in = int64_t(x.size());
  EXPECT_EQ(int64_t(m.size()), out * in) << name;
  std::vector<double> y(size_t(out), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) y[size_t(o)] += m[size_t(o * in + i)] * x[size_t(i)];
    if (w.count(name + ".bias")) y[size_t(o)] += w.at(name + ".bias")[size_t(o)];
  }
  return y;
}

std::vector<double> rms_normed(const std::vector<double>& x, const std::vector<double>& gain, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double r = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * r * gain[i];
  return y;
}

// DeepSeek-V3's rotation of one RoPE vector at position pos, written as HF does it: de-interleave
// (x0, x2, ..., x1, x3, ...), then rotate half-split pairs (j, j + D/2) by pos·theta^(-2j/D).
// The result is in the de-interleaved order, as HF leaves it.
std::vector<double> hf_rope_interleave(const std::vector<double>& x, int64_t pos, double theta) {
  const size_t d = x.size(), half = d / 2;
  std::vector<double> de(d), y(d);
  for (size_t j = 0; j < half; ++j) de[j] = x[2 * j], de[j + half] = x[2 * j + 1];
  for (size_t j = 0; j < half; ++j) {
    const double angle = double(pos) * std::pow(theta, -2.0 * double(j) / double(d));
    y[j] = de[j] * std::cos(angle) - de[j + half] * std::sin(angle);
    y[j + half] = de[j + half] * std::cos(angle) + de[j] * std::sin(angle);
  }
  return y;
}

// The MLA layer on x [B, T, C] whose first step is at position `offset` (causal among the T
// steps), loop by loop: -> [B, T, C].
std::vector<double> reference_mla(const Weights& w, const ModelConfig& c, const std::vector<double>& x, int64_t b_n,
                                  int64_t t_n, int64_t offset) {
  const int64_t d = c.d_model, h_n = c.n_heads, nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim,
                dv = c.v_head_dim, r = c.kv_lora_rank, qk = nope + rope;
  const double eps = 1e-6, scale = 1.0 / std::sqrt(double(qk));
  // q, k: [nope | rotated rope] and v of (b, t, h) at index (b·T + t)·H + h
  std::vector<std::vector<double>> q, k, v;
  const auto at = [&](int64_t b, int64_t t, int64_t h) { return size_t((b * t_n + t) * h_n + h); };
  for (int64_t b = 0; b < b_n; ++b) {
    for (int64_t t = 0; t < t_n; ++t) {
      const std::vector<double> xt(x.begin() + (b * t_n + t) * d, x.begin() + (b * t_n + t + 1) * d);
      const std::vector<double> qv =
          c.q_lora_rank > 0
              ? affine(w, "q_b_proj",
                       rms_normed(affine(w, "q_a_proj", xt, c.q_lora_rank), w.at("q_a_layernorm.weight"), eps), h_n * qk)
              : affine(w, "q_proj", xt, h_n * qk);
      const std::vector<double> kva = affine(w, "kv_a_proj_with_mqa", xt, r + rope);
      const std::vector<double> latent =
          rms_normed(std::vector<double>(kva.begin(), kva.begin() + r), w.at("kv_a_layernorm.weight"), eps);
      const std::vector<double> k_pe =
          hf_rope_interleave(std::vector<double>(kva.begin() + r, kva.end()), offset + t, c.rope_theta);
      const std::vector<double> kv = affine(w, "kv_b_proj", latent, h_n * (nope + dv));
      for (int64_t h = 0; h < h_n; ++h) {
        std::vector<double> qh(qv.begin() + h * qk, qv.begin() + h * qk + nope);
        const std::vector<double> q_pe =
            hf_rope_interleave(std::vector<double>(qv.begin() + h * qk + nope, qv.begin() + (h + 1) * qk), offset + t,
                               c.rope_theta);
        qh.insert(qh.end(), q_pe.begin(), q_pe.end());
        std::vector<double> kh(kv.begin() + h * (nope + dv), kv.begin() + h * (nope + dv) + nope);
        kh.insert(kh.end(), k_pe.begin(), k_pe.end());
        q.push_back(qh);
        k.push_back(kh);
        v.emplace_back(kv.begin() + h * (nope + dv) + nope, kv.begin() + (h + 1) * (nope + dv));
      }
    }
  }
  std::vector<double> out;
  for (int64_t b = 0; b < b_n; ++b) {
    for (int64_t t = 0; t < t_n; ++t) {
      std::vector<double> heads;
      for (int64_t h = 0; h < h_n; ++h) {
        std::vector<double> s;
        double mx = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < qk; ++i) dot += q[at(b, t, h)][size_t(i)] * k[at(b, j, h)][size_t(i)];
          s.push_back(dot * scale);
          mx = std::max(mx, s.back());
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        std::vector<double> o(size_t(dv), 0.0);
        for (int64_t j = 0; j <= t; ++j)
          for (int64_t i = 0; i < dv; ++i) o[size_t(i)] += s[size_t(j)] / z * v[at(b, j, h)][size_t(i)];
        heads.insert(heads.end(), o.begin(), o.end());
      }
      const std::vector<double> y = affine(w, "o_proj", heads, d);
      out.insert(out.end(), y.begin(), y.end());
    }
  }
  return out;
}

// An f64 MLA layer with every parameter random (norm gains and biases too, so that a gain or
// bias used in the wrong place shows).
struct Layer {
  ModelConfig config;
  std::unique_ptr<MultiHeadLatentAttention> module;
  Weights weights;
  explicit Layer(ModelConfig c) : config(std::move(c)) {
    config.resolve();
    module = std::make_unique<MultiHeadLatentAttention>(config, TensorOptions{.dtype = DType::F64});
    Generator g(17);
    NoGradGuard ng;
    for (auto& p : module->named_parameters()) {
      normal_(p.tensor, g, p.kind == ParamKind::Norm ? 1.0 : 0.0, 0.4);
      weights[p.name] = to_vector<double>(p.tensor);
    }
  }
};

void expect_near(const std::vector<double>& a, const std::vector<double>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol) << what << ": element " << i;
}

TEST(MlaLayer, ParameterNamesAreDeepSeekV3s) {
  for (int64_t rq : {0, 6}) {
    Layer l(mla_config(rq));
    std::vector<std::string> names;
    for (const auto& p : l.module->named_parameters()) names.push_back(p.name + " " + shape_str(p.tensor.shape()));
    const std::vector<std::string> want =
        rq > 0 ? std::vector<std::string>{"q_a_proj.weight [6, 8]", "q_a_layernorm.weight [6]",
                                          "q_b_proj.weight [21, 6]", "kv_a_proj_with_mqa.weight [9, 8]",
                                          "kv_a_layernorm.weight [5]", "kv_b_proj.weight [15, 5]",
                                          "o_proj.weight [8, 6]"}
               : std::vector<std::string>{"q_proj.weight [21, 8]", "kv_a_proj_with_mqa.weight [9, 8]",
                                          "kv_a_layernorm.weight [5]", "kv_b_proj.weight [15, 5]",
                                          "o_proj.weight [8, 6]"};
    EXPECT_EQ(names, want);
  }
}

TEST(MlaLayer, ForwardEqualsThePlainLoopReference) {
  for (int64_t rq : {0, 6}) {
    for (bool bias : {false, true}) {
      ModelConfig c = mla_config(rq);
      c.bias = bias;
      Layer l(c);
      Generator g(3);
      const int64_t b = 2, t = 5;
      const Tensor x = randn({b, t, c.d_model}, g, DType::F64);
      const std::vector<double> xv = to_vector<double>(x);
      NoGradGuard ng;
      for (int64_t offset : {0, 3}) {
        const std::string what = fmt::format("q_lora_rank {}, bias {}, offset {}", rq, bias, offset);
        expect_near(to_vector<double>(l.module->forward(x, offset, nullptr)), reference_mla(l.weights, l.config, xv, b, t, offset),
                    1e-12, what + " (expanded)");
      }
      // Through the compressed cache: the absorbed projections give the same attention.
      LayerKVCache cache = l.module->make_cache(b, 8);
      expect_near(to_vector<double>(l.module->forward(x, 0, &cache)), reference_mla(l.weights, l.config, xv, b, t, 0),
                  1e-12, fmt::format("q_lora_rank {}, bias {} (absorbed, cached)", rq, bias));
    }
  }
}

// The cache holds per position exactly the normalised latent and the rotated shared key.
TEST(MlaLayer, CacheHoldsTheLatentAndTheRotatedKeyOnly) {
  Layer l(mla_config());
  const ModelConfig& c = l.config;
  Generator g(5);
  const Tensor x = randn({1, 3, c.d_model}, g, DType::F64);
  LayerKVCache cache = l.module->make_cache(1, 6);
  EXPECT_EQ(cache.k.shape(), (Shape{1, 6, c.kv_lora_rank + c.qk_rope_head_dim}));
  EXPECT_EQ(cache.v.shape(), (Shape{1, 6, c.qk_rope_head_dim}));
  EXPECT_TRUE(cache.v.shares_storage(cache.k));
  NoGradGuard ng;
  l.module->forward(x, 0, &cache);
  const std::vector<double> xv = to_vector<double>(x), kv = to_vector<double>(cache.k);
  const int64_t r = c.kv_lora_rank, rope = c.qk_rope_head_dim, w = r + rope;
  for (int64_t t = 0; t < 3; ++t) {
    const std::vector<double> xt(xv.begin() + t * c.d_model, xv.begin() + (t + 1) * c.d_model);
    const std::vector<double> a = affine(l.weights, "kv_a_proj_with_mqa", xt, w);
    const std::vector<double> latent =
        rms_normed(std::vector<double>(a.begin(), a.begin() + r), l.weights.at("kv_a_layernorm.weight"), 1e-6);
    // The cache keeps the interleaved layout: rotate pairs (2i, 2i + 1) in place.
    std::vector<double> k_pe(a.begin() + r, a.end());
    for (int64_t i = 0; i < rope / 2; ++i) {
      const double angle = double(t) * std::pow(c.rope_theta, -2.0 * double(i) / double(rope));
      const double p = k_pe[size_t(2 * i)], q = k_pe[size_t(2 * i + 1)];
      k_pe[size_t(2 * i)] = p * std::cos(angle) - q * std::sin(angle);
      k_pe[size_t(2 * i + 1)] = q * std::cos(angle) + p * std::sin(angle);
    }
    for (int64_t i = 0; i < r; ++i) EXPECT_NEAR(kv[size_t(t * w + i)], latent[size_t(i)], 1e-13) << t << " " << i;
    for (int64_t i = 0; i < rope; ++i) EXPECT_NEAR(kv[size_t(t * w + r + i)], k_pe[size_t(i)], 1e-13) << t << " " << i;
  }
  for (int64_t i = 3 * w; i < 6 * w; ++i) EXPECT_EQ(kv[size_t(i)], 0.0) << "written beyond the 3 steps";
}

// ---- the whole model ----

TEST(MlaModel, GradientMatchesFiniteDifferences) {
  const std::vector<std::pair<std::string, std::function<void(ModelConfig&)>>> variants = {
      {"mla, query rank 6", [](ModelConfig&) {}},
      {"mla, no query compression", [](ModelConfig& c) { c.q_lora_rank = 0; }},
      {"mla, biases, untied, z-loss", [](ModelConfig& c) { c.bias = true, c.tied_embeddings = false, c.z_loss = 0.1; }},
      {"mla, post-norm, one head", [](ModelConfig& c) { c.norm_position = NormPosition::Post, c.n_heads = 1; }},
      {"mla, dropout", [](ModelConfig& c) { c.dropout = 0.2; }},
      {"mla with sigmoid-routed moe, shared expert", [](ModelConfig& c) {
         c.n_experts = 4, c.d_ff_expert = 8, c.top_k = 2, c.router = RouterKind::SigmoidTopK, c.n_shared_experts = 1;
       }},
  };
  for (const auto& [name, apply] : variants) {
    ModelConfig c = mla_config();
    apply(c);
    // The model's backward against central differences.
    const double worst = test::model_gradient_error(c, name, 5);
    std::printf("%-45s worst error %.3g of the tolerance\n", name.c_str(), worst);
  }
}

// Step-by-step decoding and prefill + steps against a full forward: the model's own cached
// forward in f64 and f32, and infer::incremental_logits (f32 logits) in f32.
TEST(MlaModel, CompressedCacheDecodingMatchesFullForward) {
  for (DType dt : {DType::F64, DType::F32}) {
    for (int64_t rq : {0, 6}) {
      auto model = test::make_model(mla_config(rq), dt);
      model->set_training(false);
      NoGradGuard ng;
      const std::vector<uint32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
      const Tensor t = from_vector(std::vector<int64_t>(ids.begin(), ids.end()), {1, 8});
      const std::vector<double> full = to_vector<double>(model->forward(t));  // [1, 8, V]
      const double tol = dt == DType::F64 ? 1e-12 : 2e-5;
      for (int64_t prefill : {1, 3, 8}) {
        const std::string what = fmt::format("{} q_lora_rank {} prefill {}", dtype_name(dt), rq, prefill);
        KVCache cache = model->make_cache(1, 8);
        std::vector<double> inc = to_vector<double>(model->forward(t.narrow(1, 0, prefill), &cache));
        for (int64_t p = prefill; p < 8; ++p) {
          const std::vector<double> step = to_vector<double>(model->forward(t.narrow(1, p, 1).contiguous(), &cache));
          inc.insert(inc.end(), step.begin(), step.end());
        }
        EXPECT_EQ(cache.length, 8) << what;
        expect_near(inc, full, tol, what);
        if (dt != DType::F32) continue;
        std::vector<double> generated;
        for (const auto& logits : infer::incremental_logits(*model, ids, prefill))
          generated.insert(generated.end(), logits.begin(), logits.end());
        expect_near(generated, full, tol, what + " (infer::incremental_logits)");
      }
    }
  }
}

// Slotted decoding (nn/kv_cache.h: SlotRows): three sequences of different lengths in one cache,
// each row stepping its own slot at its own position, against each sequence's full forward.
TEST(MlaModel, SlottedCacheDecodingMatchesFullForward) {
  auto model = test::make_model(mla_config(), DType::F64);
  model->set_training(false);
  NoGradGuard ng;
  const int64_t v = model->config().vocab_size;
  const std::vector<std::vector<int64_t>> seqs = {{1, 2, 3, 4, 5, 6, 7}, {7, 5, 3, 1, 0, 9}, {4, 4, 8, 2, 10, 6, 1, 3}};
  const std::vector<int64_t> prefill = {2, 4, 1};  // each slot's prompt, prefilled alone
  std::vector<std::vector<double>> full;
  for (const auto& s : seqs) full.push_back(to_vector<double>(model->forward(from_vector(s, {1, int64_t(s.size())}))));
  KVCache cache = model->make_cache(3, 8);
  std::vector<int64_t> length(3, 0);
  for (int64_t slot = 0; slot < 3; ++slot) {
    KVCache view{.batch = 1, .capacity = 8, .length = 0};
    for (const auto& l : cache.layers) view.layers.push_back({.k = l.k.narrow(0, slot, 1), .v = l.v.narrow(0, slot, 1)});
    const std::vector<int64_t> p(seqs[size_t(slot)].begin(), seqs[size_t(slot)].begin() + prefill[size_t(slot)]);
    model->forward(from_vector(p, {1, int64_t(p.size())}), &view);
    length[size_t(slot)] = prefill[size_t(slot)];
  }
  // Rows in another order than the slots; a slot leaves when its sequence ends.
  int checked = 0;
  while (true) {
    SlotRows rows;
    std::vector<int64_t> ids;
    for (int64_t slot : {2, 0, 1}) {
      if (length[size_t(slot)] >= int64_t(seqs[size_t(slot)].size())) continue;
      rows.slots.push_back(slot);
      rows.positions.push_back(length[size_t(slot)]);
      ids.push_back(seqs[size_t(slot)][size_t(length[size_t(slot)])]);
    }
    if (ids.empty()) break;
    for (auto& l : cache.layers) l.slot_rows = &rows;
    cache.length = 0;
    const std::vector<double> logits = to_vector<double>(model->forward(from_vector(ids, {int64_t(ids.size()), 1}), &cache));
    for (auto& l : cache.layers) l.slot_rows = nullptr;
    for (size_t r = 0; r < ids.size(); ++r) {
      const int64_t slot = rows.slots[r], pos = rows.positions[r];
      for (int64_t i = 0; i < v; ++i)
        ASSERT_NEAR(logits[r * size_t(v) + size_t(i)], full[size_t(slot)][size_t(pos * v + i)], 1e-12)
            << "slot " << slot << " position " << pos;
      ++length[size_t(slot)];
      ++checked;
    }
  }
  EXPECT_EQ(checked, 7 - 2 + 6 - 4 + 8 - 1);
}

// Continuous batching takes the slotted path for MLA models: batched equals one at a time.
TEST(MlaModel, BatchedGenerationEqualsOneAtATime) {
  ModelConfig c = mla_config();
  c.vocab_size = 37, c.context_length = 24, c.d_model = 32, c.n_heads = 4, c.d_ff = 64, c.init_std = 0.5;
  c.kv_lora_rank = 12, c.q_lora_rank = 16, c.qk_nope_head_dim = 8, c.qk_rope_head_dim = 4, c.v_head_dim = 6;
  auto model = test::make_model(c);
  std::vector<infer::GenerationRequest> rs;
  for (uint32_t i = 0; i < 5; ++i) {
    infer::GenerationRequest r;
    r.max_new_tokens = 4 + int64_t(i) * 2;
    for (uint32_t j = 0; j < 1 + (i * 5) % 9; ++j) r.prompt.push_back((j * 7 + i * 5 + 3) % 37);
    r.sampling = i % 2 ? infer::SamplingOptions{.temperature = 0.9, .top_k = 10} : infer::SamplingOptions{.temperature = 0};
    r.seed = 100 + i;
    rs.push_back(std::move(r));
  }
  std::vector<std::vector<uint32_t>> alone;
  for (const auto& r : rs) alone.push_back(infer::generate_batch(*model, {r}, {.max_slots = 1, .prefill_chunk = 4})[0]);
  const auto batched = infer::generate_batch(*model, rs, {.max_slots = 3, .prefill_chunk = 4, .max_prefill_slots = 2});
  ASSERT_EQ(batched.size(), rs.size());
  for (size_t i = 0; i < rs.size(); ++i) {
    EXPECT_EQ(batched[i], alone[i]) << "request " << i;
    EXPECT_EQ(int64_t(batched[i].size()), rs[i].max_new_tokens) << "request " << i;
  }
}

// The bytes make_cache() allocates per position equal accounting::kv_cache_size for every
// attention kind and inference dtype.
TEST(MlaModel, MeasuredCacheBytesEqualTheAccountingFormula) {
  const std::vector<std::pair<std::string, ModelConfig>> configs = {
      {"mha", test::tiny_config()},
      {"gqa", [] { ModelConfig c = test::tiny_config(); c.n_heads = 4, c.n_kv_heads = 2; return c; }()},
      {"mqa", [] { ModelConfig c = test::tiny_config(); c.n_heads = 4, c.n_kv_heads = 1; return c; }()},
      {"mla", mla_config()},
      {"mla without query compression", mla_config(0)}};
  for (const auto& [name, c] : configs) {
    for (DType dt : {DType::F32, DType::BF16}) {
      auto model = test::make_model(c);
      if (dt != DType::F32) model->set_compute_dtype(dt);
      const int64_t batch = 2, capacity = 8;
      const KVCache cache = model->make_cache(batch, capacity);
      int64_t bytes = 0;
      for (const auto& l : cache.layers) {
        EXPECT_EQ(l.k.dtype(), dt) << name;
        bytes += l.nbytes();
      }
      const accounting::KVCacheSize s = accounting::kv_cache_size(c, dt);
      EXPECT_EQ(bytes, s.bytes_per_token * batch * capacity) << name << " " << dtype_name(dt);
      EXPECT_EQ(s.bytes_per_token, s.bytes_per_token_per_layer * c.n_layers) << name;
    }
  }
  // Self-speculative decoding adds one cache per MTP module, each a layer's.
  for (ModelConfig c : {test::tiny_config(), mla_config()}) {
    c.mtp_depth = 2;
    auto model = test::make_model(c);
    const int64_t capacity = 8;
    int64_t bytes = 0;
    for (const auto& l : model->make_cache(1, capacity).layers) bytes += l.nbytes();
    for (const MtpModule* m : model->mtp_modules()) bytes += m->mixer().make_cache(1, capacity).nbytes();
    EXPECT_EQ(bytes, accounting::kv_cache_size(c, DType::F32).bytes_per_token_speculative * capacity);
    EXPECT_NE(accounting::format_kv_cache_report(c, DType::F32, 0).find("with --speculative, the 2 MTP module(s)"),
              std::string::npos);
  }
  // MLA caches r + rope per layer and position where MHA with the same heads caches 2·H·qk.
  const accounting::KVCacheSize mla = accounting::kv_cache_size(mla_config(), DType::BF16);
  EXPECT_EQ(mla.bytes_per_token_per_layer, (5 + 4) * 2);
}

TEST(MlaModel, CacheFitInMemory) {
  ModelConfig c = mla_config();
  c.resolve();
  const int64_t per_token = accounting::kv_cache_size(c, DType::F32).bytes_per_token;
  const int64_t weights = c.parameter_count() * 4;
  const accounting::KVCacheFit f = accounting::kv_cache_fit(c, DType::F32, weights + 100 * per_token + 3);
  EXPECT_EQ(f.weight_bytes, weights);
  EXPECT_EQ(f.tokens, 100);
  EXPECT_EQ(f.full_context_sequences, 100 / c.context_length);
  EXPECT_EQ(accounting::kv_cache_fit(c, DType::F32, weights / 2).tokens, 0) << "the weights alone do not fit";
}

TEST(MlaModel, ParameterAndFlopCountsFollowTheBuiltModel) {
  for (int64_t rq : {0, 6}) {
    for (bool bias : {false, true}) {
      ModelConfig c = mla_config(rq);
      c.bias = bias;
      Transformer model(c);
      EXPECT_EQ(accounting::count_parameters(c).total, model.parameter_count()) << rq << " " << bias;
      EXPECT_EQ(model.config().parameter_count(), model.parameter_count()) << rq << " " << bias;
      // Every attention weight matrix is one matmul per token: 2 FLOPs per weight.
      int64_t weights = 0;
      for (const auto& p : model.named_parameters())
        if (p.name.find(".self_attn.") != std::string::npos && p.tensor.dim() == 2) weights += p.tensor.numel();
      const int64_t seq = 8;
      const accounting::FlopCount f = accounting::count_flops(c, seq);
      ASSERT_EQ(f.forward_per_token[0].name, "attention projections");
      EXPECT_EQ(f.forward_per_token[0].count, 2 * weights);
      // Scores over H heads of q/k width 3 + 4, and values of width 2, per key.
      EXPECT_EQ(f.forward_per_token[1].count, c.n_layers * 2 * seq * 3 * (7 + 2));
    }
  }
}

TEST(MlaConfig, BadInputNamesTheKey) {
  const std::vector<std::pair<std::string, std::function<void(ModelConfig&)>>> bad = {
      {"model.qk_rope_head_dim", [](ModelConfig& c) { c.qk_rope_head_dim = 3; }},
      {"model.qk_rope_head_dim", [](ModelConfig& c) { c.qk_rope_head_dim = 0; }},
      {"model.qk_nope_head_dim", [](ModelConfig& c) { c.qk_nope_head_dim = 0; }},
      {"model.v_head_dim", [](ModelConfig& c) { c.v_head_dim = 0; }},
      {"model.v_head_dim", [](ModelConfig& c) { c.v_head_dim = -2; }},
      {"model.kv_lora_rank", [](ModelConfig& c) { c.kv_lora_rank = 0; }},
      {"model.kv_lora_rank", [](ModelConfig& c) { c.kv_lora_rank = 9; }},
      {"model.q_lora_rank", [](ModelConfig& c) { c.q_lora_rank = 9; }},
      {"model.q_lora_rank", [](ModelConfig& c) { c.q_lora_rank = -1; }},
      {"model.qk_norm", [](ModelConfig& c) { c.qk_norm = true; }},
      {"model.position", [](ModelConfig& c) { c.position = PositionKind::Learned; }},
      {"model.n_kv_heads", [](ModelConfig& c) { c.n_kv_heads = 1; }},
      {"model.head_dim", [](ModelConfig& c) { c.head_dim = 8; }},
      {"model.qk_nope_head_dim", [](ModelConfig& c) { c.qk_nope_head_dim = 5000; }},
      {"model.q_lora_rank", [](ModelConfig& c) { c.attention = AttentionKind::MHA; }},  // MLA keys left set
  };
  for (const auto& [key, apply] : bad) {
    ModelConfig c = mla_config();
    apply(c);
    try {
      c.resolve();
      ADD_FAILURE() << key << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << key << ": " << e.what();
    }
  }
  AttentionKind k;
  try {
    parse_enum("gqa", "model.attention", k);
    ADD_FAILURE() << "\"gqa\" accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.attention"), std::string::npos) << e.what();
  }
  parse_enum("mla", "model.attention", k);
  EXPECT_EQ(k, AttentionKind::MLA);
  ModelConfig ok = mla_config();
  ok.resolve();
  EXPECT_EQ(ok.head_dim, 7) << "head_dim names the q/k head width of an MLA model";
  EXPECT_EQ(ok.n_kv_heads, 3);
}

TEST(MlaConfig, DenseModelExportsAsDeepSeekV3) {
  for (int64_t rq : {0, 6}) {
    ModelConfig c = mla_config(rq);
    c.resolve();
    const auto j = nlohmann::json::parse(train::hf_config_json(c, 2));
    EXPECT_EQ(j.at("architectures")[0], "DeepseekV3ForCausalLM");
    EXPECT_EQ(j.at("model_type"), "deepseek_v3");
    EXPECT_EQ(j.at("first_k_dense_replace"), c.n_layers);
    EXPECT_EQ(j.at("num_key_value_heads"), 3);
    EXPECT_EQ(j.at("kv_lora_rank"), 5);
    EXPECT_EQ(j.at("qk_nope_head_dim"), 3);
    EXPECT_EQ(j.at("qk_rope_head_dim"), 4);
    EXPECT_EQ(j.at("v_head_dim"), 2);
    EXPECT_EQ(j.at("rope_interleave"), true);
    EXPECT_TRUE(j.at("rope_scaling").is_null());
    if (rq == 0)
      EXPECT_TRUE(j.at("q_lora_rank").is_null());
    else
      EXPECT_EQ(j.at("q_lora_rank"), 6);
    EXPECT_EQ(j.at("tie_word_embeddings"), true);
  }
  // MoE layers and biases have no DeepSeek-V3 mapping here: the lmforge config names every key.
  ModelConfig moe = mla_config();
  moe.n_experts = 4, moe.d_ff_expert = 8;
  moe.resolve();
  const auto j = nlohmann::json::parse(train::hf_config_json(moe, -1));
  EXPECT_EQ(j.at("model_type"), "lmforge");
  EXPECT_EQ(j.at("attention"), "mla");
  EXPECT_EQ(j.at("kv_lora_rank"), 5);
  ModelConfig llama = test::tiny_config();
  llama.resolve();
  EXPECT_EQ(nlohmann::json::parse(train::hf_config_json(llama, -1)).at("model_type"), "llama");
}

}  // namespace
}  // namespace lmforge::nn
