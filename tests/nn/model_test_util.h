// Tiny model configs and batches shared by the model, optimizer, trainer and inference tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/random_kernels.h"
#include "nn/transformer.h"
#include "ops/ops.h"

namespace lmforge::test {

// 2 layers, d_model 8, 2 heads of 4, vocab 11, context 8.
inline nn::ModelConfig tiny_config() {
  nn::ModelConfig c;
  c.vocab_size = 11;
  c.context_length = 8;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 0;
  c.d_ff = 16;
  c.init_std = 0.3;  // large enough that the loss is far from uniform, so gradients are informative
  return c;
}

// Random ids [b, t] in [0, vocab) on the CPU.
inline Tensor random_ids(int64_t b, int64_t t, int64_t vocab, uint64_t seed) {
  Generator g(seed);
  return randint({b, t}, 0, vocab, g);
}

inline std::unique_ptr<nn::Transformer> make_model(const nn::ModelConfig& c, DType dtype = DType::F32,
                                                   uint64_t seed = 7) {
  auto m = std::make_unique<nn::Transformer>(c, nn::TensorOptions{.dtype = dtype});
  Generator g(seed);
  m->init_parameters(g);
  return m;
}

inline std::string temp_dir(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("lmforge_test_" + name + "_" + std::to_string(::getpid()))).string();
}

}  // namespace lmforge::test
