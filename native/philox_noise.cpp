// CPU entry points: out = base + scale * eps, eps the Philox4x32-10 Gaussian stream of one key (philox_noise.h), fused
// so the noise never goes through memory. OpenMP splits the counters into per-thread ranges of blocks, each done by
// the widest build of philox_noise_kernel.cpp this CPU runs.
#include "philox_noise.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define ES_NOISE_STREAM_VERSION 1
#define ES_BLOCK 64                // as in philox_noise_kernel.cpp
#define ES_SERIAL_BELOW (1 << 15)  // elements: smaller tensors are not worth waking the thread pool for

typedef void (*es_blocks_fn)(float*, const float*, int64_t, int64_t, uint32_t, uint32_t, float);
extern "C" void es_blocks_generic(float*, const float*, int64_t, int64_t, uint32_t, uint32_t, float);
#ifdef ES_HAVE_AVX512
extern "C" void es_blocks_avx512(float*, const float*, int64_t, int64_t, uint32_t, uint32_t, float);
#endif
#ifdef ES_HAVE_AVX2
extern "C" void es_blocks_avx2(float*, const float*, int64_t, int64_t, uint32_t, uint32_t, float);
#endif

// The widest build this CPU runs, or the one ES_HPC_NATIVE_ISA names (avx512, avx2, generic: for tests).
static es_blocks_fn es_pick(const char** name) {
  const char* want = getenv("ES_HPC_NATIVE_ISA");
  const bool any = !want || !*want;
  (void)any;
#if defined(ES_HAVE_AVX512) || defined(ES_HAVE_AVX2)
  __builtin_cpu_init();
#endif
#ifdef ES_HAVE_AVX512
  if ((any || !strcmp(want, "avx512")) && __builtin_cpu_supports("avx512f")) return *name = "avx512", es_blocks_avx512;
#endif
#ifdef ES_HAVE_AVX2
  if ((any || !strcmp(want, "avx2")) && __builtin_cpu_supports("avx2")) return *name = "avx2", es_blocks_avx2;
#endif
  return *name = "generic", es_blocks_generic;
}

static es_blocks_fn es_blocks(const char** name = nullptr) {
  static const char* picked_name;
  static const es_blocks_fn picked = es_pick(&picked_name);  // thread-safe initialisation, once
  if (name) *name = picked_name;
  return picked;
}

extern "C" {

// Version of the stream definition; es_hpc/core/native.py refuses a library whose version differs from its own.
int es_noise_stream_version(void) { return ES_NOISE_STREAM_VERSION; }

// 1 when built with OpenMP, else 0 (then the kernel runs on one thread).
int es_noise_openmp(void) {
#ifdef _OPENMP
  return 1;
#else
  return 0;
#endif
}

// The instruction set the kernel runs with: "avx512", "avx2" or "generic".
const char* es_noise_isa(void) {
  const char* name;
  es_blocks(&name);
  return name;
}

// out[i] = base[i] + scale * eps[i] for i < n (out = scale * eps when base is NULL); out may alias base.
// eps[i] is element i of the stream of `key` (see es_hpc/core/noise.py); threads <= 0: OpenMP's default.
void es_axpy_normal(float* out, const float* base, int64_t n, uint64_t key, float scale, int threads) {
  if (n <= 0) return;
  const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  const int64_t full = n / (4 * ES_BLOCK);  // blocks wholly inside n
  const es_blocks_fn blocks = es_blocks();
#ifdef _OPENMP
  if (threads <= 0) threads = omp_get_max_threads();
  if (n < ES_SERIAL_BELOW || full < 2) threads = 1;
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      blocks(out, base, full * t / nt, full * (t + 1) / nt, k0, k1, scale);
    }
  } else {
    blocks(out, base, 0, full, k0, k1, scale);
  }
#else
  (void)threads;
  blocks(out, base, 0, full, k0, k1, scale);
#endif
  for (uint64_t c = (uint64_t)full * ES_BLOCK; 4 * c < (uint64_t)n; ++c) {  // the ragged end, one counter at a time
    float z[4];
    es_normal4(c, k0, k1, z[0], z[1], z[2], z[3]);
    for (uint64_t i = 4 * c; i < 4 * c + 4 && i < (uint64_t)n; ++i) {
      const float e = scale * z[i - 4 * c];
      out[i] = base ? base[i] + e : e;
    }
  }
}

// The raw Philox4x32-10 block of counter (c[0..3]) and key (k[0..1]), written to out[0..3]: for known-answer tests.
void es_philox4x32_10_block(const uint32_t* c, const uint32_t* k, uint32_t* out) {
  uint32_t c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
  es_philox4x32_10(c0, c1, c2, c3, k[0], k[1]);
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

}  // extern "C"
