// Op cases for grouped_matmul (ops/grouped_matmul.h): segments of rows times their group's
// matrix, against a plain loop; empty segments, rows past the last segment, a transposed x, i32
// ends. The larger cases have rows of whole 16-byte chunks in bf16 / f16, so on a GPU they take
// the tensor-core kernel: a segment that spans two 128-row tiles, reductions of several 64-deep
// slices with a ragged last one (k in the forward, n in dx, the segment's rows in dw).
#include "ops/op_registry.h"

namespace lmforge::test {
namespace {

Tensor grouped_reference(const TensorList& in) {
  const HostTensor x(in[0]), w(in[1]);
  const std::vector<int64_t> ends = to_vector<int64_t>(in[2]);
  const int64_t m = x.shape[0], k = x.shape[1], n = w.shape[1];
  HostTensor out({m, n});
  int64_t start = 0;
  for (size_t g = 0; g < ends.size(); ++g) {
    for (int64_t r = start; r < ends[g]; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t i = 0; i < k; ++i) acc += x({r, i}) * w({int64_t(g), j, i});
        out({r, j}) = acc;
      }
    start = ends[g];
  }
  return out.tensor();
}

OpCase grouped_case(std::string name, int64_t m, int64_t k, int64_t n, std::vector<int64_t> ends, bool strided_x,
                    bool i32_ends = false) {
  const int64_t groups = int64_t(ends.size());
  return {.op = "grouped_matmul",
          .name = std::move(name),
          .inputs =
              [=](Generator& g) {
                return TensorList{strided_x ? rand_f64_strided(g, {m, k}) : rand_f64(g, {m, k}),
                                  rand_f64(g, {groups, n, k}),
                                  i32_ends ? from_vector<int32_t>(std::vector<int32_t>(ends.begin(), ends.end()), {groups})
                                           : from_vector<int64_t>(ends, {groups})};
              },
          .run = [](const TensorList& in) { return grouped_matmul(in[0], in[1], in[2]); },
          .reference = grouped_reference};
}

LMFORGE_OP_CASE(grouped_case("three groups", 9, 5, 4, {2, 6, 9}, false));
LMFORGE_OP_CASE(grouped_case("an empty group and rows past the last end (dropped)", 10, 6, 3, {3, 3, 7, 8}, false));
LMFORGE_OP_CASE(grouped_case("transposed x, one group", 6, 4, 5, {6}, true));
LMFORGE_OP_CASE(grouped_case("i32 ends", 7, 3, 2, {0, 4, 5}, false, /*i32_ends=*/true));
LMFORGE_OP_CASE(grouped_case("a segment over two 128-row tiles, empty ones, dropped rows", 150, 16, 24,
                             {0, 130, 130, 141}, false));
LMFORGE_OP_CASE(grouped_case("k of four 64-deep slices", 20, 200, 8, {7, 7, 15}, false));
LMFORGE_OP_CASE(grouped_case("n of four 64-deep slices (the reduction of dx)", 20, 8, 200, {3, 20}, false));

}  // namespace
}  // namespace lmforge::test
