// Two kinds of error (STYLE.md §9).
//
//  * lmforge::Error — anything caused by input: a shape that does not fit an op, a config key,
//    a file. Thrown with context (op, argument, shapes, file, key) and caught in main, which
//    prints it as one line and exits non-zero.
//  * LF_ASSERT — our own invariants. Always on; throws InternalError carrying file:line and the
//    condition, so a broken invariant never aborts the process from inside the library.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace lmforge {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& what) : std::logic_error(what) {}
};

[[noreturn]] void throw_internal_error(const char* file, int line, const char* cond, const std::string& msg);

namespace detail {
inline std::string assert_message() { return {}; }
template <class... A>
std::string assert_message(fmt::format_string<A...> f, A&&... a) {
  return fmt::format(f, std::forward<A>(a)...);
}
}  // namespace detail

}  // namespace lmforge

// LF_CHECK(cond, "fmt", args...): user-facing precondition; throws lmforge::Error.
#define LF_CHECK(cond, ...)                                   \
  do {                                                        \
    if (!(cond)) throw ::lmforge::Error(fmt::format(__VA_ARGS__)); \
  } while (0)

// LF_ASSERT(cond) / LF_ASSERT(cond, "fmt", args...): internal invariant; throws InternalError.
#define LF_ASSERT(cond, ...)                                                               \
  do {                                                                                     \
    if (!(cond)) ::lmforge::throw_internal_error(__FILE__, __LINE__, #cond, ::lmforge::detail::assert_message(__VA_ARGS__)); \
  } while (0)
