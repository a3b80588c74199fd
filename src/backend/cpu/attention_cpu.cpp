// CPU scaled-dot-product attention, forward and backward, tiled with an online softmax
// (FlashAttention-2, Dao 2023) so memory is linear in the sequence lengths: no [T, S] buffer.
//
//   B batch, T queries, S keys, H query heads, Hkv key/value heads (H % Hkv == 0; query head h
//   reads kv head h / (H / Hkv): MHA, GQA, MQA), D = q/k head dim, Dv = v head dim.
//   q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv]: last dim contiguous, other strides free.
//   mask: undefined, or additive [B, H, T, S] given by strides (0 on broadcast dims), same dtype
//   as lse. causal: query t sees keys s <= t + (S - T) (the queries are the last T positions).
//   out [B, T, H, Dv] (strides taken as given); lse [B, H, T] contiguous, f32 (f64 for f64 q):
//   log Σ_s exp(score), score = scale·q·k + mask. A row that sees no key (all masked) has output
//   0 and lse = -inf, and contributes nothing to any gradient.
//
// Forward, per (b, h, tile of kBr queries): Q tile scaled once; for each tile of kBc keys:
//   S = Q·Kᵀ (+ mask, causal -inf), running max m and sum l, O = α·O + P·V; finally O /= l.
// Decoding (T <= kDecodeMaxRows, no mask) takes attention_decode_impl instead: dot products
//   along the head dimension, the query heads of a group together, keys split in fixed chunks.
// Backward recomputes P = exp(S - lse) from the saved lse, with Δ_t = Σ dO_t·O_t:
//   dS = P∘(dO·Vᵀ - Δ);  dq = scale·dS·K;  dk = scale·dSᵀ·Q;  dv = Pᵀ·dO.
//   Pass 1, parallel over (b, h, query tile): dq and Δ — each dq row written by one task.
//   Pass 2, parallel over (b, kv head, key tile): dk and dv, summing the query heads of the group
//   and the query tiles in a fixed order — deterministic, no atomics, no per-thread copies.
// Tiles are products of small dense blocks computed by mm_acc, whose inner loop runs along
// contiguous rows with accumulators held in registers (the compiler vectorises it).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

constexpr int64_t kBr = 64;  // query rows per tile
constexpr int64_t kBc = 64;  // keys per tile

// C[MR rows, N] += op(A)[MR, K]·B[K, N]; op(A)[i, p] = TA ? a[p·lda + i] : a[i·lda + p].
template <class A, bool TA, int MR>
inline void mm_rows(A* c, int64_t ldc, const A* a, int64_t lda, const A* b, int64_t ldb, int64_t n, int64_t k) {
  constexpr int64_t NR = 128 / static_cast<int64_t>(sizeof(A));  // two 512-bit vectors
  for (int64_t j0 = 0; j0 < n; j0 += NR) {
    const int64_t w = std::min(NR, n - j0);
    A acc[MR][NR];
    if (w == NR) {
      for (int r = 0; r < MR; ++r)
#pragma omp simd
        for (int64_t j = 0; j < NR; ++j) acc[r][j] = c[r * ldc + j0 + j];
      for (int64_t p = 0; p < k; ++p) {
        const A* bp = b + p * ldb + j0;
        for (int r = 0; r < MR; ++r) {
          const A av = TA ? a[p * lda + r] : a[r * lda + p];
#pragma omp simd
          for (int64_t j = 0; j < NR; ++j) acc[r][j] += av * bp[j];
        }
      }
      for (int r = 0; r < MR; ++r)
#pragma omp simd
        for (int64_t j = 0; j < NR; ++j) c[r * ldc + j0 + j] = acc[r][j];
    } else {
      for (int r = 0; r < MR; ++r)
        for (int64_t j = 0; j < w; ++j) acc[r][j] = c[r * ldc + j0 + j];
      for (int64_t p = 0; p < k; ++p) {
        const A* bp = b + p * ldb + j0;
        for (int r = 0; r < MR; ++r) {
          const A av = TA ? a[p * lda + r] : a[r * lda + p];
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) acc[r][j] += av * bp[j];
        }
      }
      for (int r = 0; r < MR; ++r)
        for (int64_t j = 0; j < w; ++j) c[r * ldc + j0 + j] = acc[r][j];
    }
  }
}

