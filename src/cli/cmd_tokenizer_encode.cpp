// lmforge tokenizer encode: text -> token ids.
//   plain:    the whole input is one text; prints its ids separated by spaces, then a newline;
//             --binary: the ids as little-endian uint32, 4 bytes each, nothing else.
//   --jsonl:  each input line is {"text": ...}; writes one line {"ids": [...]} per input line,
//             in order (lines are encoded in batches on --threads threads).
// Plain input is encoded in chunks cut where the pre-tokenizer provably restarts
// (Tokenizer::encode_chunks), and each chunk's ids are formatted on the thread that encoded
// it; the output is written once every chunk succeeded, so an error (a disallowed special
// token) writes nothing. A regular input file is mapped, not copied.
// --verbose prints the time of each step (load, input, encode, output) to standard error.
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <charconv>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "cli/command.h"
#include "cli/tokenizer_io.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/progress.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::cli {
namespace {

struct EncodeArgs {
  std::string tokenizer;
  std::string pattern;
  unsigned threads = 0;
  std::string input = "-";
  std::string output = "-";
  std::string allow_special = "none";
  bool ordinary = false;
  bool jsonl = false;
  bool binary = false;
  bool verbose = false;
};

using Clock = std::chrono::steady_clock;

// The plain input as one view: a regular file mapped, anything else (standard input, a pipe)
// read whole.
struct InputText {
  std::shared_ptr<MappedFile> mapped;
  std::string read;
  std::string_view text;
};

InputText open_input(const std::string& path) {
  InputText in;
  struct stat st {};
  if (path != "-" && !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    in.mapped = map_file(path, "input file");
    in.text = std::string_view(reinterpret_cast<const char*>(in.mapped->data), in.mapped->size);
  } else {
    in.read = read_text_input(path);
    in.text = in.read;
  }
  return in;
}

// The ids of chunk i as they go to the output: little-endian uint32, or text with a space
// before each id but the text's first. (Every chunk holds text, hence at least one id.) The
// buffer is sized for the worst case and left uninitialized: zeroing 50 MB first costs more
// than the formatting's own stores.
struct FormattedChunk {
  std::unique_ptr<char[]> bytes;
  size_t size = 0;
};

FormattedChunk format_chunk(size_t i, const std::vector<uint32_t>& ids, bool binary) {
  FormattedChunk out;
  out.bytes.reset(new char[ids.size() * (binary ? 4 : 11)]);  // a space and at most 10 digits
  char* p = out.bytes.get();
  if (binary) {
    for (uint32_t id : ids) {
      const uint32_t le = std::endian::native == std::endian::little ? id : __builtin_bswap32(id);
      std::memcpy(p, &le, 4);
      p += 4;
    }
  } else {
    char* const end = p + ids.size() * 11;
    for (size_t k = 0; k < ids.size(); ++k) {
      if (i > 0 || k > 0) *p++ = ' ';
      p = std::to_chars(p, end, ids[k]).ptr;
    }
  }
  out.size = static_cast<size_t>(p - out.bytes.get());
  return out;
}

void encode_plain(const tok::Tokenizer& tok, const EncodeArgs& a, const tok::SpecialPolicy& policy) {
  auto t0 = Clock::now();
  const InputText in = open_input(a.input);
  const double input_sec = seconds_since(t0);

  t0 = Clock::now();
  std::mutex mu;
  std::vector<FormattedChunk> parts;
  size_t n_ids = 0;
  tok.encode_chunks(in.text, a.threads, policy, [&](size_t i, std::vector<uint32_t>& ids) {
    FormattedChunk part = format_chunk(i, ids, a.binary);
    std::lock_guard<std::mutex> lock(mu);
    if (parts.size() <= i) parts.resize(i + 1);
    parts[i] = std::move(part);
    n_ids += ids.size();
  });
  const double encode_sec = seconds_since(t0);

  t0 = Clock::now();
  TextOutput o(a.output);
  for (const FormattedChunk& part : parts) o.write(std::string_view(part.bytes.get(), part.size));
  if (!a.binary) o.write("\n");
  o.close();
  if (a.verbose)
    fmt::print(stderr, "input {:.3f} s ({} bytes), encode {:.3f} s ({} ids, {} chunks, {:.1f} MB/s), output {:.3f} s\n",
               input_sec, in.text.size(), encode_sec, n_ids, parts.size(),
               encode_sec > 0 ? static_cast<double>(in.text.size()) / 1e6 / encode_sec : 0.0, seconds_since(t0));
}

void encode_jsonl(const tok::Tokenizer& tok, const EncodeArgs& a, const tok::SpecialPolicy& policy) {
  const std::string data = read_text_input(a.input);
  const std::string in_name = a.input == "-" ? "standard input" : a.input;
  TextOutput o(a.output);
  std::vector<std::string> texts;
  std::vector<size_t> lines;
  size_t line_no = 0, pos = 0, batch_bytes = 0;
  auto flush = [&] {
    std::vector<std::string_view> views(texts.begin(), texts.end());
    std::vector<std::vector<uint32_t>> ids;
    try {
      ids = tok.encode_batch(views, a.threads, policy);
    } catch (const Error&) {
      // Find the line to name (only on this error path).
      for (size_t i = 0; i < texts.size(); ++i) {
        try {
          tok.encode(texts[i], policy);
        } catch (const Error& e) {
          throw Error(fmt::format("{}:{}: {}", in_name, lines[i], e.what()));
        }
      }
      throw;
    }
    std::string out;
    for (const auto& v : ids) {
      out += "{\"ids\":[";
      append_token_ids(out, v, ',');
      out += "]}\n";
    }
    o.write(out);
    texts.clear();
    lines.clear();
    batch_bytes = 0;
  };
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    const std::string_view line(data.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(fmt::format("{}:{}: not a JSON line: {}", in_name, line_no, e.what()));
    }
    LF_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(),
             "{}:{}: expected an object with a string \"text\"", in_name, line_no);
    texts.push_back(j["text"].get<std::string>());
    lines.push_back(line_no);
    batch_bytes += texts.back().size();
    if (batch_bytes >= (size_t{16} << 20) || texts.size() >= 65536) flush();
  }
  flush();
  o.close();
}

