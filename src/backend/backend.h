// The kernel interface every device implements. Ops (ops/) validate arguments, allocate outputs,
// choose layouts and record autograd; a Backend only computes. backend/cpu/ is the reference;
// backend/cuda/ must produce the same results (each kernel is tested against its CPU twin, and
// every op case of tests/ops/ runs on the GPU against the CPU).
//
// One shape for every kernel (the table LMFORGE_BACKEND_KERNELS below): a public, non-virtual
// entry point (Backend::gemm) checks the kernel's contract once for every backend (devices,
// shapes, dtypes, sizes: an Error naming the kernel and the argument), times the call when kernel
// profiling is on (op_profile.h), and calls the backend's protected do_ implementation
// (CpuBackend::do_gemm). supports() says which kernels and dtypes a backend has, so the op layer
// can compose what one lacks from other kernels.
//
// Contracts common to all kernels:
//  * All tensors passed to one call live on this backend's device (copy may cross to the host).
//  * "contiguous" below means Tensor::is_contiguous(); other arguments may be strided views.
//  * Floating kernels accept f64, f32, bf16, f16 (and fp8 where stated); low-precision inputs
//    are computed in f32 and rounded once on store. Accumulation is f32 (f64 for f64 inputs).
//  * Outputs are written, never accumulated into, unless the name says accumulate.
//  * Kernels throw Error for what the entry point cannot check cheaply (an index out of range).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lmforge {

enum class UnaryOp : uint8_t {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Square, Tanh, Sigmoid, Silu, Relu, GeluErf, GeluTanh,
  Affine,     // alpha * x + beta
  PowScalar,  // x ^ alpha
  Clamp,      // min(max(x, alpha), beta)
};

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,
  Eq, Ne, Lt, Le, Gt, Ge,  // output bool
  // Backward helpers, (a = forward input or output, b = incoming gradient):
  SiluBackward,      // a = x:  b * silu'(x)
  GeluErfBackward,   // a = x
  GeluTanhBackward,  // a = x
  SigmoidBackward,   // a = y:  b * y * (1 - y)
  TanhBackward,      // a = y:  b * (1 - y^2)
  ReluBackward,      // a = x:  b * (x > 0)
};

enum class ReduceOp : uint8_t { Sum, Max, Min, SumSquares };

struct GemmArgs {
  // C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] for b < batch, row-major:
  //   op(A) is [m, k]; A[i, p] at a + i*lda + p, or (trans_a) at a + p*lda + i.
  //   op(B) is [k, n]; B[p, j] at b + p*ldb + j, or (trans_b) at b + j*ldb + p.
  //   C[i, j] at c + i*ldc + j. Batch strides may be 0 (broadcast operand).
  // Tensors give device, dtype and base pointer (data_ptr()); a, b share one dtype; c is that
  // dtype or f32.
  Tensor a, b, c;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  double alpha = 1.0, beta = 0.0;
  // Epilogue (batch == 1 only), applied to the product before it is stored where the backend can
  // fuse it (cuBLASLt), else right after: C[i, j] += bias[j] (bias [n], C's dtype), then, with
  // gelu_tanh, C = gelu_tanh(C), the value before the GELU going to pre_gelu (C's dtype, same
  // m, n and ldc as C) when it is defined, for the backward.
  Tensor bias{};
  bool gelu_tanh = false;
  Tensor pre_gelu{};
  // With gelu_tanh_grad (no bias, no gelu_tanh, no bias_grad): C = gelu_tanh'(pre_gelu) · C,
  // pre_gelu then an input (the forward's saved pre-activation, laid out like C): the backward
  // through a GELU fused into the GEMM that makes the GELU's output gradient (cuBLASLt's DGELU
  // epilogue; its DGELU_BGRAD, which also sums the bias gradient, ran that GEMM at a third of the
  // plain rate on an H200, so the bias gradient comes from the weight-gradient GEMM instead).
  bool gelu_tanh_grad = false;
  // Otherwise alone (no bias, no GELU; batch == 1, trans_a with A contiguous: lda == m): also
  // bias_grad[i] = Σ_p op(A)[i, p] ([m], C's dtype), the bias gradient a linear layer's
  // weight-gradient GEMM dW = dzᵀ·x can produce on the side (cuBLASLt's BGRADB epilogue).
  Tensor bias_grad{};
  bool has_epilogue() const { return bias.defined() || gelu_tanh || gelu_tanh_grad || bias_grad.defined(); }
};

