// The launchers of backend/cuda/*.cu. CudaBackend (cuda_backend*.cpp) validates tensors, turns
// them into the plain pointers, sizes and strides below and calls these; each .cu file holds the
// kernels of one op family and its launchers. Every launcher enqueues on ctx.stream and checks
// the launch. Shapes follow backend/backend.h.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "backend/cuda/cuda_context.h"
#include "backend/cuda/layout.h"

namespace lmforge::cuda {

// ---- busy_wait.cu ----
// One thread spins on the device clock for `seconds` (the lead-in of profile timings).
void launch_busy_wait(const CudaContext& ctx, double seconds);

// ---- memory.cu ----
void launch_copy(const CudaContext& ctx, DType src_t, const void* src, DType dst_t, void* dst, const Layout<2>& L);
// Writes the element bit pattern `bits` (elem_size bytes: 1, 2, 4 or 8) everywhere in dst.
void launch_fill(const CudaContext& ctx, int elem_size, void* dst, const Layout<1>& L, uint64_t bits);
void launch_arange(const CudaContext& ctx, DType t, void* dst, int64_t n, double start, double step);
// Arguments already validated as the CPU fills do (core/random_kernels.cpp).
void launch_random(const CudaContext& ctx, DType t, void* dst, int64_t n, const RandomArgs& a);

// ---- elementwise.cu ----
void launch_unary(const CudaContext& ctx, UnaryOp op, DType t, const void* x, void* out, const Layout<2>& L,
                  double alpha, double beta);
void launch_binary(const CudaContext& ctx, BinaryOp op, DType t, const void* a, const void* b, void* out,
                   const Layout<3>& L);  // out bool for comparisons, else t
void launch_where(const CudaContext& ctx, DType t, const void* cond, const void* a, const void* b, void* out,
                  const Layout<4>& L);

// ---- reduce.cu: x contiguous [outer, r, inner] -> out [outer, inner] ----
void launch_reduce(const CudaContext& ctx, ReduceOp op, DType t, const void* x, DType out_t, void* out, int64_t outer,
                   int64_t r, int64_t inner);
void launch_argmax(const CudaContext& ctx, DType t, const void* x, int64_t* out, int64_t outer, int64_t r,
                   int64_t inner);
// Row-wise over contiguous [rows, n].
void launch_cumsum(const CudaContext& ctx, DType t, const void* x, void* out, int64_t rows, int64_t n);
void launch_softmax(const CudaContext& ctx, DType t, const void* x, void* y, int64_t rows, int64_t n, bool log);
void launch_softmax_backward(const CudaContext& ctx, DType t, const void* y, const void* dy, void* dx, int64_t rows,
                             int64_t n, bool log);
void launch_logsumexp(const CudaContext& ctx, DType t, const void* x, void* out, int64_t rows, int64_t n);

// ---- sort.cu: rows of contiguous [rows, n]; the first k of each sorted row ----
void launch_sort_rows(const CudaContext& ctx, DType t, const void* x, int64_t rows, int64_t n, int64_t k,
                      bool descending, void* values, int64_t* indices);
// ---- sort_cub.cu: stable ascending sort of (key, value) pairs on the low end_bit bits ----
void sort_pairs(const CudaContext& ctx, const uint64_t* keys_in, uint64_t* keys_out, const int32_t* values_in,
                int32_t* values_out, int64_t n, int end_bit);

// ---- index.cu: contiguous operands viewed as [outer, n, inner]; index [m] or [outer, m, inner] ----
// Writes the first position whose index is outside [0, n) to ctx.error_position.
void launch_check_indices(const CudaContext& ctx, DType it, const void* index, int64_t count, int64_t n);
// Cross-entropy targets: each must be in [0, v) or equal ignore_index.
void launch_check_targets(const CudaContext& ctx, DType it, const void* targets, int64_t count, int64_t v,
                          int64_t ignore_index);
void launch_index_select(const CudaContext& ctx, DType t, DType it, const void* x, const void* index, void* out,
                         int64_t outer, int64_t n, int64_t inner, int64_t m);
void launch_index_add(const CudaContext& ctx, DType t, DType it, void* dst, const void* index, const void* src,
                      int64_t outer, int64_t n, int64_t inner, int64_t m);
void launch_gather(const CudaContext& ctx, DType t, DType it, const void* x, const void* index, void* out,
                   int64_t outer, int64_t n, int64_t inner, int64_t m);
void launch_scatter_add(const CudaContext& ctx, DType t, DType it, void* dst, const void* index, const void* src,
                        int64_t outer, int64_t n, int64_t inner, int64_t m);

// ---- gemm_fallback.cu: SIMT GEMM for what cuBLAS does not take (fp8, odd layouts) ----
struct GemmParams {
  const void* a;
  const void* b;
  void* c;
  bool trans_a, trans_b;
  int64_t m, n, k, lda, ldb, ldc, batch, stride_a, stride_b, stride_c;
  double alpha, beta;
};
void launch_gemm_fallback(const CudaContext& ctx, DType ab_t, DType c_t, const GemmParams& p);

// ---- grouped_gemm.cu: Backend::grouped_gemm in one launch, `ends` read on the device ----
// Products (weight_grad false): a [rows, k], b [groups, n, k] (trans_b) or [groups, k, n], c [rows, n].
// Weight gradients: a [rows, k], b [rows, n], c [groups, k, n]. All contiguous, of dtype t.
struct GroupedGemmParams {
  const void* a;
  const void* b;
  const void* ends;  // [groups], i64 (ends_i64) or i32
  void* c;
  int64_t rows, k, n, groups;
  bool ends_i64, trans_b, weight_grad;
};
void launch_grouped_gemm(const CudaContext& ctx, DType t, const GroupedGemmParams& p);

// ---- gemm_quantized.cu: Backend::gemm_quantized, the weights dequantised in registers,
// batch-invariant. x [m, k] and out [m, n] of one dtype (f32, bf16, f16), weight [n, k] (i8 or fp8
// e4m3 with scale [n, k / group_size] f32; bf16, f16 or f32 with scale null), bias [n] of x's dtype
// or null; all contiguous ----
struct QuantizedGemmParams {
  const void* x;
  const void* weight;
  const float* scale;
  const void* bias;
  void* out;
  int64_t m, n, k, group_size;
};
bool gemm_quantized_weight_supported(DType w_t);
void launch_gemm_quantized(const CudaContext& ctx, DType x_t, DType w_t, const QuantizedGemmParams& p);

// ---- loss.cu: logits [N, V] contiguous, targets [N] ----
void launch_cross_entropy_forward(const CudaContext& ctx, DType t, DType it, const void* logits, const void* targets,
                                  int64_t n, int64_t v, const CrossEntropyArgs& args, void* loss, void* lse);
void launch_cross_entropy_backward(const CudaContext& ctx, DType t, DType it, const void* logits, const void* targets,
                                   const void* lse, const void* dloss, int64_t n, int64_t v,
                                   const CrossEntropyArgs& args, void* dlogits);

// ---- norm.cu: x, y, dy, dx [N, C] contiguous; weight / bias [C] contiguous in the compute type
// (f32, f64 for f64 x) or null; statistics and dweight / dbias in the compute type. residual and
// sum (forward, both null or both set) and dsum (backward, or null) [N, C] like x: the fused
// residual add of backend/backend.h ----
void launch_rms_norm_forward(const CudaContext& ctx, DType t, const void* x, const void* residual, const void* w,
                             double eps, void* y, void* sum, void* rstd, int64_t n, int64_t c);
void launch_rms_norm_backward(const CudaContext& ctx, DType t, const void* x, const void* w, const void* rstd,
                              const void* dy, const void* dsum, void* dx, void* dweight, int64_t n, int64_t c);
void launch_layer_norm_forward(const CudaContext& ctx, DType t, const void* x, const void* residual, const void* w,
                               const void* b, double eps, void* y, void* sum, void* mean, void* rstd, int64_t n,
                               int64_t c);
void launch_layer_norm_backward(const CudaContext& ctx, DType t, const void* x, const void* w, const void* mean,
                                const void* rstd, const void* dy, const void* dsum, void* dx, void* dweight,
                                void* dbias, int64_t n, int64_t c);

// ---- rope.cu: x, out [B, T, H, D], last dim contiguous ----
struct RopeParams {
  const void* x;
  void* out;
  int64_t nb, nt, nh, d;
  int64_t xs0, xs1, xs2, os0, os1, os2;
  double theta;
  int64_t position_offset;
  bool interleaved, inverse;
  const int32_t* positions = nullptr;  // device [B]: row b's step t at positions[b] + t (angles computed per call)
};
void launch_rope(const CudaContext& ctx, DType t, const RopeParams& p);

// ---- swiglu.cu: [N·F] flat ----
void launch_swiglu_forward(const CudaContext& ctx, DType t, const void* gate, const void* up, void* out, int64_t n);
void launch_swiglu_backward(const CudaContext& ctx, DType t, const void* gate, const void* up, const void* dout,
                            void* dgate, void* dup, int64_t n);

// ---- adamw.cu ----
void launch_adamw(const CudaContext& ctx, DType param_t, DType grad_t, void* param, const void* grad, void* exp_avg,
                  void* exp_avg_sq, int64_t n, const AdamWArgs& args);

// ---- multi-tensor launches (adamw.cu, multi_tensor_reduce.cu) ----
// One launch covers a list of tensors: block b handles chunk b, kMultiTensorChunk elements of one
// tensor. The table (multi_tensor_table.h) is in device memory: n_tensors MultiTensorEntry, then
// n_chunks MultiTensorChunk.
inline constexpr int64_t kMultiTensorChunk = 65536;
enum class MultiTensorKind : int32_t { None = 0, F32 = 1, BF16 = 2, F16 = 3 };
struct MultiTensorEntry {
  void* param = nullptr;       // AdamW: f32 parameter
  const void* x = nullptr;     // AdamW: f32 gradient; sum of squares: the tensor (kind x_kind)
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  void* copy = nullptr;        // AdamW: compute copy (kind copy_kind) or null
  int64_t n = 0;
  double weight_decay = 0;
  MultiTensorKind x_kind = MultiTensorKind::F32;
  MultiTensorKind copy_kind = MultiTensorKind::None;
};
struct MultiTensorChunk {
  int64_t tensor = 0;          // index into the entries
  int64_t start = 0;           // first element of the chunk
};
// AdamW on f32 parameters with f32 gradients (the update of launch_adamw, each tensor with its
// weight decay), writing the compute copies. device_grad_scale (device f64, or null): the gradient
// multiplier instead of args.grad_scale, read by every block; a non-finite value leaves
// everything unchanged.
void launch_adamw_multi(const CudaContext& ctx, const void* table, int64_t n_tensors, int64_t n_chunks,
                        const AdamWArgs& args, const double* device_grad_scale);
// *out (f64, device) = Σ x² over every entry's x: f32 partial per chunk (partials: n_chunks
// floats of scratch), then one block adds the partials in f64 in a fixed order.
void launch_multi_sum_of_squares(const CudaContext& ctx, const void* table, int64_t n_tensors, int64_t n_chunks,
                                 float* partials, double* out);

// ---- attention.cu ----
// Element (b, i, h, p) of q/k/v/out/dout/dq/dk/dv at base + b·s0 + i·s1 + h·s2 + p.
struct AttnOperand {
  const void* base = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0;
};
struct AttnParams {
  AttnOperand q, k, v, out, dout, dq, dk, dv;
  const void* mask = nullptr;  // additive, compute type; element (b, h, t, s) by the strides below
  int64_t mask_sb = 0, mask_sh = 0, mask_st = 0, mask_ss = 0;
  void* lse = nullptr;         // [B, H, T] compute type
  int64_t nb = 0, nt = 0, ns = 0, nh = 0, nhkv = 0, d = 0, dv_dim = 0;
  double scale = 1.0;
  bool causal = false;
};
void launch_attention_forward(const CudaContext& ctx, DType t, const AttnParams& p);
void launch_attention_backward(const CudaContext& ctx, DType t, const AttnParams& p);
// Δ [B, H, T] (compute type) = Σ_c dO·O, the row term of the softmax gradient; both backward paths use it.
void launch_attention_delta(const CudaContext& ctx, DType t, const AttnParams& p, void* delta);

// dst[b, positions[b] + t, :] = src[b, t, :] for rows inside [0, ns); `row` elements of `es`
// bytes per (b, t), contiguous; strides in elements.
void launch_copy_rows_at(const CudaContext& ctx, size_t es, const void* src, void* dst, const int32_t* positions,
                         int64_t nb, int64_t nt, int64_t ns, int64_t row, int64_t src_s0, int64_t src_s1,
                         int64_t dst_s0, int64_t dst_s1);

// ---- attention_decode.cu: T <= kAttentionDecodeMaxRows query rows, no mask, split over the keys
// (FlashDecoding). Returns false (launching nothing) for shapes it does not take: a mask, more
// rows, or a group of query heads too large for its shared memory. key_len: device int32 [B] or
// null (see the file) ----
constexpr int64_t kAttentionDecodeMaxRows = 8;
constexpr int64_t kAttentionDecodeMaxRowsPerGroup = 64;  // T · H / Hkv
bool launch_attention_decode(const CudaContext& ctx, DType t, const AttnParams& p, const int32_t* key_len);

// ---- attention_mma.cu: tensor cores, bf16 / f16, head dim 64 or 128 (D == Dv), no mask, every
// operand's base and strides 16-byte aligned (the backend checks; attention.cu takes the rest) ----
void launch_attention_mma_forward(const CudaContext& ctx, DType t, const AttnParams& p);
void launch_attention_mma_backward(const CudaContext& ctx, DType t, const AttnParams& p);
// ---- attention_wgmma.cu: the same on Hopper (sm_90a), head dim 64; the two launchers above call
// these when ctx.wgmma_attention is set ----
void launch_attention_wgmma_forward(const CudaContext& ctx, DType t, const AttnParams& p);
void launch_attention_wgmma_backward(const CudaContext& ctx, DType t, const AttnParams& p);

}  // namespace lmforge::cuda
