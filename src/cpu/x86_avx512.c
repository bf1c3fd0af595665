/* cpu/x86_avx512.c - the Q8_0 GEMM on 512-bit vpdpbusd (AVX512-VNNI: Ice Lake,
 * Sapphire Rapids, Zen 4 and later). One zmm holds four quants of each of a
 * packed group's 16 rows (quant.h), made unsigned once per load (w ^ 0x80); each
 * token's four quants are broadcast from memory into the vpdpbusd; the token's
 * int32 accumulator starts at xsum (-128 times its block sum), which makes the
 * sums exact. Per block and token: 8 vpdpbusd, then one convert and one FMA
 * with the 16 rows' scales times the token's, every lane its own (row, token). */
#if defined(__x86_64__) && defined(__AVX512VNNI__)
#include "../kernels.h"

#include <immintrin.h>
#include <stdbool.h>

/* Bytes ahead of the loads to prefetch, when more than four tokens go over a block of weights that
 * comes from L2 (prefill gains ~12%). pass leaves one to four tokens to the hardware prefetcher
 * (software prefetches cost its one-stream pass of a few tokens, used before gemv_few: two
 * sequences decoded 1.45x one with them, 1.8x without). gemv_few (two to four
 * tokens, four streams a thread) prefetches FEW_AHEAD bytes ahead in each stream: with four
 * tokens' vpdpbusd between a stream's loads, its loads alone left memory idle (2B, two and four
 * sequences: +7-20%, docs/performance.md). The one-token GEMVs come in two builds: without a
 * prefetch (AMD: prefetches 1-9 KiB ahead read 52-62 GB/s where none read 61-67 on Zen) and with one
 * ONE_AHEAD bytes ahead in each stream (Intel: an Emerald Rapids VM decoded 7-14% faster with it,
 * 2B q8_0 and q4_0, Gemma 3 1B q8_0); kernels.c picks the table by the CPU's vendor. */
enum { PREFETCH = 2048, FEW_AHEAD = 2048, ONE_AHEAD = 2048 };

/* Q8_0 quantization of activations (quant.c's reference, bit for bit), a block in two zmm: d = amax / 127,
 * the quants x / d rounded half away from zero as roundf (truncate, add one where the rest is >= 0.5,
 * the sign put back), saturated to int8 on the way down; the scale to f16 through F16C, rounded to
 * nearest even: g8_f32_to_f16's bits for every finite d. The AVX2 one took 0.54 ns a value (this one
 * 0.34): ~1.1 ms of a decode step of four sequences of Gemma 2 2B, on the caller then (ops.c). */
void g8_quantize_q8_0_avx512(const float *x, block_q8_0 *y, int n) {
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (int b = 0; b < n / QK8_0; b++) {
        const float *xb = x + (size_t)b * QK8_0;
        const __m512 v[2] = {_mm512_loadu_ps(xb), _mm512_loadu_ps(xb + 16)};
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        _Pragma("GCC unroll 2")
        for (int k = 0; k < 2; k++) {
            const __m512 s = _mm512_mul_ps(v[k], _mm512_set1_ps(id)), a = _mm512_abs_ps(s);
            __m512 t = _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            t = _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(_mm512_sub_ps(a, t), half, _CMP_GE_OQ), t, one);
            const __m512i st =
                _mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(_mm512_castps_si512(s), sign));
            const __m512i q = _mm512_cvttps_epi32(_mm512_castsi512_ps(st));
            _mm_storeu_si128((__m128i *)(y[b].qs + 16 * k), _mm512_cvtsepi32_epi8(q));
        }
    }
}