// Matrix products over contiguous row segments (ops/grouped_matmul.h: the expert GEMMs of a
// Mixture of Experts). `ends` [G] (i64 or i32, contiguous, on the device) splits the M rows into G
// segments: segment g is rows [ends[g-1], ends[g]) (ends[-1] = 0); rows at or after ends[G-1]
// belong to no segment. A backend reads `ends` where it computes, so a GPU never waits for the
// host: ends must be non-decreasing with ends[G-1] <= M, which the CPU checks (an Error naming the
// position) and a GPU enforces by reading ends[g] as min(M, max(0, ends[0..g])) instead.
//  * weight_grad false: a [M, K]; b [G, N, K] with trans_b (c[m] = a[m] · b[g]ᵀ) or b [G, K, N]
//    without (c[m] = a[m] · b[g]); c [M, N]; rows that belong to no segment are written 0.
//  * weight_grad true: a [M, P], b [M, Q]; c [G, P, Q], c[g] = a_gᵀ · b_g summed over the rows
//    of segment g (0 for an empty segment).
// a, b and c contiguous, one floating dtype; accumulation in f32 (f64 for f64), rounded once on
// store. Deterministic: each element is summed in an order that depends on the shapes alone.
struct GroupedGemmArgs {
  Tensor a, b, ends, c;
  bool trans_b = true;
  bool weight_grad = false;
};

class Backend;
// The epilogue of `g` done with the backend's elementwise kernels on the stored product: what a
// backend does when it cannot fuse it into the GEMM.
void apply_gemm_epilogue(Backend& backend, const GemmArgs& g);

// A GEMM against weights stored narrow for inference (infer/quantize.h), dequantised inside the
// kernel, never as a whole f32 copy:
//   out[m, n] = Σ_k x[m, k] · w(n, k) (+ bias[n]),   w(n, k) = weight[n, k] · scale[n, k / group_size]
// x [M, K] floating, contiguous; weight [N, K] contiguous, i8 or f8e4m3 (with scale) or bf16 / f16
// / f32 (scale undefined: w = weight); scale [N, K / group_size] f32 contiguous, group_size dividing K
// (group_size == K: one scale per output channel); bias [N] or undefined; out [M, N] contiguous,
// x's dtype. Batch-invariant: each out[m, n] is summed in one fixed order that depends on K alone,
// never on M or on how the work is split between threads, so a row's result is the same whatever
// other rows share the call (the deterministic-serving contract of infer/batch_generate.h).
struct QuantizedGemmArgs {
  Tensor x{}, weight{}, scale{}, bias{}, out{};
  int64_t group_size = 0;
};

struct CrossEntropyArgs {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  double z_loss = 0.0;
};

struct AttentionArgs {
  double scale = 0.0;
  bool causal = true;
  // Forward only, no mask: undefined, or i32 [B] on the device. Batch row b then has the keys
  // [0, key_lengths[b]) (clamped to [0, S]) and its queries are the last T positions before
  // key_lengths[b] (the causal offset is key_lengths[b] - T), read where the data lives: a KV cache
  // of fixed capacity decoded at a length a CUDA graph reads from device memory. Backends take
  // it for decoding shapes (T <= 8); a backend without a kernel for the shape throws.
  Tensor key_lengths = {};
};

struct AdamWArgs {
  double lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0;
  double bias_correction1 = 1, bias_correction2 = 1;  // 1 - beta^step
  double grad_scale = 1;  // every gradient is multiplied by this first
  // adamw_multi_step only. When defined (an f64 scalar on the parameters' device), the gradient
  // multiplier is read from it where the gradients live instead of taken from grad_scale, so the
  // host need not wait for the value (optim/clip.h makes it from the gradient norm). A value that
  // is not finite makes the step change nothing: parameters, moments and compute copies are left
  // as they were.
  Tensor device_grad_scale{};
};

