// GEMM through cuBLASLt (f32, bf16, f16 operands; f32 accumulation; C of the operand dtype or f32)
// and cuBLAS (f64).
//
// Row-major to column-major: a row-major [r, c] matrix with leading dimension ld is the
// column-major [c, r] matrix with the same ld, so C = op(A)·op(B) (row-major) is computed as
// Cᵀ = op(B)ᵀ·op(A)ᵀ (column-major): the library's first operand is our B, its second our A,
// and its m, n are our n, m; the transpose flags carry over unchanged.
//
// Plans: creating the descriptors and asking cuBLASLt's heuristic for an algorithm costs tens of
// microseconds, as much as a small GEMM. A training step repeats the same few dozen problems, so
// each context caches, per problem (dtypes, transposes, sizes, leading dims, batch strides and
// pointer alignments), the descriptors and the algorithm, and later calls only launch.
//
// f32 runs with CUBLAS_COMPUTE_32F (no TF32), so results stay within f32 rounding of the CPU,
// unless TF32 was allowed (Backend::set_allow_tf32; CUBLAS_COMPUTE_32F_FAST_TF32).
// cuBLAS results are deterministic for a given problem on a given GPU (no split-K atomics are
// enabled), which the determinism tests check.
#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace lmforge::cuda {

namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: return CUDA_R_64F;
  }
}

uint32_t alignment(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a >>= 1;
  return a;
}

// RAII for the cuBLASLt descriptors of one call.
struct LtDescriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDescriptors() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void set_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
  const int32_t count = static_cast<int32_t>(batch);
  LF_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
  LF_CUBLAS_CHECK(
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
}

// One cached problem: its descriptors and the algorithm the heuristic chose (usable = false when
// cuBLASLt has none, so the caller falls back without asking again).
struct GemmPlan {
  LtDescriptors d;
  cublasLtMatmulAlgo_t algo{};
  bool usable = false;
};

using GemmPlanKey = std::array<int64_t, 20>;

// The cuBLASLt epilogue for g's (bias, GELU, pre-GELU output), or DEFAULT.
cublasLtEpilogue_t lt_epilogue(const GemmArgs& g) {
  if (g.gelu_tanh_grad) return CUBLASLT_EPILOGUE_DGELU;
  // Our op(A) is the library's second operand (B): its sums over k are BGRADB's.
  if (g.bias_grad.defined()) return CUBLASLT_EPILOGUE_BGRADB;
  const bool bias = g.bias.defined(), aux = g.pre_gelu.defined();
  if (!g.gelu_tanh) return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  if (bias) return aux ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_BIAS;
  return aux ? CUBLASLT_EPILOGUE_GELU_AUX : CUBLASLT_EPILOGUE_GELU;
}

}  // namespace

struct GemmPlanCache {
  std::mutex mutex;
  std::map<GemmPlanKey, std::unique_ptr<GemmPlan>> plans;
};

