// GPU kernels that move and create data: strided copy with dtype conversion, fill, arange and the
// Philox random fills. Twin of backend/cpu/memory_cpu.cpp and core/random_kernels.cpp: the random
// fills evaluate the same rng:: element maps on the same (seed, offset, element) counters, one
// thread per Philox block, so the GPU draws the CPU's numbers.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/vec_util.cuh"
#include "core/random_kernels.h"

namespace lmforge::cuda {

namespace {

// ---- conversions through double (exact for every source value; see store()) ----
__device__ double load_any(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::F64: return static_cast<const double*>(p)[i];
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::BF16: return load(static_cast<const bf16*>(p)[i]);
    case DType::F16: return load(static_cast<const f16*>(p)[i]);
    case DType::F8E4M3: return load(static_cast<const f8e4m3*>(p)[i]);
    case DType::F8E5M2: return load(static_cast<const f8e5m2*>(p)[i]);
    case DType::I8: return static_cast<const int8_t*>(p)[i];
    case DType::I16: return static_cast<const int16_t*>(p)[i];
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::I64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::U8: return static_cast<const uint8_t*>(p)[i];
    case DType::U16: return static_cast<const uint16_t*>(p)[i];
    case DType::U32: return static_cast<const uint32_t*>(p)[i];
    case DType::Bool: return static_cast<const bool*>(p)[i] ? 1.0 : 0.0;
  }
  return 0.0;
}

__device__ void store_any(DType t, void* p, int64_t i, double v) {
  switch (t) {
    case DType::F64: static_cast<double*>(p)[i] = v; return;
    case DType::F32: static_cast<float*>(p)[i] = float(v); return;
    case DType::BF16: static_cast<bf16*>(p)[i] = store<bf16>(v); return;
    case DType::F16: static_cast<f16*>(p)[i] = store<f16>(v); return;
    case DType::F8E4M3: static_cast<f8e4m3*>(p)[i] = store<f8e4m3>(v); return;
    case DType::F8E5M2: static_cast<f8e5m2*>(p)[i] = store<f8e5m2>(v); return;
    case DType::I8: static_cast<int8_t*>(p)[i] = store<int8_t>(v); return;
    case DType::I16: static_cast<int16_t*>(p)[i] = store<int16_t>(v); return;
    case DType::I32: static_cast<int32_t*>(p)[i] = store<int32_t>(v); return;
    case DType::I64: static_cast<int64_t*>(p)[i] = store<int64_t>(v); return;
    case DType::U8: static_cast<uint8_t*>(p)[i] = store<uint8_t>(v); return;
    case DType::U16: static_cast<uint16_t*>(p)[i] = store<uint16_t>(v); return;
    case DType::U32: static_cast<uint32_t*>(p)[i] = store<uint32_t>(v); return;
    case DType::Bool: static_cast<bool*>(p)[i] = v != 0.0; return;
  }
}

template <class E>
__global__ void copy_bits_kernel(const E* __restrict__ src, E* __restrict__ dst, Layout<2> L) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < L.numel; i += step) {
    int64_t off[2];
    L.offsets(i, off);
    dst[off[1]] = src[off[0]];
  }
}

// The conversions training uses all the time, typed.
template <class S, class D>
__global__ void copy_convert_kernel(const S* __restrict__ src, D* __restrict__ dst, Layout<2> L) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < L.numel; i += step) {
    int64_t off[2];
    L.offsets(i, off);
    dst[off[1]] = store<D>(load(src[off[0]]));
  }
}

