// Overflow-checked integer arithmetic for sizes that come from configs, files and the command
// line. A product of two user-given sizes can wrap around in int64 (4611686018427387904 · 4 is 0)
// and then slip past every later check; these helpers report the overflow instead, and
// check_size_limit() turns an out-of-range size into an Error naming the key and the limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/error.h"

namespace lmforge {

// a · b, or nothing when it does not fit int64.
inline std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// a + b, or nothing when it does not fit int64.
inline std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// "2^24" for powers of two, the plain number otherwise (limits read better as powers).
inline std::string limit_str(int64_t limit) {
  if (limit > 0 && (limit & (limit - 1)) == 0) return fmt::format("{} (2^{})", limit, __builtin_ctzll(uint64_t(limit)));
  return fmt::format("{}", limit);
}

// Error "<key> = <value> exceeds the limit <limit>" unless value <= limit. `what` may say why the
// limit exists; it follows the message.
inline void check_size_limit(std::string_view key, int64_t value, int64_t limit, std::string_view what = {}) {
  LF_CHECK(value <= limit, "{} = {} exceeds the limit {}{}{}", key, value, limit_str(limit), what.empty() ? "" : "; ",
           what);
}

// The product of sizes named by `key` (e.g. "train.micro_batch_size · seq_len"), checked against
// `limit` without overflowing: Error naming the key and the limit.
inline int64_t checked_size_product(std::string_view key, int64_t a, int64_t b, int64_t limit,
                                    std::string_view what = {}) {
  const std::optional<int64_t> p = checked_mul(a, b);
  LF_CHECK(p.has_value() && *p <= limit, "{} = {} · {} exceeds the limit {}{}{}", key, a, b, limit_str(limit),
           what.empty() ? "" : "; ", what);
  return *p;
}

}  // namespace lmforge
