// First half of BPE training: count the distinct pre-tokenized pieces of a corpus.
//
// Input is streamed: each file is read in blocks (memory grows with the number of distinct
// pieces, not with the corpus), every block is cut into chunks of about a megabyte, and the
// chunks are pre-tokenized in parallel, each thread counting into its own PieceCounts; the
// per-thread maps are summed at the end. Occurrences of special tokens are cut out of the text
// (they act as document separators and are never counted), and each file is a separate document.
//
// Where text is cut. Blocks and chunks end at a *safe split*: a position p with
//   text[p-2] an ASCII character that is not whitespace, text[p-1] == '\n',
//   text[p] an ASCII letter, and no special token occurrence spanning p.
// For the r50k, cl100k and o200k patterns no piece can span such a position and no match
// before it looks past it (every alternative that consumes '\n' stops at a letter, and the
// whitespace run before p is exactly "\n"), so the pieces equal those of pre-tokenizing each
// whole file in one call. For a user pattern this is assumed (document it with the pattern).
// Cut positions depend only on the text and the fixed block/chunk sizes, never on the number
// of threads, and counting is a sum, so the counts never depend on the thread count. Text with
// no safe split in max_block_bytes (one 256 MiB line) is cut at the last line break or UTF-8
// character boundary instead; CountStats::forced_splits says how often.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge::tok {

// 64-bit hash of a byte string (multiply-fold mixing, 8 bytes at a time).
uint64_t hash_bytes(std::string_view s);

// A flat open-addressing hash map from byte string to count. Keys live in one arena; the table
// holds (item index, hash tag) pairs, so a map of n pieces costs ~24 B per item + 8 B per slot
// + the key bytes. Items are kept in insertion order (iteration is by item index).
class PieceCounts {
 public:
  PieceCounts();
  void add(std::string_view piece, uint64_t count = 1);
  // Adds every piece of `other` (the result does not depend on the order of calls).
  void merge_from(const PieceCounts& other);
  size_t size() const { return items_.size(); }
  std::string_view piece(size_t i) const { return {arena_.data() + items_[i].offset, items_[i].length}; }
  uint64_t count(size_t i) const { return items_[i].count; }
  std::optional<uint64_t> find(std::string_view piece) const;
  // Sum of all counts (number of pieces seen).
  uint64_t total_count() const;
  size_t memory_bytes() const;

 private:
  struct Item {
    uint64_t offset;
    uint64_t count;
    uint32_t length;
  };
  void grow();
  size_t find_slot(std::string_view piece, uint64_t h) const;

  std::vector<char> arena_;
  std::vector<Item> items_;
  std::vector<uint64_t> table_;  // 0: empty; else (item index + 1) | (hash >> 32) << 32
  size_t mask_;
};

// Pre-tokenizer as a function: calls emit(piece) for each piece of text, in order.
using SplitFn = std::function<void(std::string_view text, const std::function<void(std::string_view)>& emit)>;

struct CountOptions {
  int n_threads = 1;
  std::vector<std::string> special_tokens;
  size_t block_bytes = size_t{32} << 20;      // bytes read per block
  size_t chunk_bytes = size_t{1} << 20;       // target size of one parallel work item
  size_t max_block_bytes = size_t{256} << 20; // longest text kept waiting for a safe split
  bool progress = false;                      // progress bar on stderr (only on a terminal)
};

struct CountStats {
  uint64_t bytes = 0;           // bytes read
  uint64_t text_bytes = 0;      // bytes outside special-token occurrences
  uint64_t pieces = 0;          // pieces counted
  uint64_t special_tokens = 0;  // special-token occurrences cut out
  uint64_t forced_splits = 0;   // cuts that were not at a safe split
  double seconds = 0;
};

// Is p a safe split of text (see the file comment)?
bool is_safe_split(std::string_view text, size_t p, const std::vector<std::string>& special_tokens);
// First safe split at or after `from`, or npos.
size_t next_safe_split(std::string_view text, size_t from, const std::vector<std::string>& special_tokens);
// Last safe split at or before `upto` (and > 0), or npos.
size_t prev_safe_split(std::string_view text, size_t upto, const std::vector<std::string>& special_tokens);

// Calls f(segment) for the text between special-token occurrences (leftmost match, the longest
// special on a tie), skipping empty segments; returns the number of occurrences.
uint64_t split_at_special_tokens(std::string_view text, const std::vector<std::string>& special_tokens,
                                 const std::function<void(std::string_view)>& f);

// Counts the pieces of the given files (each one a document). Throws Error naming a file that
// cannot be read.
PieceCounts count_pieces_in_files(const std::vector<std::string>& paths, const SplitFn& split,
                                  const CountOptions& options, CountStats* stats = nullptr);
// The same for text already in memory (one document).
PieceCounts count_pieces_in_text(std::string_view text, const SplitFn& split, const CountOptions& options,
                                 CountStats* stats = nullptr);

}  // namespace lmforge::tok
