// Fuzzes the safetensors reader (train/safetensors.h): header length, JSON header, dtypes,
// shapes, offsets, checksum; every tensor that loads is read through, as weights are.
#include "fuzz/fuzz_util.h"
#include "train/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = lmforge::fuzz::input_path(".safetensors");
  lmforge::fuzz::write_input(path, data, size);
  lmforge::fuzz::expect_result_or_error([&] {
    const lmforge::train::SafetensorsFile f(path);
    for (const auto& name : f.names()) {
      const lmforge::Tensor t = f.get(name);
      (void)t.numel();
      lmforge::fuzz::expect_result_or_error([&] { f.get_finite_float(name); });
    }
  });
  return 0;
}