// Values on their way from a device to the host (Backend::read_async).
class PendingRead {
 public:
  virtual ~PendingRead() = default;
  // Blocks until the values have arrived; the bytes of the tensor, in order.
  virtual const std::vector<unsigned char>& wait() = 0;
};

// Work recorded once by Backend::capture and queued again by replay(), on the same memory: the
// tensors the recorded kernels read and write must stay alive and at their addresses, and what
// changes between replays is the data in them (e.g. a decode step's token and positions).
class CapturedWork {
 public:
  virtual ~CapturedWork() = default;
  virtual void replay() = 0;
};

// One tensor of a multi-tensor AdamW step (Backend::adamw_multi_step): the single-tensor
// adamw_step's operands plus its own weight decay and an optional compute copy (bf16 or f16,
// the parameter's shape, contiguous) that receives the updated parameter rounded to its dtype
// in the same pass, bit-equal to casting the updated parameter.
struct AdamWTensor {
  Tensor param, grad, exp_avg, exp_avg_sq;
  double weight_decay = 0;
  Tensor compute_copy;  // undefined: none
};

struct RandomArgs {
  enum class Kind : uint8_t { Uniform, Normal, TruncatedNormal, Bernoulli, RandInt } kind;
  uint64_t seed = 0, offset = 0;  // Philox key and starting block (core/random_kernels.h)
  double a = 0, b = 1;            // uniform [a,b); normal mean a, std b; bernoulli p = a; randint [a,b)
  double lo = -2, hi = 2;         // truncated normal bounds (absolute)
};

