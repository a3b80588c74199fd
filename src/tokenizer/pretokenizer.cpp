#include "tokenizer/pretokenizer.h"

#include "core/error.h"
#include "tokenizer/known_encodings.h"
#include "tokenizer/pcre2_regex.h"
#include "tokenizer/scanner.h"

namespace lmforge::tok {

struct Pretokenizer::Impl {
  enum class Kind { None, Scanner, Regex } kind = Kind::None;
  detail::ScannerKind scanner = detail::ScannerKind::R50k;
  std::string pattern;
  std::string name = "none";
  std::unique_ptr<detail::Pcre2Regex> regex;
};

Pretokenizer::Pretokenizer() : Pretokenizer(none()) {}

Pretokenizer Pretokenizer::none() {
  static const auto impl = std::make_shared<const Impl>();
  return Pretokenizer(impl);
}

Pretokenizer Pretokenizer::named(std::string_view name) {
  const KnownEncoding* e = find_known_encoding(name);
  LF_CHECK(e != nullptr, "unknown pre-tokenizer name '{}' (known: {})", name, known_encoding_names());
  auto impl = std::make_shared<Impl>();
  impl->kind = Impl::Kind::Scanner;
  impl->scanner = e->scanner;
  impl->pattern = std::string(e->pattern);
  impl->name = std::string(e->name);
  return Pretokenizer(std::move(impl));
}

Pretokenizer Pretokenizer::regex(std::string pattern) {
  if (const KnownEncoding* e = find_known_encoding_by_pattern(pattern)) {
    auto impl = std::make_shared<Impl>();
    impl->kind = Impl::Kind::Scanner;
    impl->scanner = e->scanner;
    impl->pattern = std::move(pattern);  // keep the spelling we were given
    impl->name = std::string(e->name);
    return Pretokenizer(std::move(impl));
  }
  return pcre2(std::move(pattern));
}

Pretokenizer Pretokenizer::pcre2(std::string pattern, bool unicode_white_space) {
  LF_CHECK(!pattern.empty(), "empty split pattern");
  auto impl = std::make_shared<Impl>();
  impl->kind = Impl::Kind::Regex;
  impl->regex = std::make_unique<detail::Pcre2Regex>(pattern, unicode_white_space);
  impl->pattern = std::move(pattern);
  impl->name = "regex";
  return Pretokenizer(std::move(impl));
}

const std::string& Pretokenizer::pattern() const { return impl_->pattern; }
std::string_view Pretokenizer::name() const { return impl_->name; }
bool Pretokenizer::uses_scanner() const { return impl_->kind == Impl::Kind::Scanner; }
bool Pretokenizer::is_none() const { return impl_->kind == Impl::Kind::None; }

size_t Pretokenizer::next_pieces(std::string_view text, size_t pos, size_t* ends, size_t cap) const {
  if (pos >= text.size()) return 0;
  switch (impl_->kind) {
    case Impl::Kind::Scanner:
      return detail::scan_pieces(impl_->scanner, text.data(), text.size(), pos, ends, cap);
    case Impl::Kind::Regex:
      return impl_->regex->scan_pieces(text.data(), text.size(), pos, ends, cap);
    case Impl::Kind::None:
      break;
  }
  ends[0] = text.size();
  return 1;
}

void Pretokenizer::split(std::string_view text, const std::function<void(std::string_view)>& f) const {
  for_each_piece(text, f);
}

std::vector<std::string_view> Pretokenizer::pieces(std::string_view text) const {
  std::vector<std::string_view> out;
  for_each_piece(text, [&](std::string_view p) { out.push_back(p); });
  return out;
}

// Why the rule below is safe for all three scanners: let text[p-2] be an ASCII character that
// is not whitespace, text[p-1] == '\n' and text[p] an ASCII letter or digit.
//  * No piece spans p: the only alternatives that can consume a '\n' are whitespace runs
//    (which stop before text[p]) and the [\r\n]* / [\r\n/]* tails after punctuation (which stop
//    at a letter or digit); the optional prefixes [^\r\n\p{L}\p{N}] and ' ' exclude '\n'.
//  * Nothing before p depends on text at or after p: the whitespace run holding p-1 is exactly
//    "\n" (text[p-2] is not whitespace), which every pattern takes as one piece whether a
//    non-space or the end of the text follows it; every greedy run before it stopped at or
//    before p-1.
//  * Matching from p depends only on text[p..] (the patterns have no look-behind).
bool Pretokenizer::is_cut_point(std::string_view text, size_t p) const {
  if (impl_->kind != Impl::Kind::Scanner || p < 2 || p >= text.size()) return false;
  const auto a = static_cast<unsigned char>(text[p - 2]);
  const auto c = static_cast<unsigned char>(text[p]);
  const bool a_ok = a < 0x80 && a != ' ' && !(a >= '\t' && a <= '\r');
  const bool c_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  return a_ok && text[p - 1] == '\n' && c_ok;
}

}  // namespace lmforge::tok
