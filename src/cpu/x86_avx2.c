/* cpu/x86_avx2.c - kernels for x86-64 with AVX2, FMA and F16C. */
#if defined(__x86_64__)
#include "../kernels.h"

#include <immintrin.h>
#include <math.h>

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float dot_f32(int n, const float *w, const float *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_f16(int n, const uint16_t *w, const float *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += g8_f16_to_f32(w[i]) * x[i];
    return s;
}

static inline __m256 bf16x8(const uint16_t *p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

static float dot_bf16(int n, const uint16_t *w, const float *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(bf16x8(w + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(bf16x8(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += g8_bf16_to_f32(w[i]) * x[i];
    return s;
}

/* int32 lanes of the product of two 32-byte signed vectors (|w| * sign(x, w)). */
static inline __m256i dot_i8(__m256i aw, __m256i w, __m256i x) {
    const __m256i ones = _mm256_set1_epi16(1);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)), ones);
}

static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static float dot_q8_0(int nb, const block_q8_0 *w, const block_q8_0 *x) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m256i w0 = _mm256_loadu_si256((const __m256i *)w[b].qs), x0 = _mm256_loadu_si256((const __m256i *)x[b].qs);
        __m256i w1 = _mm256_loadu_si256((const __m256i *)w[b + 1].qs);
        __m256i x1 = _mm256_loadu_si256((const __m256i *)x[b + 1].qs);
        __m256i p0 = dot_i8(_mm256_sign_epi8(w0, w0), w0, x0), p1 = dot_i8(_mm256_sign_epi8(w1, w1), w1, x1);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(x[b].d)), _mm256_cvtepi32_ps(p0), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b + 1].d) * h2f(x[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
    }
    for (; b < nb; b++) {
        __m256i qw = _mm256_loadu_si256((const __m256i *)w[b].qs), qx = _mm256_loadu_si256((const __m256i *)x[b].qs);
        __m256i p = dot_i8(_mm256_sign_epi8(qw, qw), qw, qx);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(x[b].d)), _mm256_cvtepi32_ps(p), acc0);
    }
    return hsum(_mm256_add_ps(acc0, acc1));
}

/* The GEMM (x86_gemm.inc): the sign of each weight moved onto the activation,
 * maddubs(|w|, sign(x, w)) (|w| <= 128 as unsigned, |x| <= 127: no pair of
 * products saturates int16), then madd to int32 lanes. */
#define GEMM_TOKENS 2
static inline __m256i gemm_prep(__m256i w) { return _mm256_abs_epi8(w); }
static inline __m256i gemm_dot(__m256i acc, __m256i aw, __m256i w, __m256i x4) {
    const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x4, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
static inline int32_t gemm_init(int32_t xsum) {
    (void)xsum;
    return 0;
}
/* unsigned weights (Q4_0, Q6_K: at most 63): maddubs pairs stay below 2 * 63 * 127, exact */
static inline __m256i gemm_udot(__m256i acc, __m256i u, __m256i x4) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, x4), _mm256_set1_epi16(1)));
}
/* A Q4_0 chunk for one token (x86_gemm.inc's gemv_q4): the maddubs of the low and high nibbles add
 * up in int16 lanes over the block (each at most 2 * 15 * 127, the eight at most 30480: exact), and
 * one madd widens them at the end: half the operations of gemm_udot. */
static inline void gemv_q4_chunk(__m256i part[2], __m256i v, __m256i xl, __m256i xh) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(v, m4), xl);
    const __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), xh);
    part[0] = _mm256_add_epi16(part[0], _mm256_add_epi16(lo, hi));
}
static inline __m256i gemv_q4_close(__m256i acc, const __m256i part[2]) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(part[0], _mm256_set1_epi16(1)));
}
#include "x86_gemm.inc"

static void gemm_q8_0(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                      size_t ldy) {
    gemm_q8_0_256(nb, group, x, xsum, T, y, ldy);
}

static void gemm_q4_0(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                      size_t ldy) {
    gemm_q4_0_256(nb, group, x, xsum, T, y, ldy);
}

static void gemm_q6_k(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                      size_t ldy) {
    gemm_q6_k_256(nb, group, x, xsum, T, y, ldy);
}