// C[M, N] += op(A)[M, K]·B[K, N], all row-major with the given leading dimensions.
template <class A, bool TA>
void mm_acc(A* c, int64_t ldc, const A* a, int64_t lda, const A* b, int64_t ldb, int64_t m, int64_t n, int64_t k) {
  auto arow = [&](int64_t i) { return TA ? a + i : a + i * lda; };
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) mm_rows<A, TA, 4>(c + i * ldc, ldc, arow(i), lda, b, ldb, n, k);
  switch (m - i) {
    case 3: mm_rows<A, TA, 3>(c + i * ldc, ldc, arow(i), lda, b, ldb, n, k); break;
    case 2: mm_rows<A, TA, 2>(c + i * ldc, ldc, arow(i), lda, b, ldb, n, k); break;
    case 1: mm_rows<A, TA, 1>(c + i * ldc, ldc, arow(i), lda, b, ldb, n, k); break;
    default: break;
  }
}

// dst[r·ld + p] = scale·src[r·row_stride + p] for r < rows, p < w.
template <class T, class A>
void load_tile(A* dst, int64_t ld, const T* src, int64_t row_stride, int64_t rows, int64_t w, A scale) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = src + r * row_stride;
    A* d = dst + r * ld;
#pragma omp simd
    for (int64_t p = 0; p < w; ++p) d[p] = A(load(s[p])) * scale;
  }
}

// dst[p·ld + r] = src[r·row_stride + p] (transposed) for r < rows, p < w.
template <class T, class A>
void load_tile_t(A* dst, int64_t ld, const T* src, int64_t row_stride, int64_t rows, int64_t w) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = src + r * row_stride;
    for (int64_t p = 0; p < w; ++p) dst[p * ld + r] = A(load(s[p]));
  }
}

template <class A>
constexpr A kNegInf = -std::numeric_limits<A>::infinity();

// Strided view of one operand: element (b, i, h, p) at base[b·s0 + i·s1 + h·s2 + p].
template <class T>
struct Operand {
  const T* base;
  int64_t s0, s1, s2;
  const T* row(int64_t b, int64_t i, int64_t h) const { return base + b * s0 + i * s1 + h * s2; }
};
template <class T>
Operand<T> operand(const Tensor& t) {
  return {static_cast<const T*>(t.data_ptr()), t.stride(0), t.stride(1), t.stride(2)};
}

template <class A>
struct MaskView {
  const A* base = nullptr;  // null: no mask
  int64_t sb = 0, sh = 0, st = 0, ss = 0;
};

// The shape of the problem and the per-tile steps shared by forward and backward.
template <class A>
struct Problem {
  int64_t nb, nt, ns, nh, nhkv, group, d, dv;
  A scale;
  bool causal;
  MaskView<A> mask;
  int64_t causal_offset() const { return ns - nt; }
  // Keys [0, key_end) are visible to some query of the tile starting at t0 with br rows.
  int64_t key_end(int64_t t0, int64_t br) const {
    if (!causal) return ns;
    return std::clamp<int64_t>(t0 + br + causal_offset(), 0, ns);
  }
  // Adds the mask and the causal -inf to the scores s [br, ld] of queries t0.., keys s0...
  void mask_scores(A* s, int64_t ld, int64_t b, int64_t h, int64_t t0, int64_t br, int64_t s0, int64_t bc) const {
    if (mask.base) {
      for (int64_t i = 0; i < br; ++i) {
        const A* mr = mask.base + b * mask.sb + h * mask.sh + (t0 + i) * mask.st + s0 * mask.ss;
        A* sr = s + i * ld;
        if (mask.ss == 1) {
#pragma omp simd
          for (int64_t j = 0; j < bc; ++j) sr[j] += mr[j];
        } else {
          for (int64_t j = 0; j < bc; ++j) sr[j] += mr[j * mask.ss];
        }
      }
    }
    if (causal) {
      for (int64_t i = 0; i < br; ++i) {
        const int64_t first_hidden = t0 + i + causal_offset() + 1 - s0;  // keys j >= this are hidden
        A* sr = s + i * ld;
        for (int64_t j = std::max<int64_t>(first_hidden, 0); j < bc; ++j) sr[j] = kNegInf<A>;
      }
    }
  }
  // s [br, ld] <- P = exp(s - lse) (0 for rows that see no key).
  static void probabilities(A* s, int64_t ld, const A* lse, int64_t br, int64_t bc) {
    for (int64_t i = 0; i < br; ++i) {
      A* sr = s + i * ld;
      const A l = lse[i];
      if (l == kNegInf<A>) {
        std::fill(sr, sr + bc, A(0));
        continue;
      }
#pragma omp simd
      for (int64_t j = 0; j < bc; ++j) sr[j] = exp_fast(sr[j] - l);
    }
  }
};

