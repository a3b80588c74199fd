// One table per enum of its names as written in configs, flags and files, and the two lookups
// every enum <-> string conversion goes through:
//
//   constexpr EnumNames<OnNan, 2> kOnNanNames{{{OnNan::Skip, "skip"}, {OnNan::Rollback, "rollback"}}};
//   std::string_view to_string(OnNan v) { return enum_name(kOnNanNames, v); }
//   OnNan parse(std::string_view s) { return parse_enum_name(kOnNanNames, s, "train.on_nan"); }
//
// A name that is not in the table is an Error naming the key and listing every accepted name in
// table order: `train.on_nan: unknown value "x" (expected skip | rollback)`.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.h"

namespace lmforge {

template <class E, size_t N>
using EnumNames = std::array<std::pair<E, std::string_view>, N>;

// The name of `v`, or "?" for a value missing from the table.
template <class E, size_t N>
constexpr std::string_view enum_name(const EnumNames<E, N>& names, E v) {
  for (const auto& [e, s] : names)
    if (e == v) return s;
  return "?";
}

// The value called `s`; Error naming `key` otherwise.
template <class E, size_t N>
E parse_enum_name(const EnumNames<E, N>& names, std::string_view s, std::string_view key) {
  std::string accepted;
  for (const auto& [e, name] : names) {
    if (name == s) return e;
    accepted += (accepted.empty() ? "" : " | ") + std::string(name);
  }
  throw Error(fmt::format("{}: unknown value \"{}\" (expected {})", key, s, accepted));
}

}  // namespace lmforge
