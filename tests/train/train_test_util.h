// Token shards and run configs for the trainer tests.
#pragma once

#include <filesystem>

#include "data/shard.h"
#include "nn/model_test_util.h"
#include "train/config.h"

namespace lmforge::test {

// Writes DIR/train_000000.bin and DIR/val_000000.bin holding a learnable sequence: a repeating
// pattern of period 7 over ids [0, vocab) with every fifth token random.
inline void write_pattern_shards(const std::string& dir, int64_t vocab, uint64_t n_train, uint64_t n_val) {
  std::filesystem::create_directories(dir);
  Generator g(77);
  auto write = [&](const std::string& name, uint64_t n) {
    data::ShardWriter w((std::filesystem::path(dir) / name).string(),
                        {.bytes_per_token = 2, .vocab_size = uint32_t(vocab), .eot_id = -1});
    std::vector<int64_t> noise = to_vector<int64_t>(randint({int64_t(n)}, 0, vocab, g));
    std::vector<uint32_t> ids(n);
    for (uint64_t i = 0; i < n; ++i) ids[i] = i % 5 == 4 ? uint32_t(noise[i]) : uint32_t((i * 3) % 7 % vocab);
    w.append(ids);
    w.close();
  };
  write("train_000000.bin", n_train);
  write("val_000000.bin", n_val);
}

inline train::RunConfig tiny_run(const std::string& data_dir, const std::string& out_dir) {
  train::RunConfig c;
  c.model = tiny_config();
  c.model.vocab_size = 16;
  c.model.context_length = 16;
  c.model.d_model = 16;
  c.model.n_heads = 2;
  c.model.d_ff = 32;
  c.model.init_std = 0.02;
  c.data.path = data_dir;
  c.train.steps = 12;
  c.train.micro_batch_size = 2;
  c.train.seq_len = 8;
  c.train.batch_tokens = 32;  // 2 micro-batches
  c.train.out_dir = out_dir;
  c.train.log_every = 1;
  c.optim.lr = 1e-2;
  c.optim.min_lr = 1e-3;
  c.optim.warmup_steps = 2;
  c.eval.every = 4;
  c.checkpoint.every = 4;
  c.checkpoint.keep_last = 2;
  return c;
}

}  // namespace lmforge::test
