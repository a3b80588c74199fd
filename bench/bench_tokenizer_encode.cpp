// Encoding throughput of the BPE tokenizer on one text file, 1 thread and N threads.
//
//   bench_tokenizer_encode FILE [--data-dir DIR] [--encodings r50k_base,cl100k_base,o200k_base]
//                               [--threads N] [--min-sec S] [--write-ids DIR]
//
// Like the npm peers' bench_encode.js (mode "whole"): the file is read once, the tokenizer is
// loaded and one warm-up pass is made (load and warm-up are not in "mbps"); timed passes of
// encode_ordinary over the whole file as ONE string repeat until min-sec. The per-thread piece
// cache is warm after the first pass, so the first pass is reported too (first_pass_mbps), as
// is the rate per CPU second (cpu_mbps_per_thread), which a busy shared machine hides. With N > 1 the same is
// timed for encode_parallel on N threads, whose ids must equal the single-thread ids (checked
// every run). --write-ids writes the ids of each encoding as little-endian u32 to
// DIR/<enc>.ids, for comparing with tiktoken (tests/tokenizer/peer_check.js). Prints one JSON
// line per (encoding, threads).
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string default_data_dir() {
  // bench/ sits next to tests/ in the project, whose fixtures hold the OpenAI rank files.
  std::string here = __FILE__;
  return here.substr(0, here.rfind("/bench/")) + "/tests/fixtures/tokenizers";
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t c = s.find(',', start);
    if (c == std::string::npos) c = s.size();
    if (c > start) out.push_back(s.substr(start, c - start));
    start = c + 1;
  }
  return out;
}

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// Repeats pass() until min_sec of wall time; reports wall and process CPU seconds (on a shared
// machine the CPU time shows what the wall time hides).
template <class F>
void timed(double min_sec, F&& pass, int& passes, double& sec, double& cpu_sec) {
  passes = 0;
  const auto t0 = Clock::now();
  const double c0 = cpu_seconds();
  do {
    pass();
    ++passes;
    sec = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (sec < min_sec || passes < 2);
  cpu_sec = cpu_seconds() - c0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lmforge;
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: %s FILE [--data-dir DIR] [--encodings a,b] [--threads N] [--min-sec S] [--write-ids DIR]\n",
                 argv[0]);
    return 2;
  }
  std::string file = argv[1], data_dir = default_data_dir(), ids_dir;
  std::vector<std::string> encodings = {"r50k_base", "cl100k_base", "o200k_base"};
  unsigned threads = 2;
  double min_sec = 3;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--data-dir") data_dir = v;
    else if (a == "--encodings") encodings = split_list(v);
    else if (a == "--threads") threads = static_cast<unsigned>(std::stoul(v));
    else if (a == "--min-sec") min_sec = std::stod(v);
    else if (a == "--write-ids") ids_dir = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  try {
    std::ifstream in(file, std::ios::binary);
    LF_CHECK(in.good(), "cannot open {}", file);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string base = file.substr(file.rfind('/') + 1);
    for (const std::string& enc : encodings) {
      const auto l0 = Clock::now();
      const tok::Tokenizer tok = tok::Tokenizer::load(data_dir + "/" + enc + ".tiktoken");
      const double load_sec = std::chrono::duration<double>(Clock::now() - l0).count();
      const auto w0 = Clock::now();
      const std::vector<uint32_t> ref = tok.encode_ordinary(text);  // warm-up, on a cold piece cache
      const double cold_sec = std::chrono::duration<double>(Clock::now() - w0).count();
      if (!ids_dir.empty()) {
        std::ofstream out(ids_dir + "/" + enc + ".ids", std::ios::binary);
        out.write(reinterpret_cast<const char*>(ref.data()), static_cast<std::streamsize>(ref.size() * 4));
      }
      std::vector<unsigned> thread_counts{1};
      if (threads > 1) thread_counts.push_back(threads);
      for (unsigned t : thread_counts) {
        int passes = 0;
        double sec = 0, cpu_sec = 0;
        size_t n = 0;
        bool same = true;
        if (t == 1) {
          timed(min_sec, [&] { n = tok.encode_ordinary(text).size(); }, passes, sec, cpu_sec);
        } else {
          tok::SpecialPolicy as_text;  // the same as encode_ordinary
          as_text.disallowed_as_text = true;
          same = tok.encode_parallel(text, t, as_text) == ref;
          timed(min_sec, [&] { n = tok.encode_parallel(text, t, as_text).size(); },
                passes, sec, cpu_sec);
        }
        LF_CHECK(n == ref.size() && same, "{} threads: ids differ from the single-thread ids", t);
        std::printf(
            "{\"impl\":\"lmforge\",\"enc\":\"%s\",\"mode\":\"whole\",\"threads\":%u,\"file\":\"%s\",\"bytes\":%zu,"
            "\"tokens\":%zu,\"passes\":%d,\"sec\":%.3f,\"mbps\":%.3f,\"cpu_mbps_per_thread\":%.3f,\"load_sec\":%.3f,"
            "\"first_pass_mbps\":%.3f,\"same_ids_as_1_thread\":%s}\n",
            enc.c_str(), t, base.c_str(), text.size(), ref.size(), passes, sec,
            static_cast<double>(text.size()) * passes / sec / 1e6,
            static_cast<double>(text.size()) * passes / cpu_sec / 1e6, load_sec,
            static_cast<double>(text.size()) / cold_sec / 1e6, same ? "true" : "false");
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
