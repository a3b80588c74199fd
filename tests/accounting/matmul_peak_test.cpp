// MFU's peak: a configured peak is used as given; a measured one is kept in the cache file as the
// best measurement for its machine key, so a lower measurement never lowers it and a higher one
// replaces it; a damaged cache is replaced. MFU above 1 is flagged, never reported as a number.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "accounting/matmul_peak.h"

namespace lmforge::accounting {
namespace {

namespace fs = std::filesystem;

class MatmulPeakCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lmforge_peak_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    path_ = (dir_ / "sub" / "matmul_peak.json").string();  // the directories are created on write
  }
  void TearDown() override { fs::remove_all(dir_); }
  nlohmann::json read() const {
    std::ifstream f(path_);
    return nlohmann::json::parse(f);
  }
  void write_entry(double flops, int64_t measurements) const {
    fs::create_directories(fs::path(path_).parent_path());
    nlohmann::json j = {{"version", 1}, {"peaks", {{key(), {{"flops", flops}, {"measurements", measurements}}}}}};
    std::ofstream(path_) << j.dump();
  }
  static std::string key() { return peak_cache_key(Device::cpu(), DType::F32); }
  fs::path dir_;
  std::string path_;
};

TEST_F(MatmulPeakCache, ConfiguredPeakIsUsedWithoutMeasuringOrCaching) {
  const MatmulPeak p = resolve_matmul_peak(Device::cpu(), DType::F32, 123.5, path_);
  EXPECT_EQ(p.flops, 123.5e12);
  EXPECT_NE(p.source.find("train.peak_tflops"), std::string::npos) << p.source;
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(MatmulPeakCache, FirstMeasurementIsStored) {
  const MatmulPeak p = resolve_matmul_peak(Device::cpu(), DType::F32, 0, path_);
  EXPECT_GT(p.flops, 0);
  const nlohmann::json j = read();
  EXPECT_EQ(j["peaks"][key()]["flops"].get<double>(), p.flops);
  EXPECT_EQ(j["peaks"][key()]["measurements"].get<int64_t>(), 1);
}

TEST_F(MatmulPeakCache, HigherCachedPeakIsKept) {
  // 1 EFLOP/s: no CPU measures that, so the cached value must win.
  write_entry(1e18, 3);
  const MatmulPeak p = resolve_matmul_peak(Device::cpu(), DType::F32, 0, path_);
  EXPECT_EQ(p.flops, 1e18);
  EXPECT_NE(p.source.find("best of 4"), std::string::npos) << p.source;
  EXPECT_EQ(read()["peaks"][key()]["measurements"].get<int64_t>(), 4);
}

TEST_F(MatmulPeakCache, HigherMeasurementReplacesCachedPeak) {
  write_entry(1.0, 2);  // 1 FLOP/s: any measurement is higher
  const MatmulPeak p = resolve_matmul_peak(Device::cpu(), DType::F32, 0, path_);
  EXPECT_GT(p.flops, 1.0);
  EXPECT_EQ(read()["peaks"][key()]["flops"].get<double>(), p.flops);
}

TEST_F(MatmulPeakCache, OtherKeysAreKept) {
  fs::create_directories(fs::path(path_).parent_path());
  std::ofstream(path_) << R"({"version": 1, "peaks": {"other host | cuda:0 of X | bf16": {"flops": 7e14, "measurements": 1}}})";
  resolve_matmul_peak(Device::cpu(), DType::F32, 0, path_);
  const nlohmann::json j = read();
  EXPECT_EQ(j["peaks"]["other host | cuda:0 of X | bf16"]["flops"].get<double>(), 7e14);
  EXPECT_TRUE(j["peaks"].contains(key()));
}

TEST_F(MatmulPeakCache, DamagedCacheIsReplaced) {
  fs::create_directories(fs::path(path_).parent_path());
  std::ofstream(path_) << "{ not json";
  const MatmulPeak p = resolve_matmul_peak(Device::cpu(), DType::F32, 0, path_);
  EXPECT_GT(p.flops, 0);
  EXPECT_NE(p.source.find("not a peak cache"), std::string::npos) << p.source;
  EXPECT_EQ(read()["peaks"][key()]["flops"].get<double>(), p.flops);
}

TEST(MatmulPeakKey, NamesDeviceAndDtype) {
  const std::string k = peak_cache_key(Device::cpu(), DType::BF16);
  EXPECT_NE(k.find("cpu"), std::string::npos) << k;
  EXPECT_NE(k.find("bf16"), std::string::npos) << k;
  EXPECT_NE(k, peak_cache_key(Device::cpu(), DType::F32));
}

TEST(Mfu, AbovePeakIsFlaggedNotReported) {
  const Mfu half = model_flops_utilization(50, 100);
  ASSERT_TRUE(half.value.has_value());
  EXPECT_DOUBLE_EQ(*half.value, 0.5);
  EXPECT_FALSE(half.above_peak);
  EXPECT_EQ(format_mfu(half), "mfu 50.0%");
  const Mfu full = model_flops_utilization(100, 100);
  EXPECT_TRUE(full.value.has_value() && !full.above_peak);
  const Mfu over = model_flops_utilization(151.8, 100);
  EXPECT_FALSE(over.value.has_value());
  EXPECT_TRUE(over.above_peak);
  EXPECT_EQ(format_mfu(over), "mfu >100% (peak underestimated)");
}

}  // namespace
}  // namespace lmforge::accounting