static inline __attribute__((always_inline)) void pass(int nb, const void *group, const block_q8_0 *x,
                                                       const int32_t *xsum, const int T, float *y, size_t ldy) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512 f[G8_GEMM_T];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++) f[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const int8_t *qb = g8_pack_quants(group, b);
        const uint16_t *d = g8_pack_scales(group, b);
        /* two chains of vpdpbusd (even and odd loads) when few tokens would leave the
         * unit waiting on one chain's latency; integer sums, so the split is exact */
        enum { CH = 2 };
        const int chains = T <= 4 ? CH : 1;
        __m512i acc[G8_GEMM_T][CH];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++) {
            acc[t][0] = _mm512_set1_epi32(xsum[(size_t)t * nb + b]);
            acc[t][1] = _mm512_setzero_si512();
        }
        _Pragma("GCC unroll 8")
        for (int c = 0; c < QK8_0 / 4; c++) {
            if (T > 4) _mm_prefetch((const char *)(qb + PREFETCH + 64 * c), _MM_HINT_T0);
            const __m512i u = _mm512_xor_si512(_mm512_loadu_si512((const void *)(qb + 64 * c)), bias);
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) {
                int32_t x4;
                memcpy(&x4, x[(size_t)t * nb + b].qs + 4 * c, 4);
                acc[t][c % chains] = _mm512_dpbusd_epi32(acc[t][c % chains], u, _mm512_set1_epi32(x4));
            }
        }
        if (chains > 1) {
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) acc[t][0] = _mm512_add_epi32(acc[t][0], acc[t][1]);
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++) {
            const __m512 dx = _mm512_set1_ps(_cvtsh_ss(x[(size_t)t * nb + b].d));
            f[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][0]), _mm512_mul_ps(dw, dx), f[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++) _mm512_storeu_ps(y + (size_t)t * ldy, f[t]);
}

void g8_gemm_q8_0_avx512vnni(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                             size_t ldy) {
    switch (T) { /* a pass for each count, so that the accumulators stay in registers */
    case 1: pass(nb, group, x, xsum, 1, y, ldy); break;
    case 2: pass(nb, group, x, xsum, 2, y, ldy); break;
    case 3: pass(nb, group, x, xsum, 3, y, ldy); break;
    case 4: pass(nb, group, x, xsum, 4, y, ldy); break;
    case 5: pass(nb, group, x, xsum, 5, y, ldy); break;
    case 6: pass(nb, group, x, xsum, 6, y, ldy); break;
    case 7: pass(nb, group, x, xsum, 7, y, ldy); break;
    default: pass(nb, group, x, xsum, 8, y, ldy); break;
    }
}
/* Q8_0 for one token by G groups (G <= 4, kernels.h): blocks b..b+n-1 (n <= 2, a pair) of each
 * group loaded front to back, two vpdpbusd chains a block (even and odd loads, as pass), then the
 * scales; each broadcast of the token's quants serves every group. Same integer sums and FMAs as
 * pass at T = 1, so the same floats. Four groups far apart on two threads read 95-98% of what a
 * read of four streams a thread gets, where pass reads 75-85% (one stream). */
static inline __attribute__((always_inline)) void gemv8_blocks(const int n, const int G, const int ahead,
                                                               const void *const *group, int b,
                                                               const block_q8_0 *x, const int32_t *xsum,
                                                               __m512 *f) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512i acc[4][2][2];
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 2")
        for (int k = 0; k < n; k++) {
            acc[g][k][0] = _mm512_set1_epi32(xsum[b + k]);
            acc[g][k][1] = _mm512_setzero_si512();
        }
    _Pragma("GCC unroll 2")
    for (int k = 0; k < n; k++)
        _Pragma("GCC unroll 8")
        for (int c = 0; c < QK8_0 / 4; c++) {
            int32_t x4;
            memcpy(&x4, x[b + k].qs + 4 * c, 4);
            const __m512i xv = _mm512_set1_epi32(x4);
            _Pragma("GCC unroll 4")
            for (int g = 0; g < G; g++) {
                const int8_t *q = g8_pack_quants(group[g], b + k) + 64 * c;
                if (ahead) _mm_prefetch((const char *)q + ahead, _MM_HINT_T0);
                const __m512i u = _mm512_xor_si512(_mm512_loadu_si512((const void *)q), bias);
                acc[g][k][c % 2] = _mm512_dpbusd_epi32(acc[g][k][c % 2], u, xv);
            }
        }
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 2")
        for (int k = 0; k < n; k++) {
            const uint16_t *d = g8_pack_scales(group[g], b + k);
            const __m512i s = _mm512_add_epi32(acc[g][k][0], acc[g][k][1]);
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d));
            const __m512 dx = _mm512_set1_ps(_cvtsh_ss(x[b + k].d));
            f[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dx), f[g]);
        }
}