/* Same rounding as roundf (half away from zero), so results equal the reference. */
static void quantize_q8_0(const float *x, block_q8_0 *y, int n) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    for (int b = 0; b < n / QK8_0; b++) {
        const float *xb = x + b * QK8_0;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(m, _mm256_and_ps(v[k], absmask));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = g8_f32_to_f16(d);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 s = _mm256_mul_ps(v[k], vid);
            __m256 a = _mm256_and_ps(s, absmask);
            __m256 t = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(a, t), half, _CMP_GE_OQ), one));
            t = _mm256_or_ps(t, _mm256_andnot_ps(absmask, s));
            q[k] = _mm256_cvttps_epi32(t);
        }
        /* pack 32 int32 to 32 int8 in order */
        __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
        __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[b].qs, p);
    }
}

static void axpy(int n, float a, const float *x, float *y) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void to_f16(int n, const float *x, uint16_t *y) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = g8_f32_to_f16(x[i]);
}

/* exp(x) for 8 floats: 2^n * p(r) with r = x - n ln 2 (Cephes' polynomial),
 * within 2 ulp of expf over the float range. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* tanh(x) = sign(x) (1 - t) / (1 + t), t = exp(-2|x|) */
static inline __m256 tanh8(__m256 x) {
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000));
    __m256 ax = _mm256_andnot_ps(sign, x);
    __m256 t = exp8(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
    __m256 y = _mm256_div_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), t), _mm256_add_ps(_mm256_set1_ps(1.0f), t));
    return _mm256_or_ps(y, _mm256_and_ps(sign, x));
}

/* the largest of the eight lanes of v and of m */
static inline float hmax(__m256 v, float m) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float r = _mm_cvtss_f32(h);
    return r > m ? r : m;
}

static float softcap(int n, float *x, float scale, float cap) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int i = 0;
    if (cap == 0) {
        for (; i + 8 <= n; i += 8) {
            const __m256 y = _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(scale));
            _mm256_storeu_ps(x + i, y);
            m = _mm256_max_ps(y, m); /* a NaN y leaves m */
        }
    } else {
        const __m256 s = _mm256_set1_ps(scale / cap), c = _mm256_set1_ps(cap);
        for (; i + 8 <= n; i += 8) {
            const __m256 y = _mm256_mul_ps(tanh8(_mm256_mul_ps(_mm256_loadu_ps(x + i), s)), c);
            _mm256_storeu_ps(x + i, y);
            m = _mm256_max_ps(y, m);
        }
    }
    return hmax(m, g8_softcap_scalar(n - i, x + i, scale, cap));
}

static float exp_sum(int n, float *x, float m) {
    __m256 acc = _mm256_setzero_ps();
    const __m256 vm = _mm256_set1_ps(m);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    return hsum(acc) + g8_exp_sum_scalar(n - i, x + i, m);
}

static void geglu(int n, float *g, const float *u) {
    const __m256 k = _mm256_set1_ps(0.7978845608028654f), c = _mm256_set1_ps(0.044715f), half = _mm256_set1_ps(0.5f);
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 inner = _mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_mul_ps(c, x), _mm256_mul_ps(x, x), x));
        __m256 y = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, tanh8(inner)));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(y, _mm256_loadu_ps(u + i)));
    }
    g8_geglu_scalar(n - i, g + i, u + i);
}

/* [sum a, sum b, sum c, sum d] */
static inline __m128 hsum4_ps(__m256 a, __m256 b, __m256 c, __m256 d) {
    const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

static inline __m256 f16x8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

enum { PREFETCH_ROWS = 8 };

/* The scores of keys k0 and k1 against heads q0 and q1, r = [k0.q0, k0.q1, k1.q0, k1.q1]: every key
 * element widened once, eight independent FMA chains hide the FMA latency. */
static inline void qk_f16_pair(const uint16_t *k0, const uint16_t *k1, const float *q0, const float *q1,
                               int hd, float r[4]) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00; /* [key][head] */
    __m256 c00 = a00, c01 = a00, c10 = a00, c11 = a00;                 /* the odd eights */
    for (int i = 0; i < hd; i += 16) {
        const __m256 x0 = f16x8(k0 + i), x1 = f16x8(k1 + i);
        const __m256 y0 = _mm256_loadu_ps(q0 + i), y1 = _mm256_loadu_ps(q1 + i);
        a00 = _mm256_fmadd_ps(x0, y0, a00), a01 = _mm256_fmadd_ps(x0, y1, a01);
        a10 = _mm256_fmadd_ps(x1, y0, a10), a11 = _mm256_fmadd_ps(x1, y1, a11);
        const __m256 z0 = f16x8(k0 + i + 8), z1 = f16x8(k1 + i + 8);
        const __m256 u0 = _mm256_loadu_ps(q0 + i + 8), u1 = _mm256_loadu_ps(q1 + i + 8);
        c00 = _mm256_fmadd_ps(z0, u0, c00), c01 = _mm256_fmadd_ps(z0, u1, c01);
        c10 = _mm256_fmadd_ps(z1, u0, c10), c11 = _mm256_fmadd_ps(z1, u1, c11);
    }
    _mm_storeu_ps(r, hsum4_ps(_mm256_add_ps(a00, c00), _mm256_add_ps(a01, c01), _mm256_add_ps(a10, c10),
                              _mm256_add_ps(a11, c11)));
}

