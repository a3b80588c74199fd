// Fuzzes encoding and decoding of arbitrary bytes with the r50k_base and cl100k_base
// tokenizers: valid UTF-8 or not, encode_ordinary never fails, decoding its ids as bytes gives x
// back byte for byte (strict decoding: x or an Error for invalid UTF-8), every id is in the
// vocabulary, and encode with every special allowed agrees with it on
// text without special tokens. Decoding arbitrary id lists is either text or an Error.
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

namespace {

const lmforge::tok::Tokenizer& tokenizer(int which) {
  static const lmforge::tok::Tokenizer r50k =
      lmforge::tok::Tokenizer::load(std::string(LMFORGE_FIXTURES_DIR) + "/tokenizers/r50k_base.tiktoken");
  static const lmforge::tok::Tokenizer cl100k =
      lmforge::tok::Tokenizer::load(std::string(LMFORGE_FIXTURES_DIR) + "/tokenizers/cl100k_base.tiktoken");
  return which == 0 ? r50k : cl100k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const lmforge::tok::Tokenizer& t = tokenizer(data[0] & 1);
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::vector<uint32_t> ids = t.encode_ordinary(text);
  for (uint32_t id : ids)
    if (!t.has_id(id) || t.is_special(id)) std::abort();
  if (t.decode(ids, lmforge::tok::DecodeMode::Bytes) != text) std::abort();
  // Strict decoding is the text when it is valid UTF-8, else an Error; lossy decoding never fails.
  lmforge::fuzz::expect_result_or_error([&] {
    if (t.decode(ids) != text) std::abort();
  });
  (void)t.decode(ids, lmforge::tok::DecodeMode::Lossy);
  if (text.find("<|") == std::string_view::npos && t.encode(text, lmforge::tok::SpecialPolicy::all()) != ids)
    std::abort();
  // The same bytes read as ids.
  std::vector<uint32_t> raw(size / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
  lmforge::fuzz::expect_result_or_error([&] { (void)t.decode(raw); });
  return 0;
}
