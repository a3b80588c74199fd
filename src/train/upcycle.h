// Upcycling: a Mixture-of-Experts model whose experts start as the FFN of a trained dense model.
//
// Every tensor the two models share (embeddings, attention, norms, the FFN of layers that stay
// dense) is copied. In each MoE layer the routed experts start from the dense FFN: with
// d_ff_expert = d_ff every expert is a copy; with fine-grained experts (d_ff = G·d_ff_expert)
// expert e is slice e mod G of the FFN's hidden units, its down projection multiplied by G. Shared
// experts start with a zero down projection (they add nothing at step 0), and the router starts
// small: N(0, router_std²) with full copies, zero with slices.
//
// Step 0 reproduces the dense model where the gating allows it: with normalised gates (softmax
// with normalize_gates, or sigmoid) and full copies, Σ g_i·FFN(x) = FFN(x) whatever the router
// picks; with slices, a zero router gives every token experts 0..top_k-1 with gates 1/top_k,
// which sums each slice top_k/G times: the dense output when top_k is a multiple of G.
// Expert choice and unnormalised gates change the output from the start (tests state which).
#pragma once

#include <memory>

#include "core/random_kernels.h"
#include "nn/transformer.h"

namespace lmforge::train {

// `dense`'s weights into a new model of `moe_config` (resolved here). Error naming the key when
// the two disagree on anything but the MoE keys, or when d_ff is not a multiple of d_ff_expert.
std::unique_ptr<nn::Transformer> upcycle(const nn::Transformer& dense, const nn::ModelConfig& moe_config,
                                         Generator& router_gen, double router_std = 1e-3);

}  // namespace lmforge::train
