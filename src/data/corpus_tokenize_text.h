// Text handling for corpus tokenization: what a document is, where a stream may be cut into
// work items without changing any id, and counting invalid UTF-8.
//
// Documents (DocumentMode):
//   File       each input file is one document (the default);
//   Paragraph  documents are separated by one or more blank lines (lines holding only spaces,
//              tabs or '\r'); the blank lines are dropped, each document keeps the '\n' that
//              ends its last line;
//   .jsonl     inputs (by extension) always have one document per line: the string field
//              `jsonl_field` ("text") of the JSON object on that line; blank lines are skipped.
// Empty documents are skipped.
//
// Work items (chunks) of about chunk_bytes are cut only at:
//   * document boundaries (Paragraph: the start of a line after a blank line; .jsonl: any line
//     start), and
//   * safe splits inside a document (tokenizer/bpe_trainer_count.h: '\n' between an ASCII
//     non-space and an ASCII letter), where the r50k/cl100k/o200k pre-tokenizers provably
//     restart, so encoding the two sides separately gives the ids of encoding the whole.
// Cuts depend only on the text and chunk_bytes, never on the thread count. Text with no such
// position in max_chunk_bytes is cut at the last line break (else UTF-8 character boundary)
// and counted as a forced cut.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lmforge::data {

enum class DocumentMode { File, Paragraph };

// Parses "file" | "paragraph"; Error naming the accepted values.
DocumentMode parse_document_mode(std::string_view s);
std::string_view document_mode_name(DocumentMode m);

// Number of ill-formed UTF-8 sequences: each maximal invalid subpart counts once, which is the
// number of U+FFFD that Python's bytes.decode("utf-8", errors="replace") produces.
uint64_t count_invalid_utf8(std::string_view s);
// s with each maximal invalid subpart replaced by U+FFFD.
std::string replace_invalid_utf8(std::string_view s);

// Is the line starting at `line_start` (after a '\n' or at 0) blank? An unterminated last line
// counts as blank when everything it has so far is blank.
bool is_blank_line(std::string_view text, size_t line_start);

enum class CutKind { None, Safe, Document, Forced };

struct Cut {
  size_t pos = 0;
  CutKind kind = CutKind::None;
};

// The first allowed cut at or after `from` in text (a buffer that may continue after its end,
// so a cut at text.size() is never returned). Document: a document boundary (Paragraph or
// jsonl); Safe: a safe split; None: nothing found, or a candidate could not be decided
// without more text (so the answer never depends on how much of the stream is buffered).
Cut find_cut(std::string_view text, size_t from, DocumentMode mode, bool jsonl);
// A cut for text that has none: after the last '\n', else at the last UTF-8 lead byte.
size_t forced_cut(std::string_view text);

}  // namespace lmforge::data
