// Multi-threaded encoding: one big text cut at safe points, or many texts.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <functional>
#include <thread>

#include "core/error.h"
#include "tokenizer/model.h"

namespace lmforge::tok {
namespace {

constexpr size_t kMinChunkBytes = size_t{1} << 16;
constexpr size_t kMaxChunkBytes = size_t{4} << 20;

unsigned resolve_threads(unsigned n) {
  if (n == 0) n = std::thread::hardware_concurrency();
  return std::max(1u, n);
}

// Runs work(i) for i in [0, n) on up to n_threads threads; rethrows the exception of the
// smallest failing i.
template <class F>
void parallel_for(size_t n, unsigned n_threads, F&& work) {
  if (n == 0) return;
  std::vector<std::exception_ptr> errors(n);
  std::atomic<size_t> next{0};
  auto loop = [&] {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
      try {
        work(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  const unsigned extra = static_cast<unsigned>(std::min<size_t>(n_threads, n)) - 1;
  std::vector<std::thread> threads;
  threads.reserve(extra);
  for (unsigned t = 0; t < extra; ++t) threads.emplace_back(loop);
  loop();
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Where encode_parallel may cut `text`: 0, the cuts, text.size(). Just {0, size} when the text
// cannot be cut (a pattern without safe cut points) or is too small to be worth it.
std::vector<size_t> cut_points(const detail::Model& m, std::string_view text, unsigned n_threads) {
  const bool scanner_cuts = m.pretokenizer.uses_scanner() && !m.add_prefix_space;
  if ((!scanner_cuts && !m.bytes_only) || text.size() < 2 * kMinChunkBytes) return {0, text.size()};
  // About four chunks per thread, each at the first safe point after its target; chunks of at
  // most 4 MiB even on one thread, so a caller of encode_chunks gets its first ids early.
  const size_t target =
      std::clamp(text.size() / (size_t{n_threads} * 4), kMinChunkBytes, std::max(kMinChunkBytes, kMaxChunkBytes));
  std::vector<size_t> cuts{0};
  size_t pos = target;
  while (pos < text.size()) {
    size_t cut = std::string_view::npos;
    if (m.bytes_only) {
      for (size_t p = pos; p < text.size() && p < pos + 4096; ++p)
        if (!m.matcher.spans(text, p)) {
          cut = p;
          break;
        }
    } else {
      for (size_t from = pos; from < text.size();) {
        const void* nl = std::memchr(text.data() + from, '\n', text.size() - from);
        if (nl == nullptr) break;
        const size_t p = static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1;
        if (m.pretokenizer.is_cut_point(text, p) && !m.matcher.spans(text, p)) {
          cut = p;
          break;
        }
        from = p;
      }
    }
    if (cut == std::string_view::npos || cut >= text.size()) break;
    cuts.push_back(cut);
    pos = cut + target;
  }
  cuts.push_back(text.size());
  return cuts;
}

}  // namespace

std::vector<uint32_t> Tokenizer::encode_parallel(std::string_view text, unsigned n_threads,
                                                 const SpecialPolicy& policy) const {
  n_threads = resolve_threads(n_threads);
  if (n_threads == 1) return encode(text, policy);
  const std::vector<size_t> cuts = cut_points(*m_, text, n_threads);
  if (cuts.size() == 2) return encode(text, policy);
  const size_t n_chunks = cuts.size() - 1;
  std::vector<std::vector<uint32_t>> parts(n_chunks);
  parallel_for(n_chunks, n_threads, [&](size_t i) {
    const std::string_view chunk = text.substr(cuts[i], cuts[i + 1] - cuts[i]);
    parts[i].reserve(chunk.size() / 3);
    detail::encode_into(*m_, chunk, cuts[i], parts[i], policy);
  });
  size_t total = 0;
  for (const auto& p : parts) total += p.size();
  std::vector<uint32_t> out;
  out.reserve(total);
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

size_t Tokenizer::encode_chunks(std::string_view text, unsigned n_threads, const SpecialPolicy& policy,
                                const std::function<void(size_t, std::vector<uint32_t>&)>& sink) const {
  n_threads = resolve_threads(n_threads);
  const std::vector<size_t> cuts = cut_points(*m_, text, n_threads);
  const size_t n_chunks = cuts.size() - 1;
  parallel_for(n_chunks, n_threads, [&](size_t i) {
    const std::string_view chunk = text.substr(cuts[i], cuts[i + 1] - cuts[i]);
    std::vector<uint32_t> ids;
    ids.reserve(chunk.size() / 3);
    detail::encode_into(*m_, chunk, cuts[i], ids, policy);
    sink(i, ids);
  });
  return n_chunks;
}

std::vector<std::vector<uint32_t>> Tokenizer::encode_batch(std::span<const std::string_view> texts,
                                                           unsigned n_threads, const SpecialPolicy& policy) const {
  const detail::Model& m = *m_;
  std::vector<std::vector<uint32_t>> out(texts.size());
  // Work items of ~256 KiB of text, so short documents do not each pay a scheduling step.
  std::vector<size_t> starts{0};
  size_t bytes = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    bytes += texts[i].size();
    if (bytes >= (size_t{1} << 18)) {
      starts.push_back(i + 1);
      bytes = 0;
    }
  }
  if (starts.back() != texts.size()) starts.push_back(texts.size());
  parallel_for(starts.size() - 1, resolve_threads(n_threads), [&](size_t w) {
    for (size_t i = starts[w]; i < starts[w + 1]; ++i) {
      try {
        detail::encode_into(m, texts[i], 0, out[i], policy);
      } catch (const Error& e) {
        throw Error(fmt::format("text {} of the batch: {}", i, e.what()));
      }
    }
  });
  return out;
}

}  // namespace lmforge::tok
