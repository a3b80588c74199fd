// lmforge sweep: the runs of a base config with some keys varied over lists of values (the
// cartesian product, last key fastest), trained one after another on the same data with the
// same seed, each in its own directory under the output, then drawn in one report
// (OUTPUT/report.html) beside each other.
//
// Every variant is resolved and validated before the first run starts: an unknown key, a value
// of the wrong type, a bad enum value or a cross-key constraint fails the whole sweep with the
// trainer's message, naming the variant. A run that fails while training (it diverges past
// train.max_bad_steps, say) is reported and the sweep goes on with the next.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "train/config.h"
#include "train/trainer.h"

namespace lmforge::train {

struct SweepAxis {
  std::string key;                  // "optim.lr"
  std::vector<std::string> values;  // as --set takes them
};
// "optim.lr=1e-3,3e-3" -> {optim.lr, [1e-3, 3e-3]}; Error naming the argument when malformed.
SweepAxis parse_sweep_axis(std::string_view spec);

struct SweepVariant {
  std::string name;                      // "01-lr=1e-3_norm=layernorm": the run directory's name
  std::vector<std::string> assignments;  // this variant's "key=value"s
  RunConfig config;                      // resolved and validated; train.out_dir = OUTPUT/name
};

struct SweepPlan {
  std::string output_dir;
  std::vector<SweepVariant> variants;
};

// `base_overrides` ("key=value", as train's --set) apply to every variant before its own.
// Error before anything is written when any variant does not resolve, a key is varied twice or
// is train.out_dir, or a variant's directory already holds checkpoints.
SweepPlan plan_sweep(std::string_view base_toml, std::string_view base_source,
                     const std::vector<std::string>& base_overrides, const std::vector<SweepAxis>& axes,
                     const std::string& output_dir);

struct SweepRunResult {
  std::string name;
  bool ok = false;
  std::string error;  // when !ok
  TrainSummary summary;
};

// Trains each variant in order; `progress` gets one line before and one after each run. Writes
// OUTPUT/report.html after each run (a partial report while the sweep goes on).
std::vector<SweepRunResult> run_sweep(const SweepPlan& plan, const std::function<void(const std::string&)>& progress);

}  // namespace lmforge::train
