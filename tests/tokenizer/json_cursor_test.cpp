// JsonCursor (tokenizer/json_cursor.h): strings with every escape against hand-decoded bytes,
// numbers, errors at the right line:column, repeated keys, and agreement with nlohmann::json on
// which texts are JSON at all.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/json_cursor.h"

namespace lmforge::tok {
namespace {

// The message of the Error that skipping the one value of `text` throws ("" if none).
std::string skip_error(const std::string& text) {
  try {
    JsonCursor c(text, "t.json");
    c.skip_value();
    c.expect_end();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool nlohmann_accepts(const std::string& text) { return nlohmann::json::accept(text); }

TEST(JsonCursor, StringsDecodeEveryEscape) {
  const std::string text = R"("a\"b\\c\/d\b\f\n\r\tz\u0041\u00e9\u20AC\uD83D\uDE00\u0000.")";
  const std::string expected = std::string("a\"b\\c/d\b\f\n\r\tzA\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80") +
                               std::string(1, '\0') + ".";
  JsonCursor c(text, "t.json");
  std::string scratch;
  EXPECT_EQ(c.read_string(scratch), expected);
  EXPECT_EQ(nlohmann::json::parse(text).get<std::string>(), expected);
  EXPECT_EQ(c.offset(), text.size());
}

TEST(JsonCursor, AStringWithoutEscapesIsAViewIntoTheText) {
  const std::string text = "  \"caf\xC3\xA9 \xF0\x9F\x98\x80\" ";
  JsonCursor c(text, "t.json");
  std::string scratch;
  const std::string_view s = c.read_string(scratch);
  EXPECT_EQ(s, "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(s.data(), text.data() + 3);
  EXPECT_TRUE(scratch.empty());
}

TEST(JsonCursor, NumbersAreUnsignedIntegersOnlyWhenNlohmannSaysSo) {
  for (const std::string text : {"0", "7", "123", "2147483648", "18446744073709551615", "18446744073709551616",
                                 "-0", "-5", "1.0", "1e2", "1E+2", "0.5e-3", "99999999999999999999999"}) {
    JsonCursor c(text, "t.json");
    uint64_t v = 0;
    const bool is_unsigned = c.read_number(v);
    const nlohmann::json j = nlohmann::json::parse(text);
    EXPECT_EQ(is_unsigned, j.is_number_unsigned()) << text;
    if (is_unsigned) {
      EXPECT_EQ(v, j.get<uint64_t>()) << text;
    }
    EXPECT_EQ(c.offset(), text.size()) << text;
  }
}

TEST(JsonCursor, ObjectsAndArraysStepByStep) {
  const std::string text = "{ \"k\" : [1, \"x\", {\"y\": null}] , \"m\":true }";
  JsonCursor c(text, "t.json");
  std::string scratch;
  std::string_view key;
  bool first = true;
  c.begin_object();
  ASSERT_TRUE(c.next_key(first, key, scratch));
  EXPECT_EQ(key, "k");
  c.expect_colon();
  c.begin_array();
  bool in_first = true;
  ASSERT_TRUE(c.next_element(in_first));
  uint64_t v = 0;
  EXPECT_TRUE(c.read_number(v));
  EXPECT_EQ(v, 1u);
  ASSERT_TRUE(c.next_element(in_first));
  EXPECT_EQ(c.read_string(scratch), "x");
  ASSERT_TRUE(c.next_element(in_first));
  EXPECT_EQ(c.skip_value(), "{\"y\": null}");
  EXPECT_FALSE(c.next_element(in_first));
  ASSERT_TRUE(c.next_key(first, key, scratch));
  EXPECT_EQ(key, "m");
  EXPECT_EQ(c.last_key(), "m");
  c.expect_colon();
  EXPECT_EQ(c.skip_value(), "true");
  EXPECT_FALSE(c.next_key(first, key, scratch));
  c.expect_end();
}

TEST(JsonCursor, ValidTextsAreAcceptedLikeNlohmann) {
  const std::vector<std::string> valid = {
      "{}", "[]", " [ ] ", "\xEF\xBB\xBF{\"a\":1}", "{\"\":0}", "[true,false,null]", "-0", "0.5e-3",
      "\"\\u0000\"", "\"\x7F\"", "\"\xF4\x8F\xBF\xBF\"", "{\"a\":{\"b\":[{\"c\":\"d\"}]}}", "\r\n\t[1]\r\n",
      "[[],{},[[{}]]]", "\"\\uDBFF\\uDFFF\"", "1e-999", "-9223372036854775809"};
  for (const auto& text : valid) {
    EXPECT_TRUE(nlohmann_accepts(text)) << text;
    EXPECT_EQ(skip_error(text), "") << text;
  }
  // Nesting far deeper than a recursive reader's stack would survive.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  EXPECT_EQ(skip_error(deep), "");
}

// Each bad text with the line:column (hand-counted, in bytes) where it stops being JSON.
TEST(JsonCursor, ErrorsNameTheFileLineAndColumn) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{\n  \"a\": \"\\uD800x\"\n}", "2:15"},          // high surrogate, then no \u escape
      {"{\n  \"a\": \"\\uD800\\u0041\"\n}", "2:15"},    // high surrogate, then not a low one
      {"[\"\\uDC00\"]", "1:3"},                        // a low surrogate alone
      {"[\"a\\x\"]", "1:5"},                           // no such escape
      {"[\"\\u12G4\"]", "1:7"},                        // not a hex digit
      {"[\"a\tb\"]", "1:4"},                           // a raw control character
      {"[\"\xC0\x80\"]", "1:3"},                       // overlong UTF-8
      {"[\"\xED\xA0\x80\"]", "1:3"},                   // a UTF-8-encoded surrogate
      {"\n\n [\"ab\xE2\x82\"]", "3:6"},                // a truncated UTF-8 sequence
      {"[\"abc", "1:6"},                               // not closed
      {"[1,]", "1:4"},                                 // trailing comma
      {"{\"a\":1,}", "1:8"},                           // trailing comma in an object
      {"{\"a\" 1}", "1:6"},                            // no colon
      {"{1:2}", "1:2"},                                // a key that is not a string
      {"[1 2]", "1:4"},                                // no comma
      {"[01]", "1:3"},                                 // leading zero
      {"[1.]", "1:4"},                                 // no digit after '.'
      {"[-]", "1:3"},                                  // no digit after '-'
      {"[1e+]", "1:5"},                                // no exponent digits
      {"[tru]", "1:5"},                                // a cut literal
      {"[nul", "1:5"},                                 // a cut literal at the end
      {"{} x", "1:4"},                                 // text after the value
      {"", "1:1"},                                     // nothing at all
      {"  \n", "2:1"},                                 // only whitespace
      {"[\xEF\xBB\xBF]", "1:2"},                       // a byte order mark that is not at the start
      {"{\"a\":[1,\n2,\n{\"b\" : }]}", "3:8"},          // a missing value
      {"[0, 1e999]", "1:5"},                           // a number no double holds
      {"[-" + std::string(400, '7') + "]", "1:2"},     // the same
  };
  for (const auto& [text, at] : bad) {
    EXPECT_FALSE(nlohmann_accepts(text)) << text;
    const std::string e = skip_error(text);
    EXPECT_EQ(e.rfind("t.json:" + at + ": not valid JSON: ", 0), 0u) << text << " -> " << e;
  }
}

TEST(JsonCursor, RepeatedKeysAreErrorsNamingTheirObject) {
  auto expect_repeated = [](const std::string& text, const std::string& last_key, const std::string& message) {
    JsonCursor c(text, "t.json");
    c.set_last_key(last_key);
    try {
      c.skip_value();
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "t.json: key " + message + "; one of them would be dropped") << text;
    }
  };
  expect_repeated(R"({"a":1,"b":2,"a":3})", "", "'a' appears twice in the top-level object");
  expect_repeated(R"({"outer":{"b":1,"b":2}})", "", "'b' appears twice in 'outer'");
  expect_repeated(R"({"b":1,"b":2})", "decoder", "'b' appears twice in 'decoder'");
  // An object in an array takes the key read last before it, which may lie in the element before.
  expect_repeated(R"({"list":[{"x":1},{"y":1,"y":2}]})", "", "'y' appears twice in 'x'");
  expect_repeated(R"({"list":[{"y":1,"y":2}]})", "", "'y' appears twice in 'list'");
  // Equal after decoding is equal: "\u0061" is "a".
  expect_repeated(R"({"a":1,"\u0061":2})", "", "'a' appears twice in the top-level object");
  // The same key in different objects is fine.
  EXPECT_EQ(skip_error(R"({"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]})"), "");
}

}  // namespace
}  // namespace lmforge::tok
