// Byte-level BPE tokenizer: encoding and decoding, special tokens, file formats. The same class
// holds the piece-level baselines (`tokenizer train --kind char|word`): a vocabulary of whole
// pieces (characters or words) with an unknown token, see TokenizerSpec::unknown_token.
//
// Pipeline of encode(text):
//   1. special tokens are cut out first (leftmost occurrence, the longest on a tie) according to
//      the SpecialPolicy; the text between them is encoded on its own, so nothing merges across
//      a special token;
//   2. each stretch of text is cut into pieces by the Pretokenizer;
//   3. each piece becomes ids: a piece that is itself a token is emitted as is (tiktoken; HF
//      "ignore_merges"), otherwise byte-level BPE merges it (bpe.h), through a per-thread cache.
// Any byte string encodes (invalid UTF-8 is encoded byte by byte), and
// decode(encode(s), DecodeMode::Bytes) == s for every s.
// Piece-level tokenizers (an unknown token is set) replace step 3: each piece is one id, its
// token when the vocabulary has it, the unknown token otherwise. They round-trip only text whose
// pieces are all known; decode() writes the unknown token as its text (<|unk|>), a visible
// marker, like any special token: the character or word it replaced is lost.
//
// Two merge rules cover the two ecosystems (bpe.h has the details):
//   MergeRule::Ranks      tiktoken: the pair whose concatenation has the lowest rank merges
//                         first; ranks are the ids. .tiktoken files, from_ranks/from_merges.
//   MergeRule::MergeList  HF tokenizers: only listed merges apply, by their order in the list.
//                         tokenizer.json files.
//
// Thread safety: a Tokenizer is immutable after construction and cheap to copy (the model is
// shared); every const member may be called from many threads at once.
//
// Example:
//   auto tok = lmforge::tok::Tokenizer::load("cl100k_base.tiktoken");
//   std::vector<uint32_t> ids = tok.encode("hello world");
//   std::string text = tok.decode(ids);
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/pretokenizer.h"

namespace lmforge::tok {

// Which special-token texts encode() turns into special ids (tiktoken's allowed_special /
// disallowed_special).
struct SpecialPolicy {
  enum class Allowed { None, All, List };
  Allowed allowed = Allowed::None;
  std::vector<std::string> list;  // the allowed ones when allowed == List
  // The text of a special token that is not allowed: an Error naming it and its byte offset
  // (false, tiktoken's default), or encoded as ordinary text (true).
  bool disallowed_as_text = false;

  static SpecialPolicy none() { return {}; }
  static SpecialPolicy all() { return {Allowed::All, {}, false}; }
  static SpecialPolicy only(std::vector<std::string> names) { return {Allowed::List, std::move(names), false}; }
  // "all" | "none" | a comma-separated list of special tokens (for command lines).
  static SpecialPolicy parse(std::string_view spec);
};

enum class DecodeMode {
  Strict,  // bytes must be valid UTF-8, else Error naming the byte offset (and the token)
  Lossy,   // each ill-formed sequence becomes U+FFFD (Python's errors="replace")
  Bytes,   // the raw bytes, unchecked: the exact inverse of encode
};

enum class MergeRule { Ranks, MergeList };

struct SpecialToken {
  std::string text;
  uint32_t id = 0;
  bool operator==(const SpecialToken&) const = default;
};

// Everything that defines a tokenizer; the loaders fill one and call Tokenizer::build.
struct TokenizerSpec {
  // Ordinary tokens as (bytes, id). All ids (ordinary and special) must be distinct, all byte
  // strings non-empty and distinct. With MergeRule::Ranks the id is the rank.
  std::vector<std::pair<std::string, uint32_t>> tokens;
  // Optional, parallel to `tokens`: the line of the source file each token was read from, so
  // that an error about a token (two tokens with the same bytes) names the file and line.
  std::vector<size_t> token_lines;
  MergeRule rule = MergeRule::Ranks;
  // MergeRule::MergeList only: (left id, right id) by priority, highest first. The result of
  // each merge is the token spelled bytes(left) + bytes(right); it must exist.
  std::vector<std::pair<uint32_t, uint32_t>> merges;
  // A piece that is itself a token is emitted as is (always true for Ranks; HF ignore_merges).
  bool whole_piece_lookup = true;
  std::vector<SpecialToken> specials;
  Pretokenizer pretokenizer;
  bool add_prefix_space = false;  // HF ByteLevel: a space before text that does not start with one
  std::string source;             // file name or description, for messages and info()
  // Non-empty: a piece-level tokenizer (HF "WordLevel"). Each piece of the pretokenizer is one
  // token, and a piece that is not in the vocabulary becomes this special token (which must be
  // among `specials`); there are no merges.
  std::string unknown_token;
};

namespace detail {
struct Model;
}

class Tokenizer {
 public:
  // A `.tiktoken` rank file or an HF `tokenizer.json`, told apart by content (a JSON object)
  // and extension. pattern_name (r50k_base|gpt2|cl100k_base|o200k_base) chooses the
  // pre-tokenizer and special tokens of a .tiktoken file; without it the file name must start
  // with a known encoding name. For a tokenizer.json it replaces the file's pre-tokenizer.
  static Tokenizer load(const std::string& path, std::string_view pattern_name = "");
  static Tokenizer load_tiktoken(const std::string& path, std::string_view pattern_name = "");
  static Tokenizer load_tokenizer_json(const std::string& path);

