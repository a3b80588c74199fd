// GPT-2's byte <-> character mapping, used by HF ByteLevel tokenizers to store byte strings as
// printable text: bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves (as code
// points), the other 68 bytes map in order to U+0100..U+0143 (so ' ' is 'Ġ', '\n' is 'Ċ').
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lmforge::tok {

// The character (code point) that stands for byte b.
uint32_t byte_to_unicode(uint8_t b);
// The byte-level text of a byte string (valid UTF-8).
std::string bytes_to_byte_level(std::string_view bytes);
// The bytes of a byte-level text; nullopt if it holds invalid UTF-8 or a character outside the
// mapping, whose code point is then put in *bad_char (when given).
std::optional<std::string> byte_level_to_bytes(std::string_view text, uint32_t* bad_char = nullptr);

}  // namespace lmforge::tok
