/* cpu/x86_avx512_attn.c - decode attention over an f16 or Q8_0 cache in 512-bit registers: the
 * AVX2 kernels' results bit for bit (x86_avx2.c), in half the instructions. For f16 a zmm holds the
 * AVX2 kernels' two 8-lane accumulators side by side (lanes 0-7 the first eight elements of each 16,
 * lanes 8-15 the second eight); for Q8_0 scores it holds two keys' accumulators (lanes 0-7 the
 * first key's, 8-15 the second's). Each lane sums the same products in the same order, and the
 * halves are reduced as there. So a cache read at depth costs fewer instructions a byte, where it
 * was bound by them (Gemma 3's one KV head shares a key among four query heads). */
#if defined(__x86_64__) && defined(__AVX512F__)
#include "../kernels.h"

#include <immintrin.h>

enum { PREFETCH_ROWS = 8, HEADS = 4 };

static inline __m512 f16x16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* the low and high eight lanes of a zmm */
static inline __m256 lo8(__m512 v) { return _mm512_castps512_ps256(v); }
static inline __m256 hi8(__m512 v) {
    return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

/* the two eights of a zmm added: the AVX2 kernels' a + c */
static inline __m256 halves(__m512 v) { return _mm256_add_ps(lo8(v), hi8(v)); }

/* [sum a, sum b, sum c, sum d], added as x86_avx2.c's hsum4_ps */
static inline __m128 hsum4_ps(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* the sum of v, added as x86_avx2.c's hsum */
static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Scores of keys k0 and k1 against nh (2 or 4) heads from q on: r[key * nh + head], each as the
 * AVX2 qk_f16_pair sums it. Each key element is widened once for all the heads. */
static inline __attribute__((always_inline)) void qk_keys(const uint16_t *k0, const uint16_t *k1,
                                                          const float *q, int hd, const int nh, float *r) {
    __m512 acc[2][HEADS];
    for (int h = 0; h < nh; h++) acc[0][h] = acc[1][h] = _mm512_setzero_ps();
    for (int i = 0; i < hd; i += 16) {
        const __m512 x0 = f16x16(k0 + i), x1 = f16x16(k1 + i);
        for (int h = 0; h < nh; h++) {
            const __m512 y = _mm512_loadu_ps(q + (size_t)h * hd + i);
            acc[0][h] = _mm512_fmadd_ps(x0, y, acc[0][h]);
            acc[1][h] = _mm512_fmadd_ps(x1, y, acc[1][h]);
        }
    }
    for (int key = 0; key < 2; key++)
        for (int h = 0; h < nh; h += 2) /* pairs of heads, as the AVX2 kernel makes them */
            _mm_storeu_ps(r + 4 * (key * nh / 2 + h / 2),
                          hsum4_ps(halves(acc[key][h]), halves(acc[key][h + 1]), _mm256_setzero_ps(),
                                   _mm256_setzero_ps()));
}

/* a zmm of a in lanes 0-7 and b in lanes 8-15 */
static inline __m512 two8(float a, float b) {
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a)),
                                               _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

/* Scores of Q8_0 keys k0 and k1 against nh (2 or 4) Q8_0 heads from q on, r as qk_keys: a head's
 * accumulator holds the AVX2 qk_q8_0_pair's k0 lanes in 0-7 and its k1 lanes in 8-15. The sign of
 * k moves onto q as there; vpdpbusd sums the four products a lane that maddubs + madd sum (|k| <=
 * 128 and q in [-128, 127], so maddubs never saturates there and the int32 lanes are the same). */
static inline __attribute__((always_inline)) void qk_q8_0_keys(const block_q8_0 *k0, const block_q8_0 *k1,
                                                               const block_q8_0 *q, int nb, const int nh,
                                                               float *r) {
    __m512 acc[HEADS];
    for (int h = 0; h < nh; h++) acc[h] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)k0[b].qs);
        const __m256i x1 = _mm256_loadu_si256((const __m256i *)k1[b].qs);
        const __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(x0), x1, 1);
        const __m512i ax = _mm512_abs_epi8(x);
        const __mmask64 neg = _mm512_movepi8_mask(x);
        const __m512 dk = two8(_cvtsh_ss(k0[b].d), _cvtsh_ss(k1[b].d));
        for (int h = 0; h < nh; h++) {
            const block_q8_0 *qb = q + (size_t)h * nb + b;
            const __m512i y = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qb->qs));
            const __m512i sy = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
            const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, sy);
            const __m512 scale = _mm512_mul_ps(dk, _mm512_set1_ps(_cvtsh_ss(qb->d)));
            acc[h] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(p), acc[h]);
        }
    }
    for (int h = 0; h < nh; h += 2) {
        const __m128 v = hsum4_ps(lo8(acc[h]), lo8(acc[h + 1]), hi8(acc[h]), hi8(acc[h + 1]));
        _mm_storel_pi((__m64 *)(r + 4 * (h / 2)), v);
        _mm_storeh_pi((__m64 *)(r + 4 * (nh / 2 + h / 2)), v);
    }
}

