// Shared by the libFuzzer targets in tests/fuzz/ (built with -DLMFORGE_FUZZ=ON, see
// scripts/fuzz.sh). The readers under test take a path, so each input is written to one file
// per process (under /dev/shm when it exists, so the fuzzer does not wait on a disk).
//
// The contract the targets enforce: any bytes give a result or an lmforge::Error. Anything else
// escaping (InternalError, a JSON library exception, std::bad_alloc) reaches libFuzzer as an
// uncaught exception and is reported as a crash, as are the sanitizers' findings.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"

namespace lmforge::fuzz {

// A file path for this process ending in `suffix` (the loaders look at extensions).
inline std::string input_path(const std::string& suffix) {
  const std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
  return (dir / ("lmforge_fuzz_" + std::to_string(::getpid()) + suffix)).string();
}

inline void write_input(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                 static_cast<std::streamsize>(size));
}

// Runs f; an lmforge::Error (bad input, reported clearly) is the expected way to fail.
template <class F>
void expect_result_or_error(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

}  // namespace lmforge::fuzz