// One tile of the online softmax for one query row: the scores sr [bc] become
// P = exp(sr - m_new) (0 when no key is visible yet), the running max m and sum l move on, and the
// row's unnormalised output orow [dv] is rescaled by exp(m - m_new); the caller then adds P·V.
template <class A>
[[gnu::always_inline]] inline void online_softmax_step(A* sr, int64_t bc, A& m, A& l, A* orow, int64_t dv) {
  A mx = kNegInf<A>;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < bc; ++j) mx = std::max(mx, sr[j]);
  const A m_new = std::max(m, mx);
  if (m_new == kNegInf<A>) {  // nothing visible yet: P = 0 for this tile
    std::fill(sr, sr + bc, A(0));
    return;
  }
  const A alpha = exp_fast(m - m_new);  // 0 when m = -inf
  A sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < bc; ++j) {
    const A p = exp_fast(sr[j] - m_new);
    sr[j] = p;
    sum += p;
  }
  l = l * alpha + sum;
  m = m_new;
  if (alpha != A(1)) {
#pragma omp simd
    for (int64_t p = 0; p < dv; ++p) orow[p] *= alpha;
  }
}

template <class T>
void attention_forward_impl(const Tensor& q, const Tensor& k, const Tensor& v, const Problem<compute_t<T>>& P,
                            const Tensor& out, const Tensor& lse) {
  using A = compute_t<T>;
  const Operand<T> Q = operand<T>(q), K = operand<T>(k), V = operand<T>(v);
  T* os = static_cast<T*>(out.data_ptr());
  const int64_t o0 = out.stride(0), o1 = out.stride(1), o2 = out.stride(2);
  A* ls = static_cast<A*>(lse.data_ptr());
  const int64_t d = P.d, dv = P.dv;
  const int64_t n_qt = (P.nt + kBr - 1) / kBr, n_items = P.nb * P.nh * n_qt;
#pragma omp parallel if (n_items > 1 && !omp_in_parallel())
  {
    std::vector<A> qb(kBr * d), kt(d * kBc), vb(kBc * dv), sb(kBr * kBc), ob(kBr * dv), m(kBr), l(kBr);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t qt = item % n_qt, h = (item / n_qt) % P.nh, b = item / (n_qt * P.nh);
      const int64_t hk = h / P.group, t0 = qt * kBr, br = std::min(kBr, P.nt - t0);
      load_tile(qb.data(), d, Q.row(b, t0, h), Q.s1, br, d, P.scale);
      std::fill(m.begin(), m.end(), kNegInf<A>);
      std::fill(l.begin(), l.end(), A(0));
      std::fill(ob.begin(), ob.end(), A(0));
      const int64_t key_end = P.key_end(t0, br);
      for (int64_t s0 = 0; s0 < key_end; s0 += kBc) {
        const int64_t bc = std::min(kBc, key_end - s0);
        load_tile_t(kt.data(), kBc, K.row(b, s0, hk), K.s1, bc, d);
        load_tile(vb.data(), dv, V.row(b, s0, hk), V.s1, bc, dv, A(1));
        A* s = sb.data();
        for (int64_t i = 0; i < br; ++i) std::fill(s + i * kBc, s + i * kBc + bc, A(0));
        mm_acc<A, false>(s, kBc, qb.data(), d, kt.data(), kBc, br, bc, d);
        P.mask_scores(s, kBc, b, h, t0, br, s0, bc);
        for (int64_t i = 0; i < br; ++i) {
          online_softmax_step(s + i * kBc, bc, m[i], l[i], ob.data() + i * dv, dv);
        }
        mm_acc<A, false>(ob.data(), dv, s, kBc, vb.data(), dv, br, dv, bc);
      }
      for (int64_t i = 0; i < br; ++i) {
        const bool empty = l[i] == A(0);
        const A inv = empty ? A(0) : A(1) / l[i];
        T* orow = os + b * o0 + (t0 + i) * o1 + h * o2;
        const A* src = ob.data() + i * dv;
        for (int64_t p = 0; p < dv; ++p) orow[p] = store<T>(src[p] * inv);
        ls[(b * P.nh + h) * P.nt + t0 + i] = empty ? kNegInf<A> : m[i] + std::log(l[i]);
      }
    }
  }
}

