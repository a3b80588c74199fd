#include "core/dtype.h"

namespace lmforge {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F64: return "f64";
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::F8E4M3: return "f8e4m3";
    case DType::F8E5M2: return "f8e5m2";
    case DType::I8: return "i8";
    case DType::I16: return "i16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
    case DType::U16: return "u16";
    case DType::U32: return "u32";
    case DType::Bool: return "bool";
  }
  return "?";
}

DType parse_dtype(std::string_view s) {
  struct Alias { std::string_view name; DType t; };
  static constexpr Alias aliases[] = {
      {"f64", DType::F64}, {"float64", DType::F64}, {"double", DType::F64},
      {"f32", DType::F32}, {"float32", DType::F32}, {"float", DType::F32}, {"fp32", DType::F32},
      {"bf16", DType::BF16}, {"bfloat16", DType::BF16},
      {"f16", DType::F16}, {"float16", DType::F16}, {"fp16", DType::F16}, {"half", DType::F16},
      {"f8e4m3", DType::F8E4M3}, {"e4m3", DType::F8E4M3}, {"fp8_e4m3", DType::F8E4M3},
      {"f8e5m2", DType::F8E5M2}, {"e5m2", DType::F8E5M2}, {"fp8_e5m2", DType::F8E5M2},
      {"i8", DType::I8}, {"int8", DType::I8}, {"i16", DType::I16}, {"int16", DType::I16},
      {"i32", DType::I32}, {"int32", DType::I32}, {"i64", DType::I64}, {"int64", DType::I64},
      {"u8", DType::U8}, {"uint8", DType::U8}, {"u16", DType::U16}, {"uint16", DType::U16},
      {"u32", DType::U32}, {"uint32", DType::U32}, {"bool", DType::Bool},
  };
  for (const auto& a : aliases)
    if (a.name == s) return a.t;
  throw Error(fmt::format("unknown dtype '{}' (expected one of f64, f32, bf16, f16, f8e4m3, f8e5m2, "
                          "i8, i16, i32, i64, u8, u16, u32, bool)", s));
}

}  // namespace lmforge