namespace {

// Problems beyond this many distinct shapes are rare (a varying sequence length in generation);
// the cache is then emptied rather than grown without bound.
constexpr size_t kMaxGemmPlans = 4096;

std::unique_ptr<GemmPlan> make_plan(const CudaContext& ctx, const GemmArgs& g, const GemmPlanKey& key) {
  const DType ab = g.a.dtype(), ct = g.c.dtype();
  const cublasOperation_t op1 = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // library operand 1 = our B
  const cublasOperation_t op2 = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // library operand 2 = our A
  // Stored column-major shapes: op1(X1) is [n, k], op2(X2) is [k, m], C is [n, m].
  const uint64_t r1 = g.trans_b ? g.k : g.n, c1 = g.trans_b ? g.n : g.k;
  const uint64_t r2 = g.trans_a ? g.m : g.k, c2 = g.trans_a ? g.k : g.m;
  auto plan = std::make_unique<GemmPlan>();
  LtDescriptors& d = plan->d;
  const auto compute = static_cast<cublasComputeType_t>(key[19]);
  LF_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.op, compute, CUDA_R_32F));
  LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &op1, sizeof(op1)));
  LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &op2, sizeof(op2)));
  LF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.a, cuda_type(ab), r1, c1, g.ldb));
  LF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.b, cuda_type(ab), r2, c2, g.lda));
  LF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.c, cuda_type(ct), uint64_t(g.n), uint64_t(g.m), g.ldc));
  if (g.batch > 1) {
    set_batch(d.a, g.batch, g.stride_b);
    set_batch(d.b, g.batch, g.stride_a);
    set_batch(d.c, g.batch, g.stride_c);
  }
  const auto epilogue = static_cast<cublasLtEpilogue_t>(key[17]);
  if (epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
    LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    // Pointers are set per call; the heuristic needs the aux leading dimension now.
    if (g.pre_gelu.defined()) {
      const int64_t aux_ld = key[18];
      LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                                     sizeof(aux_ld)));
    }
    if (g.bias.defined() || g.bias_grad.defined()) {
      const cudaDataType_t bias_type = cuda_type((g.bias.defined() ? g.bias : g.bias_grad).dtype());
      LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                     sizeof(bias_type)));
    }
  }
  LF_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&d.pref));
  LF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                       &ctx.workspace_bytes, sizeof(ctx.workspace_bytes)));
  const uint32_t al1 = uint32_t(key[14]), al2 = uint32_t(key[15]), alc = uint32_t(key[16]);
  LF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al1, sizeof(al1)));
  LF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al2, sizeof(al2)));
  LF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &alc, sizeof(alc)));
  LF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &alc, sizeof(alc)));

  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(ctx.lt, d.op, d.a, d.b, d.c, d.c, d.pref, 1, &heur, &found);
  plan->usable = st == CUBLAS_STATUS_SUCCESS && found > 0;
  if (plan->usable) plan->algo = heur.algo;
  return plan;
}

GemmArgs without_epilogue(const GemmArgs& g) {
  GemmArgs p = g;
  p.bias = Tensor();
  p.gelu_tanh = false;
  p.gelu_tanh_grad = false;
  p.pre_gelu = Tensor();
  p.bias_grad = Tensor();
  return p;
}

void launch_lt(const CudaContext& ctx, const GemmPlan& plan, const GemmArgs& g) {
  const float alpha = static_cast<float>(g.alpha), beta = static_cast<float>(g.beta);
  LF_CUBLAS_CHECK(cublasLtMatmul(ctx.lt, plan.d.op, &alpha, g.b.data_ptr(), plan.d.a, g.a.data_ptr(), plan.d.b,
                                 &beta, g.c.data_ptr(), plan.d.c, g.c.data_ptr(), plan.d.c, &plan.algo,
                                 ctx.workspace, ctx.workspace_bytes, ctx.stream));
}

