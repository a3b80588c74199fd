#include "data/corpus_tokenize.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <thread>

#include "core/error.h"
#include "core/progress.h"
#include "data/corpus_tokenize_meta.h"
#include "data/shard.h"

namespace lmforge::data {

namespace fs = std::filesystem;

bool is_validation_document(uint64_t i, double val_fraction) {
  if (val_fraction <= 0) return false;
  return std::floor(static_cast<double>(i + 1) * val_fraction) > std::floor(static_cast<double>(i) * val_fraction);
}

namespace {

struct Chunk {
  uint64_t seq = 0;
  std::string text;
  bool starts_document = false;
  bool jsonl = false;
  const std::string* file = nullptr;
  uint64_t first_line = 1;  // 1-based line number of text[0] in its file
};

struct Result {
  std::vector<uint32_t> ids;
  std::vector<size_t> doc_starts;  // positions in ids where a document begins
  uint64_t bytes = 0;
  uint64_t invalid_utf8 = 0;
  std::exception_ptr error;
};

bool is_jsonl(const std::string& path) { return path.size() >= 6 && path.ends_with(".jsonl"); }

// ---- encoding one chunk (worker threads) ----

class ChunkEncoder {
 public:
  ChunkEncoder(const tok::Tokenizer& tok, const TokenizeOptions& options) : tok_(tok), options_(options) {}

  Result encode(const Chunk& c) const {
    Result r;
    r.bytes = c.text.size();
    r.ids.reserve(c.text.size() / 3 + 16);
    if (c.jsonl) {
      encode_jsonl(c, r);
      return r;
    }
    r.invalid_utf8 = count_invalid_utf8(c.text);
    if (options_.documents == DocumentMode::File) {
      if (c.starts_document) r.doc_starts.push_back(0);
      tok_.encode_ordinary_append(c.text, r.ids);
      return r;
    }
    // Paragraphs: runs of non-blank lines.
    const std::string_view text = c.text;
    bool in_doc = !c.starts_document;
    size_t seg_start = 0;
    size_t line = 0;
    while (line < text.size()) {
      const void* nl = std::memchr(text.data() + line, '\n', text.size() - line);
      const size_t line_end = nl == nullptr ? text.size() : static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1;
      if (is_blank_line(text, line)) {
        if (in_doc) tok_.encode_ordinary_append(text.substr(seg_start, line - seg_start), r.ids);
        in_doc = false;
      } else if (!in_doc) {
        r.doc_starts.push_back(r.ids.size());
        seg_start = line;
        in_doc = true;
      }
      line = line_end;
    }
    if (in_doc) tok_.encode_ordinary_append(text.substr(seg_start), r.ids);
    return r;
  }

 private:
  void encode_jsonl(const Chunk& c, Result& r) const {
    const std::string_view text = c.text;
    uint64_t line_no = c.first_line;
    for (size_t line = 0; line < text.size(); ++line_no) {
      const void* nl = std::memchr(text.data() + line, '\n', text.size() - line);
      const size_t end = nl == nullptr ? text.size() : static_cast<size_t>(static_cast<const char*>(nl) - text.data());
      std::string_view raw = text.substr(line, end - line);
      line = end + 1;
      if (std::all_of(raw.begin(), raw.end(), [](char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; })) continue;
      const uint64_t bad = count_invalid_utf8(raw);
      r.invalid_utf8 += bad;
      std::string fixed;
      if (bad > 0) {
        fixed = replace_invalid_utf8(raw);
        raw = fixed;
      }
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(raw);
      } catch (const nlohmann::json::exception& e) {
        throw Error(fmt::format("{}:{}: not a JSON line: {}", *c.file, line_no, e.what()));
      }
      LF_CHECK(j.is_object(), "{}:{}: expected a JSON object with a \"{}\" string", *c.file, line_no,
               options_.jsonl_field);
      const auto it = j.find(options_.jsonl_field);
      LF_CHECK(it != j.end() && it->is_string(), "{}:{}: no \"{}\" string in this JSON object", *c.file, line_no,
               options_.jsonl_field);
      const std::string& doc = it->get_ref<const std::string&>();
      if (doc.empty()) continue;
      r.doc_starts.push_back(r.ids.size());
      tok_.encode_ordinary_append(doc, r.ids);
    }
  }

