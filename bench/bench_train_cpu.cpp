// Training-step and decode throughput on the CPU, in the shapes of the PyTorch CPU peer
// (bench/peers/cpu/torch_peer.py): fp32, AdamW, random tokens, median step after warm-up.
//
//   bench_train_cpu --model llama --layers 6 --dim 384 --heads 6 --kv-heads 2 --vocab 8192
//                   --seq-len 256 --batch 8 [--ffn 1024] [--steps 10] [--decode] [--peak-gflops G]
//                   [--tie | --no-tie]   (default as the peer: gpt2 tied, llama untied)
//
// Prints one `RESULT {json}` line per measurement, like the peer. MFU = (6·N_matmul +
// 12·L·T·d)·tokens/s ÷ peak, N_matmul counting the weights used in matmuls (LM head included).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "accounting/accounting.h"
#include "infer/generate.h"
#include "nn/transformer.h"
#include "ops/ops.h"
#include "optim/adamw.h"

using namespace lmforge;

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  std::string model = "llama";
  int64_t layers = 6, dim = 384, heads = 6, kv_heads = 0, vocab = 8192, seq_len = 256, batch = 8, ffn = 0;
  int steps = 10, warmup = 3, decode_tokens = 0;
  bool decode = false;
  int tie = -1;  // -1: as the peer (gpt2 tied, llama untied)
  double peak = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return std::string(argv[++i]); };
    if (a == "--model") model = next();
    else if (a == "--layers") layers = std::stoll(next());
    else if (a == "--dim") dim = std::stoll(next());
    else if (a == "--heads") heads = std::stoll(next());
    else if (a == "--kv-heads") kv_heads = std::stoll(next());
    else if (a == "--vocab") vocab = std::stoll(next());
    else if (a == "--seq-len") seq_len = std::stoll(next());
    else if (a == "--batch") batch = std::stoll(next());
    else if (a == "--ffn") ffn = std::stoll(next());
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--warmup") warmup = std::stoi(next());
    else if (a == "--decode") decode = true;
    else if (a == "--tie") tie = 1;
    else if (a == "--no-tie") tie = 0;
    else if (a == "--gen") decode_tokens = std::stoi(next());
    else if (a == "--peak-gflops") peak = std::stod(next()) * 1e9;
    else { std::fprintf(stderr, "unknown argument %s\n", a.c_str()); return 2; }
  }
  nn::ModelConfig c;
  c.vocab_size = vocab;
  c.context_length = seq_len;
  c.d_model = dim;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.d_ff = ffn;
  c.tied_embeddings = tie < 0 ? model == "gpt2" : tie == 1;
  if (model == "gpt2") {
    c.norm = nn::NormKind::LayerNorm;
    c.ffn = nn::FfnKind::GELU;
    c.position = nn::PositionKind::Learned;
    c.bias = true;
  }
  c.resolve();
  nn::Transformer net(c, {});
  Generator gen(1234);
  net.init_parameters(gen);
  optim::AdamW opt(net.named_parameters(), {.weight_decay = 0.0});
  const auto flops = accounting::count_flops(c, seq_len);
  const double flops_per_token = flops.six_n_plus_attention;
  if (peak <= 0) peak = accounting::measure_matmul_peak(Device::cpu());

  std::vector<double> times;
  for (int s = 0; s < warmup + steps; ++s) {
    Tensor ids = randint({batch, seq_len + 1}, 0, vocab, gen);
    Tensor x = ids.narrow(1, 0, seq_len).contiguous(), y = ids.narrow(1, 1, seq_len).contiguous();
    const double t0 = now_s();
    net.zero_grad();
    Tensor loss = net.loss(x, y);
    loss.backward();
    opt.step(3e-4);
    const double dt = now_s() - t0;
    if (s >= warmup) times.push_back(dt);
  }
  const double ms = median(times) * 1e3;
  const double tps = double(batch * seq_len) / (ms / 1e3);
  std::printf("RESULT {\"impl\": \"lmforge\", \"model\": \"%s\", \"params\": %lld, \"batch\": %lld, \"seq_len\": %lld, "
              "\"ms_per_step\": %.1f, \"tokens_per_s\": %.0f, \"gflops\": %.1f, \"mfu\": %.3f, \"peak_gflops\": %.1f}\n",
              model.c_str(), static_cast<long long>(net.parameter_count()), static_cast<long long>(batch),
              static_cast<long long>(seq_len), ms, tps, tps * flops_per_token / 1e9, tps * flops_per_token / peak,
              peak / 1e9);
  if (decode) {
    NoGradGuard ng;
    net.set_training(false);
    const int64_t n_new = decode_tokens > 0 ? decode_tokens : seq_len - 1;
    std::vector<double> rates;
    for (int run = 0; run < 5; ++run) {
      std::vector<uint32_t> prompt{1};
      infer::GenerateOptions go{.max_new_tokens = n_new};
      go.sampling.temperature = 0;
      const double t0 = now_s();
      auto out = infer::generate(net, prompt, go);
      rates.push_back(double(out.size()) / (now_s() - t0));
    }
    std::printf("RESULT {\"impl\": \"lmforge\", \"decode_tokens_per_s\": %.0f, \"new_tokens\": %lld}\n", median(rates),
                static_cast<long long>(n_new));
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
