// Fuzzes the run configuration (train/config.h): TOML syntax, keys, types and every limit and
// cross-key check. A config that validates must have sizes that allocate sanely.
#include <cstdlib>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "nn/model_limits.h"
#include "train/config.h"
#include "train/config_limits.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  lmforge::fuzz::expect_result_or_error([&] {
    const lmforge::train::RunConfig c = lmforge::train::parse_run_config(text, "fuzz.toml");
    const int64_t params = c.model.parameter_count();
    if (params <= 0 || params > lmforge::nn::limits::kMaxParameters) std::abort();
    if (c.tokens_per_micro_batch() <= 0 || c.tokens_per_micro_batch() > lmforge::train::limits::kMaxTokensPerMicroBatch)
      std::abort();
    if (c.accumulation_steps() < 1) std::abort();
    // The resolved config loads back to the same text.
    if (lmforge::train::to_toml(lmforge::train::parse_run_config(lmforge::train::to_toml(c), "again.toml")) !=
        lmforge::train::to_toml(c))
      std::abort();
  });
  return 0;
}
