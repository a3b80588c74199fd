// Fuzzes the tokenizer.json loader (tokenizer/hf_json_file.cpp); a tokenizer that loads must
// round-trip text through encode and decode.
#include <cstdlib>

#include "fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = lmforge::fuzz::input_path(".json");
  lmforge::fuzz::write_input(path, data, size);
  lmforge::fuzz::expect_result_or_error([&] {
    const lmforge::tok::Tokenizer t = lmforge::tok::Tokenizer::load_tokenizer_json(path);
    const std::string text = "Hello world, 123 ab\n\xC3\xA9";
    if (t.decode(t.encode_ordinary(text)) != text) std::abort();
  });
  return 0;
}