// ---- the kernel table ----
// Every kernel, once: LMFORGE_BACKEND_KERNELS(X) expands X(return type, name, (parameters)) per
// kernel. From it come the public entry point `name` of Backend (non-virtual: it checks the
// contract, times the call while kernel profiling is on, then calls the backend), the protected
// virtual `do_name` each backend implements, and the Kernel enum that supports() takes. The
// comment above each entry is its contract; what the entry point checks is in backend_contract.cpp.
//
// Kernels of LMFORGE_BACKEND_OPTIONAL_KERNELS may be missing from a backend: its do_name then
// throws an Error naming the kernel and the device, supports() says false, and the op layer
// composes the result from other kernels where it can.
#define LMFORGE_BACKEND_KERNELS(X)                                                                                   \
  /* ---- memory ---- */                                                                                            \
  /* dst = src converted to dst's dtype; same shape; any strides. The CUDA backend also accepts a                   \
     contiguous src or dst on the CPU (host<->device copies). */                                                    \
  X(void, copy, (const Tensor& src, const Tensor& dst))                                                             \
  /* Starts copying a contiguous tensor to the host behind the work already queued, without                         \
     waiting for it (the CPU copies at once). */                                                                    \
  X(std::unique_ptr<PendingRead>, read_async, (const Tensor& src))                                                  \
  X(void, fill, (const Tensor& dst, double value))                                                                  \
  X(void, arange, (const Tensor& dst, double start, double step)) /* contiguous dst */                              \
  X(void, random, (const Tensor& dst, const RandomArgs& args))    /* contiguous dst */                              \
  /* ---- elementwise (inputs already broadcast to out's shape by strides, possibly 0) ---- */                      \
  X(void, unary, (UnaryOp op, const Tensor& x, const Tensor& out, double alpha = 0, double beta = 0))               \
  X(void, binary, (BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out))                               \
  X(void, where, (const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out))                         \
  /* ---- reductions: x contiguous viewed as [outer, r, inner] -> out [outer, inner] ---- */                        \
  X(void, reduce, (ReduceOp op, const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner))       \
  /* Index of the first maximum along r: out i64 [outer, inner]. */                                                 \
  X(void, argmax, (const Tensor& x, const Tensor& out, int64_t outer, int64_t r, int64_t inner))                    \
  /* Along the last dim of contiguous [rows, n]: cumulative sum. */                                                 \
  X(void, cumsum_last, (const Tensor& x, const Tensor& out))                                                        \
  /* ---- matrix products (GemmArgs above) ---- */                                                                  \
  X(void, gemm, (const GemmArgs& args))                                                                             \
  /* Products over row segments (GroupedGemmArgs above), in one pass on a GPU. */                                    \
  X(void, grouped_gemm, (const GroupedGemmArgs& args))                                                              \
  /* ---- row-wise ops on contiguous [rows, n] ---- */                                                              \
  X(void, softmax_forward, (const Tensor& x, const Tensor& y, bool log))                                            \
  /* dx = y * (dy - sum(dy*y)) or, for log, dy - softmax * sum(dy). */                                              \
  X(void, softmax_backward, (const Tensor& y, const Tensor& dy, const Tensor& dx, bool log))                        \
  X(void, logsumexp_last, (const Tensor& x, const Tensor& out))                                                     \
  /* Sorted top-k (ties: lower index first); values [rows, k], indices i64 [rows, k]. */                            \
  X(void, topk_last, (const Tensor& x, int64_t k, bool largest, const Tensor& values, const Tensor& indices))       \
  /* Stable sort of each row; indices i64. */                                                                       \
  X(void, sort_last, (const Tensor& x, bool descending, const Tensor& values, const Tensor& indices))               \
  /* ---- indexing (contiguous inputs viewed as [outer, n, inner] along the indexed dim) ---- */                    \
  /* out [outer, m, inner] = x[:, index[j], :] for index [m]. */                                                    \
  X(void, index_select,                                                                                             \
    (const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n, int64_t inner))             \
  /* dst[:, index[j], :] += src[:, j, :], deterministically (fixed order per destination row). */                   \
  X(void, index_add,                                                                                                \
    (const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n, int64_t inner))           \
  /* out[o, j, i] = x[o, index[o, j, i], i]; index and out [outer, m, inner]. */                                    \
  X(void, gather, (const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t n, int64_t inner)) \
  /* dst[o, index[o, j, i], i] += src[o, j, i], in increasing j. */                                                 \
  X(void, scatter_add,                                                                                              \
    (const Tensor& dst, const Tensor& index, const Tensor& src, int64_t outer, int64_t n, int64_t inner))           \
  /* dst[b, positions[b] + t] = src[b, t] for src [B, T, ...], dst [B, S, ...] of one dtype, the                    \
     dims after the second one contiguous block in both (strides of the first two free);                            \
     positions i32 [B] on the device; rows landing outside [0, S) are not written. Writes the new                   \
     steps of a KV cache at positions a CUDA graph reads from device memory. */                                     \
  X(void, copy_rows_at, (const Tensor& src, const Tensor& dst, const Tensor& positions))                            \
  /* ---- fused ops: f64, f32, bf16, f16 (kFusedDTypes) ---- */                                                     \
  /* logits [N, V] contiguous, targets [N]; loss [N] f32 (0 where ignored), lse [N] f32. */                         \
  X(void, cross_entropy_forward, (const Tensor& logits, const Tensor& targets, const CrossEntropyArgs& args,         \
                                  const Tensor& loss, const Tensor& lse))                                           \
  /* dlogits [N, V] = dloss[n] * d(loss[n])/d(logits[n, :]). dlogits may be logits itself (the op                   \
     then overwrites dead logits in place): read each element before writing it. */                                 \
  X(void, cross_entropy_backward, (const Tensor& logits, const Tensor& targets, const Tensor& lse,                   \
                                   const Tensor& dloss, const CrossEntropyArgs& args, const Tensor& dlogits))       \
  /* Norms over the last dim. x, y [N, C] contiguous; weight, bias [C] or undefined; mean, rstd                     \
     [N] f32. A residual add can ride along (the pre-norm residual stream):                                         \
      * forward: with `residual` defined (x's shape and dtype, contiguous), the norm is taken of                    \
        x + residual rounded to x's dtype, which is written to `sum` (defined with it, same                         \
        layout); y and the statistics are those of the rounded sum, as if the sum were stored by                   \
        an elementwise add and then normalised.                                                                     \
      * backward: x is the tensor that was normalised (the sum, for a fused add). With `dsum`                       \
        defined (x's layout), dx = dsum + the norm's gradient rounded to x's dtype, rounded again:                  \
        the two roundings of the norm's backward followed by an elementwise add.                                    \
     dweight, dbias [C] f32 (written, deterministic) when defined. */                                               \
  X(void, rms_norm_forward, (const Tensor& x, const Tensor& residual, const Tensor& weight, double eps,             \
                             const Tensor& y, const Tensor& sum, const Tensor& rstd))                               \
  X(void, rms_norm_backward, (const Tensor& x, const Tensor& weight, const Tensor& rstd, const Tensor& dy,          \
                              const Tensor& dsum, const Tensor& dx, const Tensor& dweight))                         \
  X(void, layer_norm_forward, (const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,   \
                               double eps, const Tensor& y, const Tensor& sum, const Tensor& mean,                  \
                               const Tensor& rstd))                                                                 \
  X(void, layer_norm_backward, (const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,      \
                                const Tensor& dy, const Tensor& dsum, const Tensor& dx, const Tensor& dweight,      \
                                const Tensor& dbias))                                                               \
  /* x, out [B, T, H, D] (strided allowed, last dim contiguous); inverse rotates by -angle (the backward).          \
     Step t of row b is at position position_offset + t, or with `positions` (i32 [B] on x's device;                \
     position_offset then 0) at positions[b] + t, read where the data lives (a CUDA graph replays it                \
     at whatever positions the tensor holds). */                                                                    \
  X(void, rope, (const Tensor& x, const Tensor& out, double theta, int64_t position_offset, bool interleaved,        \
                 bool inverse, const Tensor& positions = Tensor()))                                                 \
  /* gate, up, out [N, F] contiguous, one dtype; out = silu(gate)·up. fp8 has no fused kernel: ops/                 \
     composes it (supports() says false). */                                                                        \
  X(void, swiglu_forward, (const Tensor& gate, const Tensor& up, const Tensor& out))                                \
  X(void, swiglu_backward, (const Tensor& gate, const Tensor& up, const Tensor& dout, const Tensor& dgate,           \
                            const Tensor& dup))                                                                     \
  /* q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv] (last dim contiguous; strides otherwise                    \
     free); mask undefined or additive f32 broadcast to [B, H, T, S] by strides;                                    \
     out [B, T, H, Dv] contiguous; lse [B, H, T] f32 (log-sum-exp of the scaled scores). */                         \
  X(void, attention_forward, (const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,                \
                              const AttentionArgs& args, const Tensor& out, const Tensor& lse))                     \
  X(void, attention_backward, (const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,               \
                               const Tensor& out, const Tensor& lse, const Tensor& dout, const AttentionArgs& args, \
                               const Tensor& dq, const Tensor& dk, const Tensor& dv))                               \
  /* ---- optimizer: contiguous tensors; param f64, f32, bf16 or f16, its gradient of its dtype or                  \
     f32, the moments f32 (f64 for f64) ---- */                                                                     \
  X(void, adamw_step, (const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,    \
                       const AdamWArgs& args))                                                                      \
  /* Every tensor's AdamW step in few launches (one for all f32 parameters with f32 gradients on                    \
     the GPU). Each tensor gets exactly adamw_step's update with args.weight_decay replaced by its                  \
     own; the other AdamWArgs are shared. Accepts whatever adamw_step accepts. */                                   \
  X(void, adamw_multi_step, (const std::vector<AdamWTensor>& tensors, const AdamWArgs& args))                       \
  /* out (f64 scalar) = Σ over tensors of Σ x², for contiguous floating tensors (a gradient                         \
     norm in one pass). Deterministic: each tensor is summed in fixed chunks whose f32 partials                     \
     are added in a fixed order in f64. */                                                                          \
  X(void, multi_sum_of_squares, (const std::vector<Tensor>& tensors, const Tensor& out))

