// Token shards: round trips, the exact byte layout, and rejection of broken files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/error.h"
#include "data/shard.h"

namespace lmforge::data {
namespace {

namespace fs = std::filesystem;

class ShardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_shard_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write_shard(const std::string& name, const std::vector<uint32_t>& ids, int width, uint32_t vocab,
                          int64_t eot = -1) {
    ShardWriter w(path(name), {.bytes_per_token = width, .vocab_size = vocab, .eot_id = eot});
    // Several appends, one bigger than the write buffer.
    const size_t half = ids.size() / 2;
    w.append(std::span(ids).subspan(0, half));
    w.add_documents(3);
    w.append(std::span(ids).subspan(half));
    w.close();
    return path(name);
  }

  static std::string expect_error(const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "no Error thrown";
    return "";
  }

  fs::path dir_;
};

std::vector<uint32_t> iota_ids(size_t n, uint32_t mod) {
  std::vector<uint32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint32_t>((i * 7919) % mod);
  return v;
}

TEST_F(ShardTest, RoundTripU16) {
  const auto ids = iota_ids(3'000'000, 50257);  // 6 MB: crosses the 4 MiB write buffer
  const std::string p = write_shard("a.bin", ids, 2, 50257, 50256);
  const ShardReader r(p);
  EXPECT_EQ(r.size(), ids.size());
  EXPECT_EQ(r.bytes_per_token(), 2);
  EXPECT_EQ(r.info().vocab_size, 50257u);
  EXPECT_EQ(r.info().eot_id, 50256);
  EXPECT_EQ(r.info().n_documents, 3u);
  EXPECT_EQ(fs::file_size(p), kShardHeaderBytes + 2 * ids.size());
  const auto s = r.u16();
  ASSERT_EQ(s.size(), ids.size());
  for (size_t i = 0; i < ids.size(); i += 9973) {
    EXPECT_EQ(s[i], ids[i]);
    EXPECT_EQ(r.at(i), ids[i]);
  }
  std::vector<uint32_t> out(1000);
  r.read(ids.size() - 1000, out);
  EXPECT_TRUE(std::equal(out.begin(), out.end(), ids.end() - 1000));
  EXPECT_THROW(r.u32(), Error);
  EXPECT_NO_THROW(r.validate_ids(50257));
}

TEST_F(ShardTest, RoundTripU32) {
  const auto ids = iota_ids(100'000, 200019);
  const ShardReader r(write_shard("b.bin", ids, 4, 200019, 199999));
  ASSERT_EQ(r.bytes_per_token(), 4);
  EXPECT_TRUE(std::equal(r.u32().begin(), r.u32().end(), ids.begin(), ids.end()));
  EXPECT_EQ(r.at(99'999), ids[99'999]);
  EXPECT_THROW(r.u16(), Error);
}

TEST_F(ShardTest, EmptyShard) {
  const ShardReader r(write_shard("e.bin", {}, 2, 300));
  EXPECT_EQ(r.size(), 0u);
  EXPECT_TRUE(r.u16().empty());
  EXPECT_EQ(r.info().eot_id, -1);
}

TEST_F(ShardTest, ByteLayoutIsTheDocumentedOne) {
  const std::vector<uint32_t> ids = {1, 2, 65535, 0};
  const std::string p = write_shard("c.bin", ids, 2, 65536, 7);
  std::ifstream f(p, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.size(), 1024u + 8);
  EXPECT_EQ(std::string(bytes.data(), 4), "LMFS");
  auto word = [&](int i) {
    int32_t v;
    std::memcpy(&v, bytes.data() + 4 * i, 4);
    return v;
  };
  EXPECT_EQ(word(1), 1);
  EXPECT_EQ(word(2), 2);
  EXPECT_EQ(word(3), 4);
  EXPECT_EQ(word(4), 0);
  EXPECT_EQ(word(5), 65536);
  EXPECT_EQ(word(6), 7);
  EXPECT_EQ(word(9), 1024);
  for (int i = 10; i < 256; ++i) EXPECT_EQ(word(i), 0) << i;
  uint16_t raw[4];
  std::memcpy(raw, bytes.data() + 1024, 8);  // what numpy.memmap(offset=1024) sees
  EXPECT_EQ(raw[2], 65535);
}

TEST_F(ShardTest, TruncatedShardIsRejectedNamingTheFile) {
  const std::string p = write_shard("t.bin", iota_ids(1000, 100), 2, 100);
  fs::resize_file(p, fs::file_size(p) - 1);
  std::string msg = expect_error([&] { ShardReader r(p); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  fs::resize_file(p, 100);
  msg = expect_error([&] { ShardReader r(p); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("header"), std::string::npos) << msg;
}

TEST_F(ShardTest, CorruptShardsAreRejectedNamingTheFile) {
  const auto ids = iota_ids(100, 100);
  const std::string p = write_shard("m.bin", ids, 2, 100);
  auto patch = [&](size_t offset, uint32_t value) {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(reinterpret_cast<const char*>(&value), 4);
  };
  patch(0, 20240520);  // llm.c's magic
  EXPECT_NE(expect_error([&] { ShardReader r(p); }).find("not a token shard"), std::string::npos);
  patch(0, static_cast<uint32_t>(kShardMagic));
  patch(4, 9);
  EXPECT_NE(expect_error([&] { ShardReader r(p); }).find("version 9"), std::string::npos);
  patch(4, 1);
  patch(8, 3);
  EXPECT_NE(expect_error([&] { ShardReader r(p); }).find(p), std::string::npos);
  patch(8, 2);
  EXPECT_NO_THROW(ShardReader r(p));
  {
    std::ofstream f(p, std::ios::app | std::ios::binary);
    f << "xx";
  }
  EXPECT_NE(expect_error([&] { ShardReader r(p); }).find("extra bytes"), std::string::npos);
  EXPECT_NE(expect_error([&] { ShardReader r(path("missing.bin")); }).find("missing.bin"), std::string::npos);
}

TEST_F(ShardTest, ValidateIdsNamesFileAndPosition) {
  std::vector<uint32_t> ids(200'000, 5);
  ids[123'456] = 700;
  const ShardReader r(write_shard("v.bin", ids, 2, 1000));
  EXPECT_NO_THROW(r.validate_ids(1000));
  const std::string msg = expect_error([&] { r.validate_ids(500); });
  EXPECT_NE(msg.find("v.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("position 123456"), std::string::npos) << msg;
  EXPECT_NE(msg.find("700"), std::string::npos) << msg;
}

TEST_F(ShardTest, WriterRejectsBadIdsAndWidths) {
  ShardWriter w(path("w.bin"), {.bytes_per_token = 2, .vocab_size = 10, .eot_id = -1});
  const std::vector<uint32_t> bad = {1, 2, 10};
  const std::string msg = expect_error([&] { w.append(bad); });
  EXPECT_NE(msg.find("position 2"), std::string::npos) << msg;
  EXPECT_THROW(ShardWriter(path("x.bin"), {.bytes_per_token = 2, .vocab_size = 70000, .eot_id = -1}), Error);
  EXPECT_THROW(ShardWriter(path("y.bin"), {.bytes_per_token = 3, .vocab_size = 10, .eot_id = -1}), Error);
  EXPECT_EQ(bytes_per_token_for_vocab(65536), 2);
  EXPECT_EQ(bytes_per_token_for_vocab(65537), 4);
}

TEST_F(ShardTest, UnclosedWriterLeavesNothingBehind) {
  {
    ShardWriter w(path("u.bin"), {.bytes_per_token = 2, .vocab_size = 10, .eot_id = -1});
    const std::vector<uint32_t> ids = {1, 2, 3};
    w.append(ids);
  }
  EXPECT_FALSE(fs::exists(path("u.bin")));
  EXPECT_TRUE(fs::is_empty(dir_));
}

}  // namespace
}  // namespace lmforge::data
