/* cpu/x86_vnni.c - the Q8_0 GEMM (x86_gemm.inc) on 256-bit vpdpbusd (u8 x s8 ->
 * int32, four products a lane, no saturation). Built two ways:
 *   G8_VNNI == 1: AVX-VNNI (VEX: Alder Lake, Sapphire Rapids, Zen 5)
 *   G8_VNNI == 0: vpdpbusd emulated exactly with AVX2, so that the kernel's logic is
 *                 tested on machines without VNNI (tests only, not in the table).
 * The weights are made unsigned by adding 128 (w ^ 0x80, once per load for all
 * tokens); each accumulator starts at -128 times the sum of the token's quants
 * in the block (xsum), so one vpdpbusd per load and token gives the exact signed
 * sums, where AVX2 needs sign + maddubs + madd. */
#if defined(__x86_64__) && defined(G8_VNNI)
#include "../kernels.h"

#include <immintrin.h>

#if G8_VNNI == 1
#define dpbusd(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#define GEMM g8_gemm_q8_0_avxvnni
#define GEMM4 g8_gemm_q4_0_avxvnni
#define GEMV4 g8_gemv_q4_0_avxvnni
#define GEMV8 g8_gemv_q8_0_avxvnni
#define FEW8 g8_gemv_few_q8_0_avxvnni
#define FEW4 g8_gemv_few_q4_0_avxvnni
#define GEMM6 g8_gemm_q6_k_avxvnni
#else
/* acc[i] += sum_{k<4} u[4i+k] * s[4i+k], u unsigned, s signed, exact */
static inline __m256i dpbusd(__m256i acc, __m256i u, __m256i s) {
    const __m256i ulo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(u));
    const __m256i uhi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(u, 1));
    const __m256i slo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(s));
    const __m256i shi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(s, 1));
    /* pairs of bytes 0-15 and 16-31, then sums of two pairs in the order [0-3 | 4-7] */
    const __m256i h = _mm256_hadd_epi32(_mm256_madd_epi16(ulo, slo), _mm256_madd_epi16(uhi, shi));
    return _mm256_add_epi32(acc, _mm256_permute4x64_epi64(h, _MM_SHUFFLE(3, 1, 2, 0)));
}
#define GEMM g8_gemm_q8_0_vnni_emulated
#define GEMM4 g8_gemm_q4_0_vnni_emulated
#define GEMV4 g8_gemv_q4_0_vnni_emulated
#define GEMV8 g8_gemv_q8_0_vnni_emulated
#define FEW8 g8_gemv_few_q8_0_vnni_emulated
#define FEW4 g8_gemv_few_q4_0_vnni_emulated
#define GEMM6 g8_gemm_q6_k_vnni_emulated
#endif

#define GEMM_TOKENS 3
static inline __m256i gemm_prep(__m256i w) { return _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)); }
static inline __m256i gemm_dot(__m256i acc, __m256i u, __m256i w, __m256i x4) {
    (void)w;
    return dpbusd(acc, u, x4);
}
static inline int32_t gemm_init(int32_t xsum) { return xsum; }
static inline __m256i gemm_udot(__m256i acc, __m256i u, __m256i x4) { return dpbusd(acc, u, x4); }
/* A Q4_0 chunk for one token (x86_gemm.inc's gemv_q4): the high nibbles stay in place (v & 0xF0 =
 * 16 q: one operation instead of a shift and a mask) in a sum of their own, shifted back at the
 * end (exact: a multiple of 16). */
static inline void gemv_q4_chunk(__m256i part[2], __m256i v, __m256i xl, __m256i xh) {
    part[0] = dpbusd(part[0], _mm256_and_si256(v, _mm256_set1_epi8(0x0F)), xl);
    part[1] = dpbusd(part[1], _mm256_and_si256(v, _mm256_set1_epi8((char)0xF0)), xh);
}
static inline __m256i gemv_q4_close(__m256i acc, const __m256i part[2]) {
    return _mm256_add_epi32(acc, _mm256_add_epi32(part[0], _mm256_srai_epi32(part[1], 4)));
}
#include "x86_gemm.inc"

void GEMM(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y, size_t ldy) {
    gemm_q8_0_256(nb, group, x, xsum, T, y, ldy);
}

void GEMM4(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y, size_t ldy) {
    gemm_q4_0_256(nb, group, x, xsum, T, y, ldy);
}

void GEMV4(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum, float *const *y) {
    gemv_q4_256(n, nb, group, x, xsum, y);
}

void GEMV8(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum, float *const *y) {
    gemv_q8_256(n, nb, group, x, xsum, y);
}

void FEW8(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum, int T,
          float *const *y, const size_t *ldy) {
    gemv_few_256_of(false, n, nb, group, x, xsum, T, y, ldy);
}

void FEW4(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum, int T,
          float *const *y, const size_t *ldy) {
    gemv_few_256_of(true, n, nb, group, x, xsum, T, y, ldy);
}

void GEMM6(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y, size_t ldy) {
    gemm_q6_k_256(nb, group, x, xsum, T, y, ldy);
}
#endif
