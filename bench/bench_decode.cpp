// Batch-1 decoding at a long context: prefill a prompt of P tokens into the KV cache, then decode
// N tokens one at a time (greedy: each step's argmax is the next input, the logits copied to the
// host as `lmforge generate` does), and report the decode rate and the cache's bytes, measured
// on the cache tensors and predicted by the accounting. Random weights: the speed and memory of
// a step do not depend on what the model has learnt.
//
//   bench_decode [--device cpu|cuda] [--precision f32|bf16] [--attention mha|mla]
//                [--layers 24 --dim 1024 --heads 16 --kv-heads 0 --ffn 0 --vocab 32000]
//                [--kv-lora-rank 512 --q-lora-rank 0 --qk-nope 128 --qk-rope 64 --v-head 128]
//                [--prompt 8000 --gen 64 --runs 3] [--quantize int8|fp8|bf16|f16] [--graph on|off]
//                [--split-kv on|off]
//
// The context length is prompt + gen. Prints one `RESULT {json}` line. The one-token steps run
// through infer::DecodeGraph as `lmforge generate` does; --graph on (`generate --cuda-graph`)
// records one step as a CUDA graph on a GPU and replays it, off launches every kernel per step.
// --split-kv on routes decode attention through the split-KV kernel (attention_decode.cu).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "accounting/accounting.h"
#ifdef LMFORGE_WITH_CUDA
#include "backend/cuda/cuda_context.h"
#endif
#include "core/random_kernels.h"
#include "infer/decode_graph.h"
#include "infer/quantize.h"
#include "nn/transformer.h"
#include "ops/ops.h"