// Decoding: few query rows (T <= kDecodeMaxRows) against a long cache. Each query row is a
// dot product per key along the contiguous head dimension, so keys need no transposed tile,
// and the `group` query heads sharing a key/value head are handled together: each cached key and
// value row is read once per group, not once per query head, which is what makes GQA, MQA and
// MLA's absorbed form cheaper to decode. Work is split over (b, kv head, chunk of kDecodeChunk
// keys); each chunk yields a partial (max, sum, unnormalised output) per row, merged in chunk
// order. Chunks depend on the number of keys only, never on the thread count or on the other
// rows of the batch, so a row's result is the same whatever runs beside it.
constexpr int64_t kDecodeMaxRows = 8;    // query positions per call taking this path
constexpr int64_t kDecodeChunk = 512;    // keys per work item
constexpr int64_t kDecodeBlock = 32;     // keys whose scores are computed before their values are read

template <class T>
void attention_decode_impl(const Tensor& q, const Tensor& k, const Tensor& v, const Problem<compute_t<T>>& P,
                           const Tensor& out, const Tensor& lse) {
  using A = compute_t<T>;
  const Operand<T> Q = operand<T>(q), K = operand<T>(k), V = operand<T>(v);
  T* os = static_cast<T*>(out.data_ptr());
  const int64_t o0 = out.stride(0), o1 = out.stride(1), o2 = out.stride(2);
  A* ls = static_cast<A*>(lse.data_ptr());
  const int64_t d = P.d, dv = P.dv, rows = P.nt * P.group;  // rows of one item: (t, g)
  const int64_t n_chunks = std::max<int64_t>((P.ns + kDecodeChunk - 1) / kDecodeChunk, 1);
  const int64_t n_items = P.nb * P.nhkv * n_chunks;
  // Partial results per (item, row): max, sum and the unnormalised output.
  std::vector<A> part_m(size_t(n_items * rows)), part_l(size_t(n_items * rows)), part_o(size_t(n_items * rows * dv));
#pragma omp parallel if (n_items > 1 && !omp_in_parallel())
  {
    std::vector<A> qb(size_t(rows * d)), sb(size_t(rows * kDecodeBlock));
    std::vector<int64_t> visible(static_cast<size_t>(rows));
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t c = item % n_chunks, hk = (item / n_chunks) % P.nhkv, b = item / (n_chunks * P.nhkv);
      const int64_t c0 = c * kDecodeChunk, c1 = std::min(P.ns, c0 + kDecodeChunk);
      A* m = part_m.data() + item * rows;
      A* l = part_l.data() + item * rows;
      A* o = part_o.data() + item * rows * dv;
      for (int64_t t = 0; t < P.nt; ++t)
        for (int64_t g = 0; g < P.group; ++g) {
          const int64_t r = t * P.group + g;
          load_tile(qb.data() + r * d, d, Q.row(b, t, hk * P.group + g), Q.s1, 1, d, P.scale);
          // Keys [0, visible) are seen by query t (all of them without the causal mask).
          visible[size_t(r)] = P.causal ? std::clamp<int64_t>(t + P.causal_offset() + 1, 0, P.ns) : P.ns;
        }
      std::fill(m, m + rows, kNegInf<A>);
      std::fill(l, l + rows, A(0));
      std::fill(o, o + rows * dv, A(0));
      for (int64_t s0 = c0; s0 < c1; s0 += kDecodeBlock) {
        const int64_t bc = std::min(kDecodeBlock, c1 - s0);
        for (int64_t j = 0; j < bc; ++j) {
          const T* kr = K.row(b, s0 + j, hk);
          for (int64_t r = 0; r < rows; ++r) {
            const A* qr = qb.data() + r * d;
            A acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int64_t p = 0; p < d; ++p) acc += qr[p] * A(load(kr[p]));
            sb[size_t(r * kDecodeBlock + j)] = s0 + j < visible[size_t(r)] ? acc : kNegInf<A>;
          }
        }
        for (int64_t r = 0; r < rows; ++r) {
          online_softmax_step(sb.data() + r * kDecodeBlock, bc, m[r], l[r], o + r * dv, dv);
        }
        for (int64_t j = 0; j < bc; ++j) {
          const T* vr = V.row(b, s0 + j, hk);
          for (int64_t r = 0; r < rows; ++r) {
            const A w = sb[size_t(r * kDecodeBlock + j)];
            if (w == A(0)) continue;
            A* orow = o + r * dv;
#pragma omp simd
            for (int64_t p = 0; p < dv; ++p) orow[p] += w * A(load(vr[p]));
          }
        }
      }
    }
  }
  // Merge the chunks of each (b, kv head, row) in chunk order.
  std::vector<A> acc(static_cast<size_t>(dv));
  for (int64_t b = 0; b < P.nb; ++b)
    for (int64_t hk = 0; hk < P.nhkv; ++hk)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t first = (b * P.nhkv + hk) * n_chunks;
        A mx = kNegInf<A>;
        for (int64_t c = 0; c < n_chunks; ++c) mx = std::max(mx, part_m[size_t((first + c) * rows + r)]);
        A total = 0;
        std::fill(acc.begin(), acc.end(), A(0));
        if (mx != kNegInf<A>) {
          for (int64_t c = 0; c < n_chunks; ++c) {
            const int64_t i = (first + c) * rows + r;
            if (part_m[size_t(i)] == kNegInf<A>) continue;
            const A f = exp_fast(part_m[size_t(i)] - mx);
            total += f * part_l[size_t(i)];
            const A* src = part_o.data() + i * dv;
            for (int64_t p = 0; p < dv; ++p) acc[size_t(p)] += f * src[p];
          }
        }
        const int64_t t = r / P.group, h = hk * P.group + r % P.group;
        const bool empty = total == A(0);
        const A inv = empty ? A(0) : A(1) / total;
        T* orow = os + b * o0 + t * o1 + h * o2;
        for (int64_t p = 0; p < dv; ++p) orow[p] = store<T>(acc[size_t(p)] * inv);
        ls[(b * P.nh + h) * P.nt + t] = empty ? kNegInf<A> : mx + std::log(total);
      }
}

