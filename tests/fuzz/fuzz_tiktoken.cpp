// Fuzzes the .tiktoken loader (tokenizer/tiktoken_file.cpp) with the r50k_base encoding's
// pattern and special token; a tokenizer that loads must round-trip text through encode and
// decode whenever it has every single byte as a token.
#include <cstdlib>

#include "fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = lmforge::fuzz::input_path("_r50k_base.tiktoken");
  lmforge::fuzz::write_input(path, data, size);
  lmforge::fuzz::expect_result_or_error([&] {
    const lmforge::tok::Tokenizer t = lmforge::tok::Tokenizer::load_tiktoken(path, "r50k_base");
    const std::string text = "Hello world, 123 ab\n";
    const std::vector<uint32_t> ids = t.encode_ordinary(text);
    if (t.decode(ids) != text) std::abort();
  });
  return 0;
}