bool gemm_lt(const CudaContext& ctx, const GemmArgs& g, bool& epilogue_done) {
  const DType ab = g.a.dtype(), ct = g.c.dtype();
  if (ab != DType::F32 && ab != DType::BF16 && ab != DType::F16) return false;
  if (ct != ab && ct != DType::F32) return false;
  if (g.batch > INT32_MAX) return false;
  const int64_t r1 = g.trans_b ? g.k : g.n, r2 = g.trans_a ? g.m : g.k;
  if (r1 > g.ldb || r2 > g.lda || g.n > g.ldc) return false;
  // The fused epilogue wants a contiguous bias of C's dtype, a pre-GELU buffer laid out like C
  // with 16-byte aligned rows (cuBLASLt: aux ld a multiple of 8), and 16-byte aligned pointers.
  // (The GELU gradient reads the pre-GELU buffer where the forward wrote it.)
  const bool fuse = g.has_epilogue() && g.batch == 1 &&
                    (!g.bias.defined() || (g.bias.dtype() == ct && g.bias.stride(0) == 1 &&
                                           alignment(g.bias.data_ptr()) >= 16)) &&
                    (!g.pre_gelu.defined() || (g.pre_gelu.dtype() == ct && g.ldc % 8 == 0 &&
                                               alignment(g.pre_gelu.data_ptr()) >= 16)) &&
                    (!g.bias_grad.defined() || (g.bias_grad.dtype() == ct && ct != DType::F32 &&
                                                alignment(g.bias_grad.data_ptr()) >= 16));
  const cublasLtEpilogue_t epilogue = fuse ? lt_epilogue(g) : CUBLASLT_EPILOGUE_DEFAULT;
  // Unfused, the plan is the product's alone and the caller applies the epilogue.
  const GemmArgs plain = g.has_epilogue() && !fuse ? without_epilogue(g) : GemmArgs{};
  const GemmArgs* problem = g.has_epilogue() && !fuse ? &plain : &g;

  const GemmPlanKey key{int64_t(ab), int64_t(ct), g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda, g.ldb, g.ldc,
                        g.batch, g.batch > 1 ? g.stride_a : 0, g.batch > 1 ? g.stride_b : 0,
                        g.batch > 1 ? g.stride_c : 0, alignment(g.b.data_ptr()),
                        alignment(g.a.data_ptr()), alignment(g.c.data_ptr()), int64_t(epilogue),
                        epilogue == CUBLASLT_EPILOGUE_DEFAULT ? 0 : g.ldc,
                        // TF32 only where asked for, and only for f32 inputs.
                        int64_t(ab == DType::F32 && ctx.allow_tf32.load() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                           : CUBLAS_COMPUTE_32F)};
  GemmPlanCache& cache = *ctx.gemm_plans;
  const GemmPlan* plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    auto it = cache.plans.find(key);
    if (it == cache.plans.end()) {
      if (cache.plans.size() >= kMaxGemmPlans) cache.plans.clear();
      it = cache.plans.emplace(key, make_plan(ctx, *problem, key)).first;
    }
    plan = it->second.get();
  }
  if (!plan->usable) {
    // No algorithm with this epilogue: the product alone, the epilogue by the caller.
    if (epilogue != CUBLASLT_EPILOGUE_DEFAULT) return gemm_lt(ctx, without_epilogue(g), epilogue_done);
    return false;
  }
  if (epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
    // The cached descriptor is shared by calls of this shape: set this call's pointers, then
    // launch, under the lock so no other thread changes them in between.
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (g.bias.defined() || g.bias_grad.defined()) {
      const void* bias = (g.bias.defined() ? g.bias : g.bias_grad).data_ptr();
      LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                     sizeof(bias)));
    }
    if (g.pre_gelu.defined()) {
      void* aux = g.pre_gelu.data_ptr();
      LF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->d.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                                                     sizeof(aux)));
    }
    launch_lt(ctx, *plan, g);
    epilogue_done = true;
    return true;
  }
  launch_lt(ctx, *plan, g);
  return true;
}

bool gemm_f64(const CudaContext& ctx, const GemmArgs& g) {
  if (g.c.dtype() != DType::F64) return false;
  const cublasOperation_t op1 = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op2 = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t r1 = g.trans_b ? g.k : g.n, r2 = g.trans_a ? g.m : g.k;
  if (r1 > g.ldb || r2 > g.lda || g.n > g.ldc) return false;
  const double alpha = g.alpha, beta = g.beta;
  LF_CUBLAS_CHECK(cublasDgemmStridedBatched_64(
      ctx.blas, op1, op2, g.n, g.m, g.k, &alpha, static_cast<const double*>(g.b.data_ptr()), g.ldb, g.stride_b,
      static_cast<const double*>(g.a.data_ptr()), g.lda, g.stride_a, &beta, static_cast<double*>(g.c.data_ptr()),
      g.ldc, g.stride_c, g.batch));
  return true;
}

}  // namespace

GemmPlanCache* new_gemm_plan_cache() { return new GemmPlanCache(); }

bool gemm_cublas(const CudaContext& ctx, const GemmArgs& g, bool& epilogue_done) {
  epilogue_done = false;
  if (g.a.dtype() == DType::F64) return gemm_f64(ctx, g);
  return gemm_lt(ctx, g, epilogue_done);
}

}  // namespace lmforge::cuda