// The same conversions with 16-byte accesses, for operands that walk whole vectors (group_layout:
// contiguous, e.g. the f32 <-> bf16 casts of mixed precision, or rows of whole vectors). A group
// is one 16-byte vector of the wider type and as many of the narrower as cover the same elements;
// each thread moves two groups a step, loads first. Every element is rounded as in
// copy_convert_kernel: of the typed pairs, only f64 -> f32 rounds before store<D>, and there the
// cast to float is what store<float>(double) does; the other compute-type casts are exact.
template <class S, class D>
__global__ void copy_convert_vec_kernel(const S* __restrict__ src, D* __restrict__ dst, Layout<2> V, int64_t tail) {
  constexpr int G = kVecWidth<S> > kVecWidth<D> ? kVecWidth<S> : kVecWidth<D>;
  constexpr int PS = G / kVecWidth<S>, PD = G / kVecWidth<D>, U = 2;
  Vec<S> x[U][PS];
  for_each_group<U, 2>(
      V,
      [&](int u, const int64_t(&off)[2]) {
#pragma unroll
        for (int p = 0; p < PS; ++p) x[u][p] = load_vec(src + off[0] * G + p * kVecWidth<S>);
      },
      [&](int u, const int64_t(&off)[2]) {
#pragma unroll
        for (int p = 0; p < PD; ++p) {
          Vec<D> y;
#pragma unroll
          for (int e = 0; e < kVecWidth<D>; ++e) {
            const int i = p * kVecWidth<D> + e;
            y.v[e] = static_cast<compute_t<D>>(x[u][i / kVecWidth<S>].v[i % kVecWidth<S>]);
          }
          store_vec(dst + off[1] * G + p * kVecWidth<D>, y);
        }
      });
  if (blockIdx.x == 0 && threadIdx.x < tail) {
    const int64_t i = V.numel * G + threadIdx.x;
    dst[i] = store<D>(load(src[i]));
  }
}

__global__ void copy_any_kernel(DType st, const void* __restrict__ src, DType dt, void* __restrict__ dst, Layout<2> L) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < L.numel; i += step) {
    int64_t off[2];
    L.offsets(i, off);
    store_any(dt, dst, off[1], load_any(st, src, off[0]));
  }
}

template <class E>
__global__ void fill_kernel(E* __restrict__ dst, Layout<1> L, E value) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < L.numel; i += step) {
    int64_t off[1];
    L.offsets(i, off);
    dst[off[0]] = value;
  }
}

__global__ void arange_kernel(DType t, void* dst, int64_t n, double start, double step_v) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    store_any(t, dst, i, start + step_v * static_cast<double>(i));
}

template <class S, class D>
bool try_typed_copy(const CudaContext& ctx, DType st, const void* src, DType dt, void* dst, const Layout<2>& L) {
  if (st != dtype_of<S>() || dt != dtype_of<D>()) return false;
  Layout<2> V;
  int64_t tail = 0;
  constexpr int64_t G = kVecWidth<S> > kVecWidth<D> ? kVecWidth<S> : kVecWidth<D>;
  if (group_layout<2>(L, {src, dst}, G, V, tail)) {
    copy_convert_vec_kernel<S, D><<<grid_for(ctx, V.numel, kThreads, 2), kThreads, 0, ctx.stream>>>(
        static_cast<const S*>(src), static_cast<D*>(dst), V, tail);
    LF_CUDA_CHECK_LAUNCH("copy_convert_vec_kernel");
    return true;
  }
  copy_convert_kernel<S, D><<<grid_for(ctx, L.numel), kThreads, 0, ctx.stream>>>(static_cast<const S*>(src),
                                                                                 static_cast<D*>(dst), L);
  LF_CUDA_CHECK_LAUNCH("copy_convert_kernel");
  return true;
}

// ---- random ----
using Kind = RandomArgs::Kind;

struct RandomF32 {
  Kind kind;
  float lo, hi;            // uniform bounds; normal: mean lo, std hi
  double mean, stddev;     // normal, in f64 as the CPU applies them
  rng::TruncatedNormal tn; // truncated normal
  float tn_a, tn_b;
  uint64_t threshold;      // bernoulli
};

