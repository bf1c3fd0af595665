/* cpu/x86_gemm.h - the Q8_0 GEMM on 256-bit registers over packed weights
 * (quant.h), shared by x86_avx2.c (maddubs) and x86_vnni.c (vpdpbusd). The
 * including file defines, before including this one:
 *   GEMM_TOKENS                  tokens per pass (as many as the registers hold)
 *   __m256i gemm_prep(__m256i w) the weights made ready for gemm_dot, once per
 *                                load for all tokens
 *   __m256i gemm_dot(__m256i acc, __m256i prep, __m256i w, __m256i x4)
 *                                acc + the sums of four products per lane: the
 *                                weights by x4, one token's four quants broadcast
 *   int32_t gemm_init(int32_t xsum) the integer accumulator's start
 * A pass keeps, per token, two int32 accumulators (rows 0-7, 8-15) for the
 * block and two float ones for the row: no lane is ever summed with another. */
#ifndef G8_X86_GEMM_H
#define G8_X86_GEMM_H

#include "../kernels.h"

#include <immintrin.h>

/* bytes ahead of the loads to prefetch: the stream of a GEMV then runs ~10% faster */
enum { GEMM_PREFETCH = 2048 };

static inline __attribute__((always_inline)) void gemm_pass(int nb, const void *group, const block_q8_0 *x,
                                                            const int32_t *xsum, const int T, float *y, size_t ldy) {
    const int8_t *q = g8_pack_quants(group);
    const uint16_t *d = g8_pack_scales(group, nb);
    __m256 f[GEMM_TOKENS][2];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++) f[t][0] = f[t][1] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const int8_t *qb = q + (size_t)b * G8_PACK_BLOCK;
        __m256i acc[GEMM_TOKENS][2];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_set1_epi32(gemm_init(xsum[(size_t)t * nb + b]));
        _Pragma("GCC unroll 8")
        for (int c = 0; c < QK8_0 / 4; c++) {
            _mm_prefetch((const char *)(qb + GEMM_PREFETCH + 64 * c), _MM_HINT_T0);
            const __m256i w0 = _mm256_loadu_si256((const __m256i *)(qb + 64 * c));
            const __m256i w1 = _mm256_loadu_si256((const __m256i *)(qb + 64 * c + 32));
            const __m256i p0 = gemm_prep(w0), p1 = gemm_prep(w1);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) {
                int32_t x4;
                memcpy(&x4, x[(size_t)t * nb + b].qs + 4 * c, 4);
                const __m256i xv = _mm256_set1_epi32(x4);
                acc[t][0] = gemm_dot(acc[t][0], p0, w0, xv);
                acc[t][1] = gemm_dot(acc[t][1], p1, w1, xv);
            }
        }
        const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + (size_t)b * G8_PACK_ROWS)));
        const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + (size_t)b * G8_PACK_ROWS + 8)));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++) {
            const __m256 dx = _mm256_set1_ps(_cvtsh_ss(x[(size_t)t * nb + b].d));
            f[t][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t][0]), _mm256_mul_ps(d0, dx), f[t][0]);
            f[t][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t][1]), _mm256_mul_ps(d1, dx), f[t][1]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++) {
        _mm256_storeu_ps(y + (size_t)t * ldy, f[t][0]);
        _mm256_storeu_ps(y + (size_t)t * ldy + 8, f[t][1]);
    }
}

/* GEMM_TOKENS tokens a pass, then the rest in one pass */
static inline void gemm_q8_0_256(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                                 size_t ldy) {
    int t = 0;
    for (; t + GEMM_TOKENS <= T; t += GEMM_TOKENS)
        gemm_pass(nb, group, x + (size_t)t * nb, xsum + (size_t)t * nb, GEMM_TOKENS, y + (size_t)t * ldy, ldy);
    switch (T - t) {
#if GEMM_TOKENS > 3
    case 3: gemm_pass(nb, group, x + (size_t)t * nb, xsum + (size_t)t * nb, 3, y + (size_t)t * ldy, ldy); break;
#endif
#if GEMM_TOKENS > 2
    case 2: gemm_pass(nb, group, x + (size_t)t * nb, xsum + (size_t)t * nb, 2, y + (size_t)t * ldy, ldy); break;
#endif
    case 1: gemm_pass(nb, group, x + (size_t)t * nb, xsum + (size_t)t * nb, 1, y + (size_t)t * ldy, ldy); break;
    default: break;
    }
}

#endif
