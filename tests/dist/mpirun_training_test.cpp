// `lmforge train` under `mpirun -np 2` on the CPU against the same training in one process:
//   - two ranks (started by `--nproc 2`, or by mpirun) give the single-process losses for the same global batch, within the f32
//     rounding bound below; ZeRO-1 and ZeRO-2 give plain data parallel's losses bit for bit;
//   - a checkpoint written by two ranks resumes on one, and one written by one resumes on two;
//   - ranks started with different configs stop with an error naming the rank;
//   - a rank that is killed or stalls ends the run with an error instead of a hang.
// Skipped where lmforge was built without MPI or mpirun is missing.
//
// The f32 bound: a rank's gradient is its half-batch sum, and the two halves are added by the
// all-reduce, where one process adds all rows in one pass; each gradient element is the same
// sum in another order, so it differs by a few f32 roundings (relative 1e-7 to 1e-6 of the
// element's magnitude). AdamW's update lr·m̂/(√v̂+ε) depends smoothly on the gradient at these
// sizes, so the weights differ by lr times that relative amount per step and the loss, a smooth
// function of them, stays within about 1e-6 relative over the run's few steps (these runs
// measure below 1e-7; the test prints it). The test allows 1e-4 relative, two orders of
// magnitude above that and far below any real divergence (a wrong shard or a missing average
// moves the loss by more than 1e-2).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/file_util.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::dist {
namespace {

namespace fs = std::filesystem;

constexpr double kRelativeBound = 1e-4;

std::string lmforge_binary() { return (std::filesystem::path(LMFORGE_BINARY_DIR) / "lmforge").string(); }

bool mpirun_found() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

class MpirunTrainingTest : public test::PatternShardsTest {
 protected:
  void SetUp() override {
#ifndef LMFORGE_WITH_MPI
    GTEST_SKIP() << "lmforge was built without MPI";
#endif
    if (!mpirun_found()) GTEST_SKIP() << "mpirun is not on PATH";
    if (!fs::exists(lmforge_binary())) GTEST_SKIP() << "no lmforge binary at " << lmforge_binary();
    test::PatternShardsTest::SetUp();
  }

  // A config file for `name`: tiny_run() with 2 sequences per micro-batch (one per rank), 2
  // micro-batches per step, no clipping (see zero_stages_match), the schedule fixed at 8 steps
  // so that shorter runs resume onto the same one, and no matmul-peak measurement.
  std::string config(const std::string& name, int64_t steps) {
    train::RunConfig c = run(name);
    c.train.steps = steps;
    c.optim.decay_steps = 8;
    c.optim.grad_clip = 0;
    c.train.peak_tflops = 1;
    c.eval.every = 0;
    c.eval.max_batches = 2;
    c.checkpoint.every = 0;
    const std::string path = root_ + "/" + name + ".toml";
    write_file_synced(path, train::to_toml(c));
    return path;
  }
  // Runs `mpirun -np <ranks> lmforge train --config <config> <extra>`; returns the exit status,
  // stderr into `err`.
  int mpirun(int ranks, const std::string& cfg, const std::string& extra, std::string* err = nullptr) {
    const std::string err_path = root_ + "/stderr.txt";
    const std::string cmd = fmt::format(
        "OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe --bind-to none -np {} {} train --config {} {} "
        "> {}/stdout.txt 2> {}", ranks, lmforge_binary(), cfg, extra, root_, err_path);
    const int status = std::system(cmd.c_str());
    if (err) *err = read_file(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // The training losses metrics.jsonl of run `name` holds, by step.
  std::vector<std::pair<int64_t, double>> losses(const std::string& name) {
    std::vector<std::pair<int64_t, double>> out;
    std::ifstream in(root_ + "/" + name + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains("loss") && !j.contains("event")) out.push_back({j["step"].get<int64_t>(), j["loss"].get<double>()});
    }
    return out;
  }
  static void expect_within_bound(const std::vector<std::pair<int64_t, double>>& a,
                                  const std::vector<std::pair<int64_t, double>>& b) {
    ASSERT_EQ(a.size(), b.size());
    ASSERT_FALSE(a.empty());
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first);
      EXPECT_NEAR(a[i].second, b[i].second, kRelativeBound * std::abs(b[i].second)) << "step " << a[i].first;
      worst = std::max(worst, std::abs(a[i].second - b[i].second) / std::abs(b[i].second));
    }
    std::printf("largest relative loss difference: %.3g (bound %.0e)\n", worst, kRelativeBound);
  }
};

