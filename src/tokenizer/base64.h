// Standard base64 (RFC 4648, '+' '/', '=' padding), as in .tiktoken files.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lmforge::tok {

std::string base64_encode(std::string_view bytes);
// nullopt if the text is not canonical padded base64.
std::optional<std::string> base64_decode(std::string_view text);
// The same into `out` (replacing its content, reusing its storage); false if the text is not
// canonical padded base64 (out is then unspecified). The loaders' hot path: no allocation for
// short tokens.
bool base64_decode_into(std::string_view text, std::string& out);

}  // namespace lmforge::tok
