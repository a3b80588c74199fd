// Registry cases for indexing and view ops.
#include "ops/op_registry.h"

namespace lmforge::test {
namespace {

Tensor ids(std::vector<int64_t> v, Shape s) { return from_vector<int64_t>(v, s); }

LMFORGE_OP_CASE({.op = "embedding", .name = "repeated ids (gradient accumulates)",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {5, 3}), ids({4, 0, 4, 2, 4, 1}, {2, 3})}; },
                 .run = [](const TensorList& in) { return embedding(in[0], in[1]); },
                 .reference = [](const TensorList& in) {
                   HostTensor w(in[0]), out({2, 3, 3});
                   std::vector<int64_t> id = to_vector<int64_t>(in[1]);
                   for (int64_t t = 0; t < 6; ++t)
                     for (int64_t c = 0; c < 3; ++c) out.v[t * 3 + c] = w({id[t], c});
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "index_select", .name = "dim 1, i32 index",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 4}), from_vector<int32_t>(std::vector<int32_t>{3, 3, 0}, {3})}; },
                 .run = [](const TensorList& in) { return index_select(in[0], 1, in[1]); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({3, 3});
                   const int64_t idx[] = {3, 3, 0};
                   for (int64_t r = 0; r < 3; ++r)
                     for (int64_t j = 0; j < 3; ++j) out({r, j}) = x({r, idx[j]});
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "gather", .name = "dim 1",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 4}), ids({0, 3, 3, 1, 1, 2}, {2, 3})}; },
                 .run = [](const TensorList& in) { return gather(in[0], 1, in[1]); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({2, 3});
                   std::vector<int64_t> id = to_vector<int64_t>(in[1]);
                   for (int64_t r = 0; r < 2; ++r)
                     for (int64_t j = 0; j < 3; ++j) out({r, j}) = x({r, id[r * 3 + j]});
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "scatter_add", .name = "dim 0 with collisions",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 2}), ids({2, 0, 2, 0, 2, 1, 0, 0}, {4, 2}), rand_f64(g, {4, 2})}; },
                 .run = [](const TensorList& in) { return scatter_add(in[0], 0, in[1], in[2]); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), s(in[2]);
                   std::vector<int64_t> id = to_vector<int64_t>(in[1]);
                   for (int64_t j = 0; j < 4; ++j)
                     for (int64_t c = 0; c < 2; ++c) x({id[j * 2 + c], c}) += s({j, c});
                   return x.tensor();
                 }});
LMFORGE_OP_CASE({.op = "cat", .name = "dim 1, a strided part and an empty part",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {2, 3}), rand_f64(g, {2, 0}), rand_f64(g, {2, 2})}; },
                 .run = [](const TensorList& in) { return cat({in[0], in[1], in[2]}, 1); },
                 .reference = [](const TensorList& in) {
                   HostTensor a(in[0]), c(in[2]), out({2, 5});
                   for (int64_t r = 0; r < 2; ++r) {
                     for (int64_t j = 0; j < 3; ++j) out({r, j}) = a({r, j});
                     for (int64_t j = 0; j < 2; ++j) out({r, 3 + j}) = c({r, j});
                   }
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "stack", .name = "new dim 1",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 3}), rand_f64_strided(g, {2, 3})}; },
                 .run = [](const TensorList& in) { return stack({in[0], in[1]}, 1); },
                 .reference = [](const TensorList& in) {
                   HostTensor a(in[0]), b(in[1]), out({2, 2, 3});
                   for (int64_t r = 0; r < 2; ++r)
                     for (int64_t j = 0; j < 3; ++j) { out({r, 0, j}) = a({r, j}); out({r, 1, j}) = b({r, j}); }
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "split", .name = "uneven parts recombined with weights",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {5, 2})}; },
                 .run = [](const TensorList& in) {
                   TensorList p = split(in[0], {2, 3}, 0);
                   return cat({mul(p[1], 3.0), p[0]}, 0);
                 },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({5, 2});
                   for (int64_t j = 0; j < 3; ++j) for (int64_t c = 0; c < 2; ++c) out({j, c}) = 3 * x({2 + j, c});
                   for (int64_t j = 0; j < 2; ++j) for (int64_t c = 0; c < 2; ++c) out({3 + j, c}) = x({j, c});
                   return out.tensor();
                 }});

// View ops: compared against the same elements read by index.
LMFORGE_OP_CASE({.op = "reshape", .name = "of a transposed tensor (copies)",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 4})}; },
                 .run = [](const TensorList& in) { return mul(reshape(in[0], {2, 6}), 2.0); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]);
                   for (double& v : x.v) v *= 2;
                   x.shape = {2, 6};
                   return x.tensor();
                 }});
LMFORGE_OP_CASE({.op = "permute", .name = "3-d",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 3, 4})}; },
                 .run = [](const TensorList& in) { return permute(in[0], {2, 0, 1}); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({4, 2, 3});
                   for (int64_t a = 0; a < 2; ++a) for (int64_t b = 0; b < 3; ++b) for (int64_t c = 0; c < 4; ++c)
                     out({c, a, b}) = x({a, b, c});
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "narrow", .name = "dim 1",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 5})}; },
                 .run = [](const TensorList& in) { return narrow(in[0], 1, 1, 3); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({3, 3});
                   for (int64_t r = 0; r < 3; ++r) for (int64_t j = 0; j < 3; ++j) out({r, j}) = x({r, j + 1});
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "slice", .name = "step 2",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {7, 2})}; },
                 .run = [](const TensorList& in) { return slice(in[0], 0, 1, 7, 2); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({3, 2});
                   for (int64_t r = 0; r < 3; ++r) for (int64_t j = 0; j < 2; ++j) out({r, j}) = x({1 + 2 * r, j});
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "expand", .name = "new leading dim and size-1 dim",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 1})}; },
                 .run = [](const TensorList& in) { return expand(in[0], {2, 3, 4}); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({2, 3, 4});
                   for (int64_t a = 0; a < 2; ++a) for (int64_t b = 0; b < 3; ++b) for (int64_t c = 0; c < 4; ++c)
                     out({a, b, c}) = x({b, 0});
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "squeeze", .name = "dim 1",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 1, 2})}; },
                 .run = [](const TensorList& in) { return squeeze(in[0], 1); },
                 .reference = [](const TensorList& in) { HostTensor x(in[0]); x.shape = {3, 2}; return x.tensor(); }});
LMFORGE_OP_CASE({.op = "unsqueeze", .name = "last",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 2})}; },
                 .run = [](const TensorList& in) { return unsqueeze(in[0], -1); },
                 .reference = [](const TensorList& in) { HostTensor x(in[0]); x.shape = {3, 2, 1}; return x.tensor(); }});
LMFORGE_OP_CASE({.op = "contiguous", .name = "of a transpose",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 4})}; },
                 .run = [](const TensorList& in) { return contiguous(in[0]); },
                 .reference = [](const TensorList& in) { return HostTensor(in[0]).tensor(); }});
LMFORGE_OP_CASE({.op = "to_device", .name = "cpu to cpu is the identity",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 4})}; },
                 .run = [](const TensorList& in) { return mul(in[0].to(Device::cpu()), 1.5); },
                 .reference = [](const TensorList& in) { HostTensor x(in[0]); for (double& v : x.v) v *= 1.5; return x.tensor(); }});

}  // namespace
}  // namespace lmforge::test