TEST_F(MpirunTrainingTest, TwoRanksGiveTheSingleProcessLossesAndZeroStagesAgree) {
  const std::string cfg = config("one", 8);
  ASSERT_EQ(std::system(fmt::format("OMP_NUM_THREADS=1 {} train --config {} > /dev/null", lmforge_binary(), cfg).c_str()), 0);
  const auto one = losses("one");
  ASSERT_EQ(one.size(), 8u);
  std::vector<std::pair<int64_t, double>> zero0;
  for (int zero : {0, 1, 2}) {
    SCOPED_TRACE(zero);
    const std::string name = "two_zero" + std::to_string(zero);
    const std::string sets = fmt::format("--set train.out_dir={}/{} --set dist.zero={}", root_, name, zero);
    if (zero == 0) {
      // `--nproc 2` on the CPU: lmforge starts the ranks under mpirun itself.
      ASSERT_EQ(std::system(fmt::format("OMP_NUM_THREADS=1 {} train --config {} {} --nproc 2 > /dev/null 2> {}/err.txt",
                                        lmforge_binary(), cfg, sets, root_).c_str()), 0)
          << read_file(root_ + "/err.txt");
    } else {
      std::string err;
      ASSERT_EQ(mpirun(2, cfg, sets, &err), 0) << err;
    }
    const auto two = losses(name);
    expect_within_bound(two, one);
    // ZeRO: the reduce-scatter adds the same two numbers per element as the all-reduce, and
    // without clipping the update is the same elementwise arithmetic: identical losses.
    if (zero == 0) zero0 = two;
    else
      for (size_t i = 0; i < two.size(); ++i) EXPECT_EQ(test::bits(two[i].second), test::bits(zero0[i].second));
  }
  // The checkpoints hold the whole optimizer state whatever the stage.
  EXPECT_EQ(read_file(root_ + "/two_zero0/checkpoints/step_8/optimizer.safetensors").size(),
            read_file(root_ + "/two_zero2/checkpoints/step_8/optimizer.safetensors").size());
}

TEST_F(MpirunTrainingTest, CheckpointsResumeAtAnotherWorldSize) {
  const std::string full = config("full", 8), half = config("half", 4);
  ASSERT_EQ(std::system(fmt::format("OMP_NUM_THREADS=1 {} train --config {} > /dev/null", lmforge_binary(), full).c_str()), 0);
  const auto reference = losses("full");
  ASSERT_EQ(reference.size(), 8u);
  const std::vector<std::pair<int64_t, double>> tail(reference.begin() + 4, reference.end());
  std::string err;
  // 2 → 1: four steps on two ranks (ZeRO-1: the optimizer state is gathered into the checkpoint),
  // the rest in one process.
  ASSERT_EQ(mpirun(2, half, fmt::format("--set train.out_dir={}/a --set dist.zero=1", root_), &err), 0) << err;
  ASSERT_EQ(std::system(fmt::format("OMP_NUM_THREADS=1 {} train --config {} --set train.out_dir={}/a --set "
                                    "train.steps=8 --resume > /dev/null", lmforge_binary(), half, root_).c_str()), 0);
  auto resumed = losses("a");
  ASSERT_EQ(resumed.size(), 8u);
  expect_within_bound({resumed.begin() + 4, resumed.end()}, tail);
  // 1 → 2: four steps in one process, the rest on two ranks under ZeRO-2 (each takes its shard).
  ASSERT_EQ(std::system(fmt::format("OMP_NUM_THREADS=1 {} train --config {} --set train.out_dir={}/b > /dev/null",
                                    lmforge_binary(), half, root_).c_str()), 0);
  ASSERT_EQ(mpirun(2, half, fmt::format("--set train.out_dir={}/b --set train.steps=8 --set dist.zero=2 --resume",
                                        root_), &err), 0) << err;
  resumed = losses("b");
  ASSERT_EQ(resumed.size(), 8u);
  expect_within_bound({resumed.begin() + 4, resumed.end()}, tail);
}

