// The hand-written scanners against PCRE2 running the same patterns, and the \s question.
#include <gtest/gtest.h>

#include "tokenizer/known_encodings.h"
#include "tokenizer/pcre2_regex.h"
#include "tokenizer/unicode.h"
#include "tokenizer_test_util.h"

namespace lmforge::tok {
namespace {

using Pieces = std::vector<std::string_view>;

std::vector<std::string> as_strings(const Pieces& p) { return {p.begin(), p.end()}; }

class TokenizerPretokenizer : public ::testing::TestWithParam<std::string> {};

// PCRE2 (with \s rewritten to White_Space) must cut every golden text exactly as the scanner.
TEST_P(TokenizerPretokenizer, ScannerEqualsPcre2OnGoldenTexts) {
  const Pretokenizer scanner = Pretokenizer::named(GetParam());
  const Pretokenizer pcre = Pretokenizer::pcre2(scanner.pattern());
  ASSERT_TRUE(scanner.uses_scanner());
  ASSERT_FALSE(pcre.uses_scanner());
  for (bool special : {false, true})
    for (const auto& c : testing::golden(GetParam(), special))
      EXPECT_EQ(as_strings(scanner.pieces(c.text)), as_strings(pcre.pieces(c.text))) << "line " << c.line;
}

TEST_P(TokenizerPretokenizer, ScannerEqualsPcre2OnRandomUnicode) {
  const Pretokenizer scanner = Pretokenizer::named(GetParam());
  const Pretokenizer pcre = Pretokenizer::pcre2(scanner.pattern());
  std::mt19937_64 rng(42);
  const auto& table = unicode::ClassTable::get();
  for (int i = 0; i < 3000; ++i) {
    std::string text = testing::random_unicode(rng, 1 + rng() % 40);
    // Random scalars may be assigned in utf8proc's Unicode version but not PCRE2's; keep the
    // comparison to text whose every code point PCRE2 and utf8proc classify alike.
    bool same_tables = true;
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    for (size_t k = 0; k < text.size() && same_tables;) {
      uint32_t cp = 0;
      const uint32_t len = unicode::utf8_decode(p + k, p + text.size(), cp);
      if (cp > 0x7F) {
        static const detail::Pcre2Regex letter("^\\p{L}", false), number("^\\p{N}", false), mark("^\\p{M}", false);
        size_t s, e;
        const uint8_t f = table.flags(cp);
        const std::string one(text, k, len);
        same_tables = letter.find(one.data(), one.size(), 0, s, e) == bool(f & unicode::kLetter) &&
                      number.find(one.data(), one.size(), 0, s, e) == bool(f & unicode::kNumber) &&
                      mark.find(one.data(), one.size(), 0, s, e) == bool(f & unicode::kMark);
      }
      k += len;
    }
    if (!same_tables) continue;
    ASSERT_EQ(as_strings(scanner.pieces(text)), as_strings(pcre.pieces(text))) << "case " << i << ": " << text;
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerPretokenizer, ::testing::Values("r50k_base", "cl100k_base", "o200k_base"));

// PCRE2's own \s (UCP) differs from Unicode White_Space in exactly one code point, U+180E.
TEST(TokenizerPcre2, RawWhiteSpaceDiffersOnlyAtU180E) {
  const detail::Pcre2Regex raw("^\\s", false), rewritten("^\\s", true), raw_not("^\\S", false),
      rewritten_not("^\\S", true);
  std::vector<uint32_t> differ;
  std::string buf;
  for (uint32_t cp = 0; cp < 0x110000; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    buf.clear();
    testing::append_utf8(buf, cp);
    size_t s, e;
    const bool ws = unicode::is_white_space(cp);
    ASSERT_EQ(rewritten.find(buf.data(), buf.size(), 0, s, e), ws) << std::hex << cp;
    ASSERT_EQ(rewritten_not.find(buf.data(), buf.size(), 0, s, e), !ws) << std::hex << cp;
    if (raw.find(buf.data(), buf.size(), 0, s, e) != ws) differ.push_back(cp);
    ASSERT_NE(raw.find(buf.data(), buf.size(), 0, s, e), raw_not.find(buf.data(), buf.size(), 0, s, e));
  }
  EXPECT_EQ(differ, std::vector<uint32_t>{0x180E});
}

TEST(TokenizerPcre2, RawPatternSplitsU180EDifferently) {
  const std::string text = "x \xE1\xA0\x8Ey";  // "x", " ", U+180E, "y"
  const Pretokenizer scanner = Pretokenizer::named("cl100k_base");
  const Pretokenizer raw = Pretokenizer::pcre2(scanner.pattern(), false);
  // tiktoken: U+180E is not a space, so " " + U+180E is punctuation-like text.
  EXPECT_EQ(as_strings(scanner.pieces(text)), (std::vector<std::string>{"x", " \xE1\xA0\x8E", "y"}));
  EXPECT_EQ(as_strings(raw.pieces(text)), (std::vector<std::string>{"x", " ", "\xE1\xA0\x8Ey"}));
  EXPECT_EQ(as_strings(Pretokenizer::pcre2(scanner.pattern()).pieces(text)), as_strings(scanner.pieces(text)));
}

TEST(TokenizerPcre2, RewriteKeepsEscapesAndClasses) {
  using detail::rewrite_white_space;
  EXPECT_EQ(rewrite_white_space("a\\\\s"), "a\\\\s");        // an escaped backslash, then 's'
  EXPECT_EQ(rewrite_white_space("\\Q\\s\\E"), "\\Q\\s\\E");  // quoted
  EXPECT_EQ(rewrite_white_space("[[:alpha:]\\d]"), "[[:alpha:]\\d]");
  EXPECT_NE(rewrite_white_space("[^\\s]").find("\\x{3000}"), std::string::npos);
  EXPECT_EQ(rewrite_white_space("\\s").front(), '[');
}

TEST(TokenizerPcre2, ArbitraryPatternKeepsEveryByte) {
  const Pretokenizer p = Pretokenizer::regex("[a-z]+");
  EXPECT_EQ(p.name(), "regex");
  EXPECT_EQ(as_strings(p.pieces("ab, cd!\xFF")), (std::vector<std::string>{"ab", ", ", "cd", "!\xFF"}));
  // An empty-matching pattern never loops or loses text.
  const Pretokenizer q = Pretokenizer::regex("x*");
  EXPECT_EQ(as_strings(q.pieces("abxxc")), (std::vector<std::string>{"ab", "xx", "c"}));
  EXPECT_THROW(Pretokenizer::regex("(unclosed"), Error);
}

TEST(TokenizerPretokenizerNames, KnownPatternsGetTheScanner) {
  for (const std::string name : {"r50k_base", "cl100k_base", "o200k_base"}) {
    const Pretokenizer p = Pretokenizer::regex(std::string(find_known_encoding(name)->pattern));
    EXPECT_TRUE(p.uses_scanner());
    EXPECT_EQ(p.name(), name);
  }
  // Python tiktoken's spelling of cl100k.
  const Pretokenizer py = Pretokenizer::regex(
      R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)");
  EXPECT_EQ(py.name(), "cl100k_base");
  EXPECT_EQ(Pretokenizer::named("gpt2").name(), "r50k_base");
  EXPECT_THROW(Pretokenizer::named("p50k_base"), Error);
}

TEST(TokenizerPretokenizerCases, KnownSplits) {
  auto pieces = [](const char* name, std::string_view text) {
    return as_strings(Pretokenizer::named(name).pieces(text));
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("r50k_base", "I'm  here\n\nnow"), (V{"I", "'m", " ", " here", "\n", "\n", "now"}));
  EXPECT_EQ(pieces("r50k_base", "I'M"), (V{"I", "'", "M"}));  // case-sensitive
  EXPECT_EQ(pieces("cl100k_base", "I'M 12345"), (V{"I", "'M", " ", "123", "45"}));
  EXPECT_EQ(pieces("cl100k_base", "x \n\n  y"), (V{"x", " \n\n", " ", " y"}));
  EXPECT_EQ(pieces("cl100k_base", "it\xC5\xBF"), (V{"it\xC5\xBF"}));   // long s is a letter
  EXPECT_EQ(pieces("cl100k_base", "'\xC5\xBFx"), (V{"'\xC5\xBF", "x"}));  // (?i)'s matches 'ſ
  EXPECT_EQ(pieces("o200k_base", "HelloWORLD'S"), (V{"Hello", "WORLD'S"}));
  EXPECT_EQ(pieces("o200k_base", "a/b\n/c"), (V{"a", "/b", "\n", "/c"}));
  EXPECT_EQ(pieces("o200k_base", "x!!\n/"), (V{"x", "!!\n/"}));
  // Invalid UTF-8 bytes are single "other" characters and survive.
  EXPECT_EQ(pieces("cl100k_base", "a\xFF\xFE b"), (V{"a", "\xFF\xFE", " b"}));
}

TEST(TokenizerPretokenizerCases, LongRunsAreSinglePieces) {
  const std::string as(100000, 'a'), spaces(100000, ' ');
  for (const char* name : {"r50k_base", "cl100k_base", "o200k_base"}) {
    const Pretokenizer p = Pretokenizer::named(name);
    EXPECT_EQ(p.pieces(as).size(), 1u);
    EXPECT_EQ(p.pieces(spaces).size(), 1u);
    EXPECT_EQ(p.pieces(spaces + "x").size(), 2u);  // 99999 spaces, " x"
  }
}

}  // namespace
}  // namespace lmforge::tok
