// The CPU block kernel, compiled once per instruction set (CMake: -mavx512f, -mavx2, the x86-64 baseline; ES_KERNEL
// names the function) and picked at run time by philox_noise.cpp, since the library must run on any node (no
// -march=native). Every build gives the same bits: integer ops plus correctly rounded float32 ops, never contracted
// into FMAs (-ffp-contract=off). Compilers vectorise the Box-Muller loop well but not Philox's 32x32->64-bit
// multiplies, so those get intrinsics (es_lanes below); the round itself stays the header's.
#include "philox_noise.h"

#ifndef ES_KERNEL
#define ES_KERNEL es_blocks_generic
#endif
#define ES_BLOCK 64  // counters (4 elements each) per block; a power of two, a multiple of 16
#define ES_PAR 4     // SIMD vectors of counters run through Philox together (ES_PAR * lanes must divide ES_BLOCK)

#if defined(__AVX512F__) || defined(__AVX2__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's false alarm on _mm512_undefined_epi32
#include <immintrin.h>
#endif

namespace {
#if defined(__AVX512F__)
typedef uint32_t es_vec __attribute__((vector_size(64)));
#define ES_LANES 16
template <>
struct es_lanes<es_vec> {
  ES_HD_MEMBER void mulhilo(es_vec a, uint32_t m, es_vec& hi, es_vec& lo) {
    const __m512i mv = _mm512_set1_epi32((int)m), av = (__m512i)a;
    const __m512i pe = _mm512_mul_epu32(av, mv);                        // products of the even lanes
    const __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(av, 32), mv);  // and of the odd lanes
    hi = (es_vec)_mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
    lo = (es_vec)_mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
  }
};
#elif defined(__AVX2__)
typedef uint32_t es_vec __attribute__((vector_size(32)));
#define ES_LANES 8
template <>
struct es_lanes<es_vec> {
  ES_HD_MEMBER void mulhilo(es_vec a, uint32_t m, es_vec& hi, es_vec& lo) {
    const __m256i mv = _mm256_set1_epi32((int)m), av = (__m256i)a;
    const __m256i pe = _mm256_mul_epu32(av, mv);
    const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(av, 32), mv);
    hi = (es_vec)_mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
    lo = (es_vec)_mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
  }
};
#endif

// The Philox words of counters cb .. cb + ES_BLOCK - 1 into w[word][lane].
ES_HD void es_block_words(uint32_t (*w)[ES_BLOCK], uint64_t cb, uint32_t k0, uint32_t k1) {
  const uint32_t lo = (uint32_t)cb, hi = (uint32_t)(cb >> 32);  // ES_BLOCK divides 2^32: no carry inside a block
#ifdef ES_LANES
  for (int l0 = 0; l0 < ES_BLOCK; l0 += ES_PAR * ES_LANES) {
    es_vec c0[ES_PAR], c1[ES_PAR], c2[ES_PAR], c3[ES_PAR];
    for (int v = 0; v < ES_PAR; ++v)
      for (int l = 0; l < ES_LANES; ++l) {
        c0[v][l] = lo + (uint32_t)(l0 + v * ES_LANES + l);
        c1[v][l] = hi;
        c2[v][l] = 0u;
        c3[v][l] = 0u;
      }
    es_philox4x32_10_n<ES_PAR>(c0, c1, c2, c3, k0, k1);
    for (int v = 0; v < ES_PAR; ++v) {
      __builtin_memcpy(&w[0][l0 + v * ES_LANES], &c0[v], sizeof c0[v]);
      __builtin_memcpy(&w[1][l0 + v * ES_LANES], &c1[v], sizeof c1[v]);
      __builtin_memcpy(&w[2][l0 + v * ES_LANES], &c2[v], sizeof c2[v]);
      __builtin_memcpy(&w[3][l0 + v * ES_LANES], &c3[v], sizeof c3[v]);
    }
  }
#else  // one lane at a time, left to the vectoriser
#pragma omp simd
  for (int l = 0; l < ES_BLOCK; ++l) {
    uint32_t c0 = lo + (uint32_t)l, c1 = hi, c2 = 0u, c3 = 0u;
    es_philox4x32_10(c0, c1, c2, c3, k0, k1);
    w[0][l] = c0;
    w[1][l] = c1;
    w[2][l] = c2;
    w[3][l] = c3;
  }
#endif
}

// out[4l .. 4l+3] = s[4l .. 4l+3] + scale * (Box-Muller of the block's words of lane l); no base when s is NULL.
template <bool kBase>
ES_HD void es_block_axpy(float* o, const float* s, const uint32_t (*w)[ES_BLOCK], float scale) {
#pragma omp simd
  for (int l = 0; l < ES_BLOCK; ++l) {
    float z0, z1, z2, z3;
    es_box_muller(w[0][l], w[1][l], z0, z1);
    es_box_muller(w[2][l], w[3][l], z2, z3);
    z0 = scale * z0;
    z1 = scale * z1;
    z2 = scale * z2;
    z3 = scale * z3;
    if (kBase) {
      z0 = s[4 * l + 0] + z0;
      z1 = s[4 * l + 1] + z1;
      z2 = s[4 * l + 2] + z2;
      z3 = s[4 * l + 3] + z3;
    }
    o[4 * l + 0] = z0;
    o[4 * l + 1] = z1;
    o[4 * l + 2] = z2;
    o[4 * l + 3] = z3;
  }
}
}  // namespace

// Blocks [b0, b1) of ES_BLOCK counters (elements 4 ES_BLOCK b0 .. 4 ES_BLOCK b1 - 1): out = base + scale * eps, or
// scale * eps when base is NULL; out may alias base.
extern "C" void ES_KERNEL(float* out, const float* base, int64_t b0, int64_t b1, uint32_t k0, uint32_t k1,
                          float scale) {
  uint32_t w[4][ES_BLOCK] __attribute__((aligned(64)));
  for (int64_t b = b0; b < b1; ++b) {
    const uint64_t cb = (uint64_t)b * ES_BLOCK;
    es_block_words(w, cb, k0, k1);
    if (base)
      es_block_axpy<true>(out + 4 * cb, base + 4 * cb, w, scale);
    else
      es_block_axpy<false>(out + 4 * cb, nullptr, w, scale);
  }
}