// One thread per Philox block: 4 elements of 32 bits.
template <class T>
__global__ void random32_kernel(T* __restrict__ out, int64_t n, uint64_t seed, uint64_t offset, RandomF32 r) {
  const int64_t blocks = (n + 3) / 4;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < blocks; k += step) {
    const uint4x32 w = rng::philox_block(seed, offset + uint64_t(k));
    const int64_t first = k * 4;
    const int count = int(n - first < 4 ? n - first : 4);
    float v[4];
    switch (r.kind) {
      case Kind::Uniform:
        for (int j = 0; j < 4; ++j) v[j] = rng::uniform_f32(w.v[j], r.lo, r.hi);
        break;
      case Kind::Normal:
        for (int pair = 0; pair < 2; ++pair) {
          double zc, zs;
          rng::box_muller(rng::radius_uniform_32(w.v[2 * pair]), rng::angle_uniform_32(w.v[2 * pair + 1]), &zc, &zs);
          v[2 * pair] = float(fma(r.stddev, zc, r.mean));
          v[2 * pair + 1] = float(fma(r.stddev, zs, r.mean));
        }
        break;
      case Kind::TruncatedNormal:
        for (int j = 0; j < 4; ++j) {
          const float x = float(rng::truncated_normal_value(rng::open_uniform_32(w.v[j]), r.tn));
          v[j] = x < r.tn_a ? r.tn_a : (x > r.tn_b ? r.tn_b : x);
        }
        break;
      case Kind::Bernoulli:
        for (int j = 0; j < 4; ++j) v[j] = float(rng::bernoulli_value(w.v[j], r.threshold));
        break;
      default:
        for (int j = 0; j < 4; ++j) v[j] = 0.0f;
        break;
    }
    for (int j = 0; j < count; ++j) out[first + j] = store<T>(v[j]);
  }
}

struct Random64 {
  Kind kind;
  double lo, hi;           // uniform bounds; normal: mean lo, std hi
  rng::TruncatedNormal tn;
  int64_t ilo;             // randint
  uint64_t range;
};

// One thread per Philox block: 2 elements of 64 bits (double or int64).
template <class T>
__global__ void random64_kernel(T* __restrict__ out, int64_t n, uint64_t seed, uint64_t offset, Random64 r) {
  const int64_t blocks = (n + 1) / 2;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < blocks; k += step) {
    const uint4x32 w = rng::philox_block(seed, offset + uint64_t(k));
    const uint64_t x0 = rng::join64(w.v[0], w.v[1]), x1 = rng::join64(w.v[2], w.v[3]);
    const int64_t first = k * 2;
    T v0{}, v1{};
    if constexpr (std::is_same_v<T, int64_t>) {
      v0 = rng::randint_value(x0, r.ilo, r.range);
      v1 = rng::randint_value(x1, r.ilo, r.range);
    } else {
      switch (r.kind) {
        case Kind::Uniform:
          v0 = rng::uniform_f64(x0, r.lo, r.hi);
          v1 = rng::uniform_f64(x1, r.lo, r.hi);
          break;
        case Kind::Normal: {
          double zc, zs;
          rng::box_muller(rng::radius_uniform_64(x0), rng::angle_uniform_64(x1), &zc, &zs);
          v0 = fma(r.hi, zc, r.lo);
          v1 = fma(r.hi, zs, r.lo);
          break;
        }
        case Kind::TruncatedNormal:
          v0 = rng::truncated_normal_value(rng::open_uniform_64(x0), r.tn);
          v1 = rng::truncated_normal_value(rng::open_uniform_64(x1), r.tn);
          break;
        default:
          break;
      }
    }
    out[first] = v0;
    if (first + 1 < n) out[first + 1] = v1;
  }
}

}  // namespace

