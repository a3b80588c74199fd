// Small helpers for every test file: the message of an Error and bitwise equality of tensors.
#pragma once

#include <cstring>
#include <functional>
#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace lmforge::test {

// The message of the lmforge::Error that f throws, "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Same dtype, same shape and the same bytes, element by element (either may be a strided view).
inline bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  return std::memcmp(ac.data_ptr(), bc.data_ptr(), ac.nbytes()) == 0;
}

}  // namespace lmforge::test
