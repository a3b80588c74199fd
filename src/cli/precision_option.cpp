#include "cli/command.h"

namespace lmforge::cli {

void add_precision_option(CLI::App& sub, std::string& value) {
  sub.add_option("--precision", value, "dtype the forward computes in, weights staying f32 (auto: bf16 on a GPU, f32 on the CPU)")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "f16"}))
      ->capture_default_str();
}

train::Precision precision_of(const std::string& value) {
  train::Precision p = train::Precision::Auto;
  train::parse_enum(value, "--precision", p);
  return p;
}

}  // namespace lmforge::cli
