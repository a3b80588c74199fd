// GPU rotary position embedding (RoPE), forward and inverse (= backward). Twin of
// backend/cpu/rope_cpu.cpp: x, out [B, T, H, D] with the last dim contiguous (out may alias x);
// pair i is rotated by angle = pos·theta^(-2i/D), pos = position_offset + t;
//   half-split (x[i], x[i + D/2]) or interleaved (x[2i], x[2i + 1]);
//   (a, b) -> (a·cos - b·sin, b·cos + a·sin); inverse uses -angle.
// cos / sin are computed in f64 into a [T, D/2] table (rounded to the compute type), as on the
// CPU, so angles at large positions keep full accuracy. The context keeps the tables of the last
// few (T, D, theta, offset, direction): a training step's q and k rotations of every layer, and
// their inverses in backward, share two tables instead of computing one per call. Positions read
// from device memory take rope_positions_kernel, which computes its angles itself.
// The half-split layout with 16-byte aligned rows moves 16-byte vectors: a thread rotates the
// kVecWidth pairs whose first elements form one vector of the first half (the second elements
// are the matching vector of the second half).
#include <algorithm>
#include <mutex>
#include <vector>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/scratch.h"
#include "backend/cuda/vec_util.cuh"

namespace lmforge::cuda {

namespace {

template <class A>
__global__ void rope_table_kernel(int64_t nt, int64_t half, int64_t d, double theta, int64_t position_offset,
                                  double sign, A* __restrict__ cos_t, A* __restrict__ sin_t) {
  const int64_t total = nt * half;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t t = e / half, i = e - t * half;
    const double inv_freq = pow(theta, -2.0 * double(i) / double(d));
    const double ang = double(position_offset + t) * inv_freq;
    cos_t[e] = A(cos(ang));
    sin_t[e] = A(sign * sin(ang));
  }
}

// One thread per rotated pair.
template <class T>
__global__ void rope_kernel(RopeParams p, const compute_t<T>* __restrict__ cos_t,
                            const compute_t<T>* __restrict__ sin_t) {
  using A = compute_t<T>;
  const int64_t half = p.d / 2;
  const int64_t total = p.nb * p.nt * p.nh * half;
  const T* xs = static_cast<const T*>(p.x);
  T* os = static_cast<T*>(p.out);
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t i = e % half;
    const int64_t r = e / half;
    const int64_t h = r % p.nh, t = (r / p.nh) % p.nt, b = r / (p.nh * p.nt);
    const T* xp = xs + b * p.xs0 + t * p.xs1 + h * p.xs2;
    T* op = os + b * p.os0 + t * p.os1 + h * p.os2;
    const A c = cos_t[t * half + i], s = sin_t[t * half + i];
    const int64_t ia = p.interleaved ? 2 * i : i, ib = p.interleaved ? 2 * i + 1 : i + half;
    const A a = load(xp[ia]), bb = load(xp[ib]);
    op[ia] = store<T>(a * c - bb * s);
    op[ib] = store<T>(bb * c + a * s);
  }
}

template <class T>
__global__ void rope_half_vec_kernel(RopeParams p, const compute_t<T>* __restrict__ cos_t,
                                     const compute_t<T>* __restrict__ sin_t) {
  using A = compute_t<T>;
  constexpr int W = kVecWidth<T>;
  const int64_t half = p.d / 2, vpr = half / W;  // vectors per half row
  const int64_t total = p.nb * p.nt * p.nh * vpr;
  const T* xs = static_cast<const T*>(p.x);
  T* os = static_cast<T*>(p.out);
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t r = e / vpr, i0 = (e - r * vpr) * W;
    const int64_t h = r % p.nh, t = (r / p.nh) % p.nt, b = r / (p.nh * p.nt);
    const T* xp = xs + b * p.xs0 + t * p.xs1 + h * p.xs2;
    T* op = os + b * p.os0 + t * p.os1 + h * p.os2;
    const Vec<T> a = load_vec(xp + i0), bb = load_vec(xp + i0 + half);
    const A* c = cos_t + t * half + i0;
    const A* sn = sin_t + t * half + i0;
    Vec<T> oa, ob;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      oa.v[k] = a.v[k] * c[k] - bb.v[k] * sn[k];
      ob.v[k] = bb.v[k] * c[k] + a.v[k] * sn[k];
    }
    store_vec(op + i0, oa);
    store_vec(op + i0 + half, ob);
  }
}