/* Scores of two query heads against two keys at a time (qk_f16_pair). The two keys are half the rows
 * apart (j and j + n/2): two streams through memory, each fetched a few rows ahead, keep more of it
 * busy than one (the hardware prefetcher alone leaves the loads and the FMAs serialized). A key's
 * score depends on nothing else: an odd last key goes paired with itself, so a key has the same
 * bits in any run (attention's blocks of keys differ between a prefill and a decode). */
static void qk_f16(int n, const uint16_t *k, int hd, const float *q, int group, float *s, size_t ls) {
    if (hd % 16) {
        g8_qk_f16_scalar(n, k, hd, q, group, s, ls);
        return;
    }
    const int half = n / 2;
    int h = 0;
    for (; h + 2 <= group; h += 2) {
        const float *q0 = q + (size_t)h * hd, *q1 = q0 + hd;
        float *s0 = s + h * ls, *s1 = s0 + ls;
        float r[4];
        for (int j = 0; j < half; j++) {
            const uint16_t *k0 = k + (size_t)j * hd, *k1 = k0 + (size_t)half * hd;
            if (j + PREFETCH_ROWS < half)
                for (int i = 0; i < hd; i += 32) {
                    _mm_prefetch((const char *)(k0 + (size_t)PREFETCH_ROWS * hd + i), _MM_HINT_T0);
                    _mm_prefetch((const char *)(k1 + (size_t)PREFETCH_ROWS * hd + i), _MM_HINT_T0);
                }
            qk_f16_pair(k0, k1, q0, q1, hd, r);
            s0[j] = r[0], s1[j] = r[1], s0[j + half] = r[2], s1[j + half] = r[3];
        }
        if (n % 2) {
            const uint16_t *last = k + (size_t)(n - 1) * hd;
            qk_f16_pair(last, last, q0, q1, hd, r);
            s0[n - 1] = r[0], s1[n - 1] = r[1];
        }
    }
    for (; h < group; h++)
        for (int j = 0; j < n; j++) s[h * ls + j] = dot_f16(hd, k + (size_t)j * hd, q + (size_t)h * hd);
}

/* The weighted sum of value rows for the query heads of a group, two heads at a
 * time: rows are taken in blocks that stay in L1 while each 32-element slice of
 * the output is summed in registers (each row widened once per head pair). */