void launch_copy(const CudaContext& ctx, DType st, const void* src, DType dt, void* dst, const Layout<2>& L) {
  if (L.numel == 0) return;
  if (st == dt) {
    // Whole 16-byte vectors on every operand (rows of a strided view, e.g. a slice of a fused
    // projection): copied as such.
    Layout<2> V;
    int64_t tail = 0;
    if (group_layout<2>(L, {src, dst}, 16 / int64_t(dtype_size(st)), V, tail) && tail == 0) {
      copy_bits_kernel<uint4><<<grid_for(ctx, V.numel), kThreads, 0, ctx.stream>>>(static_cast<const uint4*>(src),
                                                                                 static_cast<uint4*>(dst), V);
      LF_CUDA_CHECK_LAUNCH("copy_bits_kernel");
      return;
    }
    const unsigned grid = grid_for(ctx, L.numel);
    switch (dtype_size(st)) {
      case 1: copy_bits_kernel<uint8_t><<<grid, kThreads, 0, ctx.stream>>>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), L); break;
      case 2: copy_bits_kernel<uint16_t><<<grid, kThreads, 0, ctx.stream>>>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), L); break;
      case 4: copy_bits_kernel<uint32_t><<<grid, kThreads, 0, ctx.stream>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), L); break;
      default: copy_bits_kernel<uint64_t><<<grid, kThreads, 0, ctx.stream>>>(static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), L); break;
    }
    LF_CUDA_CHECK_LAUNCH("copy_bits_kernel");
    return;
  }
  if (try_typed_copy<float, bf16>(ctx, st, src, dt, dst, L) || try_typed_copy<bf16, float>(ctx, st, src, dt, dst, L) ||
      try_typed_copy<float, f16>(ctx, st, src, dt, dst, L) || try_typed_copy<f16, float>(ctx, st, src, dt, dst, L) ||
      try_typed_copy<float, double>(ctx, st, src, dt, dst, L) || try_typed_copy<double, float>(ctx, st, src, dt, dst, L))
    return;
  copy_any_kernel<<<grid_for(ctx, L.numel), kThreads, 0, ctx.stream>>>(st, src, dt, dst, L);
  LF_CUDA_CHECK_LAUNCH("copy_any_kernel");
}

void launch_fill(const CudaContext& ctx, int elem_size, void* dst, const Layout<1>& L, uint64_t bits) {
  if (L.numel == 0) return;
  const unsigned grid = grid_for(ctx, L.numel);
  switch (elem_size) {
    case 1: fill_kernel<uint8_t><<<grid, kThreads, 0, ctx.stream>>>(static_cast<uint8_t*>(dst), L, uint8_t(bits)); break;
    case 2: fill_kernel<uint16_t><<<grid, kThreads, 0, ctx.stream>>>(static_cast<uint16_t*>(dst), L, uint16_t(bits)); break;
    case 4: fill_kernel<uint32_t><<<grid, kThreads, 0, ctx.stream>>>(static_cast<uint32_t*>(dst), L, uint32_t(bits)); break;
    default: fill_kernel<uint64_t><<<grid, kThreads, 0, ctx.stream>>>(static_cast<uint64_t*>(dst), L, bits); break;
  }
  LF_CUDA_CHECK_LAUNCH("fill_kernel");
}

void launch_arange(const CudaContext& ctx, DType t, void* dst, int64_t n, double start, double step) {
  if (n == 0) return;
  arange_kernel<<<grid_for(ctx, n), kThreads, 0, ctx.stream>>>(t, dst, n, start, step);
  LF_CUDA_CHECK_LAUNCH("arange_kernel");
}

void launch_random(const CudaContext& ctx, DType t, void* dst, int64_t n, const RandomArgs& a) {
  if (n == 0) return;
  if (a.kind == Kind::RandInt || (t == DType::F64 && a.kind != Kind::Bernoulli)) {
    Random64 r{};
    r.kind = a.kind;
    r.lo = a.a;
    r.hi = a.b;
    if (a.kind == Kind::TruncatedNormal) r.tn = rng::truncated_normal_setup(a.a, a.b, a.lo, a.hi);
    if (a.kind == Kind::RandInt) {
      r.ilo = static_cast<int64_t>(a.a);
      r.range = uint64_t(static_cast<int64_t>(a.b)) - uint64_t(r.ilo);
    }
    const unsigned grid = grid_for(ctx, (n + 1) / 2);
    if (a.kind == Kind::RandInt)
      random64_kernel<int64_t><<<grid, kThreads, 0, ctx.stream>>>(static_cast<int64_t*>(dst), n, a.seed, a.offset, r);
    else
      random64_kernel<double><<<grid, kThreads, 0, ctx.stream>>>(static_cast<double*>(dst), n, a.seed, a.offset, r);
    LF_CUDA_CHECK_LAUNCH("random64_kernel");
    return;
  }
  RandomF32 r{};
  r.kind = a.kind;
  r.lo = float(a.a);
  r.hi = float(a.b);
  // The CPU's f32 normal fill takes float mean/std and widens them to double.
  r.mean = double(float(a.a));
  r.stddev = double(float(a.b));
  if (a.kind == Kind::TruncatedNormal) {
    // As fill_truncated_normal(float*): float arguments, setup in double.
    r.tn = rng::truncated_normal_setup(float(a.a), float(a.b), float(a.lo), float(a.hi));
    r.tn_a = float(a.lo);
    r.tn_b = float(a.hi);
  }
  if (a.kind == Kind::Bernoulli) r.threshold = rng::bernoulli_threshold(a.a);
  const unsigned grid = grid_for(ctx, (n + 3) / 4);
  auto go = [&](auto t0) {
    using T = decltype(t0);
    random32_kernel<T><<<grid, kThreads, 0, ctx.stream>>>(static_cast<T*>(dst), n, a.seed, a.offset, r);
  };
  switch (t) {
    case DType::F64: go(double{}); break;
    case DType::F32: go(float{}); break;
    case DType::BF16: go(bf16{}); break;
    case DType::F16: go(f16{}); break;
    case DType::F8E4M3: go(f8e4m3{}); break;
    case DType::F8E5M2: go(f8e5m2{}); break;
    case DType::Bool: go(bool{}); break;
    case DType::U8: go(uint8_t{}); break;
    case DType::I8: go(int8_t{}); break;
    case DType::I16: go(int16_t{}); break;
    case DType::U16: go(uint16_t{}); break;
    case DType::I32: go(int32_t{}); break;
    case DType::U32: go(uint32_t{}); break;
    case DType::I64: go(int64_t{}); break;
    default: throw_unsupported_dtype(t, "random");
  }
  LF_CUDA_CHECK_LAUNCH("random32_kernel");
}