/* The scores of nh (2 or 4) heads from q on (score rows s, ls apart) against n cache rows of rb
 * bytes (f16, or Q8_0 when q8), keys j and j + n/2 together and an odd last key paired with itself */
static inline __attribute__((always_inline)) void qk_heads(int n, const char *k, size_t rb, int hd,
                                                           const void *q, const int nh, const bool q8,
                                                           float *s, size_t ls) {
    const int half = n / 2;
    float r[2 * HEADS * 2]; /* per key, per pair of heads: four lanes, the first two used */
    for (int j = 0; j < half + n % 2; j++) {
        const bool odd = j == half;
        const char *k0 = k + (size_t)(odd ? n - 1 : j) * rb, *k1 = odd ? k0 : k0 + (size_t)half * rb;
        if (j + PREFETCH_ROWS < half)
            for (size_t i = 0; i < rb; i += 64) {
                _mm_prefetch(k0 + PREFETCH_ROWS * rb + i, _MM_HINT_T0);
                _mm_prefetch(k1 + PREFETCH_ROWS * rb + i, _MM_HINT_T0);
            }
        if (q8)
            qk_q8_0_keys((const block_q8_0 *)k0, (const block_q8_0 *)k1, q, hd / QK8_0, nh, r);
        else
            qk_keys((const uint16_t *)k0, (const uint16_t *)k1, q, hd, nh, r);
        for (int h = 0; h < nh; h++) {
            s[h * ls + (size_t)(odd ? n - 1 : j)] = r[4 * (h / 2) + h % 2];
            if (!odd) s[h * ls + (size_t)(j + half)] = r[4 * (nh / 2 + h / 2) + h % 2];
        }
    }
}

void g8_qk_f16_avx512(int n, const uint16_t *k, int hd, const float *q, int group, float *s, size_t ls) {
    if (hd % 16) {
        g8_qk_f16_scalar(n, k, hd, q, group, s, ls);
        return;
    }
    int h = 0;
    const char *rows = (const char *)k;
    const size_t rb = (size_t)hd * sizeof *k;
    for (; h + 4 <= group; h += 4) qk_heads(n, rows, rb, hd, q + (size_t)h * hd, 4, false, s + h * ls, ls);
    for (; h + 2 <= group; h += 2) qk_heads(n, rows, rb, hd, q + (size_t)h * hd, 2, false, s + h * ls, ls);
    if (h < group) /* an odd last head: as the AVX2 dot_f16 */
        for (int j = 0; j < n; j++) {
            const uint16_t *kj = k + (size_t)j * hd;
            const float *qh = q + (size_t)h * hd;
            __m512 acc = _mm512_setzero_ps();
            for (int i = 0; i < hd; i += 16)
                acc = _mm512_fmadd_ps(f16x16(kj + i), _mm512_loadu_ps(qh + i), acc);
            s[h * ls + (size_t)j] = hsum(halves(acc));
        }
}

/* Scores against Q8_0 keys: as the AVX2 qk_q8_0, an odd last head by the AVX2 table's dot_q8_0 */
void g8_qk_q8_0_avx512(int n, const block_q8_0 *k, int nb, const block_q8_0 *q, int group, float *s,
                       size_t ls) {
    const char *rows = (const char *)k;
    const size_t rb = (size_t)nb * sizeof *k;
    const int hd = nb * QK8_0;
    int h = 0;
    for (; h + 4 <= group; h += 4) qk_heads(n, rows, rb, hd, q + (size_t)h * nb, 4, true, s + h * ls, ls);
    for (; h + 2 <= group; h += 2) qk_heads(n, rows, rb, hd, q + (size_t)h * nb, 2, true, s + h * ls, ls);
    for (; h < group; h++)
        for (int j = 0; j < n; j++)
            s[h * ls + (size_t)j] = g8_kernels_avx2.dot_q8_0(nb, k + (size_t)j * nb, q + (size_t)h * nb);
}

