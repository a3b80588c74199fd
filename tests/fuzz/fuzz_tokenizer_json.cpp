// Fuzzes the tokenizer.json loader (tokenizer/hf_json_file.cpp); a BPE tokenizer that loads must
// round-trip text through encode and decode, a WordLevel one must give one id per pre-tokenizer
// piece: the piece's token, or the unknown token.
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = lmforge::fuzz::input_path(".json");
  lmforge::fuzz::write_input(path, data, size);
  lmforge::fuzz::expect_result_or_error([&] {
    const lmforge::tok::Tokenizer t = lmforge::tok::Tokenizer::load_tokenizer_json(path);
    const std::string text = "Hello world, 123 ab\n\xC3\xA9";
    const std::vector<uint32_t> ids = t.encode_ordinary(text);
    if (const auto unk = t.unknown_id()) {
      const std::string seen = t.add_prefix_space() ? " " + text : text;  // text starts without a space
      const std::vector<std::string_view> pieces = t.pretokenizer().pieces(seen);
      if (ids.size() != pieces.size()) std::abort();
      for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] != *unk && (t.is_special(ids[i]) || t.token_bytes(ids[i]) != pieces[i])) std::abort();
    } else if (t.decode(ids) != text) {
      std::abort();
    }
  });
  return 0;
}
