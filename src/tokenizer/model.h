// The immutable state behind a Tokenizer (internal to the tokenizer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/special_matcher.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::tok::detail {

enum class IdKind : uint8_t { Absent = 0, Ordinary = 1, Special = 2 };

struct Model {
  uint64_t serial = 0;                  // unique per model, keys the per-thread piece caches
  std::vector<std::string> bytes_by_id;  // token bytes / special text; empty for absent ids
  std::vector<IdKind> kind_by_id;
  size_t n_ordinary = 0;
  uint32_t byte_id[256];  // the token of each single byte, or kNoId
  TokenMap tokens;        // ordinary tokens only
  PairMap pairs;
  MergeRule rule = MergeRule::Ranks;
  std::vector<std::pair<uint32_t, uint32_t>> merge_list;  // MergeList: as given
  bool whole_piece_lookup = true;
  bool add_prefix_space = false;
  bool bytes_only = false;  // every ordinary token is one byte: encoding is a byte map
  uint32_t unknown_id = kNoId;  // piece-level: the id of a piece not in the vocabulary (else kNoId)
  std::vector<SpecialToken> specials;  // sorted by id
  SpecialMatcher matcher;              // over specials, same order
  Pretokenizer pretokenizer;
  std::string source;
};

// Appends the ids of text with no special-token handling.
void encode_ordinary_into(const Model& m, std::string_view text, std::vector<uint32_t>& out);
// The full encode of one stretch; base_offset is added to byte offsets in error messages.
void encode_into(const Model& m, std::string_view text, size_t base_offset, std::vector<uint32_t>& out,
                 const SpecialPolicy& policy);

}  // namespace lmforge::tok::detail