TEST_F(MpirunTrainingTest, RanksWithDifferentConfigsStopWithAnError) {
  const std::string cfg = config("mismatch", 2);
  const std::string err_path = root_ + "/stderr.txt";
  // mpirun's multi-program form: rank 1 gets another learning rate.
  const std::string cmd = fmt::format(
      "OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 1 {0} train --config {1} : "
      "-np 1 {0} train --config {1} --set optim.lr=0.5 > /dev/null 2> {2}", lmforge_binary(), cfg, err_path);
  const int status = std::system(cmd.c_str());
  EXPECT_NE(status, 0);
  const std::string err = read_file(err_path);
  EXPECT_NE(err.find("rank 1 resolved a different config from rank 0's"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(root_ + "/mismatch/checkpoints/step_2"));
}

TEST_F(MpirunTrainingTest, WorldSizeThatDoesNotDivideTheBatchNamesTheKey) {
  const std::string cfg = config("odd", 2);
  std::string err;
  EXPECT_NE(mpirun(2, cfg, "--set train.micro_batch_size=3 --set train.batch_tokens=0", &err), 0);
  EXPECT_NE(err.find("train.micro_batch_size (3) must be a multiple of the world size (2)"), std::string::npos) << err;
}

// The pid of the rank-`rank` lmforge process whose command line mentions `marker`, or -1.
pid_t find_rank(int rank, const std::string& marker) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmd_in(e.path() / "cmdline"), env_in(e.path() / "environ");
    const std::string cmd((std::istreambuf_iterator<char>(cmd_in)), {});
    const std::string env((std::istreambuf_iterator<char>(env_in)), {});
    if (cmd.find("lmforge") == std::string::npos || cmd.find(marker) == std::string::npos) continue;
    if (cmd.find("mpirun") != std::string::npos) continue;
    if (env.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') != std::string::npos) return pid_t(std::stol(name));
  }
  return -1;
}

struct Interrupted {
  bool signalled = false;  // rank 1 was found running and got the signal
  int status = 0;          // mpirun's exit status
  std::string err;         // the ranks' and mpirun's stderr
};

// Starts a long two-rank run, waits for its first step, sends `signal` to rank 1 and waits for
// mpirun to end. The ctest timeout is the guard against a hang.
Interrupted interrupt_rank_one(const std::string& root, const std::string& cfg, int signal) {
  const std::string err_path = root + "/stderr.txt";
  const pid_t launcher = ::fork();
  if (launcher == 0) {
    const std::string cmd = fmt::format(
        "OMP_NUM_THREADS=1 exec mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 {} train --config {} "
        "--set train.steps=100000 --set dist.timeout_s=5 > /dev/null 2> {}", lmforge_binary(), cfg, err_path);
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    std::_Exit(127);
  }
  pid_t victim = -1;
  const std::string metrics = fs::path(cfg).replace_extension("").string() + "/metrics.jsonl";
  for (;;) {  // until the run has taken a step (bounded by the ctest timeout)
    std::error_code ec;
    if (fs::exists(metrics, ec) && fs::file_size(metrics, ec) > 0) victim = find_rank(1, cfg);
    if (victim > 0) break;
    int status = 0;
    if (::waitpid(launcher, &status, WNOHANG) == launcher)
      return {.signalled = false, .status = status, .err = read_file(err_path)};
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(victim, signal);
  int status = 0;
  ::waitpid(launcher, &status, 0);
  if (signal == SIGSTOP) ::kill(victim, SIGKILL);  // mpirun has ended it too; make sure
  return {.signalled = true, .status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
          .err = read_file(err_path)};
}

TEST_F(MpirunTrainingTest, AKilledRankEndsTheRunWithAnError) {
  const Interrupted r = interrupt_rank_one(root_, config("killed", 2), SIGKILL);
  ASSERT_TRUE(r.signalled) << "the run ended before rank 1 could be killed: " << r.err;
  EXPECT_NE(r.status, 0) << r.err;
  EXPECT_FALSE(r.err.empty());
}

TEST_F(MpirunTrainingTest, AStalledRankEndsTheRunThroughTheWatchdog) {
  const Interrupted r = interrupt_rank_one(root_, config("stalled", 2), SIGSTOP);
  ASSERT_TRUE(r.signalled) << "the run ended before rank 1 could be stopped: " << r.err;
  EXPECT_NE(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("rank 0: all_reduce"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did not complete within 5 s (dist.timeout_s)"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace lmforge::dist
