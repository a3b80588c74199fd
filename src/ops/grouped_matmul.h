// Grouped matrix products over contiguous row segments: the expert GEMMs of a Mixture-of-Experts
// layer, where the rows (token copies) are sorted by expert and expert g owns one segment.
//
//   x [M, K], w [G, N, K], ends [G] (i64 or i32, on x's device): segment g is the rows
//   [ends[g-1], ends[g]) (ends[-1] = 0); ends is non-decreasing and ends[G-1] <= M.
//   grouped_matmul(x, w, ends) [M, N]: out[m] = w[g(m)] · x[m]   (each segment a Linear layer)
//   Rows at or after ends[G-1] belong to no group (tokens dropped by a capacity limit): their
//   output is 0 and their gradient too.
//
// Backward: dx[m] = dy[m] · w[g(m)] (a grouped product with w not transposed) and
// dw[g] = dy_gᵀ · x_g over the segment's rows (0 for an empty segment). Both are deterministic.
// Low-precision inputs multiply in f32 as matmul does.
//
// The segments' bounds are data and stay where they are: each product is one call of the
// backend's grouped_gemm kernel, which reads `ends` on the device (a GPU runs it as one launch
// and the host never waits). The CPU checks ends (an Error naming the position); a GPU, which
// cannot report without a wait, reads a bad ends as clamped (backend/backend.h). The simple
// per-expert loop that a MoE layer is tested against lives in nn/moe.cpp (MoE::forward_reference).
#pragma once

#include "core/tensor.h"

namespace lmforge {

Tensor grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ends);

}  // namespace lmforge