static inline __attribute__((always_inline)) void gemv8(const int G, const int ahead, int nb,
                                                        const void *const *group, const block_q8_0 *x,
                                                        const int32_t *xsum, float *const *y) {
    __m512 f[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int b = 0;
    for (; b + 2 <= nb; b += 2) gemv8_blocks(2, G, ahead, group, b, x, xsum, f);
    if (b < nb) gemv8_blocks(1, G, ahead, group, b, x, xsum, f);
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++) _mm512_storeu_ps(y[g], f[g]);
}

/* Q4_0 (quant.h's 4-bit packing): a zmm load holds eight quants of each of 16 rows as nibbles: the
 * low ones (masked) pair with the token's quants 8c..8c+3, the high ones with 8c+4..8c+7; unsigned
 * 0..15 into vpdpbusd, the accumulator starting at -8 times the token's block sum (xsum / 16). One
 * token goes through gemv4, two to four through gemv_few, five to eight through pass4_prefill. */

/* Q4_0 for one token (decode), n = 1 or 2 blocks of a pair: 2n independent chains of vpdpbusd
 * a group, each group's bytes loaded front to back (block 2p's four chunks, then 2p + 1's, then
 * the scales), never a step back in a stream, which costs the prefetcher. The high nibbles
 * stay in place (v & 0xF0 = 16 q: one op instead of a shift and a mask) and their sum is shifted
 * back, exact as it is a multiple of 16. Same integer sums as pass4_prefill, so the same floats. A
 * pair at a time gets ~20% more GB/s from L2 than a block at a time, and decode streams at the
 * bandwidth only with that margin (a core shared by two VMs has less). */
/* Blocks b..b+n-1 (n <= 2) of G groups (G <= 4) for one token, into f[g]: each broadcast of the
 * token's quants serves every group; per group the sums and the FMAs are those of one group alone. */
static inline __attribute__((always_inline)) void gemv4_blocks(const int n, const int G, const int ahead,
                                                               const void *const *group, int b,
                                                               const block_q8_0 *x, const int32_t *xsum,
                                                               __m512 *f) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), mh = _mm512_set1_epi8((char)0xF0);
    __m512i lo[4][2], hi[4][2];
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 2")
        for (int k = 0; k < n; k++) {
            lo[g][k] = _mm512_set1_epi32(xsum[b + k] / 16);
            hi[g][k] = _mm512_setzero_si512();
        }
    _Pragma("GCC unroll 2")
    for (int k = 0; k < n; k++) {
        _Pragma("GCC unroll 4")
        for (int c = 0; c < QK4_0 / 8; c++) {
            int32_t xl, xh;
            memcpy(&xl, x[b + k].qs + 8 * c, 4);
            memcpy(&xh, x[b + k].qs + 8 * c + 4, 4);
            const __m512i vl = _mm512_set1_epi32(xl), vh = _mm512_set1_epi32(xh);
            _Pragma("GCC unroll 4")
            for (int g = 0; g < G; g++) {
                const uint8_t *q = g8_pack4_quants(group[g], b) + k * G8_PACK4_BLOCK + 64 * c;
                if (ahead) _mm_prefetch((const char *)q + ahead, _MM_HINT_T0);
                const __m512i v = _mm512_loadu_si512((const void *)q);
                lo[g][k] = _mm512_dpbusd_epi32(lo[g][k], _mm512_and_si512(v, m4), vl);
                hi[g][k] = _mm512_dpbusd_epi32(hi[g][k], _mm512_and_si512(v, mh), vh);
            }
        }
    }
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 2")
        for (int k = 0; k < n; k++) {
            const uint16_t *d = g8_pack4_scales(group[g], b) + k * G8_PACK_ROWS;
            const __m512i s = _mm512_add_epi32(lo[g][k], _mm512_srai_epi32(hi[g][k], 4));
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d));
            const __m512 dx = _mm512_set1_ps(_cvtsh_ss(x[b + k].d));
            f[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dx), f[g]);
        }
}

