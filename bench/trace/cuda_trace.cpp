// A kernel-level trace of any CUDA program, through CUPTI's activity API, for the "where the time
// goes" tables of docs/BENCHMARKS.md: every kernel, memcpy, memset and host synchronisation with
// its GPU start and end time, one CSV line each. Preloaded, so it traces lmforge and a PyTorch
// peer alike:
//
//   LD_PRELOAD=build/bench/liblmforge_cuda_trace.so LMFORGE_TRACE=trace.csv \
//     build/bench/bench_train_gpu --model llama --steps 5 --warmup 2
//   python3 bench/trace/summary.py trace.csv
//
// (libcupti must be on the loader's path: the CUDA toolkit's lib directory.) Without
// LMFORGE_TRACE the library does nothing. Lines: kind (K kernel, C memcpy, M memset, S sync),
// start ns, end ns, stream, then grid and block size (K), copy kind and bytes (C), bytes (M) or
// sync type (S), and the kernel's mangled name.
#include <cupti.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>

namespace {

FILE* g_out = nullptr;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *size = size_t(8) << 20;
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, *size));
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* r = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &r) == CUPTI_SUCCESS) {
    switch (r->kind) {
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL:
      case CUPTI_ACTIVITY_KIND_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(r);
        std::fprintf(g_out, "K,%llu,%llu,%u,%u,%u,%s\n", (unsigned long long)k->start, (unsigned long long)k->end,
                     k->streamId, k->gridX * k->gridY * k->gridZ, k->blockX * k->blockY * k->blockZ, k->name);
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(r);
        std::fprintf(g_out, "C,%llu,%llu,%u,%d,%llu,memcpy\n", (unsigned long long)m->start,
                     (unsigned long long)m->end, m->streamId, int(m->copyKind), (unsigned long long)m->bytes);
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(r);
        std::fprintf(g_out, "M,%llu,%llu,%u,0,%llu,memset\n", (unsigned long long)m->start,
                     (unsigned long long)m->end, m->streamId, (unsigned long long)m->bytes);
        break;
      }
      case CUPTI_ACTIVITY_KIND_SYNCHRONIZATION: {
        const auto* s = reinterpret_cast<const CUpti_ActivitySynchronization2*>(r);
        std::fprintf(g_out, "S,%llu,%llu,%u,%d,0,sync\n", (unsigned long long)s->start,
                     (unsigned long long)s->end, s->streamId, int(s->type));
        break;
      }
      default:
        break;
    }
  }
  std::free(buffer);
}

__attribute__((constructor)) void start_trace() {
  const char* path = std::getenv("LMFORGE_TRACE");
  if (!path || !*path) return;
  g_out = std::fopen(path, "w");
  if (!g_out) {
    std::fprintf(stderr, "lmforge_cuda_trace: cannot write %s\n", path);
    return;
  }
  cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
  for (CUpti_ActivityKind kind : {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY,
                                  CUPTI_ACTIVITY_KIND_MEMSET, CUPTI_ACTIVITY_KIND_SYNCHRONIZATION})
    if (cuptiActivityEnable(kind) != CUPTI_SUCCESS)
      std::fprintf(stderr, "lmforge_cuda_trace: activity kind %d is not available\n", int(kind));
}

__attribute__((destructor)) void stop_trace() {
  if (!g_out) return;
  cuptiActivityFlushAll(1);
  std::fclose(g_out);
}

}  // namespace