template <class T>
void attention_backward_impl(const Tensor& q, const Tensor& k, const Tensor& v, const Problem<compute_t<T>>& P,
                             const Tensor& out, const Tensor& lse, const Tensor& dout, const Tensor& dq,
                             const Tensor& dk, const Tensor& dv_t) {
  using A = compute_t<T>;
  const Operand<T> Q = operand<T>(q), K = operand<T>(k), V = operand<T>(v), O = operand<T>(out),
                   dO = operand<T>(dout);
  const A* ls = static_cast<const A*>(lse.data_ptr());
  const int64_t d = P.d, dv = P.dv;
  const int64_t n_qt = (P.nt + kBr - 1) / kBr, n_kt = (P.ns + kBc - 1) / kBc;
  // Δ [B, H, T] = rowsum(dO∘O), filled by pass 1 and read by pass 2.
  std::vector<A> delta(P.nb * P.nh * P.nt);
  auto store_rows = [](const Tensor& t, const A* src, int64_t ld, int64_t b, int64_t i0, int64_t h, int64_t rows,
                       int64_t w, A scale) {
    T* base = static_cast<T*>(t.data_ptr());
    for (int64_t r = 0; r < rows; ++r) {
      T* dst = base + b * t.stride(0) + (i0 + r) * t.stride(1) + h * t.stride(2);
      for (int64_t p = 0; p < w; ++p) dst[p] = store<T>(src[r * ld + p] * scale);
    }
  };

  // ---- pass 1: dq and Δ, one task per (b, h, query tile) ----
  const int64_t n_items1 = P.nb * P.nh * n_qt;
#pragma omp parallel if (n_items1 > 1 && !omp_in_parallel())
  {
    std::vector<A> qb(kBr * d), gb(kBr * dv), kn(kBc * d), kt(d * kBc), vt(dv * kBc), sb(kBr * kBc),
        pb(kBr * kBc), dqb(kBr * d);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items1; ++item) {
      const int64_t qt = item % n_qt, h = (item / n_qt) % P.nh, b = item / (n_qt * P.nh);
      const int64_t hk = h / P.group, t0 = qt * kBr, br = std::min(kBr, P.nt - t0);
      const A* lrow = ls + (b * P.nh + h) * P.nt + t0;
      A* drow = delta.data() + (b * P.nh + h) * P.nt + t0;
      load_tile(qb.data(), d, Q.row(b, t0, h), Q.s1, br, d, P.scale);
      load_tile(gb.data(), dv, dO.row(b, t0, h), dO.s1, br, dv, A(1));
      for (int64_t i = 0; i < br; ++i) {
        const T* orow = O.row(b, t0 + i, h);
        const A* grow = gb.data() + i * dv;
        A acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t p = 0; p < dv; ++p) acc += grow[p] * A(load(orow[p]));
        drow[i] = acc;
      }
      std::fill(dqb.begin(), dqb.end(), A(0));
      const int64_t key_end = P.key_end(t0, br);
      for (int64_t s0 = 0; s0 < key_end; s0 += kBc) {
        const int64_t bc = std::min(kBc, key_end - s0);
        load_tile(kn.data(), d, K.row(b, s0, hk), K.s1, bc, d, A(1));
        load_tile_t(kt.data(), kBc, K.row(b, s0, hk), K.s1, bc, d);
        load_tile_t(vt.data(), kBc, V.row(b, s0, hk), V.s1, bc, dv);
        A* s = sb.data();
        A* dp = pb.data();
        for (int64_t i = 0; i < br; ++i) {
          std::fill(s + i * kBc, s + i * kBc + bc, A(0));
          std::fill(dp + i * kBc, dp + i * kBc + bc, A(0));
        }
        mm_acc<A, false>(s, kBc, qb.data(), d, kt.data(), kBc, br, bc, d);
        P.mask_scores(s, kBc, b, h, t0, br, s0, bc);
        Problem<A>::probabilities(s, kBc, lrow, br, bc);
        mm_acc<A, false>(dp, kBc, gb.data(), dv, vt.data(), kBc, br, bc, dv);  // dP = dO·Vᵀ
        for (int64_t i = 0; i < br; ++i) {
          A* dpr = dp + i * kBc;
          const A* pr = s + i * kBc;
          const A di = drow[i];
#pragma omp simd
          for (int64_t j = 0; j < bc; ++j) dpr[j] = pr[j] * (dpr[j] - di);  // dS
        }
        mm_acc<A, false>(dqb.data(), d, dp, kBc, kn.data(), d, br, d, bc);  // dQ += dS·K
      }
      store_rows(dq, dqb.data(), d, b, t0, h, br, d, P.scale);
    }
  }

  // ---- pass 2: dk and dv, one task per (b, kv head, key tile) ----
  const int64_t n_items2 = P.nb * P.nhkv * n_kt;
