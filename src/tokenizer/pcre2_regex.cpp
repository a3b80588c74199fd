#include "tokenizer/pcre2_regex.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace lmforge::tok::detail {
namespace {

// White_Space as class items, and its complement over U+0000..U+10FFFF.
constexpr const char* kWhiteSpaceItems =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";
constexpr const char* kNonWhiteSpaceItems =
    "\\x{0}-\\x{8}\\x{e}-\\x{1f}\\x{21}-\\x{84}\\x{86}-\\x{9f}\\x{a1}-\\x{167f}\\x{1681}-\\x{1fff}"
    "\\x{200b}-\\x{2027}\\x{202a}-\\x{202e}\\x{2030}-\\x{205e}\\x{2060}-\\x{2fff}\\x{3001}-\\x{10ffff}";

// Per-thread match state: match data and a JIT stack are not shareable between threads, while
// the compiled code is.
struct ThreadMatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  ThreadMatchState() {
    if (stack && context) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState state;
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

std::string rewrite_white_space(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  size_t i = 0;
  while (i < p.size()) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      if (e == 'Q') {  // literal text up to \E
        const size_t stop = p.find("\\E", i + 2);
        const size_t upto = stop == std::string_view::npos ? p.size() : stop + 2;
        out.append(p.substr(i, upto - i));
        i = upto;
        continue;
      }
      if (e == 's' || e == 'S') {
        const char* items = e == 's' ? kWhiteSpaceItems : kNonWhiteSpaceItems;
        if (in_class) {
          out += items;
        } else {
          out += '[';
          out += items;
          out += ']';
        }
        i += 2;
        continue;
      }
      out += c;
      out += e;
      i += 2;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      ++i;
      if (i < p.size() && p[i] == '^') out += p[i++];
      if (i < p.size() && p[i] == ']') out += p[i++];  // a leading ']' is literal
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // [:alpha:]
      const size_t stop = p.find(":]", i + 2);
      if (stop != std::string_view::npos) {
        out.append(p.substr(i, stop + 2 - i));
        i = stop + 2;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
    ++i;
  }
  return out;
}

Pcre2Regex::Pcre2Regex(const std::string& pattern, bool unicode_white_space)
    : compiled_(unicode_white_space ? rewrite_white_space(pattern) : pattern) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled_.data()), compiled_.size(),
                        PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
  LF_CHECK(code_ != nullptr, "split pattern does not compile (PCRE2, at offset {}): {}: {}", offset,
           pcre2_message(err), pattern);
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Pcre2Regex::~Pcre2Regex() { pcre2_code_free(code_); }

bool Pcre2Regex::find(const char* text, size_t n, size_t from, size_t& start, size_t& end) const {
  ThreadMatchState& st = thread_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text);
  uint32_t options = 0;
  while (from <= n) {
    const int rc = pcre2_match(code_, subject, n, from, options, st.data, st.context);
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (options == 0) return false;
      // No non-empty match at the empty match's position: step over one character.
      uint32_t cp;
      const uint32_t len = from < n ? unicode::utf8_decode(subject + from, subject + n, cp) : 1;
      from += len == 0 ? 1 : len;
      options = 0;
      continue;
    }
    LF_CHECK(rc >= 0, "split pattern failed while matching (PCRE2): {}", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
    if (ov[1] > ov[0]) {
      start = ov[0];
      end = ov[1];
      return true;
    }
    // An empty match: look for a non-empty one starting at the same place.
    from = ov[0];
    options = PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
  }
  return false;
}

size_t Pcre2Regex::scan_pieces(const char* text, size_t n, size_t pos, size_t* ends, size_t cap) const {
  size_t k = 0;
  while (pos < n && k + 2 <= cap) {
    size_t ms, me;
    if (!find(text, n, pos, ms, me)) {
      ends[k++] = n;
      return k;
    }
    if (ms > pos) ends[k++] = ms;  // unmatched text is a piece of its own
    ends[k++] = me;
    pos = me;
  }
  return k;
}

}  // namespace lmforge::tok::detail