/* One token by G groups (G <= 4): a pair of blocks at a time (four vpdpbusd chains a group), the
 * high nibbles masked in place (v & 0xF0 = 16 q) and their sum shifted back (exact). */
static inline __attribute__((always_inline)) void gemv4(const int G, const int ahead, int nb,
                                                        const void *const *group, const block_q8_0 *x,
                                                        const int32_t *xsum, float *const *y) {
    __m512 f[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int b = 0;
    for (; b + 2 <= nb; b += 2) gemv4_blocks(2, G, ahead, group, b, x, xsum, f);
    if (b < nb) gemv4_blocks(1, G, ahead, group, b, x, xsum, f);
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++) _mm512_storeu_ps(y[g], f[g]);
}

/* One token by n groups (n <= 4: four far apart read ~85% of a four-stream read where one reads
 * ~65%, ops.c) of Q4_0 or Q8_0, prefetching `ahead` bytes ahead in each stream (0: none) */
static inline __attribute__((always_inline)) void gemv_groups(const bool q4, const int ahead, int n, int nb,
                                                              const void *const *group, const block_q8_0 *x,
                                                              const int32_t *xsum, float *const *y) {
    switch (n) {
    case 1: q4 ? gemv4(1, ahead, nb, group, x, xsum, y) : gemv8(1, ahead, nb, group, x, xsum, y); break;
    case 2: q4 ? gemv4(2, ahead, nb, group, x, xsum, y) : gemv8(2, ahead, nb, group, x, xsum, y); break;
    case 3: q4 ? gemv4(3, ahead, nb, group, x, xsum, y) : gemv8(3, ahead, nb, group, x, xsum, y); break;
    default: q4 ? gemv4(4, ahead, nb, group, x, xsum, y) : gemv8(4, ahead, nb, group, x, xsum, y); break;
    }
}

void g8_gemv_q8_0_avx512vnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                             float *const *y) {
    gemv_groups(false, 0, n, nb, group, x, xsum, y);
}

void g8_gemv_q8_0_avx512vnni_pf(int n, int nb, const void *const *group, const block_q8_0 *x,
                                const int32_t *xsum, float *const *y) {
    gemv_groups(false, ONE_AHEAD, n, nb, group, x, xsum, y);
}

void g8_gemv_q4_0_avx512vnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                             float *const *y) {
    gemv_groups(true, 0, n, nb, group, x, xsum, y);
}

void g8_gemv_q4_0_avx512vnni_pf(int n, int nb, const void *const *group, const block_q8_0 *x,
                                const int32_t *xsum, float *const *y) {
    gemv_groups(true, ONE_AHEAD, n, nb, group, x, xsum, y);
}

/* A few tokens (T = 2..4, a batch's decode step) by G groups (G <= 4): block after block, each
 * group's bytes front to back (as gemv8 and gemv4, so G streams far apart); per chunk each group's
 * 64 bytes loaded once and each token's quants broadcast once, then T * G vpdpbusd, one int32
 * chain per (group, token). The sums are pass's and pass4_prefill's integers, the FMAs theirs, so
 * the same floats as gemm_q8_0 / gemm_q4_0. Q4_0's high nibbles are shifted down (one accumulator
 * a pair, the sum starting at -8 times the token's block sum, xsum / 16: exact, a multiple of 128).
 * gemm_q4_0 of two to four tokens is this with one group. */
