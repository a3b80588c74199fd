// Learning-rate schedules: linear warmup, then cosine (or linear) decay to a floor, or constant.
//
// For the optimizer step with 0-based index s:
//   s < warmup_steps:                lr · (s + 1) / warmup_steps
//   warmup_steps <= s < decay_steps: min_lr + (lr - min_lr) · f(p), p = (s - warmup) / (decay - warmup),
//                                    f = (1 + cos(π p)) / 2 (cosine) or 1 - p (linear), 1 (constant)
//   s >= decay_steps:                min_lr (constant: lr)
#pragma once

#include <cstdint>
#include <string_view>

namespace lmforge::optim {

enum class ScheduleKind { Cosine, Linear, Constant };
std::string_view to_string(ScheduleKind k);
// "cosine" | "linear" | "constant"; Error naming `key` otherwise.
void parse_enum(std::string_view s, std::string_view key, ScheduleKind& out);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  double lr = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup_steps = 0;
  int64_t decay_steps = 0;  // the step at which the floor is reached

  double at(int64_t step) const;
};

}  // namespace lmforge::optim
