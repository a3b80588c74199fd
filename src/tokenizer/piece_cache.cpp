#include "tokenizer/piece_cache.h"

#include <array>

namespace lmforge::tok::detail {

PieceCache& thread_piece_cache(uint64_t model_serial) {
  struct Slot {
    uint64_t serial = 0;  // serials start at 1
    uint64_t last_use = 0;
    std::unique_ptr<PieceCache> cache;
  };
  thread_local std::array<Slot, 4> slots;
  thread_local uint64_t clock = 0;
  ++clock;
  Slot* victim = &slots[0];
  for (Slot& s : slots) {
    if (s.serial == model_serial) {
      s.last_use = clock;
      return *s.cache;
    }
    if (s.last_use < victim->last_use) victim = &s;
  }
  victim->serial = model_serial;
  victim->last_use = clock;
  victim->cache = std::make_unique<PieceCache>();
  return *victim->cache;
}

}  // namespace lmforge::tok::detail
