#include "dist/run_consistency.h"

#include <fstream>
#include <vector>

#include "core/error.h"
#include "ops/ops.h"

namespace lmforge::dist {

uint64_t fnv1a64(std::string_view bytes, uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t executable_build_id() {
  static const uint64_t id = [] {
    std::ifstream in("/proc/self/exe", std::ios::binary);
    uint64_t h = 0xcbf29ce484222325ull;
    std::vector<char> buf(1 << 20);
    while (in) {
      in.read(buf.data(), std::streamsize(buf.size()));
      h = fnv1a64(std::string_view(buf.data(), size_t(in.gcount())), h);
    }
    return h;
  }();
  return id;
}

void check_ranks_agree(Communicator& comm, Device device, const std::string& resolved_config, uint64_t build_id) {
  const int w = comm.world_size();
  if (w <= 1) return;
  const std::vector<int64_t> mine{int64_t(fnv1a64(resolved_config)), int64_t(build_id)};
  Tensor in = from_vector<int64_t>(mine, {2}, device);
  Tensor out = zeros({2 * int64_t(w)}, DType::I64, device);
  comm.all_gather(in, out);
  const std::vector<int64_t> all = to_vector<int64_t>(out.to(Device::cpu()));
  for (int r = 1; r < w; ++r) {
    LF_CHECK(all[size_t(2 * r + 1)] == all[1],
             "rank {} runs a different lmforge binary from rank 0 (build ids {:016x} and {:016x}): install the same "
             "build on every node", r, uint64_t(all[size_t(2 * r + 1)]), uint64_t(all[1]));
    LF_CHECK(all[size_t(2 * r)] == all[0],
             "rank {} resolved a different config from rank 0's: start every rank with the same --config file and "
             "--set overrides", r);
  }
}

}  // namespace lmforge::dist