#pragma omp parallel if (n_items2 > 1 && !omp_in_parallel())
  {
    std::vector<A> qb(kBr * d), gb(kBr * dv), kt(d * kBc), vt(dv * kBc), sb(kBr * kBc), pb(kBr * kBc),
        dkb(kBc * d), dvb(kBc * dv);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < n_items2; ++item) {
      const int64_t kt_i = item % n_kt, hk = (item / n_kt) % P.nhkv, b = item / (n_kt * P.nhkv);
      const int64_t s0 = kt_i * kBc, bc = std::min(kBc, P.ns - s0);
      load_tile_t(kt.data(), kBc, K.row(b, s0, hk), K.s1, bc, d);
      load_tile_t(vt.data(), kBc, V.row(b, s0, hk), V.s1, bc, dv);
      std::fill(dkb.begin(), dkb.end(), A(0));
      std::fill(dvb.begin(), dvb.end(), A(0));
      // Causal: only queries t with t + (S - T) >= s0 see a key of this tile.
      const int64_t t_first = P.causal ? std::max<int64_t>(0, s0 - P.causal_offset()) : 0;
      for (int64_t h = hk * P.group; h < (hk + 1) * P.group; ++h) {
        for (int64_t t0 = (t_first / kBr) * kBr; t0 < P.nt; t0 += kBr) {
          const int64_t br = std::min(kBr, P.nt - t0);
          const A* lrow = ls + (b * P.nh + h) * P.nt + t0;
          const A* drow = delta.data() + (b * P.nh + h) * P.nt + t0;
          load_tile(qb.data(), d, Q.row(b, t0, h), Q.s1, br, d, P.scale);
          load_tile(gb.data(), dv, dO.row(b, t0, h), dO.s1, br, dv, A(1));
          A* s = sb.data();
          A* dp = pb.data();
          for (int64_t i = 0; i < br; ++i) {
            std::fill(s + i * kBc, s + i * kBc + bc, A(0));
            std::fill(dp + i * kBc, dp + i * kBc + bc, A(0));
          }
          mm_acc<A, false>(s, kBc, qb.data(), d, kt.data(), kBc, br, bc, d);
          P.mask_scores(s, kBc, b, h, t0, br, s0, bc);
          Problem<A>::probabilities(s, kBc, lrow, br, bc);
          mm_acc<A, true>(dvb.data(), dv, s, kBc, gb.data(), dv, bc, dv, br);  // dV += Pᵀ·dO
          mm_acc<A, false>(dp, kBc, gb.data(), dv, vt.data(), kBc, br, bc, dv);  // dP = dO·Vᵀ
          for (int64_t i = 0; i < br; ++i) {
            A* dpr = dp + i * kBc;
            const A* pr = s + i * kBc;
            const A di = drow[i];
#pragma omp simd
            for (int64_t j = 0; j < bc; ++j) dpr[j] = pr[j] * (dpr[j] - di);  // dS
          }
          mm_acc<A, true>(dkb.data(), d, dp, kBc, qb.data(), d, bc, d, br);  // dK += dSᵀ·(scale·Q)
        }
      }
      store_rows(dk, dkb.data(), d, b, s0, hk, bc, d, A(1));
      store_rows(dv_t, dvb.data(), dv, b, s0, hk, bc, dv, A(1));
    }
  }
}

