// Fuzzes the token shard reader (data/shard.h): header words, width, token count against the
// file size; the ids of a shard that opens are read and range-checked as training does.
#include <vector>

#include "data/shard.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = lmforge::fuzz::input_path(".bin");
  lmforge::fuzz::write_input(path, data, size);
  lmforge::fuzz::expect_result_or_error([&] {
    const lmforge::data::ShardReader r(path);
    std::vector<uint32_t> ids(std::min<uint64_t>(r.size(), 64));
    r.read(r.size() - ids.size(), ids);
    if (r.size() > 0) (void)r.at(r.size() - 1);
    r.validate_ids(r.info().vocab_size);
  });
  return 0;
}