#define LMFORGE_BACKEND_OPTIONAL_KERNELS(X)                                                                          \
  /* Inference-only (QuantizedGemmArgs above). */                                                                   \
  X(void, gemm_quantized, (const QuantizedGemmArgs& args))

// The kernels, for supports() and profiles.
enum class Kernel : uint8_t {
#define LMFORGE_KERNEL_ENUM(ret, name, params) name,
  LMFORGE_BACKEND_KERNELS(LMFORGE_KERNEL_ENUM) LMFORGE_BACKEND_OPTIONAL_KERNELS(LMFORGE_KERNEL_ENUM)
#undef LMFORGE_KERNEL_ENUM
};
// The kernel's name as written in the table ("swiglu_forward").
const char* kernel_name(Kernel k);

// The dtypes of the fused kernels (cross-entropy, norms, RoPE, SwiGLU, attention).
bool is_fused_dtype(DType t);

// In a backend's class body: the override of every required kernel's do_name.
#define LMFORGE_KERNEL_OVERRIDE(ret, name, params) ret do_##name params override;
#define LMFORGE_BACKEND_KERNEL_OVERRIDES LMFORGE_BACKEND_KERNELS(LMFORGE_KERNEL_OVERRIDE)

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual void synchronize() {}
  // For profiles: the seconds the device spends on the work `f` queues (everything queued before
  // is finished first) and the seconds the host spends in f itself. The default measures both on
  // the host clock; the CUDA backend times the device with stream events behind a short busy-wait
  // kernel, so that f's host work (argument checks, launches) is not counted as device time.
  struct Timing {
    double device_s = 0, host_s = 0;
  };
  virtual Timing time_on_device(const std::function<void()>& f);
  // Records the kernels `f` queues instead of running them (a CUDA graph), for replay at a
  // fraction of the launch cost. f must not wait for the device (no copy to the host, no
  // synchronisation, no check that reads device memory): such a wait makes capture throw an
  // Error, and nothing of f has run. Memory f allocates stays reserved for the recording until it
  // is destroyed. Null where the backend cannot record (the CPU runs everything at once anyway).
  virtual std::unique_ptr<CapturedWork> capture(const std::function<void()>& f);
  // f32 GEMMs may run on tensor cores in TF32 (inputs rounded to 10 mantissa bits, f32
  // accumulation): faster, no longer within f32 rounding of the CPU. Off by default; backends
  // without TF32 (the CPU) ignore it.
  virtual void set_allow_tf32(bool) {}

  // Whether this backend has kernel `k` for data of dtype `t` (the dtype of the kernel's main
  // operand: x, gate, q, logits, a; the weight for gemm_quantized). Ops consult it where a
  // composite exists (ops/nn_ops.cpp's swiglu); the default says yes to every required kernel,
  // limits the fused ones to is_fused_dtype, and no to the optional ones.
  virtual bool supports(Kernel k, DType t) const;

  // The entry points: one per kernel of the table, with its parameters.
