// The fast .tiktoken load path against plain references: the table-driven base64 decoder
// against a bit-accumulator decoder, the vocabulary against the file read by a plain parser,
// the pair table (built in batches, on several threads) against every split of every token
// looked up in a std::unordered_map; and bad files still get errors naming the file and line.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <unordered_map>

#include "tokenizer/base64.h"
#include "tokenizer/model.h"
#include "tokenizer_test_util.h"

namespace lmforge::tok {
namespace {

namespace fs = std::filesystem;
using testing::encoding;

// RFC 4648 decoding the slow way: six bits at a time into an accumulator. Rejects what the
// loader must reject: a length that is not a multiple of 4, characters outside the alphabet,
// '=' anywhere but the last one or two places, and non-zero bits under the padding.
std::optional<std::string> reference_base64_decode(std::string_view text) {
  static const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (text.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i + pad < text.size(); ++i) {
    const size_t v = alphabet.find(text[i]);
    if (v == std::string::npos) return std::nullopt;
    acc = acc << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>(acc >> bits & 0xFF);
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // dropped bits must be 0
  return out;
}

TEST(TokenizerBase64, FastDecoderAgreesWithTheReference) {
  std::mt19937_64 rng(7);
  std::string out;
  for (int n = 0; n < 2000; ++n) {
    const std::string bytes = testing::random_bytes(rng, rng() % 40);
    const std::string text = base64_encode(bytes);
    ASSERT_EQ(reference_base64_decode(text), bytes) << text;
    ASSERT_TRUE(base64_decode_into(text, out)) << text;
    ASSERT_EQ(out, bytes) << text;
    // Corrupt one character: both decoders accept it or both reject it, and agree on the bytes.
    if (text.empty()) continue;
    std::string bad = text;
    bad[rng() % bad.size()] = "A=+/!-_ \xC3"[rng() % 9];
    const auto want = reference_base64_decode(bad);
    const bool ok = base64_decode_into(bad, out);
    ASSERT_EQ(ok, want.has_value()) << bad;
    if (ok) {
      ASSERT_EQ(out, *want) << bad;
    }
    ASSERT_EQ(base64_decode(bad), want) << bad;
  }
  for (const char* bad : {"A", "AB=", "====", "A===", "AB=C", "QR==", "QUJ=", "QU=I", "@@@@", "IQ==IQ=="})
    EXPECT_FALSE(base64_decode_into(bad, out)) << bad;
  for (const auto& [text, bytes] : {std::pair{"QQ==", "A"}, {"QUI=", "AB"}, {"QUJD", "ABC"}}) {
    EXPECT_TRUE(base64_decode_into(text, out)) << text;
    EXPECT_EQ(out, bytes);
    EXPECT_EQ(reference_base64_decode(text), bytes);
  }
}

// The .tiktoken file of `name` read with getline and the reference decoder: bytes by rank.
std::vector<std::string> read_ranks_plainly(const std::string& name) {
  std::ifstream in(testing::tokenizers_dir() + "/" + name + ".tiktoken");
  std::vector<std::string> by_rank;
  for (std::string line; std::getline(in, line);) {
    const size_t sp = line.find(' ');
    const size_t rank = std::stoul(line.substr(sp + 1));
    if (by_rank.size() <= rank) by_rank.resize(rank + 1);
    by_rank[rank] = *reference_base64_decode(line.substr(0, sp));
  }
  return by_rank;
}

class TokenizerLoad : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerLoad, VocabularyAndPairTableMatchPlainReferences) {
  const Tokenizer& tok = encoding(GetParam());
  const std::vector<std::string> by_rank = read_ranks_plainly(GetParam());
  std::unordered_map<std::string, uint32_t> id_of;
  for (uint32_t id = 0; id < by_rank.size(); ++id) {
    if (by_rank[id].empty()) continue;
    ASSERT_TRUE(tok.has_id(id)) << id;
    ASSERT_EQ(tok.token_bytes(id), by_rank[id]) << id;
    ASSERT_EQ(tok.token_id(by_rank[id]), id) << id;
    id_of.emplace(by_rank[id], id);
  }
  EXPECT_EQ(tok.n_ordinary_tokens(), id_of.size());
  // Every split (l, r) of every token t with both parts tokens is the pair (l, r) -> (t, t);
  // the table holds nothing else.
  const detail::PairMap& pairs = tok.model().pairs;
  size_t expected = 0;
  for (const auto& [bytes, id] : id_of) {
    for (size_t k = 1; k < bytes.size(); ++k) {
      const auto l = id_of.find(bytes.substr(0, k)), r = id_of.find(bytes.substr(k));
      if (l == id_of.end() || r == id_of.end()) continue;
      ++expected;
      const detail::PairMap::Value* v = pairs.find(l->second, r->second);
      ASSERT_NE(v, nullptr) << id << " split at " << k;
      ASSERT_EQ(v->rank, id);
      ASSERT_EQ(v->result, id);
    }
  }
  EXPECT_EQ(pairs.size(), expected);
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerLoad, ::testing::Values("r50k_base", "cl100k_base", "o200k_base"));

class TokenizerLoadErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_tok_load_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // The Error message of loading `content` as a cl100k_base file ("" if it loads).
  std::string error_of(const std::string& content) {
    const std::string p = path();
    std::ofstream(p, std::ios::binary) << content;
    try {
      Tokenizer::load(p, "cl100k_base");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::string path() const { return (dir_ / "t.tiktoken").string(); }
  fs::path dir_;
};

// The first n lines of the real cl100k_base file.
std::string cl100k_head(size_t n) {
  std::ifstream in(testing::tokenizers_dir() + "/cl100k_base.tiktoken");
  std::string out;
  std::string line;
  for (size_t i = 0; i < n && std::getline(in, line); ++i) out += line + "\n";
  return out;
}

TEST_F(TokenizerLoadErrors, BadFilesNameTheFileAndLine) {
  const std::string head = cl100k_head(1000);
  ASSERT_EQ(error_of(head), "");
  // Truncated in the middle of the last line's base64.
  std::string e = error_of(head + "IC");
  EXPECT_NE(e.find(path() + ":1001:"), std::string::npos) << e;
  EXPECT_NE(e.find("base64"), std::string::npos) << e;
  // Truncated after the space: no rank.
  e = error_of(head + "ICAg ");
  EXPECT_NE(e.find(path() + ":1001:"), std::string::npos) << e;
  EXPECT_NE(e.find("rank"), std::string::npos) << e;
  // A corrupt base64 character in the middle of the file.
  std::string corrupt = head;
  corrupt[corrupt.find('\n', 5000) + 1] = '*';
  const size_t bad_line = static_cast<size_t>(std::count(corrupt.begin(), corrupt.begin() + 5000, '\n')) + 2;
  e = error_of(corrupt);
  EXPECT_NE(e.find(path() + ":" + std::to_string(bad_line) + ":"), std::string::npos) << e;
  // A rank given twice, and a token given twice (found while the token map is built).
  e = error_of(head + "ICAgIA== 5\n");
  EXPECT_NE(e.find(path() + ":1001:"), std::string::npos) << e;
  EXPECT_NE(e.find("rank 5 was already given on line 6"), std::string::npos) << e;
  e = error_of(head + "IQ== 1000\n");  // "!" is rank 0, on line 1
  EXPECT_NE(e.find(path() + ":1001:"), std::string::npos) << e;
  EXPECT_NE(e.find("token 1000 has the bytes '!' of token 0, given on line 1"), std::string::npos) << e;
  e = error_of("IQ== 1\nIQ== 0\n");  // the same with the ranks the other way round
  EXPECT_NE(e.find(path() + ":2:"), std::string::npos) << e;
  EXPECT_NE(e.find("given on line 1"), std::string::npos) << e;
  // A rank far beyond the number of lines is named on its line, before any table is sized.
  e = error_of(head + "ICAgIA== 2000000000\n");
  EXPECT_NE(e.find(path() + ":1001:"), std::string::npos) << e;
  EXPECT_NE(e.find("far beyond"), std::string::npos) << e;
}

}  // namespace
}  // namespace lmforge::tok