static inline __attribute__((always_inline)) void gemv_few(const bool q4, const int G, const int T, int nb,
                                                           const void *const *group, const block_q8_0 *x,
                                                           const int32_t *xsum, float *const *y,
                                                           const size_t *ldy) {
    const __m512i bias = _mm512_set1_epi8((char)0x80), m4 = _mm512_set1_epi8(0x0F);
    __m512 f[4][4];
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 4")
        for (int t = 0; t < T; t++) f[g][t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m512i acc[4][4];
        _Pragma("GCC unroll 4")
        for (int g = 0; g < G; g++)
            _Pragma("GCC unroll 4")
            for (int t = 0; t < T; t++)
                acc[g][t] = _mm512_set1_epi32(q4 ? xsum[(size_t)t * nb + b] >> 4 : xsum[(size_t)t * nb + b]);
        if (q4) {
            _Pragma("GCC unroll 4")
            for (int c = 0; c < QK4_0 / 8; c++) {
                __m512i lo[4], hi[4];
                _Pragma("GCC unroll 4")
                for (int g = 0; g < G; g++) {
                    const uint8_t *q = g8_pack4_quants(group[g], b) + 64 * c;
                    _mm_prefetch((const char *)q + FEW_AHEAD, _MM_HINT_T0);
                    const __m512i v = _mm512_loadu_si512((const void *)q);
                    lo[g] = _mm512_and_si512(v, m4);
                    hi[g] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                }
                _Pragma("GCC unroll 4")
                for (int t = 0; t < T; t++) {
                    int32_t xl, xh;
                    memcpy(&xl, x[(size_t)t * nb + b].qs + 8 * c, 4);
                    memcpy(&xh, x[(size_t)t * nb + b].qs + 8 * c + 4, 4);
                    const __m512i vl = _mm512_set1_epi32(xl), vh = _mm512_set1_epi32(xh);
                    _Pragma("GCC unroll 4")
                    for (int g = 0; g < G; g++) {
                        acc[g][t] = _mm512_dpbusd_epi32(acc[g][t], lo[g], vl);
                        acc[g][t] = _mm512_dpbusd_epi32(acc[g][t], hi[g], vh);
                    }
                }
            }
        } else {
            _Pragma("GCC unroll 8")
            for (int c = 0; c < QK8_0 / 4; c++) {
                __m512i u[4];
                _Pragma("GCC unroll 4")
                for (int g = 0; g < G; g++) {
                    const int8_t *q = g8_pack_quants(group[g], b) + 64 * c;
                    _mm_prefetch((const char *)q + FEW_AHEAD, _MM_HINT_T0);
                    u[g] = _mm512_xor_si512(_mm512_loadu_si512((const void *)q), bias);
                }
                _Pragma("GCC unroll 4")
                for (int t = 0; t < T; t++) {
                    int32_t x4;
                    memcpy(&x4, x[(size_t)t * nb + b].qs + 4 * c, 4);
                    const __m512i xv = _mm512_set1_epi32(x4);
                    _Pragma("GCC unroll 4")
                    for (int g = 0; g < G; g++) acc[g][t] = _mm512_dpbusd_epi32(acc[g][t], u[g], xv);
                }
            }
        }
        _Pragma("GCC unroll 4")
        for (int g = 0; g < G; g++) {
            const uint16_t *d = q4 ? g8_pack4_scales(group[g], b) : g8_pack_scales(group[g], b);
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d));
            _Pragma("GCC unroll 4")
            for (int t = 0; t < T; t++) {
                const __m512 dx = _mm512_set1_ps(_cvtsh_ss(x[(size_t)t * nb + b].d));
                f[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[g][t]), _mm512_mul_ps(dw, dx), f[g][t]);
            }
        }
    }
    _Pragma("GCC unroll 4")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 4")
        for (int t = 0; t < T; t++) _mm512_storeu_ps(y[g] + (size_t)t * ldy[g], f[g][t]);
}

#define FEW(Q4, G)                                                                                      \
    switch (T) {                                                                                         \
    case 2: gemv_few(Q4, G, 2, nb, group, x, xsum, y, ldy); break;                                       \
    case 3: gemv_few(Q4, G, 3, nb, group, x, xsum, y, ldy); break;                                       \
    default: gemv_few(Q4, G, 4, nb, group, x, xsum, y, ldy); break;                                      \
    }