// Attention runs for the dtypes the contract lists (fp8 is not an attention input).
template <class F>
void dispatch_attention(DType t, F&& f) {
  switch (t) {
    case DType::F64: f(double{}); return;
    case DType::F32: f(float{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    default: break;
  }
  throw Error(fmt::format("attention: dtype {} is not supported (expected f64, f32, bf16 or f16)", dtype_name(t)));
}

template <class A>
Problem<A> make_problem(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                        const AttentionArgs& args) {
  Problem<A> p;
  p.nb = q.size(0);
  p.nt = q.size(1);
  p.nh = q.size(2);
  p.d = q.size(3);
  p.ns = k.size(1);
  p.nhkv = k.size(2);
  p.dv = v.size(3);
  p.group = p.nh / p.nhkv;
  p.scale = A(args.scale != 0 ? args.scale : 1.0 / std::sqrt(double(std::max<int64_t>(p.d, 1))));
  p.causal = args.causal;
  if (mask.defined()) {
    p.mask = {static_cast<const A*>(mask.data_ptr()), mask.stride(0), mask.stride(1), mask.stride(2), mask.stride(3)};
  }
  return p;
}

}  // namespace

void CpuBackend::do_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                      const AttentionArgs& args, const Tensor& out, const Tensor& lse) {
  if (args.key_lengths.defined()) {
    // Row by row over its own keys: the lengths are in host memory here.
    const int32_t* lengths = static_cast<const int32_t*>(args.key_lengths.data_ptr());
    const AttentionArgs row_args{.scale = args.scale, .causal = args.causal};
    const Tensor lse3 = lse.view({q.size(0), q.size(2), q.size(1)});
    for (int64_t b = 0; b < q.size(0); ++b) {
      const int64_t len = std::clamp<int64_t>(lengths[b], 0, k.size(1));
      do_attention_forward(q.narrow(0, b, 1), k.narrow(0, b, 1).narrow(1, 0, len), v.narrow(0, b, 1).narrow(1, 0, len),
                           Tensor(), row_args, out.narrow(0, b, 1), lse3.narrow(0, b, 1));
    }
    return;
  }
  dispatch_attention(q.dtype(), [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    const Problem<A> p = make_problem<A>(q, k, v, mask, args);
    if (p.nt <= kDecodeMaxRows && !p.mask.base)
      attention_decode_impl<T>(q, k, v, p, out, lse);
    else
      attention_forward_impl<T>(q, k, v, p, out, lse);
  });
}

void CpuBackend::do_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                       const Tensor& out, const Tensor& lse, const Tensor& dout,
                                       const AttentionArgs& args, const Tensor& dq, const Tensor& dk,
                                       const Tensor& dv) {
  dispatch_attention(q.dtype(), [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    const Problem<A> p = make_problem<A>(q, k, v, mask, args);
    attention_backward_impl<T>(q, k, v, p, out, lse, dout, dq, dk, dv);
  });
}

}  // namespace lmforge
