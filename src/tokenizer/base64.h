// Standard base64 (RFC 4648, '+' '/', '=' padding), as in .tiktoken files.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lmforge::tok {

std::string base64_encode(std::string_view bytes);
// nullopt if the text is not canonical padded base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace lmforge::tok