static inline __attribute__((always_inline)) void few(const bool q4, int n, int nb, const void *const *group,
                                                      const block_q8_0 *x, const int32_t *xsum, int T,
                                                      float *const *y, const size_t *ldy) {
    switch (n) {
    case 1: FEW(q4, 1) break;
    case 2: FEW(q4, 2) break;
    case 3: FEW(q4, 3) break;
    default: FEW(q4, 4) break;
    }
}

void g8_gemv_few_q8_0_avx512vnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                                 int T, float *const *y, const size_t *ldy) {
    few(false, n, nb, group, x, xsum, T, y, ldy);
}

void g8_gemv_few_q4_0_avx512vnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                                 int T, float *const *y, const size_t *ldy) {
    few(true, n, nb, group, x, xsum, T, y, ldy);
}
#undef FEW

/* Q6_K (quant.h): unsigned 6-bit quants in Q8_0's packing; each half of a block
 * (chunks 0-3, 4-7) sums apart from -32 times the token's half sum, then
 * s = sc_a * a + sc_b * b in int32 lanes. */
static inline __attribute__((always_inline)) void pass6(int nb, const void *group, const block_q8_0 *x,
                                                        const int32_t *xsum, const int T, float *y, size_t ldy) {
    __m512 f[G8_GEMM_T];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++) f[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *qb = g8_pack6_quants(group, b);
        const uint16_t *d = g8_pack6_d(group, b);
        const int8_t *sc = g8_pack6_sc(group, b);
        const __m512i sa = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)sc));
        const __m512i sb = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(sc + G8_PACK_ROWS)));
        __m512i acc[G8_GEMM_T][2];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++) {
            acc[t][0] = _mm512_set1_epi32(xsum[2 * ((size_t)t * nb + b)]);
            acc[t][1] = _mm512_set1_epi32(xsum[2 * ((size_t)t * nb + b) + 1]);
        }
        _Pragma("GCC unroll 8")
        for (int c = 0; c < QK8_0 / 4; c++) {
            if (T > 4) _mm_prefetch((const char *)(qb + PREFETCH + 64 * c), _MM_HINT_T0);
            const __m512i u = _mm512_loadu_si512((const void *)(qb + 64 * c));
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) {
                int32_t x4;
                memcpy(&x4, x[(size_t)t * nb + b].qs + 4 * c, 4);
                acc[t][c / 4] = _mm512_dpbusd_epi32(acc[t][c / 4], u, _mm512_set1_epi32(x4));
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)d));
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++) {
            const __m512 dx = _mm512_set1_ps(_cvtsh_ss(x[(size_t)t * nb + b].d));
            const __m512i s = _mm512_add_epi32(_mm512_mullo_epi32(acc[t][0], sa), _mm512_mullo_epi32(acc[t][1], sb));
            f[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dx), f[t]);
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++) _mm512_storeu_ps(y + (size_t)t * ldy, f[t]);
}

/* The token scales of up to 16 blocks b0.. of token t as floats: a gather of the blocks' first four
 * bytes (the f16 scale and two quants, inside the block), their low halves converted at once. */
static inline __attribute__((always_inline)) void token_scales(const block_q8_0 *xt, int n, float *out) {
    const __m512i off = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32((int)sizeof(block_q8_0)));
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    const __m512i w = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, off, (const void *)xt, 1);
    _mm512_mask_storeu_ps(out, m, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w)));
}

/* Q4_0 for five to eight tokens (prefill): per block the exact int32 sum and the FMA of the
 * definition (kernels.h), with what each (block, token) needs beside its eight vpdpbusd made once a
 * call for 16 blocks at a time: the token scales as floats (a gather, then one convert) and -8 times
 * the block sums (xsum / 16, exact: a multiple of 128), each read from memory where it is used. Low
 * and high nibbles go into one int32 accumulator a token (the same integer as two summed). */