  const tok::Tokenizer& tok_;
  const TokenizeOptions& options_;
};

// ---- writing one split (train or val) into rolling shards ----

class SplitWriter {
 public:
  SplitWriter(std::string dir, std::string prefix, const TokenizeOptions& options, ShardWriter::Options shard)
      : dir_(std::move(dir)), prefix_(std::move(prefix)), shard_tokens_(options.shard_tokens), shard_(shard) {}

  void begin_document() {
    ensure_room();
    current_->add_documents(1);
    shards_.back().documents += 1;
    ++documents_;
    const uint32_t eot = static_cast<uint32_t>(shard_.eot_id);
    append(std::span(&eot, 1));
  }

  void append(std::span<const uint32_t> ids) {
    while (!ids.empty()) {
      ensure_room();
      const size_t n = static_cast<size_t>(std::min<uint64_t>(ids.size(), shard_tokens_ - current_->n_tokens()));
      current_->append(ids.first(n));
      shards_.back().tokens += n;
      tokens_ += n;
      ids = ids.subspan(n);
    }
  }

  void finish() {
    if (current_) current_->close();
    current_.reset();
  }

  const std::vector<ShardSummary>& shards() const { return shards_; }
  uint64_t tokens() const { return tokens_; }
  uint64_t documents() const { return documents_; }

 private:
  void ensure_room() {
    if (current_ && current_->n_tokens() < shard_tokens_) return;
    if (current_) current_->close();
    const std::string name = fmt::format("{}_{:06d}.bin", prefix_, shards_.size());
    current_.emplace((fs::path(dir_) / name).string(), shard_);
    shards_.push_back(ShardSummary{name, 0, 0});
  }

  std::string dir_;
  std::string prefix_;
  uint64_t shard_tokens_;
  ShardWriter::Options shard_;
  std::optional<ShardWriter> current_;
  std::vector<ShardSummary> shards_;
  uint64_t tokens_ = 0;
  uint64_t documents_ = 0;
};

// ---- the ordered parallel pipeline ----

class Pipeline {
 public:
  Pipeline(const tok::Tokenizer& tok, const TokenizeOptions& options, SplitWriter& train, SplitWriter& val,
           ProgressBar& bar, TokenizeSummary& summary)
      : encoder_(tok, options), options_(options), train_(train), val_(val), bar_(bar), summary_(summary) {
    max_in_flight_ = static_cast<size_t>(4 * options.n_threads);
    for (int t = 0; t < options.n_threads; ++t) workers_.emplace_back([this] { work(); });
  }

  ~Pipeline() { stop(); }

  void submit(Chunk c) {
    while (next_seq_ - written_seq_ >= max_in_flight_) write_next();
    c.seq = next_seq_++;
    {
      std::lock_guard lock(queue_mutex_);
      queue_.push_back(std::move(c));
    }
    queue_cv_.notify_one();
  }

  void drain() {
    while (written_seq_ < next_seq_) write_next();
  }