static void wsum_f16(int n, const float *w, size_t lw, const uint16_t *v, int hd, int group, float *out) {
    enum { ROWS = 16 };
    if (hd % 32) {
        g8_wsum_f16_scalar(n, w, lw, v, hd, group, out);
        return;
    }
    for (int j0 = 0; j0 < n; j0 += ROWS) {
        const int nj = n - j0 < ROWS ? n - j0 : ROWS;
        const uint16_t *vb = v + (size_t)j0 * hd;
        for (int h = 0; h < group; h += 2) {
            const bool pair = h + 1 < group;
            const float *w0 = w + h * lw + j0, *w1 = pair ? w0 + lw : w0;
            float *o0 = out + (size_t)h * hd, *o1 = o0 + hd;
            for (int d = 0; d < hd; d += 32) { /* eight accumulators, named so that they stay in registers */
                float *p0 = o0 + d, *p1 = o1 + d;
                __m256 a0 = _mm256_loadu_ps(p0), a1 = _mm256_loadu_ps(p0 + 8), a2 = _mm256_loadu_ps(p0 + 16),
                       a3 = _mm256_loadu_ps(p0 + 24);
                __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
                if (pair)
                    b0 = _mm256_loadu_ps(p1), b1 = _mm256_loadu_ps(p1 + 8), b2 = _mm256_loadu_ps(p1 + 16),
                    b3 = _mm256_loadu_ps(p1 + 24);
                const uint16_t *row = vb + d;
                const bool ahead = j0 + ROWS + nj <= n; /* fetch the next block's rows, slice by slice */
                for (int j = 0; j < nj; j++, row += hd) {
                    if (ahead) _mm_prefetch((const char *)(row + (size_t)ROWS * hd), _MM_HINT_T0);
                    const __m256 wa = _mm256_broadcast_ss(w0 + j), wb = _mm256_broadcast_ss(w1 + j);
                    const __m256 x0 = f16x8(row), x1 = f16x8(row + 8), x2 = f16x8(row + 16), x3 = f16x8(row + 24);
                    a0 = _mm256_fmadd_ps(wa, x0, a0), b0 = _mm256_fmadd_ps(wb, x0, b0);
                    a1 = _mm256_fmadd_ps(wa, x1, a1), b1 = _mm256_fmadd_ps(wb, x1, b1);
                    a2 = _mm256_fmadd_ps(wa, x2, a2), b2 = _mm256_fmadd_ps(wb, x2, b2);
                    a3 = _mm256_fmadd_ps(wa, x3, a3), b3 = _mm256_fmadd_ps(wb, x3, b3);
                }
                _mm256_storeu_ps(p0, a0), _mm256_storeu_ps(p0 + 8, a1), _mm256_storeu_ps(p0 + 16, a2),
                    _mm256_storeu_ps(p0 + 24, a3);
                if (pair)
                    _mm256_storeu_ps(p1, b0), _mm256_storeu_ps(p1 + 8, b1), _mm256_storeu_ps(p1 + 16, b2),
                        _mm256_storeu_ps(p1 + 24, b3);
            }
        }
    }
}

/* The scores of Q8_0 keys k0 and k1 against Q8_0 heads q0 and q1, r as qk_f16_pair's: each key
 * block's |k| is made once, the sign moves onto the query (maddubs(|k|, sign(q, k))). */
static inline void qk_q8_0_pair(const block_q8_0 *k0, const block_q8_0 *k1, const block_q8_0 *q0,
                                const block_q8_0 *q1, int nb, float r[4]) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00; /* [key][head] */
    for (int b = 0; b < nb; b++) {
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)k0[b].qs);
        const __m256i x1 = _mm256_loadu_si256((const __m256i *)k1[b].qs);
        const __m256i y0 = _mm256_loadu_si256((const __m256i *)q0[b].qs);
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)q1[b].qs);
        const __m256i ax0 = _mm256_sign_epi8(x0, x0), ax1 = _mm256_sign_epi8(x1, x1);
        const float d0 = h2f(k0[b].d), d1 = h2f(k1[b].d), e0 = h2f(q0[b].d), e1 = h2f(q1[b].d);
#define DOT(ax, x, y)                                                                                        \
    _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(y, x)), ones))
        a00 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * e0), DOT(ax0, x0, y0), a00);
        a01 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * e1), DOT(ax0, x0, y1), a01);
        a10 = _mm256_fmadd_ps(_mm256_set1_ps(d1 * e0), DOT(ax1, x1, y0), a10);
        a11 = _mm256_fmadd_ps(_mm256_set1_ps(d1 * e1), DOT(ax1, x1, y1), a11);
#undef DOT
    }
    _mm_storeu_ps(r, hsum4_ps(a00, a01, a10, a11));
}

/* Scores against Q8_0 keys, two keys and two heads at a time (qk_q8_0_pair), the keys half the rows
 * apart and an odd last key paired with itself, as in qk_f16. */
static void qk_q8_0(int n, const block_q8_0 *k, int nb, const block_q8_0 *q, int group, float *s, size_t ls) {
    const int half = n / 2;
    int h = 0;
    for (; h + 2 <= group; h += 2) {
        const block_q8_0 *q0 = q + (size_t)h * nb, *q1 = q0 + nb;
        float *s0 = s + h * ls, *s1 = s0 + ls;
        float r[4];
        for (int j = 0; j < half; j++) {
            const block_q8_0 *k0 = k + (size_t)j * nb, *k1 = k0 + (size_t)half * nb;
            if (j + PREFETCH_ROWS < half)
                for (int i = 0; i < nb; i += 2) {
                    _mm_prefetch((const char *)(k0 + (size_t)PREFETCH_ROWS * nb + i), _MM_HINT_T0);
                    _mm_prefetch((const char *)(k1 + (size_t)PREFETCH_ROWS * nb + i), _MM_HINT_T0);
                }
            qk_q8_0_pair(k0, k1, q0, q1, nb, r);
            s0[j] = r[0], s1[j] = r[1], s0[j + half] = r[2], s1[j + half] = r[3];
        }
        if (n % 2) {
            const block_q8_0 *last = k + (size_t)(n - 1) * nb;
            qk_q8_0_pair(last, last, q0, q1, nb, r);
            s0[n - 1] = r[0], s1[n - 1] = r[1];
        }
    }
    for (; h < group; h++)
        for (int j = 0; j < n; j++) s[h * ls + j] = dot_q8_0(nb, k + (size_t)j * nb, q + (size_t)h * nb);
}