  // From tokens listed by rank (index == id == rank; MergeRule::Ranks), e.g. a trained model:
  // specials get the ids after the last token, in the given order.
  static Tokenizer from_merges(std::vector<std::string> token_bytes_by_rank, std::vector<std::string> specials,
                               Pretokenizer pretokenizer);
  // The same with explicit special-token ids.
  static Tokenizer from_ranks(std::vector<std::string> token_bytes_by_rank, std::vector<SpecialToken> specials,
                              Pretokenizer pretokenizer);
  // Ids 0..255 are the bytes, specials follow; no merges, no pre-tokenization: the baseline.
  static Tokenizer byte_level(std::vector<std::string> specials = {});
  static Tokenizer build(TokenizerSpec spec);

  // ---- encoding ----
  std::vector<uint32_t> encode(std::string_view text, const SpecialPolicy& policy = {}) const;
  // Special-token text is ordinary text here.
  std::vector<uint32_t> encode_ordinary(std::string_view text) const;
  void encode_append(std::string_view text, std::vector<uint32_t>& out, const SpecialPolicy& policy = {}) const;
  void encode_ordinary_append(std::string_view text, std::vector<uint32_t>& out) const;
  // One big text on n_threads threads (0: hardware concurrency). The text is cut only where
  // the pre-tokenizer provably restarts (Pretokenizer::is_cut_point) and no special token
  // spans the cut, so the ids equal encode(text, policy); patterns without such points run on
  // one thread.
  std::vector<uint32_t> encode_parallel(std::string_view text, unsigned n_threads,
                                        const SpecialPolicy& policy = {}) const;
  // encode_parallel's work handed out chunk by chunk, for a caller that processes ids as they
  // come (the command line formats them on the encoding threads): the text is cut as there (at
  // most 4 MiB a chunk, even on one thread), and sink(i, ids) gets the ids of chunk i on the
  // thread that encoded it, chunks in any order, possibly at once; the ids of chunks 0, 1, ...
  // in order equal encode(text, policy). Returns the number of chunks. An Error in a chunk is
  // rethrown after all chunks ran (the first chunk's that failed).
  size_t encode_chunks(std::string_view text, unsigned n_threads, const SpecialPolicy& policy,
                       const std::function<void(size_t chunk, std::vector<uint32_t>& ids)>& sink) const;
  // Many texts (documents) on n_threads threads; result i is encode(texts[i], policy).
  std::vector<std::vector<uint32_t>> encode_batch(std::span<const std::string_view> texts, unsigned n_threads,
                                                  const SpecialPolicy& policy = {}) const;

  // ---- decoding ----
  // Throws Error naming an id that is not in the vocabulary. Special tokens (the unknown token of
  // a piece-level tokenizer too) decode to their text.
  std::string decode(std::span<const uint32_t> ids, DecodeMode mode = DecodeMode::Strict) const;

  // ---- vocabulary ----
  size_t vocab_size() const;         // max id + 1 (ids may have gaps)
  size_t n_ordinary_tokens() const;  // tokens that are not special
  size_t n_merges() const;           // entries of the merge table (see merges())
  bool has_id(uint32_t id) const;
  bool is_special(uint32_t id) const;
  // Bytes of a token (the text of a special); Error naming the id if it is not in the vocabulary.
  const std::string& token_bytes(uint32_t id) const;
  std::optional<uint32_t> token_id(std::string_view bytes) const;  // ordinary tokens only
  std::optional<uint32_t> special_id(std::string_view text) const;
  // <|endoftext|>'s id, for a caller that needs one: Error naming the tokenizer when it has none.
  uint32_t eot_id() const;
  // <|endoftext|>'s id when the vocabulary has that special token (a lookup, never an Error).
  std::optional<uint32_t> find_eot_id() const;
  const std::vector<SpecialToken>& special_tokens() const;  // by id
  // Merges by priority, as (left, right) ids: the listed ones for MergeList; for Ranks, one per
  // token of two or more bytes (the last merge BPE makes when encoding the token's own bytes,
  // as tiktoken's and HF's converters derive them).
  std::vector<std::pair<uint32_t, uint32_t>> merges() const;
  MergeRule merge_rule() const;
  bool whole_piece_lookup() const;
  bool add_prefix_space() const;
  const Pretokenizer& pretokenizer() const;
  const std::string& source() const;
  // Mean length in bytes of the ordinary tokens.
  double mean_token_bytes() const;
  // The unknown token's id of a piece-level tokenizer (TokenizerSpec::unknown_token), else none.
  std::optional<uint32_t> unknown_id() const;

  // ---- files ----
  // HF tokenizers format (ByteLevel BPE, or WordLevel over byte-level pieces for a piece-level
  // tokenizer); loads in HF tokenizers with the same ids.
  void save_tokenizer_json(const std::string& path) const;
  // tiktoken rank file: ordinary tokens only (the format has no pattern and no specials), ids
  // as ranks. For a MergeList tokenizer, tiktoken's rule reproduces its ids when ids follow the
  // merge order (GPT-2's file, and every file lmforge writes), not in general.
  void save_tiktoken(const std::string& path) const;

  const detail::Model& model() const { return *m_; }
  explicit Tokenizer(std::shared_ptr<const detail::Model> m) : m_(std::move(m)) {}

 private:
  std::shared_ptr<const detail::Model> m_;
};

}  // namespace lmforge::tok