// ---- copy_rows_at: one thread per element of a row, moving elements of the row's own size ----
namespace {
template <class W>
__global__ void copy_rows_at_kernel(const W* __restrict__ src, W* __restrict__ dst, const int32_t* __restrict__ positions,
                                    int64_t nb, int64_t nt, int64_t ns, int64_t row, int64_t src_s0, int64_t src_s1,
                                    int64_t dst_s0, int64_t dst_s1) {
  const int64_t total = nb * nt * row;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t i = e % row, bt = e / row, t = bt % nt, b = bt / nt;
    const int64_t r = int64_t(positions[b]) + t;
    if (r < 0 || r >= ns) continue;
    dst[b * dst_s0 + r * dst_s1 + i] = src[b * src_s0 + t * src_s1 + i];
  }
}
}  // namespace

void launch_copy_rows_at(const CudaContext& ctx, size_t es, const void* src, void* dst, const int32_t* positions,
                         int64_t nb, int64_t nt, int64_t ns, int64_t row, int64_t src_s0, int64_t src_s1,
                         int64_t dst_s0, int64_t dst_s1) {
  // Moves words of 16, 8, 4, 2 or 1 bytes: the widest that divides the row, the strides and the bases.
  const int64_t bytes = row * int64_t(es);
  const auto go = [&](auto w0, int64_t wb) {
    using W = decltype(w0);
    const int64_t per = int64_t(es);
    copy_rows_at_kernel<W><<<grid_for(ctx, nb * nt * (bytes / wb)), kThreads, 0, ctx.stream>>>(
        static_cast<const W*>(src), static_cast<W*>(dst), positions, nb, nt, ns, bytes / wb, src_s0 * per / wb,
        src_s1 * per / wb, dst_s0 * per / wb, dst_s1 * per / wb);
  };
  const auto fits = [&](int64_t wb) {
    return bytes % wb == 0 && (src_s0 * int64_t(es)) % wb == 0 && (src_s1 * int64_t(es)) % wb == 0 &&
           (dst_s0 * int64_t(es)) % wb == 0 && (dst_s1 * int64_t(es)) % wb == 0 &&
           reinterpret_cast<uintptr_t>(src) % wb == 0 && reinterpret_cast<uintptr_t>(dst) % wb == 0;
  };
  if (fits(16)) go(uint4{}, 16);
  else if (fits(8)) go(uint2{}, 8);
  else if (fits(4)) go(uint32_t{}, 4);
  else if (fits(2)) go(uint16_t{}, 2);
  else go(uint8_t{}, 1);
  LF_CUDA_CHECK_LAUNCH("copy_rows_at_kernel");
}

}  // namespace lmforge::cuda