/* The weighted sum of Q8_0 value rows: one output slice per block (32
 * elements), two heads at a time, each block's int8 widened once per pair and
 * scaled by w * d in the FMA. */
static void wsum_q8_0(int n, const float *w, size_t lw, const block_q8_0 *v, int hd, int group, float *out) {
    enum { ROWS = 16 };
    const int nb = hd / QK8_0;
    for (int j0 = 0; j0 < n; j0 += ROWS) {
        const int nj = n - j0 < ROWS ? n - j0 : ROWS;
        const block_q8_0 *vb = v + (size_t)j0 * nb;
        for (int h = 0; h < group; h += 2) {
            const bool pair = h + 1 < group;
            const float *w0 = w + h * lw + j0, *w1 = pair ? w0 + lw : w0;
            for (int b = 0; b < nb; b++) {
                float *p0 = out + (size_t)h * hd + b * QK8_0, *p1 = p0 + hd;
                __m256 a0 = _mm256_loadu_ps(p0), a1 = _mm256_loadu_ps(p0 + 8), a2 = _mm256_loadu_ps(p0 + 16),
                       a3 = _mm256_loadu_ps(p0 + 24);
                __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
                if (pair)
                    b0 = _mm256_loadu_ps(p1), b1 = _mm256_loadu_ps(p1 + 8), b2 = _mm256_loadu_ps(p1 + 16),
                    b3 = _mm256_loadu_ps(p1 + 24);
                const bool ahead = j0 + ROWS + nj <= n;
                for (int j = 0; j < nj; j++) {
                    const block_q8_0 *blk = vb + (size_t)j * nb + b;
                    if (ahead) _mm_prefetch((const char *)(blk + (size_t)ROWS * nb), _MM_HINT_T0);
                    const float d = g8_f16_to_f32(blk->d);
                    const __m256 wa = _mm256_set1_ps(w0[j] * d), wb = _mm256_set1_ps(w1[j] * d);
                    const __m128i q01 = _mm_loadu_si128((const __m128i *)blk->qs), q23 = _mm_loadu_si128((const __m128i *)(blk->qs + 16));
                    const __m256 x0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q01));
                    const __m256 x1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q01, 8)));
                    const __m256 x2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q23));
                    const __m256 x3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q23, 8)));
                    a0 = _mm256_fmadd_ps(wa, x0, a0), b0 = _mm256_fmadd_ps(wb, x0, b0);
                    a1 = _mm256_fmadd_ps(wa, x1, a1), b1 = _mm256_fmadd_ps(wb, x1, b1);
                    a2 = _mm256_fmadd_ps(wa, x2, a2), b2 = _mm256_fmadd_ps(wb, x2, b2);
                    a3 = _mm256_fmadd_ps(wa, x3, a3), b3 = _mm256_fmadd_ps(wb, x3, b3);
                }
                _mm256_storeu_ps(p0, a0), _mm256_storeu_ps(p0 + 8, a1), _mm256_storeu_ps(p0 + 16, a2),
                    _mm256_storeu_ps(p0 + 24, a3);
                if (pair)
                    _mm256_storeu_ps(p1, b0), _mm256_storeu_ps(p1 + 8, b1), _mm256_storeu_ps(p1 + 16, b2),
                        _mm256_storeu_ps(p1 + 24, b3);
            }
        }
    }
}

static void gemv_q4_0(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                      float *const *y) {
    gemv_q4_256(n, nb, group, x, xsum, y);
}

static void gemv_q8_0(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                      float *const *y) {
    gemv_q8_256(n, nb, group, x, xsum, y);
}

static void gemv_few_q8_0(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum, int T,
                          float *const *y, const size_t *ldy) {
    gemv_few_256_of(false, n, nb, group, x, xsum, T, y, ldy);
}

