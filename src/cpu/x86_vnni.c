/* cpu/x86_vnni.c - the Q8_0 GEMM tile on vpdpbusd (u8 x s8 -> int32, four
 * products a lane, no saturation). One source, built three ways:
 *   G8_VNNI == 1: AVX-VNNI (VEX, Alder Lake / Sapphire Rapids / Zen 5)
 *   G8_VNNI == 2: AVX512-VNNI on 256-bit registers (EVEX + VL: Ice Lake, Zen 4 and later)
 *   G8_VNNI == 0: vpdpbusd emulated exactly with AVX2, so that the kernel's logic is
 *                 tested on machines without VNNI (tests only, not in the table).
 * Activations are made unsigned by adding 128 (x ^ 0x80); each accumulator starts
 * at -128 * sum(w) of its row's lanes, so one vpdpbusd per (row, token) pair
 * gives the exact signed dot product, where AVX2 needs sign + maddubs + madd. */
#if defined(__x86_64__) && defined(G8_VNNI)
#include "../kernels.h"
#include "x86_tile.h"

#include <immintrin.h>

#if G8_VNNI == 1
#define dpbusd(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#define TILE g8_tile_q8_0_avxvnni
#elif G8_VNNI == 2
#define dpbusd(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define TILE g8_tile_q8_0_avx512vnni
#else
/* acc[i] += sum_{k<4} u[4i+k] * s[4i+k], u unsigned, s signed, exact */
static inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
    const __m256i ulo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(u)), uhi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(u, 1));
    const __m256i slo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(s)), shi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(s, 1));
    /* pairs of bytes 0-15 and 16-31, then sums of two pairs in the order [0-3 | 4-7] */
    const __m256i h = _mm256_hadd_epi32(_mm256_madd_epi16(ulo, slo), _mm256_madd_epi16(uhi, shi));
    return _mm256_add_epi32(acc, _mm256_permute4x64_epi64(h, _MM_SHUFFLE(3, 1, 2, 0)));
}
#define TILE g8_tile_q8_0_vnni_emulated
#endif

void TILE(int nb, const block_q8_0 *w, size_t ws, const block_q8_0 *x, size_t xs, float *y, size_t ldy) {
    const __m256i bias = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
    __m256 acc01 = _mm256_setzero_ps(), acc23 = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256 s01, s23;
        tile_scales(w, ws, x, xs, b, &s01, &s23);
        const __m256i q0 = _mm256_loadu_si256((const __m256i *)w[b].qs), q1 = _mm256_loadu_si256((const __m256i *)w[ws + b].qs);
        const __m256i q2 = _mm256_loadu_si256((const __m256i *)w[2 * ws + b].qs);
        const __m256i q3 = _mm256_loadu_si256((const __m256i *)w[3 * ws + b].qs);
        /* -128 * (the sums of four weights) per lane, once per row for all four tokens */
        const __m256i c0 = _mm256_sub_epi32(zero, dpbusd(zero, bias, q0)), c1 = _mm256_sub_epi32(zero, dpbusd(zero, bias, q1));
        const __m256i c2 = _mm256_sub_epi32(zero, dpbusd(zero, bias, q2)), c3 = _mm256_sub_epi32(zero, dpbusd(zero, bias, q3));
#define TOKEN(t) /* token t's sums against the four rows */                                                   \
    tile_hsum4(dpbusd(c0, u##t, q0), dpbusd(c1, u##t, q1), dpbusd(c2, u##t, q2), dpbusd(c3, u##t, q3))
        const __m256i u0 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[b].qs), bias); /* x + 128 */
        const __m256i u1 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[xs + b].qs), bias);
        const __m256i u2 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[2 * xs + b].qs), bias);
        const __m256i u3 = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x[3 * xs + b].qs), bias);
        acc01 = _mm256_fmadd_ps(s01, _mm256_cvtepi32_ps(tile_pair(TOKEN(0), TOKEN(1))), acc01);
        acc23 = _mm256_fmadd_ps(s23, _mm256_cvtepi32_ps(tile_pair(TOKEN(2), TOKEN(3))), acc23);
#undef TOKEN
    }
    tile_store(y, ldy, acc01, acc23);
}
#endif
