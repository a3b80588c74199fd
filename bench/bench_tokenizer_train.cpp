// BPE training benchmark: time and peak memory of counting and merging on a corpus file.
//
//   bench_tokenizer_train FILE... [--vocab-size 32000] [--threads 2] [--pattern o200k_base]
//                         [--out DIR]
//
// Prints one JSON line: seconds for counting and merging, merges/s, distinct pieces, bytes per
// token on the training text, peak RSS. Compare with the peers in docs/BENCHMARKS.md
// ("Tokenizer training and corpus sharding"), run one after the other on the same machine.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "tokenizer/bpe_trainer_tokenizer.h"

int main(int argc, char** argv) {
  using namespace lmforge;
  std::vector<std::string> files;
  tok::TrainerOptions options;
  options.n_threads = 2;
  std::string pattern(tok::kDefaultTrainPattern);
  std::string out_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value after %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--vocab-size") {
      options.vocab_size = std::stoul(value());
    } else if (a == "--threads") {
      options.n_threads = std::stoi(value());
    } else if (a == "--pattern") {
      pattern = value();
    } else if (a == "--out") {
      out_dir = value();
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s FILE... [--vocab-size N] [--threads N] [--pattern P] [--out DIR]\n", argv[0]);
    return 2;
  }
  try {
    const auto t0 = std::chrono::steady_clock::now();
    tok::TrainedTokenizer t = tok::train_tokenizer(files, options, pattern);
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!out_dir.empty()) t.tokenizer.save_tokenizer_json(out_dir + "/tokenizer.json");
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const auto& r = t.report;
    fmt::print(
        "{{\"bench\": \"tokenizer_train\", \"pattern\": \"{}\", \"vocab_size\": {}, \"threads\": {}, "
        "\"bytes\": {}, \"count_sec\": {:.2f}, \"count_mb_per_sec\": {:.1f}, \"distinct_pieces\": {}, "
        "\"merges\": {}, \"merge_sec\": {:.2f}, \"merges_per_sec\": {:.0f}, \"total_sec\": {:.2f}, "
        "\"bytes_per_token\": {:.3f}, \"peak_rss_mib\": {:.0f}}}\n",
        pattern, options.vocab_size, options.n_threads, r.count.bytes, r.count.seconds,
        static_cast<double>(r.count.bytes) / 1e6 / r.count.seconds, r.distinct_pieces, r.n_merges, r.merge_seconds,
        r.merges_per_second, total, r.bytes_per_token, static_cast<double>(ru.ru_maxrss) / 1024.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