void run_encode(const EncodeArgs& a) {
  LF_CHECK(!(a.jsonl && a.binary), "--binary is for plain input; --jsonl writes JSON lines");
  const auto t0 = Clock::now();
  const tok::Tokenizer tok = tok::Tokenizer::load(a.tokenizer, a.pattern);
  if (a.verbose) fmt::print(stderr, "load {:.3f} s ({})\n", seconds_since(t0), a.tokenizer);
  tok::SpecialPolicy policy = tok::SpecialPolicy::parse(a.allow_special);
  policy.disallowed_as_text = a.ordinary;
  if (a.jsonl)
    encode_jsonl(tok, a, policy);
  else
    encode_plain(tok, a, policy);
}

LMFORGE_SUBCOMMAND("tokenizer", "encode", "Encode text into token ids", [](CLI::App& sub) {
  auto a = std::make_shared<EncodeArgs>();
  sub.add_option("--tokenizer", a->tokenizer, "tokenizer file: .tiktoken or tokenizer.json")
      ->required()
      ->check(CLI::ExistingFile);
  sub.add_option("--pattern", a->pattern,
                 "pre-tokenizer of a .tiktoken file: r50k_base, gpt2, cl100k_base, o200k_base "
                 "(default: from the file name)");
  sub.add_option("--threads", a->threads, "encoding threads (0: all cores; the ids do not depend on it)")
      ->capture_default_str();
  sub.add_option("--input", a->input, "input file, - for standard input")->capture_default_str();
  sub.add_option("--output", a->output, "output file, - for standard output")->capture_default_str();
  sub.add_option("--allow-special", a->allow_special,
                 "special tokens turned into their ids: all, none, or a comma-separated list; other "
                 "special-token text is an error")
      ->capture_default_str();
  sub.add_flag("--ordinary", a->ordinary,
               "special-token text that is not allowed is encoded as ordinary text instead of an error");
  sub.add_flag("--jsonl", a->jsonl, "input lines are {\"text\": ...}; output lines are {\"ids\": [...]}");
  sub.add_flag("--binary", a->binary, "write the ids as little-endian uint32 (4 bytes each) instead of text");
  sub.add_flag("--verbose", a->verbose, "print the time of each step to standard error");
  sub.callback([a] { run_encode(*a); });
});

}  // namespace
}  // namespace lmforge::cli
