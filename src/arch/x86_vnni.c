/* arch/x86_vnni.c - the Q8_0 GEMM tile on vpdpbusd (u8 x s8 -> int32, four
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

/* Sums of the 8 int32 lanes of each of p0..p3: [p0 p1 p2 p3] in both halves */
static inline __m256i hsum4(__m256i p0, __m256i p1, __m256i p2, __m256i p3) {
    return _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
}

void TILE(int nb, const block_q8_0 *w, size_t ws, const block_q8_0 *x, size_t xs, float *y, size_t ldy) {
    const __m256i bias = _mm256_set1_epi8((char)0x80), zero = _mm256_setzero_si256();
    __m256 acc01 = _mm256_setzero_ps(), acc23 = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const block_q8_0 *w0 = &w[b], *w1 = &w[ws + b], *w2 = &w[2 * ws + b], *w3 = &w[3 * ws + b];
        const block_q8_0 *x0 = &x[b], *x1 = &x[xs + b], *x2 = &x[2 * xs + b], *x3 = &x[3 * xs + b];
        const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16((short)w0->d, (short)w1->d, (short)w2->d, (short)w3->d, 0, 0, 0, 0));
        const __m128 dx = _mm_cvtph_ps(_mm_setr_epi16((short)x0->d, (short)x1->d, (short)x2->d, (short)x3->d, 0, 0, 0, 0));
        const __m256 dww = _mm256_set_m128(dw, dw);
        const __m256 s01 = _mm256_mul_ps(dww, _mm256_set_m128(_mm_permute_ps(dx, 0x55), _mm_permute_ps(dx, 0x00)));
        const __m256 s23 = _mm256_mul_ps(dww, _mm256_set_m128(_mm_permute_ps(dx, 0xff), _mm_permute_ps(dx, 0xaa)));
        const __m256i q0 = _mm256_loadu_si256((const __m256i *)w0->qs), q1 = _mm256_loadu_si256((const __m256i *)w1->qs);
        const __m256i q2 = _mm256_loadu_si256((const __m256i *)w2->qs), q3 = _mm256_loadu_si256((const __m256i *)w3->qs);
        /* -128 * (the sums of four weights) per lane, once per row for all four tokens */
        const __m256i c0 = _mm256_sub_epi32(zero, dpbusd(zero, bias, q0)), c1 = _mm256_sub_epi32(zero, dpbusd(zero, bias, q1));
        const __m256i c2 = _mm256_sub_epi32(zero, dpbusd(zero, bias, q2)), c3 = _mm256_sub_epi32(zero, dpbusd(zero, bias, q3));
        __m256i r[4];
        for (int t = 0; t < 4; t++) {
            const block_q8_0 *xb = t == 0 ? x0 : t == 1 ? x1 : t == 2 ? x2 : x3;
            const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xb->qs), bias); /* x + 128 */
            r[t] = hsum4(dpbusd(c0, u, q0), dpbusd(c1, u, q1), dpbusd(c2, u, q2), dpbusd(c3, u, q3));
        }
        /* [rows 0-3 of token 0 | rows 0-3 of token 1] and the same for tokens 2, 3 */
        const __m256i t01 = _mm256_add_epi32(_mm256_permute2x128_si256(r[0], r[1], 0x20), _mm256_permute2x128_si256(r[0], r[1], 0x31));
        const __m256i t23 = _mm256_add_epi32(_mm256_permute2x128_si256(r[2], r[3], 0x20), _mm256_permute2x128_si256(r[2], r[3], 0x31));
        acc01 = _mm256_fmadd_ps(s01, _mm256_cvtepi32_ps(t01), acc01);
        acc23 = _mm256_fmadd_ps(s23, _mm256_cvtepi32_ps(t23), acc23);
    }
    _mm_storeu_ps(y, _mm256_castps256_ps128(acc01));
    _mm_storeu_ps(y + ldy, _mm256_extractf128_ps(acc01, 1));
    _mm_storeu_ps(y + 2 * ldy, _mm256_castps256_ps128(acc23));
    _mm_storeu_ps(y + 3 * ldy, _mm256_extractf128_ps(acc23, 1));
}
#endif
