// Philox4x32-10 and the uniform -> N(0,1) mapping, shared by the CPU kernel (philox_noise_kernel.cpp) and the CUDA
// one (philox_noise.cu) so they cannot drift apart; es_hpc/core/philox.py repeats these steps in torch (same bits).
//
// Bit-exactness rests on three rules: integers only for Philox and the argument reductions; float32 ops that IEEE
// rounds correctly (+ - * / sqrt), each rounded on its own (no FMA contraction: -ffp-contract=off on the host, the
// __f*_rn intrinsics on the device); no libm (its log/sin/cos differ between glibc, CUDA and torch).
#pragma once
#include <stdint.h>

#if defined(__FAST_MATH__)
#error "philox_noise: -ffast-math changes the float32 results; build without it"
#endif

// Everything here has internal linkage: philox_noise_kernel.cpp is compiled once per instruction set, and those
// copies must not be merged by the linker.
#if defined(__CUDACC__)
#define ES_HD static __host__ __device__ __forceinline__
#define ES_HD_MEMBER static __host__ __device__ __forceinline__
#else
#define ES_HD static inline __attribute__((always_inline))
#define ES_HD_MEMBER static inline __attribute__((always_inline))
#endif

#if defined(__CUDA_ARCH__)
#define ES_ADD(a, b) __fadd_rn((a), (b))
#define ES_SUB(a, b) __fsub_rn((a), (b))
#define ES_MUL(a, b) __fmul_rn((a), (b))
#define ES_DIV(a, b) __fdiv_rn((a), (b))
#define ES_SQRT(a) __fsqrt_rn(a)
#else
#define ES_ADD(a, b) ((a) + (b))
#define ES_SUB(a, b) ((a) - (b))
#define ES_MUL(a, b) ((a) * (b))
#define ES_DIV(a, b) ((a) / (b))
#define ES_SQRT(a) __builtin_sqrtf(a)
#endif

// Philox4x32 constants (Salmon et al., SC'11; Random123).
#define ES_PHILOX_M0 0xD2511F53u
#define ES_PHILOX_M1 0xCD9E8D57u
#define ES_PHILOX_W0 0x9E3779B9u
#define ES_PHILOX_W1 0xBB67AE85u

// ln(m) = 2 atanh(s), s = (m-1)/(m+1): odd series coefficients 1/3, 1/5, 1/7, 1/9 (float32, as hex).
#define ES_L1 0x1.555556p-2f
#define ES_L2 0x1.99999ap-3f
#define ES_L3 0x1.24924ap-3f
#define ES_L4 0x1.c71c72p-4f
#define ES_LN2 0x1.62e430p-1f
// sin(pi/2 v) = v (S1 + v^2 (S3 + ...)), cos(pi/2 v) = 1 + v^2 (C2 + ...), |v| <= 1/2: Taylor, float32.
#define ES_S1 0x1.921fb6p+0f
#define ES_S3 -0x1.4abbcep-1f
#define ES_S5 0x1.466bc6p-4f
#define ES_S7 -0x1.32d2ccp-8f
#define ES_S9 0x1.507834p-13f
#define ES_C2 -0x1.3bd3ccp+0f
#define ES_C4 0x1.03c1f0p-2f
#define ES_C6 -0x1.55d3c8p-6f
#define ES_C8 0x1.e1f506p-11f
#define ES_C10 -0x1.a6d1f2p-16f

ES_HD uint32_t es_f2u(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  return u;
#endif
}

ES_HD float es_u2f(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
#endif
}

namespace {
// The 32x32 -> 64-bit multiply of a Philox round, per lane type: plain uint32_t here (CUDA, scalar code, compiler-
// vectorised loops); philox_noise_kernel.cpp specialises it for SIMD vectors of uint32_t, where compilers do poorly.
template <class T>
struct es_lanes {
  ES_HD_MEMBER void mulhilo(T a, uint32_t m, T& hi, T& lo) {
    uint64_t p = (uint64_t)m * a;
    hi = (uint32_t)(p >> 32);
    lo = (uint32_t)p;
  }
};
}  // namespace

// One Philox4x32 round: (c0..c3) <- (hi1^c1^k0, lo1, hi0^c3^k1, lo0), hi/lo the halves of M0 c0 and M1 c2.
template <class T>
ES_HD void es_philox_round(T& c0, T& c1, T& c2, T& c3, uint32_t k0, uint32_t k1) {
  T hi0, lo0, hi1, lo1;
  es_lanes<T>::mulhilo(c0, ES_PHILOX_M0, hi0, lo0);
  es_lanes<T>::mulhilo(c2, ES_PHILOX_M1, hi1, lo1);
  c0 = hi1 ^ c1 ^ k0;
  c1 = lo1;
  c2 = hi0 ^ c3 ^ k1;
  c3 = lo0;
}