  void stop() {
    {
      std::lock_guard lock(queue_mutex_);
      closed_ = true;
      queue_.clear();
    }
    queue_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

 private:
  void work() {
    for (;;) {
      Chunk c;
      {
        std::unique_lock lock(queue_mutex_);
        queue_cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
        if (closed_) return;
        c = std::move(queue_.front());
        queue_.pop_front();
      }
      Result r;
      try {
        r = encoder_.encode(c);
      } catch (...) {
        r.error = std::current_exception();
      }
      {
        std::lock_guard lock(result_mutex_);
        results_.emplace(c.seq, std::move(r));
      }
      result_cv_.notify_all();
    }
  }

  void write_next() {
    Result r;
    {
      std::unique_lock lock(result_mutex_);
      result_cv_.wait(lock, [&] { return results_.count(written_seq_) > 0; });
      auto it = results_.find(written_seq_);
      r = std::move(it->second);
      results_.erase(it);
    }
    ++written_seq_;
    if (r.error) std::rethrow_exception(r.error);
    // Route: tokens before the first document start continue the current document.
    size_t pos = 0;
    for (const size_t d : r.doc_starts) {
      current().append(std::span(r.ids).subspan(pos, d - pos));
      in_val_ = is_validation_document(summary_.documents, options_.val_fraction);
      ++summary_.documents;
      current().begin_document();
      pos = d;
    }
    current().append(std::span(r.ids).subspan(pos));
    summary_.invalid_utf8 += r.invalid_utf8;
    bar_.add(r.bytes);
  }

  SplitWriter& current() { return in_val_ ? val_ : train_; }

  ChunkEncoder encoder_;
  const TokenizeOptions& options_;
  SplitWriter& train_;
  SplitWriter& val_;
  ProgressBar& bar_;
  TokenizeSummary& summary_;
  bool in_val_ = false;

  std::vector<std::thread> workers_;
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<Chunk> queue_;
  bool closed_ = false;
  std::mutex result_mutex_;
  std::condition_variable result_cv_;
  std::map<uint64_t, Result> results_;
  uint64_t next_seq_ = 0;
  uint64_t written_seq_ = 0;
  size_t max_in_flight_ = 4;
};

// ---- reading one input file into chunks (calling thread) ----

void read_file_into_chunks(const std::string& path, const TokenizeOptions& options, Pipeline& pipeline,
                           TokenizeSummary& summary) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LF_CHECK(fd >= 0, "cannot open input {}: {}", path, std::strerror(errno));
  std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
  const bool jsonl = is_jsonl(path);
  const size_t block = std::max<size_t>(options.chunk_bytes * 4, size_t{8} << 20);
  std::string buf;
  size_t pos = 0;
  bool eof = false;
  auto read_more = [&] {
    if (pos > 0) {
      buf.erase(0, pos);
      pos = 0;
    }
    const size_t have = buf.size();
    buf.resize(have + block);
    size_t got = 0;
    while (got < block) {
      const ssize_t r = ::read(fd, buf.data() + have + got, block - got);
      if (r < 0 && errno == EINTR) continue;
      LF_CHECK(r >= 0, "cannot read input {}: {}", path, std::strerror(errno));
      if (r == 0) {
        eof = true;
        break;
      }
      got += static_cast<size_t>(r);
    }
    buf.resize(have + got);
    summary.bytes += got;
  };

  bool starts_document = true;
  uint64_t line_no = 1;
  for (;;) {
    while (!eof && buf.size() - pos < 2 * options.chunk_bytes) read_more();
    if (pos == buf.size()) break;
    std::string_view view = std::string_view(buf).substr(pos);
    Cut cut;
    if (eof && view.size() <= options.chunk_bytes + options.chunk_bytes / 2) {
      cut = {view.size(), CutKind::None};
    } else {
      // Searching again from the start after reading more keeps the first cut independent of
      // how much was buffered (a candidate may have been undecidable at the buffer's end).
      cut = find_cut(view, options.chunk_bytes, options.documents, jsonl);
      while (cut.kind == CutKind::None && !eof && view.size() < options.max_chunk_bytes) {
        read_more();
        view = std::string_view(buf).substr(pos);
        cut = find_cut(view, options.chunk_bytes, options.documents, jsonl);
      }
      if (cut.kind == CutKind::None) {
        if (eof) {
          cut = {view.size(), CutKind::None};
        } else {
          cut = {forced_cut(view), CutKind::Forced};
          ++summary.forced_cuts;
        }
      }
    }
    Chunk c;
    c.text.assign(view.substr(0, cut.pos));
    c.starts_document = starts_document;
    c.jsonl = jsonl;
    c.file = &path;
    c.first_line = line_no;
    if (jsonl) line_no += static_cast<uint64_t>(std::count(c.text.begin(), c.text.end(), '\n'));
    pipeline.submit(std::move(c));
    starts_document = cut.kind == CutKind::Document;
    pos += cut.pos;
  }
}

const std::regex& shard_name_regex() {
  static const std::regex re(R"((train|val)_\d{6}\.bin)");
  return re;
}

void prepare_output_dir(const TokenizeOptions& options) {
  std::error_code ec;
  fs::create_directories(options.output_dir, ec);
  LF_CHECK(!ec && fs::is_directory(options.output_dir), "cannot create output directory {}: {}", options.output_dir,
           ec ? ec.message() : "not a directory");
  std::vector<fs::path> old;
  for (const auto& e : fs::directory_iterator(options.output_dir)) {
    const std::string name = e.path().filename().string();
    if (name == "meta.json" || std::regex_match(name, shard_name_regex())) old.push_back(e.path());
  }
  if (old.empty()) return;
  LF_CHECK(options.overwrite, "output directory {} already holds shards ({}); pass --overwrite to replace them",
           options.output_dir, old.front().filename().string());
  for (const auto& p : old) fs::remove(p);
}

}  // namespace

