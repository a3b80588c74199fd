#include "accounting/matmul_peak.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "backend/backend.h"
#include "ops/ops.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace lmforge::accounting {

namespace fs = std::filesystem;

double measure_matmul_peak(Device device, DType dtype) {
  NoGradGuard no_grad;
  Generator gen(0);
  const bool cpu = device.is_cpu();
  // One product is ~45 ms on two CPU cores (f32, 1024³) and ~1.4 ms on an H100/H200 (bf16, 8192³).
  const int64_t n = cpu ? 1024 : 8192;
  const int products_per_rep = cpu ? 2 : 10;
  // Repetitions until both counts are reached (at most kMaxReps): a transient slows some of
  // them, and the best one is kept.
  constexpr int kMinReps = 5, kMaxReps = 20;
  const double min_seconds = cpu ? 0.5 : 0.25;
  Tensor a = rand({n, n}, gen, dtype, device), b = rand({n, n}, gen, dtype, device);
  // Warm-up: the first products fault in the output's pages, start the thread pool, load the
  // kernels and let a GPU raise its clock.
  Tensor c;
  for (int i = 0; i < 2; ++i) c = matmul(a, b);
  backend_for(device).synchronize();
  double best = 0, total = 0;
  for (int rep = 0; rep < kMaxReps && (rep < kMinReps || total < min_seconds); ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < products_per_rep; ++i) c = matmul(a, b);
    backend_for(device).synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total += s;
    best = std::max(best, 2.0 * double(n) * double(n) * double(n) * products_per_rep / s);
  }
  return best;
}

std::string default_peak_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg) return (fs::path(xdg) / "lmforge" / "matmul_peak.json").string();
  const char* home = std::getenv("HOME");
  if (home && *home) return (fs::path(home) / ".cache" / "lmforge" / "matmul_peak.json").string();
  return "";
}

namespace {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown host";
  return buf;
}

// The value of the first "key : value" line of `path` whose key is `key`, else "".
std::string proc_field(const fs::path& path, const std::string& key) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string k = line.substr(0, colon);
    k.erase(k.find_last_not_of(" \t") + 1);
    if (k != key) continue;
    const size_t v = line.find_first_not_of(" \t", colon + 1);
    return v == std::string::npos ? "" : line.substr(v);
  }
  return "";
}

// The models of the host's NVIDIA GPUs, from the driver's /proc entries (no CUDA call needed).
std::string gpu_models() {
  std::set<std::string> models;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/driver/nvidia/gpus", ec)) {
    const std::string m = proc_field(e.path() / "information", "Model");
    if (!m.empty()) models.insert(m);
  }
  std::string out;
  for (const auto& m : models) out += (out.empty() ? "" : ", ") + m;
  return out.empty() ? "unknown GPU" : out;
}

int cpu_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// The cache file's contents, or an empty cache with `note` saying why it could not be used.
nlohmann::json read_cache(const std::string& path, std::string& note) {
  const nlohmann::json empty = {{"version", 1}, {"peaks", nlohmann::json::object()}};
  std::error_code ec;
  if (!fs::exists(path, ec)) return empty;
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (!f || j.is_discarded() || !j.is_object() || !j.contains("peaks") || !j["peaks"].is_object()) {
    note = fmt::format("{} is not a peak cache (replaced)", path);
    return empty;
  }
  return j;
}

// Written to a temporary name and renamed, so a reader never sees half a file. The temporary name
// carries the process id (core/file_util.h's write_file_atomic uses one fixed name): runs started
// together, as a sweep's are, write the same cache. False on failure: the cache is only a help.
bool write_cache(const std::string& path, const nlohmann::json& j) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << j.dump(2) << "\n";
    if (!f.flush()) {
      fs::remove(tmp, ec);
      return false;
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) fs::remove(tmp, ec);
  return !ec;
}

}  // namespace

std::string peak_cache_key(Device device, DType dtype) {
  std::string hw;
  if (device.is_cpu()) {
    std::string model = proc_field("/proc/cpuinfo", "model name");
    hw = fmt::format("cpu {} x {} threads", model.empty() ? "unknown CPU" : model, cpu_threads());
  } else {
    hw = fmt::format("{} of {}", device.str(), gpu_models());
  }
  return fmt::format("{} | {} | {}", host_name(), hw, dtype_name(dtype));
}

MatmulPeak resolve_matmul_peak(Device device, DType dtype, double configured_tflops, const std::string& cache_path) {
  if (configured_tflops > 0)
    return {.flops = configured_tflops * 1e12, .source = fmt::format("train.peak_tflops = {}", configured_tflops)};
  const double now = measure_matmul_peak(device, dtype);
  const std::string what = fmt::format("{} on {}", dtype_name(dtype), device.str());
  if (cache_path.empty())
    return {.flops = now, .source = fmt::format("{}, measured now; no cache directory", what)};
  std::string note;
  nlohmann::json cache = read_cache(cache_path, note);
  const std::string key = peak_cache_key(device, dtype);
  nlohmann::json& entry = cache["peaks"][key];
  double best = now;
  int64_t count = 1;
  if (entry.is_object() && entry.value("flops", 0.0) > 0) {
    best = std::max(now, entry.value("flops", 0.0));
    count = entry.value("measurements", int64_t(1)) + 1;
  }
  entry = {{"flops", best}, {"measurements", count}};
  if (!write_cache(cache_path, cache)) {
    note += (note.empty() ? "" : "; ") + fmt::format("could not write {}", cache_path);
  }
  std::string source = count == 1 ? fmt::format("{}, measured now", what)
                                  : fmt::format("{}, the best of {} start-up measurements on this machine, kept in {}; "
                                                "this one {:.1f} GFLOP/s",
                                                what, count, cache_path, now / 1e9);
  if (!note.empty()) source += "; " + note;
  return {.flops = best, .source = source};
}

Mfu model_flops_utilization(double achieved_flops, double peak_flops) {
  if (!(peak_flops > 0)) return {};
  const double u = achieved_flops / peak_flops;
  if (u > 1) return {.value = std::nullopt, .above_peak = true};
  return {.value = u, .above_peak = false};
}

std::string format_mfu(const Mfu& mfu) {
  if (mfu.above_peak) return "mfu >100% (peak underestimated)";
  if (!mfu.value) return "mfu n/a";
  return fmt::format("mfu {:.1f}%", 100 * *mfu.value);
}

}  // namespace lmforge::accounting