// Positions read from device memory (RopeParams::positions): the angles are computed per call in
// f64 with the table kernel's arithmetic, so the values equal the table's, and no table (cached
// by position on the host) is involved: a CUDA graph can replay it at any position.
template <class T>
__global__ void rope_positions_kernel(RopeParams p) {
  using A = compute_t<T>;
  const int64_t half = p.d / 2;
  const int64_t total = p.nb * p.nt * p.nh * half;
  const T* xs = static_cast<const T*>(p.x);
  T* os = static_cast<T*>(p.out);
  const double sign = p.inverse ? -1.0 : 1.0;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t i = e % half;
    const int64_t r = e / half;
    const int64_t h = r % p.nh, t = (r / p.nh) % p.nt, b = r / (p.nh * p.nt);
    const double inv_freq = pow(p.theta, -2.0 * double(i) / double(p.d));
    const double ang = double(int64_t(p.positions[b]) + t) * inv_freq;
    const A c = A(cos(ang)), s = A(sign * sin(ang));
    const T* xp = xs + b * p.xs0 + t * p.xs1 + h * p.xs2;
    T* op = os + b * p.os0 + t * p.os1 + h * p.os2;
    const int64_t ia = p.interleaved ? 2 * i : i, ib = p.interleaved ? 2 * i + 1 : i + half;
    const A a = load(xp[ia]), bb = load(xp[ib]);
    op[ia] = store<T>(a * c - bb * s);
    op[ib] = store<T>(bb * c + a * s);
  }
}

// The vector kernel's conditions: half-split, half a whole number of vectors, every row start
// 16-byte aligned.
template <class T>
bool rope_vectorizable(const RopeParams& p) {
  constexpr int64_t w = kVecWidth<T>;
  const int64_t half = p.d / 2;
  return !p.interleaved && half % w == 0 && aligned16(p.x) && aligned16(p.out) && p.xs0 % w == 0 &&
         p.xs1 % w == 0 && p.xs2 % w == 0 && p.os0 % w == 0 && p.os1 % w == 0 && p.os2 % w == 0;
}

}  // namespace

struct RopeTableCache {
  static constexpr size_t kEntries = 4;
  struct Entry {
    int64_t nt, half, d, position_offset;
    double theta, sign;
    size_t elem;
    Scratch cos_t, sin_t;
    uint64_t last_use;
  };
  std::mutex mutex;  // held from lookup to the rotation's launch: an entry evicted meanwhile
                     // could be refilled before the rotation reads it
  std::vector<Entry> entries;
  uint64_t uses = 0;
};

RopeTableCache* new_rope_table_cache() { return new RopeTableCache(); }

namespace {

// The table for p in compute type A: cached, else computed into the least recently used slot.
template <class A>
const RopeTableCache::Entry& rope_table(const CudaContext& ctx, RopeTableCache& cache, const RopeParams& p) {
  const int64_t half = p.d / 2;
  const double sign = p.inverse ? -1.0 : 1.0;
  ++cache.uses;
  for (auto& e : cache.entries)
    if (e.nt == p.nt && e.half == half && e.d == p.d && e.position_offset == p.position_offset &&
        e.theta == p.theta && e.sign == sign && e.elem == sizeof(A)) {
      e.last_use = cache.uses;
      return e;
    }
  RopeTableCache::Entry fresh{p.nt, half, p.d, p.position_offset, p.theta, sign, sizeof(A),
                              Scratch(ctx.device, size_t(p.nt * half) * sizeof(A)),
                              Scratch(ctx.device, size_t(p.nt * half) * sizeof(A)), cache.uses};
  rope_table_kernel<A><<<grid_for(ctx, p.nt * half), kThreads, 0, ctx.stream>>>(
      p.nt, half, p.d, p.theta, p.position_offset, sign, fresh.cos_t.get<A>(), fresh.sin_t.get<A>());
  LF_CUDA_CHECK_LAUNCH("rope_table_kernel");
  if (cache.entries.size() < RopeTableCache::kEntries) {
    cache.entries.push_back(std::move(fresh));
    return cache.entries.back();
  }
  auto oldest = std::min_element(cache.entries.begin(), cache.entries.end(),
                                 [](const auto& a, const auto& b) { return a.last_use < b.last_use; });
  *oldest = std::move(fresh);  // the old tables go back to the allocator, stream-ordered
  return *oldest;
}

}  // namespace

void launch_rope(const CudaContext& ctx, DType t, const RopeParams& p) {
  const int64_t half = p.d / 2;
  if (p.nb * p.nt * p.nh * half == 0) return;
  dispatch_nn(t, "rope", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    if (p.positions) {
      rope_positions_kernel<T><<<grid_for(ctx, p.nb * p.nt * p.nh * half), kThreads, 0, ctx.stream>>>(p);
      LF_CUDA_CHECK_LAUNCH("rope_positions_kernel");
      return;
    }
    std::lock_guard<std::mutex> lock(ctx.rope_tables->mutex);
    const RopeTableCache::Entry& table = rope_table<A>(ctx, *ctx.rope_tables, p);
    const Scratch &cos_t = table.cos_t, &sin_t = table.sin_t;
    if (rope_vectorizable<T>(p)) {
      rope_half_vec_kernel<T><<<grid_for(ctx, p.nb * p.nt * p.nh * (half / kVecWidth<T>)), kThreads, 0,
                                ctx.stream>>>(p, cos_t.get<A>(), sin_t.get<A>());
      LF_CUDA_CHECK_LAUNCH("rope_half_vec_kernel");
      return;
    }
    rope_kernel<T><<<grid_for(ctx, p.nb * p.nt * p.nh * half), kThreads, 0, ctx.stream>>>(p, cos_t.get<A>(),
                                                                                           sin_t.get<A>());
    LF_CUDA_CHECK_LAUNCH("rope_kernel");
  });
}

}  // namespace lmforge::cuda