TokenizeSummary tokenize_corpus(const tok::Tokenizer& tokenizer, const TokenizeOptions& options) {
  LF_CHECK(!options.inputs.empty(), "no input files given");
  LF_CHECK(!options.output_dir.empty(), "no output directory given");
  LF_CHECK(options.n_threads >= 1, "threads must be at least 1 (got {})", options.n_threads);
  LF_CHECK(options.val_fraction >= 0 && options.val_fraction < 1, "validation fraction must be in [0, 1), got {}",
           options.val_fraction);
  LF_CHECK(options.shard_tokens >= 1, "shard size must be at least 1 token");
  LF_CHECK(options.chunk_bytes >= 1 && options.max_chunk_bytes >= 2 * options.chunk_bytes,
           "chunk sizes must satisfy 1 <= chunk <= max_chunk / 2");
  const auto eot = tokenizer.special_id(options.eot_token);
  LF_CHECK(eot.has_value(), "tokenizer {} has no special token {} to separate documents (choose one with --eot)",
           tokenizer.source(), options.eot_token);
  uint64_t total_bytes = 0;
  for (const std::string& p : options.inputs) {
    struct stat st {};
    LF_CHECK(::stat(p.c_str(), &st) == 0, "cannot open input {}: {}", p, std::strerror(errno));
    LF_CHECK(!S_ISDIR(st.st_mode), "input {} is a directory, not a file", p);
    total_bytes += static_cast<uint64_t>(st.st_size);
  }
  prepare_output_dir(options);

  const auto t0 = std::chrono::steady_clock::now();
  TokenizeSummary summary;
  const size_t vocab = tokenizer.vocab_size();
  summary.bytes_per_token_stored = bytes_per_token_for_vocab(vocab);
  const ShardWriter::Options shard{.bytes_per_token = summary.bytes_per_token_stored,
                                   .vocab_size = static_cast<uint32_t>(vocab),
                                   .eot_id = static_cast<int64_t>(*eot)};
  SplitWriter train(options.output_dir, "train", options, shard);
  SplitWriter val(options.output_dir, "val", options, shard);
  ProgressBar bar({.label = "tokenizing", .total = total_bytes, .unit = ProgressUnit::Bytes,
                   .enabled = options.progress && ProgressOptions::stderr_is_terminal()});
  {
    Pipeline pipeline(tokenizer, options, train, val, bar, summary);
    for (const std::string& p : options.inputs) read_file_into_chunks(p, options, pipeline, summary);
    pipeline.drain();
  }
  train.finish();
  val.finish();
  bar.finish();
  summary.train_shards = train.shards();
  summary.val_shards = val.shards();
  summary.train_tokens = train.tokens();
  summary.val_tokens = val.tokens();
  summary.train_documents = train.documents();
  summary.val_documents = val.documents();
  summary.tokens = summary.train_tokens + summary.val_tokens;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_meta_json(tokenizer, options, summary);
  return summary;
}

}  // namespace lmforge::data