enum { PREFILL_BLOCKS = 16 };
static inline __attribute__((always_inline)) void pass4_prefill(int nb, const void *group, const block_q8_0 *x,
                                                                const int32_t *xsum, const int T, float *y,
                                                                size_t ldy) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 f[G8_GEMM_T];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++) f[t] = _mm512_setzero_ps();
    for (int b0 = 0; b0 < nb; b0 += PREFILL_BLOCKS) {
        const int n = nb - b0 < PREFILL_BLOCKS ? nb - b0 : PREFILL_BLOCKS;
        float dx[G8_GEMM_T][PREFILL_BLOCKS];
        int32_t s0[G8_GEMM_T][PREFILL_BLOCKS];
        const __mmask16 m = (__mmask16)((1u << n) - 1);
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++) {
            token_scales(x + (size_t)t * nb + b0, n, dx[t]);
            const __m512i xs = _mm512_maskz_loadu_epi32(m, xsum + (size_t)t * nb + b0);
            _mm512_mask_storeu_epi32(s0[t], m, _mm512_srai_epi32(xs, 4));
        }
        for (int i = 0; i < n; i++) {
            const int b = b0 + i;
            const uint8_t *qb = g8_pack4_quants(group, b);
            __m512i acc[G8_GEMM_T];
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) acc[t] = _mm512_set1_epi32(s0[t][i]);
            _Pragma("GCC unroll 4")
            for (int c = 0; c < QK4_0 / 8; c++) {
                _mm_prefetch((const char *)(qb + PREFETCH + 64 * c), _MM_HINT_T0);
                const __m512i v = _mm512_loadu_si512((const void *)(qb + 64 * c));
                const __m512i lo = _mm512_and_si512(v, m4);
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                _Pragma("GCC unroll 8")
                for (int t = 0; t < T; t++) {
                    int32_t xl, xh;
                    memcpy(&xl, x[(size_t)t * nb + b].qs + 8 * c, 4);
                    memcpy(&xh, x[(size_t)t * nb + b].qs + 8 * c + 4, 4);
                    acc[t] = _mm512_dpbusd_epi32(acc[t], lo, _mm512_set1_epi32(xl));
                    acc[t] = _mm512_dpbusd_epi32(acc[t], hi, _mm512_set1_epi32(xh));
                }
            }
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)g8_pack4_scales(group, b)));
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) {
                const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(dx[t][i]));
                f[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t]), scale, f[t]);
            }
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++) _mm512_storeu_ps(y + (size_t)t * ldy, f[t]);
}

#define DISPATCH(PASS)                                                                                 \
    switch (T) { /* a pass for each count, so that the accumulators stay in registers */                    \
    case 1: PASS(nb, group, x, xsum, 1, y, ldy); break;                                                     \
    case 2: PASS(nb, group, x, xsum, 2, y, ldy); break;                                                     \
    case 3: PASS(nb, group, x, xsum, 3, y, ldy); break;                                                     \
    case 4: PASS(nb, group, x, xsum, 4, y, ldy); break;                                                     \
    case 5: PASS(nb, group, x, xsum, 5, y, ldy); break;                                                     \
    case 6: PASS(nb, group, x, xsum, 6, y, ldy); break;                                                     \
    case 7: PASS(nb, group, x, xsum, 7, y, ldy); break;                                                     \
    default: PASS(nb, group, x, xsum, 8, y, ldy); break;                                                    \
    }

void g8_gemm_q4_0_avx512vnni(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                             size_t ldy) {
    switch (T) {
    case 1: gemv4(1, 0, nb, &group, x, xsum, &y); break;
    case 2:
    case 3:
    case 4: few(true, 1, nb, &group, x, xsum, T, &y, &ldy); break;
    case 5: pass4_prefill(nb, group, x, xsum, 5, y, ldy); break;
    case 6: pass4_prefill(nb, group, x, xsum, 6, y, ldy); break;
    case 7: pass4_prefill(nb, group, x, xsum, 7, y, ldy); break;
    default: pass4_prefill(nb, group, x, xsum, 8, y, ldy); break;
    }
}

void g8_gemm_q6_k_avx512vnni(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                             size_t ldy) {
    DISPATCH(pass6)
}
#endif
