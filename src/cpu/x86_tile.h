/* cpu/x86_tile.h - what the 4x4 Q8_0 GEMM tiles of x86_avx2.c (maddubs) and
 * x86_vnni.c (vpdpbusd) share: the block scales, the lane reduction, the
 * pairing of two tokens' sums for one FMA, and the store. Only the int8
 * products differ. */
#ifndef G8_X86_TILE_H
#define G8_X86_TILE_H

#include "../kernels.h"

#include <immintrin.h>

/* Sums of the 8 int32 lanes of each of p0..p3: [p0 p1 p2 p3] in both halves
 * (low half from lanes 0-3, high half from lanes 4-7). */
static inline __m256i tile_hsum4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    return _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
}

/* d_w[r] * d_x[t] of block b for the pairs laid out as [rows 0-3 of token 0 |
 * of token 1] (s01) and the same for tokens 2, 3 (s23) */
static inline void tile_scales(const block_q8_0 *w, size_t ws, const block_q8_0 *x, size_t xs, int b, __m256 *s01,
                               __m256 *s23) {
    const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16((short)w[b].d, (short)w[ws + b].d, (short)w[2 * ws + b].d,
                                                  (short)w[3 * ws + b].d, 0, 0, 0, 0));
    const __m128 dx = _mm_cvtph_ps(_mm_setr_epi16((short)x[b].d, (short)x[xs + b].d, (short)x[2 * xs + b].d,
                                                  (short)x[3 * xs + b].d, 0, 0, 0, 0));
    const __m256 dww = _mm256_set_m128(dw, dw);
    *s01 = _mm256_mul_ps(dww, _mm256_set_m128(_mm_permute_ps(dx, 0x55), _mm_permute_ps(dx, 0x00)));
    *s23 = _mm256_mul_ps(dww, _mm256_set_m128(_mm_permute_ps(dx, 0xff), _mm_permute_ps(dx, 0xaa)));
}

/* rt: tile_hsum4 of token t's four rows; [rows 0-3 of token 0 | of token 1] */
static inline __m256i tile_pair(__m256i r0, __m256i r1) {
    return _mm256_add_epi32(_mm256_permute2x128_si256(r0, r1, 0x20), _mm256_permute2x128_si256(r0, r1, 0x31));
}

static inline void tile_store(float *y, size_t ldy, __m256 acc01, __m256 acc23) {
    _mm_storeu_ps(y, _mm256_castps256_ps128(acc01));
    _mm_storeu_ps(y + ldy, _mm256_extractf128_ps(acc01, 1));
    _mm_storeu_ps(y + 2 * ldy, _mm256_castps256_ps128(acc23));
    _mm_storeu_ps(y + 3 * ldy, _mm256_extractf128_ps(acc23, 1));
}

#endif