#define LMFORGE_KERNEL_ENTRY(ret, name, params) ret name params;
  LMFORGE_BACKEND_KERNELS(LMFORGE_KERNEL_ENTRY)
  LMFORGE_BACKEND_OPTIONAL_KERNELS(LMFORGE_KERNEL_ENTRY)
#undef LMFORGE_KERNEL_ENTRY

 protected:
  // What each backend implements: called by the entry point after the contract checks, so an
  // implementation checks only what is particular to it (an index range, a layout its kernels need).
#define LMFORGE_KERNEL_VIRTUAL(ret, name, params) virtual ret do_##name params = 0;
  LMFORGE_BACKEND_KERNELS(LMFORGE_KERNEL_VIRTUAL)
#undef LMFORGE_KERNEL_VIRTUAL
  // Optional kernels: the default throws an Error naming the kernel and the device.
#define LMFORGE_KERNEL_OPTIONAL(ret, name, params) virtual ret do_##name params;
  LMFORGE_BACKEND_OPTIONAL_KERNELS(LMFORGE_KERNEL_OPTIONAL)
#undef LMFORGE_KERNEL_OPTIONAL

 private:
  // Runs `call` (the do_ implementation); while kernel profiling is on (op_profile.h), an outermost
  // call is timed by time_on_device and recorded under key() ("gemm bf16->f32"). key is evaluated
  // only then, so a call costs one flag test more than the bare virtual call.
  template <class Key, class Call>
  decltype(auto) run(const Key& key, Call&& call);
  void record_profiled(const std::string& key, const std::function<void()>& call);
  static bool profiling();
};

// The backend for a device (the CPU backend always exists; CUDA when built in and a GPU is there).
Backend& backend_for(Device d);
inline Backend& backend_for(const Tensor& t) { return backend_for(t.device()); }

}  // namespace lmforge
