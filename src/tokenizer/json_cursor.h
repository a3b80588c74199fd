// A pull (cursor) reader over JSON text, for loaders of big JSON files (tokenizer.json) that
// consume their large parts straight into flat tables, with no DOM and no string per value.
//
// Accepts exactly the JSON that nlohmann::json::parse accepts: a UTF-8 byte order mark at the
// very start is skipped; whitespace is space, tab, CR and LF; strings must be valid UTF-8 with no
// raw control characters, take the escapes \" \\ \/ \b \f \n \r \t \uXXXX, and a \u escape of a
// UTF-16 surrogate must be a high one followed by a low one; numbers follow the JSON grammar (no
// leading zeros, no '+', no bare '.'), and one whose value overflows a double (1e999) is an
// error too. Every syntax error throws Error
// "{path}:{line}:{col}: not valid JSON: {what}", line and column (1-based, in bytes) of the byte
// where the text stopped being JSON (one past the end for a truncated text).
//
// Keys given twice: skip_value() rejects them in every object it passes, as does a caller that
// reads an object itself through duplicate_key(). The message names the object by the key whose
// value it is; an object in an array takes the last key read before it (the way a SAX parser
// that remembers its last key sees it), and last_key() keeps that state across calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lmforge::tok {

class JsonCursor {
 public:
  // `text` must outlive the cursor and every view it returns; `path` names it in errors.
  JsonCursor(std::string_view text, std::string path);

  // The next byte that is not whitespace ('\0' at the end of the text; the cursor stays there).
  char peek();
  size_t offset() const { return pos_; }
  // Moves back to an offset this cursor returned (to re-read a value another way).
  void rewind(size_t offset) { pos_ = offset; }
  // Error unless only whitespace is left.
  void expect_end();

  // Objects: begin_object() consumes '{'. next_key() returns false at the closing '}' (consumed),
  // else reads the next key (a view as read_string gives) and leaves the cursor before its ':',
  // so that a caller checks for a repeated key before the rest is read; expect_colon() then
  // moves to the value. `first` is the caller's state for one object, true before its first key.
  void begin_object();
  bool next_key(bool& first, std::string_view& key, std::string& scratch);
  void expect_colon();
  // Arrays: begin_array() consumes '['; next_element() returns false at the closing ']'
  // (consumed), else leaves the cursor at the next element.
  void begin_array();
  bool next_element(bool& first);

  // A string: a view into the text if it holds no escape, else its decoded bytes in `scratch`.
  std::string_view read_string(std::string& scratch);
  // A number. True, with the value, for a non-negative integer that fits 64 bits (nlohmann's
  // number_unsigned); false for any other number (negative, with a fraction or exponent, or too
  // big), whose value is then unspecified.
  bool read_number(uint64_t& value);
  // Skips one value of any kind, checking it as described above, and returns its text.
  std::string_view skip_value();

  // The key last read by next_key() (or set by the caller, which read keys some other way).
  const std::string& last_key() const { return last_key_; }
  void set_last_key(std::string_view key) { last_key_.assign(key); }

  [[noreturn]] void fail(size_t at, std::string_view what) const;
  // "{path}: key '{key}' appears twice in {the object}"; `object` is the key whose value the
  // object is, "" for the top-level object.
  [[noreturn]] void duplicate_key(std::string_view key, std::string_view object) const;
  const std::string& path() const { return path_; }

 private:
  void skip_scalar();
  void expect_literal(std::string_view word);
  uint32_t read_hex4(size_t at);

  std::string_view text_;
  std::string path_;
  size_t pos_ = 0;
  std::string last_key_;
};

}  // namespace lmforge::tok
