// Activation recomputation ("activation checkpointing"): run a piece of the forward pass without
// keeping its intermediate tensors, and run it again during backward to get them back.
//
//   TensorList out = checkpoint("block", [&](const TensorList& in) { return block(in); }, {x}, &gen);
//
// The forward runs `fn` with grad mode off, so only `inputs` are kept for backward (and `fn`'s
// parameters, which live anyway). Backward runs `fn` again with grad mode on, on copies of the
// inputs that require grad where the originals do, and back-propagates the outputs' gradients
// through that tape: parameter gradients accumulate as in an ordinary backward, the inputs'
// gradients are returned. `rng` (may be null) is the generator `fn` draws from (dropout): its
// state at the forward is restored for the recomputation, and put back afterwards, so the
// recomputation sees the same masks and later draws are unchanged.
//
// `fn` must be a deterministic function of its inputs, its parameters and `rng`, and must not
// change its parameters. Undefined inputs and outputs are allowed (passed through as undefined).
// Without grad mode, or when no input requires grad, `fn` simply runs (there is no tape to cut).
#pragma once

#include <functional>

#include "autograd/function.h"
#include "core/random_kernels.h"

namespace lmforge {

using CheckpointFn = std::function<TensorList(const TensorList&)>;

TensorList checkpoint(const char* name, const CheckpointFn& fn, const TensorList& inputs, Generator* rng = nullptr);

// True while a checkpoint()'s backward runs its function again (on this thread): code with side
// effects beyond its outputs (statistics, counters) skips them, the first run having done them.
bool is_recomputing();

}  // namespace lmforge