static void gemv_few_q4_0(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum, int T,
                          float *const *y, const size_t *ldy) {
    gemv_few_256_of(true, n, nb, group, x, xsum, T, y, ldy);
}

/* the AVX2 kernels every x86 table shares (the quantization of activations: its own in AVX512_KERNELS) */
#define AVX2_COMMON                                                                                          \
    .dot_f32 = dot_f32, .dot_f16 = dot_f16, .dot_bf16 = dot_bf16, .dot_q8_0 = dot_q8_0, .axpy = axpy,        \
    .to_f16 = to_f16, .softcap = softcap, .exp_sum = exp_sum, .geglu = geglu
#define AVX2_KERNELS AVX2_COMMON, .quantize_q8_0 = quantize_q8_0

const g8_kernels g8_kernels_avx2 = {
    .name = "avx2",
    AVX2_KERNELS,
    .qk_f16 = qk_f16,
    .wsum_f16 = wsum_f16,
    .qk_q8_0 = qk_q8_0,
    .wsum_q8_0 = wsum_q8_0,
    .gemm_q8_0 = gemm_q8_0,
    .gemm_q4_0 = gemm_q4_0,
    .gemv_q4_0 = gemv_q4_0,
    .q4_groups = 2,
    .gemv_q8_0 = gemv_q8_0,
    .q8_groups = 2,
    .gemv_few_q8_0 = gemv_few_q8_0,
    .gemv_few_q4_0 = gemv_few_q4_0,
    .few_tokens = 4,
    .few_groups = 2,
    .gemm_q6_k = gemm_q6_k,
};

/* the AVX2 table with the GEMMs on vpdpbusd: 256-bit (x86_vnni.c), 512-bit (x86_avx512.c), and for
 * AVX-512 the attention kernels in 512-bit registers (x86_avx512_attn.c, the same bits) */
const g8_kernels g8_kernels_avxvnni = {
    .name = "avx-vnni",
    AVX2_KERNELS,
    .qk_f16 = qk_f16,
    .wsum_f16 = wsum_f16,
    .qk_q8_0 = qk_q8_0,
    .wsum_q8_0 = wsum_q8_0,
    .gemm_q8_0 = g8_gemm_q8_0_avxvnni,
    .gemm_q4_0 = g8_gemm_q4_0_avxvnni,
    .gemv_q4_0 = g8_gemv_q4_0_avxvnni,
    .q4_groups = 2,
    .gemv_q8_0 = g8_gemv_q8_0_avxvnni,
    .q8_groups = 2,
    .gemv_few_q8_0 = g8_gemv_few_q8_0_avxvnni,
    .gemv_few_q4_0 = g8_gemv_few_q4_0_avxvnni,
    .few_tokens = 4,
    .few_groups = 2,
    .gemm_q6_k = g8_gemm_q6_k_avxvnni,
};

#define AVX512_KERNELS                                                                                       \
    AVX2_COMMON, .quantize_q8_0 = g8_quantize_q8_0_avx512, .qk_f16 = g8_qk_f16_avx512,                       \
    .wsum_f16 = g8_wsum_f16_avx512, .qk_q8_0 = g8_qk_q8_0_avx512, .wsum_q8_0 = g8_wsum_q8_0_avx512,          \
    .gemm_q8_0 = g8_gemm_q8_0_avx512vnni,                                                                    \
    .gemm_q4_0 = g8_gemm_q4_0_avx512vnni, .q4_groups = 4, .q8_groups = 4,                                     \
    .gemv_few_q8_0 = g8_gemv_few_q8_0_avx512vnni, .gemv_few_q4_0 = g8_gemv_few_q4_0_avx512vnni,             \
    .few_tokens = 4, .few_groups = 4, .gemm_q6_k = g8_gemm_q6_k_avx512vnni

const g8_kernels g8_kernels_avx512vnni = {
    .name = "avx512-vnni",
    AVX512_KERNELS,
    .gemv_q4_0 = g8_gemv_q4_0_avx512vnni,
    .gemv_q8_0 = g8_gemv_q8_0_avx512vnni,
};

/* the same bits, the one-token GEMVs prefetching ahead in each stream (x86_avx512.c: Intel) */
const g8_kernels g8_kernels_avx512vnni_pf = {
    .name = "avx512-vnni-pf",
    AVX512_KERNELS,
    .gemv_q4_0 = g8_gemv_q4_0_avx512vnni_pf,
    .gemv_q8_0 = g8_gemv_q8_0_avx512vnni_pf,
};
#endif