// Philox4x32-10 in place on N independent counters (c0[v]..c3[v]) under key (k0, k1): ten rounds, the key bumped
// between rounds; the N are interleaved round by round so that SIMD code overlaps their multiplies' latency.
template <int N, class T>
ES_HD void es_philox4x32_10_n(T* c0, T* c1, T* c2, T* c3, uint32_t k0, uint32_t k1) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    for (int v = 0; v < N; ++v) es_philox_round(c0[v], c1[v], c2[v], c3[v], k0, k1);
    k0 += ES_PHILOX_W0;
    k1 += ES_PHILOX_W1;
  }
}

// Philox4x32-10 of one counter (c0..c3), in place.
template <class T>
ES_HD void es_philox4x32_10(T& c0, T& c1, T& c2, T& c3, uint32_t k0, uint32_t k1) {
  es_philox4x32_10_n<1>(&c0, &c1, &c2, &c3, k0, k1);
}

// Uniform in (0, 1) from a word: ((x >> 8) | 1) * 2^-24, odd multiples of 2^-24, exact in float32, never 0 or 1.
ES_HD float es_uniform(uint32_t x) { return ES_MUL((float)(int32_t)((x >> 8) | 1u), 0x1p-24f); }

// ln(u) for u in (0, 1): u = m 2^e with m in [sqrt(1/2), sqrt(2)) by integer ops on the bits, then the atanh series.
ES_HD float es_log_unit(float u) {
  int32_t ix = (int32_t)es_f2u(u) - 0x3f3504f3;
  int32_t e = ix >> 23;  // arithmetic shift: floor
  float m = es_u2f((uint32_t)((ix & 0x007fffff) + 0x3f3504f3));
  float f = ES_SUB(m, 1.0f);  // exact (Sterbenz)
  float s = ES_DIV(f, ES_ADD(f, 2.0f));
  float z = ES_MUL(s, s);
  float r = ES_MUL(z, ES_ADD(ES_L1, ES_MUL(z, ES_ADD(ES_L2, ES_MUL(z, ES_ADD(ES_L3, ES_MUL(z, ES_L4)))))));
  float s2 = ES_ADD(s, s);
  float lnm = ES_ADD(s2, ES_MUL(s2, r));
  return ES_ADD(ES_MUL((float)e, ES_LN2), lnm);
}

// Box-Muller on two words: a gives the radius sqrt(-2 ln u), b the angle 2 pi u; (z0, z1) = r (cos, sin).
// The angle is reduced exactly in integers: k = (b >> 8) | 1 = j 2^22 + vi, angle = (pi/2) (j + vi 2^-22), |vi| < 2^21.
ES_HD void es_box_muller(uint32_t a, uint32_t b, float& z0, float& z1) {
  float rad = ES_SQRT(ES_MUL(-2.0f, es_log_unit(es_uniform(a))));
  uint32_t k = (b >> 8) | 1u;
  int32_t j = (int32_t)((k + (1u << 21)) >> 22);  // nearest quarter turn, 0..4
  int32_t vi = (int32_t)k - (j << 22);
  float v = ES_MUL((float)vi, 0x1p-22f);  // exact, |v| < 1/2
  float v2 = ES_MUL(v, v);
  float sn = ES_MUL(v, ES_ADD(ES_S1, ES_MUL(v2, ES_ADD(ES_S3, ES_MUL(v2, ES_ADD(ES_S5, ES_MUL(v2,
                  ES_ADD(ES_S7, ES_MUL(v2, ES_S9)))))))));
  float cs = ES_ADD(1.0f, ES_MUL(v2, ES_ADD(ES_C2, ES_MUL(v2, ES_ADD(ES_C4, ES_MUL(v2, ES_ADD(ES_C6, ES_MUL(v2,
                  ES_ADD(ES_C8, ES_MUL(v2, ES_C10))))))))));
  // rotate by j quarter turns: j odd swaps cos and sin; cos < 0 for j = 1, 2 (mod 4), sin < 0 for j = 2, 3.
  uint32_t swap = 0u - (uint32_t)(j & 1);
  uint32_t cb = es_f2u(cs), sb = es_f2u(sn);
  uint32_t xb = (cb & ~swap) | (sb & swap);
  uint32_t yb = (sb & ~swap) | (cb & swap);
  xb ^= (uint32_t)((j + 1) & 2) << 30;
  yb ^= (uint32_t)(j & 2) << 30;
  z0 = ES_MUL(rad, es_u2f(xb));
  z1 = ES_MUL(rad, es_u2f(yb));
}

// The four normals of counter index c (elements 4c .. 4c+3) for key (k0, k1).
ES_HD void es_normal4(uint64_t c, uint32_t k0, uint32_t k1, float& z0, float& z1, float& z2, float& z3) {
  uint32_t c0 = (uint32_t)c, c1 = (uint32_t)(c >> 32), c2 = 0u, c3 = 0u;
  es_philox4x32_10(c0, c1, c2, c3, k0, k1);
  es_box_muller(c0, c1, z0, z1);
  es_box_muller(c2, c3, z2, z3);
}