using namespace lmforge;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint32_t argmax_last(const Tensor& logits) {
  const int64_t t = logits.size(1);
  const std::vector<float> v = to_vector<float>(logits.narrow(1, t - 1, 1).to(DType::F32));
  return uint32_t(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

int main(int argc, char** argv) try {
  std::string device_name = "cpu", precision = "", attention = "mha", quantize, graph = "off", split_kv = "off";
  int64_t layers = 24, dim = 1024, heads = 16, kv_heads = 0, ffn = 0, vocab = 32000;
  int64_t kv_lora = 512, q_lora = 0, qk_nope = 128, qk_rope = 64, v_head = 128;
  int64_t prompt_len = 8000, gen = 64;
  int runs = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) { std::fprintf(stderr, "missing value after %s\n", a.c_str()); return 2; }
    const std::string v = argv[++i];
    if (a == "--device") device_name = v;
    else if (a == "--precision") precision = v;
    else if (a == "--attention") attention = v;
    else if (a == "--layers") layers = std::stoll(v);
    else if (a == "--dim") dim = std::stoll(v);
    else if (a == "--heads") heads = std::stoll(v);
    else if (a == "--kv-heads") kv_heads = std::stoll(v);
    else if (a == "--ffn") ffn = std::stoll(v);
    else if (a == "--vocab") vocab = std::stoll(v);
    else if (a == "--kv-lora-rank") kv_lora = std::stoll(v);
    else if (a == "--q-lora-rank") q_lora = std::stoll(v);
    else if (a == "--qk-nope") qk_nope = std::stoll(v);
    else if (a == "--qk-rope") qk_rope = std::stoll(v);
    else if (a == "--v-head") v_head = std::stoll(v);
    else if (a == "--prompt") prompt_len = std::stoll(v);
    else if (a == "--gen") gen = std::stoll(v);
    else if (a == "--runs") runs = std::stoi(v);
    else if (a == "--quantize") quantize = v;
    else if (a == "--graph") graph = v;
    else if (a == "--split-kv") split_kv = v;
    else { std::fprintf(stderr, "unknown argument %s\n", a.c_str()); return 2; }
  }
  const Device device = Device::parse(device_name);
  if (precision.empty()) precision = device.is_cpu() ? "f32" : "bf16";
  if (precision != "f32" && precision != "bf16") { std::fprintf(stderr, "--precision f32|bf16\n"); return 2; }
  if (graph != "on" && graph != "off") { std::fprintf(stderr, "--graph on|off\n"); return 2; }
  if (split_kv == "on") {
#ifdef LMFORGE_WITH_CUDA
    if (device.is_cuda()) lmforge::cuda::cuda_context(device.index).split_kv_decode = true;
#endif
  }

  nn::ModelConfig c;
  c.vocab_size = vocab;
  c.context_length = prompt_len + gen;
  c.d_model = dim;
  c.n_layers = layers;
  c.n_heads = heads;
  c.d_ff = ffn;
  if (attention == "mla") {
    c.attention = nn::AttentionKind::MLA;
    c.kv_lora_rank = kv_lora;
    c.q_lora_rank = q_lora;
    c.qk_nope_head_dim = qk_nope;
    c.qk_rope_head_dim = qk_rope;
    c.v_head_dim = v_head;
  } else if (attention == "mha") {
    c.n_kv_heads = kv_heads;
  } else {
    std::fprintf(stderr, "--attention mha|mla\n");
    return 2;
  }
  c.resolve();
  nn::Transformer net(c, {.device = device});
  Generator rng(1234);
  net.init_parameters(rng);
  const int64_t params = net.parameter_count();  // before quantization, which replaces the Linear weights
  if (!quantize.empty()) infer::quantize_model(net, {.format = infer::parse_quant_format(quantize)});
  if (precision == "bf16") net.set_compute_dtype(DType::BF16);
  net.set_training(false);
  NoGradGuard no_grad;

  const Tensor prompt_ids = randint({1, prompt_len}, 0, vocab, rng, device);

  std::vector<double> prefill_s, decode_rates;
  int64_t cache_bytes = 0;
  std::string graph_state;
  for (int r = 0; r < runs + 1; ++r) {  // the first run warms up (allocator, kernels) and is not counted
    nn::KVCache cache = net.make_cache(1, prompt_len + gen);
    cache_bytes = 0;
    for (const auto& l : cache.layers) cache_bytes += l.nbytes();
    const double t0 = now_s();
    uint32_t next = argmax_last(net.forward(prompt_ids, &cache));  // the host copy waits for the device
    const double t1 = now_s();
    {
      infer::DecodeGraph decoder(net, cache, graph == "on");
      for (int64_t i = 0; i < gen; ++i) {
        const int64_t token[1] = {int64_t(next)};
        next = argmax_last(decoder.step(token));
      }
      graph_state = decoder.replaying() ? "replayed" : decoder.reason();
      std::replace(graph_state.begin(), graph_state.end(), '"', '\'');
    }
    const double t2 = now_s();
    if (r > 0) {
      prefill_s.push_back(t1 - t0);
      decode_rates.push_back(double(gen) / (t2 - t1));
    }
  }
  std::sort(prefill_s.begin(), prefill_s.end());
  std::sort(decode_rates.begin(), decode_rates.end());
  const int64_t kv = accounting::kv_cache_size(c, precision == "bf16" ? DType::BF16 : DType::F32).bytes_per_token;
  std::printf("RESULT {\"impl\": \"lmforge\", \"device\": \"%s\", \"precision\": \"%s\", \"weights\": \"%s\", "
              "\"attention\": \"%s\", \"graph\": \"%s\", "
              "\"kv_heads\": %lld, \"params\": %lld, \"prompt\": %lld, \"gen\": %lld, \"prefill_s\": %.4f, "
              "\"decode_tokens_per_s\": %.1f, \"ms_per_token\": %.3f, \"kv_cache_bytes\": %lld, "
              "\"kv_bytes_per_token_predicted\": %lld, \"kv_cache_bytes_predicted\": %lld}\n",
              device_name.c_str(), precision.c_str(), quantize.empty() ? "dense" : quantize.c_str(), attention.c_str(), graph_state.c_str(), static_cast<long long>(c.kv_heads()),
              static_cast<long long>(params), static_cast<long long>(prompt_len),
              static_cast<long long>(gen), prefill_s[prefill_s.size() / 2], decode_rates[decode_rates.size() / 2],
              1e3 / decode_rates[decode_rates.size() / 2], static_cast<long long>(cache_bytes),
              static_cast<long long>(kv), static_cast<long long>(kv * (prompt_len + gen)));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