/* out[h * hd ..] += the value rows (f16, or Q8_0 when q8; rows of rb bytes) weighted for nh (1 to
 * 4) heads: rows in blocks that stay in L1 while each 32-element slice of every head's output is
 * summed in registers, each element by one FMA a row, in row order, as the AVX2 wsum_f16 and
 * wsum_q8_0 (a Q8_0 row's weight times its block's scale, w * d, as there) */
static inline __attribute__((always_inline)) void wsum_heads(int n, const float *w, size_t lw, const char *v,
                                                             size_t rb, int hd, const int nh, const bool q8,
                                                             float *out) {
    enum { ROWS = 16 };
    for (int j0 = 0; j0 < n; j0 += ROWS) {
        const int nj = n - j0 < ROWS ? n - j0 : ROWS;
        const bool ahead = j0 + ROWS + nj <= n; /* fetch the next block's rows, slice by slice */
        for (int d = 0; d < hd; d += 32) {
            __m512 a[HEADS][2];
            for (int h = 0; h < nh; h++) {
                a[h][0] = _mm512_loadu_ps(out + (size_t)h * hd + d);
                a[h][1] = _mm512_loadu_ps(out + (size_t)h * hd + d + 16);
            }
            const size_t at = q8 ? d / QK8_0 * sizeof(block_q8_0) : d * sizeof(uint16_t);
            const char *row = v + (size_t)j0 * rb + at;
            for (int j = 0; j < nj; j++, row += rb) {
                if (ahead) _mm_prefetch(row + ROWS * rb, _MM_HINT_T0);
                __m512 x0, x1;
                float scale = 1;
                if (q8) {
                    const block_q8_0 *blk = (const block_q8_0 *)row;
                    scale = _cvtsh_ss(blk->d);
                    const __m128i *qs = (const __m128i *)blk->qs;
                    x0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(qs)));
                    x1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(qs + 1)));
                } else {
                    x0 = f16x16((const uint16_t *)row);
                    x1 = f16x16((const uint16_t *)row + 16);
                }
                for (int h = 0; h < nh; h++) {
                    const float wh = w[h * lw + (size_t)(j0 + j)];
                    const __m512 wj = _mm512_set1_ps(q8 ? wh * scale : wh);
                    a[h][0] = _mm512_fmadd_ps(wj, x0, a[h][0]);
                    a[h][1] = _mm512_fmadd_ps(wj, x1, a[h][1]);
                }
            }
            for (int h = 0; h < nh; h++) {
                _mm512_storeu_ps(out + (size_t)h * hd + d, a[h][0]);
                _mm512_storeu_ps(out + (size_t)h * hd + d + 16, a[h][1]);
            }
        }
    }
}

/* the weighted sums of a group's heads, four at a time and then the rest together */
static inline __attribute__((always_inline)) void wsum_group(int n, const float *w, size_t lw, const char *v,
                                                             size_t rb, int hd, int group, const bool q8,
                                                             float *out) {
    int h = 0;
    for (; h + 4 <= group; h += 4) wsum_heads(n, w + h * lw, lw, v, rb, hd, 4, q8, out + (size_t)h * hd);
    switch (group - h) {
    case 3:
        wsum_heads(n, w + h * lw, lw, v, rb, hd, 3, q8, out + (size_t)h * hd);
        break;
    case 2:
        wsum_heads(n, w + h * lw, lw, v, rb, hd, 2, q8, out + (size_t)h * hd);
        break;
    case 1:
        wsum_heads(n, w + h * lw, lw, v, rb, hd, 1, q8, out + (size_t)h * hd);
        break;
    default:
        break;
    }
}

void g8_wsum_f16_avx512(int n, const float *w, size_t lw, const uint16_t *v, int hd, int group, float *out) {
    if (hd % 32) {
        g8_wsum_f16_scalar(n, w, lw, v, hd, group, out);
        return;
    }
    wsum_group(n, w, lw, (const char *)v, (size_t)hd * sizeof *v, hd, group, false, out);
}

void g8_wsum_q8_0_avx512(int n, const float *w, size_t lw, const block_q8_0 *v, int hd, int group,
                         float *out) {
    wsum_group(n, w, lw, (const char *)v, (size_t)(hd / QK8_0) * sizeof *v, hd, group, true, out);
}
#endif
