// Corpus tokenization: ids equal whole-document encoding, output independent of the thread
// count and chunk size, documents and the validation split, invalid UTF-8 counted.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/corpus_tokenize.h"
#include "data/corpus_tokenize_meta.h"
#include "data/shard.h"
#include "tokenizer/bpe_trainer_tokenizer.h"

namespace lmforge::data {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Varied English-like text with blank lines, code-ish lines and non-ASCII.
std::string sample_text(uint32_t seed, size_t n_lines) {
  static const char* const kWords[] = {"the", "model", "Tokenizer", "don't", "IEEE", "x86_64", "naïve", "über",
                                       "日本語", "emoji😀", "3.14159", "2024", "(a+b)", "i++;", "--flag", "/usr/bin",
                                       "CamelCase", "it's", "\t", "  "};
  std::mt19937 rng(seed);
  std::string out;
  for (size_t l = 0; l < n_lines; ++l) {
    const int n = static_cast<int>(rng() % 12);
    for (int w = 0; w < n; ++w) {
      if (w > 0) out += ' ';
      out += kWords[rng() % std::size(kWords)];
    }
    out += rng() % 7 == 0 ? "\n\n" : (rng() % 11 == 0 ? ".\n" : "\n");
  }
  return out;
}

class CorpusTokenizeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A small trained tokenizer (o200k pattern, <|endoftext|> last).
    const fs::path dir = fs::temp_directory_path() / ("lmforge_ct_tok_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path train = dir / "train.txt";
    std::ofstream(train, std::ios::binary) << sample_text(99, 4000);
    tok::TrainerOptions o;
    o.vocab_size = 600;
    tokenizer_ = new tok::Tokenizer(tok::train_tokenizer({train.string()}, o).tokenizer);
    fs::remove_all(dir);
  }
  static void TearDownTestSuite() { delete tokenizer_; }

  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_ct_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) const {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return (dir_ / name).string();
  }

  TokenizeOptions options(std::vector<std::string> inputs, const std::string& out) const {
    TokenizeOptions o;
    o.inputs = std::move(inputs);
    o.output_dir = (dir_ / out).string();
    o.chunk_bytes = 64;
    o.max_chunk_bytes = 4096;
    return o;
  }

  // All ids of a split, concatenated over its shards.
  static std::vector<uint32_t> read_split(const TokenizeOptions& o, const std::vector<ShardSummary>& shards) {
    std::vector<uint32_t> ids;
    for (const auto& s : shards) {
      const ShardReader r((fs::path(o.output_dir) / s.file).string());
      EXPECT_EQ(r.size(), s.tokens);
      for (uint64_t i = 0; i < r.size(); ++i) ids.push_back(r.at(i));
    }
    return ids;
  }

  static tok::Tokenizer* tokenizer_;
  fs::path dir_;
};

tok::Tokenizer* CorpusTokenizeTest::tokenizer_ = nullptr;

