#include "dist/launch_env.h"

#include <charconv>
#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace lmforge::dist {

const char* launcher_name(Launcher l) {
  switch (l) {
    case Launcher::None: return "none";
    case Launcher::Mpirun: return "mpirun";
    case Launcher::Torchrun: return "torchrun";
    case Launcher::Slurm: return "slurm";
  }
  return "none";
}

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int lo, int hi, int fallback) {
  const char* v = env(name);
  if (!v) return fallback;
  const std::string_view s(v);
  int out = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  LF_CHECK(ec == std::errc() && p == s.data() + s.size() && out >= lo && out <= hi,
           "environment variable {}={} is not an integer in [{}, {}]", name, s, lo, hi);
  return out;
}

}  // namespace

LaunchEnv read_launch_env() {
  LaunchEnv e;
  constexpr int kMaxRanks = 1 << 20;
  const char *rank_var = nullptr, *size_var = nullptr, *local_var = nullptr;
  if (env("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = Launcher::Mpirun;
    rank_var = "OMPI_COMM_WORLD_RANK", size_var = "OMPI_COMM_WORLD_SIZE", local_var = "OMPI_COMM_WORLD_LOCAL_RANK";
  } else if (env("WORLD_SIZE")) {
    e.launcher = Launcher::Torchrun;
    rank_var = "RANK", size_var = "WORLD_SIZE", local_var = "LOCAL_RANK";
  } else if (env("SLURM_NTASKS") && env("SLURM_PROCID")) {
    e.launcher = Launcher::Slurm;
    rank_var = "SLURM_PROCID", size_var = "SLURM_NTASKS", local_var = "SLURM_LOCALID";
  } else {
    return e;
  }
  e.world_size = env_int(size_var, 1, kMaxRanks, 1);
  LF_CHECK(env(rank_var), "{} is set but {} is not: the launcher's environment is incomplete", size_var, rank_var);
  e.rank = env_int(rank_var, 0, e.world_size - 1, 0);
  e.local_rank = env_int(local_var, 0, kMaxRanks, 0);
  if (const char* a = env("MASTER_ADDR")) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 1, 65535, 0);
  return e;
}

}  // namespace lmforge::dist
