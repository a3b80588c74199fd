#include "optim/schedule.h"

#include <cmath>
#include <numbers>

#include "core/enum_names.h"

namespace lmforge::optim {

namespace {
constexpr EnumNames<ScheduleKind, 3> kScheduleNames{
    {{ScheduleKind::Cosine, "cosine"}, {ScheduleKind::Linear, "linear"}, {ScheduleKind::Constant, "constant"}}};
}  // namespace

std::string_view to_string(ScheduleKind k) { return enum_name(kScheduleNames, k); }

void parse_enum(std::string_view s, std::string_view key, ScheduleKind& out) {
  out = parse_enum_name(kScheduleNames, s, key);
}

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
  if (kind == ScheduleKind::Constant) return lr;
  if (step >= decay_steps) return min_lr;
  const double p = double(step - warmup_steps) / double(std::max<int64_t>(decay_steps - warmup_steps, 1));
  const double f = kind == ScheduleKind::Cosine ? 0.5 * (1.0 + std::cos(std::numbers::pi * p)) : 1.0 - p;
  return min_lr + (lr - min_lr) * f;
}

}  // namespace lmforge::optim
