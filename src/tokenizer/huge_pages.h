// Transparent huge pages for the big tables built when a tokenizer loads (internal).
//
// Loading o200k_base fills some 50 MB of freshly allocated memory (token and pair tables, the
// token list, the bytes of each id); with 4 KiB pages that is over 10,000 page faults, a good
// part of the load time. reserve_huge() reserves a vector's storage and asks the kernel for
// 2 MiB pages over it before anything touches it. It is a hint: where THP is off (or set to
// "never"), or the vector is small, nothing changes but the capacity.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lmforge::tok::detail {

template <class T>
void reserve_huge(std::vector<T>& v, size_t n) {
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  if (n <= v.capacity()) return;
  v.reserve(n);
  if (n * sizeof(T) < kHuge) return;
  // Only whole 2 MiB pages inside the allocation can be huge; what lies outside them is not ours.
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(v.data() + v.size()) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t hi = reinterpret_cast<uintptr_t>(v.data() + n) & ~(kHuge - 1);
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
}

// v.assign(n, value) on huge pages: the old storage is dropped first, so the new one is fresh.
template <class T>
void assign_huge(std::vector<T>& v, size_t n, const T& value) {
  std::vector<T>().swap(v);
  reserve_huge(v, n);
  v.assign(n, value);
}

}  // namespace lmforge::tok::detail