TEST(CorpusText, InvalidUtf8IsCountedLikePython) {
  const std::vector<std::pair<std::string, uint64_t>> cases = {
      {"plain ascii text, long enough for the fast path", 0}, {"naïve 日本語 😀", 0}, {"\xff", 1},
      {"\xe2\x82", 1}, {"\xe2\x82" "A", 1}, {"\xed\xa0\x80", 3}, {"\xf0\x9f\x98", 1}, {"\xc0\xaf", 2},
      {"\xf4\x90\x80\x80", 4}, {"a\x80\x80" "b", 2}, {"\xe0\x80\x80", 3}, {"\xf0\x80\x80\x80", 4}};
  for (const auto& [s, n] : cases) EXPECT_EQ(count_invalid_utf8(s), n) << s;
  EXPECT_EQ(replace_invalid_utf8("a\xe2\x82" "b\xff"), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
}

TEST(CorpusText, Sha256) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(CorpusText, ValidationDocumentsAreSpreadEvenly) {
  std::vector<uint64_t> val;
  for (uint64_t i = 0; i < 20; ++i) {
    if (is_validation_document(i, 0.2)) val.push_back(i);
  }
  EXPECT_EQ(val, (std::vector<uint64_t>{4, 9, 14, 19}));
  EXPECT_FALSE(is_validation_document(0, 0.0));
}

TEST_F(CorpusTokenizeTest, IdsEqualWholeFileEncodingAndDoNotDependOnThreads) {
  const std::string a = sample_text(1, 3000), b = sample_text(2, 500);
  const std::vector<std::string> inputs = {write("a.txt", a), write("b.txt", b)};
  const uint32_t eot = tokenizer_->eot_id();
  std::vector<uint32_t> expected = {eot};
  tokenizer_->encode_ordinary_append(a, expected);
  expected.push_back(eot);
  tokenizer_->encode_ordinary_append(b, expected);

  std::string first_bytes;
  for (int threads : {1, 2, 3}) {
    SCOPED_TRACE(threads);
    TokenizeOptions o = options(inputs, "out" + std::to_string(threads));
    o.n_threads = threads;
    const TokenizeSummary s = tokenize_corpus(*tokenizer_, o);
    EXPECT_EQ(s.documents, 2u);
    EXPECT_EQ(s.bytes, a.size() + b.size());
    EXPECT_EQ(s.tokens, expected.size());
    EXPECT_EQ(s.forced_cuts, 0u);
    ASSERT_EQ(s.train_shards.size(), 1u);
    EXPECT_TRUE(s.val_shards.empty());
    EXPECT_EQ(read_split(o, s.train_shards), expected);
    const std::string bytes = read_bytes(fs::path(o.output_dir) / "train_000000.bin");
    if (first_bytes.empty()) first_bytes = bytes;
    EXPECT_EQ(bytes, first_bytes);
  }
}

TEST_F(CorpusTokenizeTest, ChunkSizeDoesNotChangeIds) {
  const std::vector<std::string> inputs = {write("a.txt", sample_text(3, 2000))};
  std::vector<uint32_t> first;
  for (size_t chunk : {size_t{16}, size_t{200}, size_t{1} << 20}) {
    TokenizeOptions o = options(inputs, "out" + std::to_string(chunk));
    o.chunk_bytes = chunk;
    o.max_chunk_bytes = std::max<size_t>(4096, 2 * chunk);
    o.n_threads = 2;
    const auto ids = read_split(o, tokenize_corpus(*tokenizer_, o).train_shards);
    if (first.empty()) first = ids;
    EXPECT_EQ(ids, first) << chunk;
  }
}

TEST_F(CorpusTokenizeTest, ParagraphDocumentsAndValidationSplit) {
  const std::string text = "\n\nfirst para\nline two.\n\n  \nsecond\n\n\nthird one\nNext\n\nfourth\nfifth? no\n\nfifth";
  const std::vector<std::string> paragraphs = {"first para\nline two.\n", "second\n", "third one\nNext\n",
                                               "fourth\nfifth? no\n", "fifth"};
  TokenizeOptions o = options({write("p.txt", text)}, "out");
  o.documents = DocumentMode::Paragraph;
  o.val_fraction = 0.4;  // documents 2 and 4 (0-based)
  o.chunk_bytes = 8;
  o.max_chunk_bytes = 64;
  o.n_threads = 2;
  const TokenizeSummary s = tokenize_corpus(*tokenizer_, o);
  EXPECT_EQ(s.documents, 5u);
  EXPECT_EQ(s.train_documents, 3u);
  EXPECT_EQ(s.val_documents, 2u);
  const uint32_t eot = tokenizer_->eot_id();
  std::vector<uint32_t> train, val;
  for (size_t i = 0; i < paragraphs.size(); ++i) {
    auto& dst = (i == 2 || i == 4) ? val : train;
    dst.push_back(eot);
    tokenizer_->encode_ordinary_append(paragraphs[i], dst);
  }
  EXPECT_EQ(read_split(o, s.train_shards), train);
  EXPECT_EQ(read_split(o, s.val_shards), val);
}

TEST_F(CorpusTokenizeTest, JsonlDocumentsAndInvalidUtf8) {
  const std::string jsonl = "{\"text\": \"hello world\", \"id\": 1}\n\n{\"text\": \"caf\xc3\xa9 \xff\"}\n"
                            "{\"text\": \"\"}\n{\"text\": \"third\\ndoc\"}\n";
  TokenizeOptions o = options({write("d.jsonl", jsonl), write("plain.txt", "bad \xe2\x82 bytes")}, "out");
  o.n_threads = 2;
  const TokenizeSummary s = tokenize_corpus(*tokenizer_, o);
  EXPECT_EQ(s.documents, 4u);  // 3 non-empty JSON texts + the plain file
  EXPECT_EQ(s.invalid_utf8, 2u);
  const uint32_t eot = tokenizer_->eot_id();
  std::vector<uint32_t> expected;
  for (const std::string doc : {"hello world", "caf\xc3\xa9 \xEF\xBF\xBD", "third\ndoc", "bad \xe2\x82 bytes"}) {
    expected.push_back(eot);
    tokenizer_->encode_ordinary_append(doc, expected);
  }
  EXPECT_EQ(read_split(o, s.train_shards), expected);
}

TEST_F(CorpusTokenizeTest, MalformedJsonlNamesFileAndLine) {
  TokenizeOptions o = options({write("bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n")}, "out");
  try {
    tokenize_corpus(*tokenizer_, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  o = options({write("bad2.jsonl", "{\"text\": \"ok\"}\n\n{not json\n")}, "out2");
  try {
    tokenize_corpus(*tokenizer_, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad2.jsonl:3"), std::string::npos) << e.what();
  }
}

TEST_F(CorpusTokenizeTest, ShardsRollOverAndMetaDescribesThem) {
  const std::string text = sample_text(5, 1500);
  TokenizeOptions one = options({write("a.txt", text)}, "one");
  const auto all = read_split(one, tokenize_corpus(*tokenizer_, one).train_shards);
  TokenizeOptions many = options({(dir_ / "a.txt").string()}, "many");
  many.shard_tokens = 1000;
  many.tokenizer_path = write("tok.bin", "pretend tokenizer file");
  const TokenizeSummary s = tokenize_corpus(*tokenizer_, many);
  ASSERT_EQ(s.train_shards.size(), (all.size() + 999) / 1000);
  EXPECT_EQ(s.train_shards[0].file, "train_000000.bin");
  EXPECT_EQ(s.train_shards[1].tokens, 1000u);
  EXPECT_EQ(read_split(many, s.train_shards), all);
  const auto meta = nlohmann::json::parse(read_bytes(fs::path(many.output_dir) / "meta.json"));
  EXPECT_EQ(meta["tokens"], all.size());
  EXPECT_EQ(meta["dtype"], "uint16");
  EXPECT_EQ(meta["train"]["shards"].size(), s.train_shards.size());
  EXPECT_EQ(meta["tokenizer"]["sha256"], sha256_hex("pretend tokenizer file"));
  EXPECT_EQ(meta["tokenizer"]["eot_id"], tokenizer_->eot_id());
}

TEST_F(CorpusTokenizeTest, ExistingShardsNeedOverwrite) {
  TokenizeOptions o = options({write("a.txt", "some text\n")}, "out");
  tokenize_corpus(*tokenizer_, o);
  EXPECT_THROW(tokenize_corpus(*tokenizer_, o), Error);
  o.overwrite = true;
  EXPECT_NO_THROW(tokenize_corpus(*tokenizer_, o));
}

}  // namespace
}  // namespace lmforge::data
