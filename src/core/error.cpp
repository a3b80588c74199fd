#include "core/error.h"

namespace lmforge {

void throw_internal_error(const char* file, int line, const char* cond, const std::string& msg) {
  throw InternalError(fmt::format("internal error at {}:{}: check `{}` failed{}{}", file, line, cond,
                                  msg.empty() ? "" : ": ", msg));
}

}  // namespace lmforge
