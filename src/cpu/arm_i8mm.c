/* cpu/arm_i8mm.c - the packed GEMMs on the int8 matrix-multiply extension
 * (FEAT_I8MM: Cortex-A510/A710/X2, Neoverse V1/N2 and later; not the A76).
 *
 * smmla multiplies a 2x8 int8 matrix by another's transpose into a 2x2 int32
 * one: two rows' eight quants by two tokens' eight. In the packed layout
 * (quant.h) a 16-byte load holds four quants of each of four rows; the loads of
 * two chunks, zipped by 32-bit lanes, give two rows' eight consecutive quants
 * (Q4_0: the low and high nibbles of one load). A pass takes two tokens: each
 * accumulator holds the exact int32 sums of a row pair by the token pair, and
 * per block one convert and one FMA with the rows' scales times the tokens'
 * give the definition (kernels.h) bit for bit. A token left over takes the
 * dot-product pass (arm_neon.c), which meets the same definition. */
#if defined(__aarch64__)
#include "../kernels.h"

#include <arm_neon.h>

enum { PAIRS = G8_PACK_ROWS / 2 }; /* row pairs of a group */

/* two tokens' eight quants o..o+7 each: [t0, t1] */
static inline int8x16_t token_pair(const int8_t *x0, const int8_t *x1, int o) {
    return vcombine_s8(vld1_s8(x0 + o), vld1_s8(x1 + o));
}

/* f[p] += (float)acc[p] * (d_w * d_x) for each (row, token) lane: [r t0, r t1, r+1 t0, r+1 t1] */
static inline void block_fma(const uint16_t *d, float dx0, float dx1, const int32x4_t acc[PAIRS],
                             float32x4_t f[PAIRS]) {
    const float32x4_t dx = {dx0, dx1, dx0, dx1};
    for (int r = 0; r < 4; r++) {
        const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d + 4 * r)));
        f[2 * r] = vfmaq_f32(f[2 * r], vcvtq_f32_s32(acc[2 * r]), vmulq_f32(vzip1q_f32(dw, dw), dx));
        f[2 * r + 1] =
            vfmaq_f32(f[2 * r + 1], vcvtq_f32_s32(acc[2 * r + 1]), vmulq_f32(vzip2q_f32(dw, dw), dx));
    }
}

/* the row pairs' lanes back to rows: token 0's and token 1's 16 sums */
static inline void store_pairs(const float32x4_t f[PAIRS], float *y, size_t ldy) {
    for (int r = 0; r < 4; r++) {
        vst1q_f32(y + 4 * r, vuzp1q_f32(f[2 * r], f[2 * r + 1]));
        vst1q_f32(y + ldy + 4 * r, vuzp2q_f32(f[2 * r], f[2 * r + 1]));
    }
}

/* acc[p] += rows' eight quants (rows 4r..4r+3 of two zipped loads) by the token pair */
static inline void mmla4(int32x4_t acc[PAIRS], int r, int8x16_t a, int8x16_t b, int8x16_t xv) {
    const int32x4_t lo = vreinterpretq_s32_s8(a), hi = vreinterpretq_s32_s8(b);
    acc[2 * r] = vmmlaq_s32(acc[2 * r], vreinterpretq_s8_s32(vzip1q_s32(lo, hi)), xv);
    acc[2 * r + 1] = vmmlaq_s32(acc[2 * r + 1], vreinterpretq_s8_s32(vzip2q_s32(lo, hi)), xv);
}

static void pass_q8_0(int nb, const void *group, const block_q8_0 *x0, const block_q8_0 *x1, float *y,
                      size_t ldy) {
    float32x4_t f[PAIRS];
    for (int p = 0; p < PAIRS; p++) f[p] = vdupq_n_f32(0);
    for (int b = 0; b < nb; b++) {
        const int8_t *qb = g8_pack_quants(group, b);
        int32x4_t acc[PAIRS];
        for (int p = 0; p < PAIRS; p++) acc[p] = vdupq_n_s32(0);
        for (int o = 0; o < QK8_0 / 8; o++) { /* quants 8o..8o+7: chunks 2o, 2o + 1 */
            const int8x16_t xv = token_pair(x0[b].qs, x1[b].qs, 8 * o);
            for (int r = 0; r < 4; r++)
                mmla4(acc, r, vld1q_s8(qb + 64 * (2 * o) + 16 * r), vld1q_s8(qb + 64 * (2 * o + 1) + 16 * r),
                      xv);
        }
        block_fma(g8_pack_scales(group, b), g8_f16_to_f32(x0[b].d), g8_f16_to_f32(x1[b].d), acc, f);
    }
    store_pairs(f, y, ldy);
}

static void pass_q4_0(int nb, const void *group, const block_q8_0 *x0, const block_q8_0 *x1, float *y,
                      size_t ldy) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float32x4_t f[PAIRS];
    for (int p = 0; p < PAIRS; p++) f[p] = vdupq_n_f32(0);
    for (int b = 0; b < nb; b++) {
        const uint8_t *qb = g8_pack4_quants(group, b);
        int32x4_t acc[PAIRS];
        for (int p = 0; p < PAIRS; p++) acc[p] = vdupq_n_s32(0);
        for (int c = 0; c < QK4_0 / 8; c++) { /* chunk c: quants 8c..8c+3 low, 8c+4..8c+7 high */
            const int8x16_t xv = token_pair(x0[b].qs, x1[b].qs, 8 * c);
            for (int r = 0; r < 4; r++) {
                const uint8x16_t v = vld1q_u8(qb + 64 * c + 16 * r);
                const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), eight);
                const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
                mmla4(acc, r, lo, hi, xv);
            }
        }
        block_fma(g8_pack4_scales(group, b), g8_f16_to_f32(x0[b].d), g8_f16_to_f32(x1[b].d), acc, f);
    }
    store_pairs(f, y, ldy);
}

static void pass_q6_k(int nb, const void *group, const block_q8_0 *x0, const block_q8_0 *x1, float *y,
                      size_t ldy) {
    const int8x16_t k32 = vdupq_n_s8(32);
    float32x4_t f[PAIRS];
    for (int p = 0; p < PAIRS; p++) f[p] = vdupq_n_f32(0);
    for (int b = 0; b < nb; b++) {
        const uint8_t *qb = g8_pack6_quants(group, b);
        const int8_t *sc = g8_pack6_sc(group, b);
        int32x4_t s[PAIRS];
        for (int p = 0; p < PAIRS; p++) s[p] = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) { /* quants 16h..16h+15, times the half's scale */
            int32x4_t acc[PAIRS];
            for (int p = 0; p < PAIRS; p++) acc[p] = vdupq_n_s32(0);
            for (int o = 2 * h; o < 2 * h + 2; o++) {
                const int8x16_t xv = token_pair(x0[b].qs, x1[b].qs, 8 * o);
                for (int r = 0; r < 4; r++) {
                    const int8x16_t a =
                        vsubq_s8(vreinterpretq_s8_u8(vld1q_u8(qb + 64 * (2 * o) + 16 * r)), k32);
                    const int8x16_t c =
                        vsubq_s8(vreinterpretq_s8_u8(vld1q_u8(qb + 64 * (2 * o + 1) + 16 * r)), k32);
                    mmla4(acc, r, a, c, xv);
                }
            }
            for (int p = 0; p < PAIRS; p++) {
                const int8_t *sr = sc + h * G8_PACK_ROWS + 2 * p;
                const int32x4_t sv = {sr[0], sr[0], sr[1], sr[1]};
                s[p] = vmlaq_s32(s[p], acc[p], sv);
            }
        }
        block_fma(g8_pack6_d(group, b), g8_f16_to_f32(x0[b].d), g8_f16_to_f32(x1[b].d), s, f);
    }
    store_pairs(f, y, ldy);
}

typedef void (*pass_fn)(int nb, const void *group, const block_q8_0 *x0, const block_q8_0 *x1, float *y,
                        size_t ldy);

/* token pairs on smmla, a token left over on the dot-product pass */
static inline void gemm(pass_fn pass, g8_gemm_q8_0_fn one, int xper, int nb, const void *group,
                        const block_q8_0 *x, const int32_t *xsum, int T, float *y, size_t ldy) {
    int t = 0;
    for (; t + 2 <= T; t += 2)
        pass(nb, group, x + (size_t)t * nb, x + (size_t)(t + 1) * nb, y + (size_t)t * ldy, ldy);
    if (t < T) one(nb, group, x + (size_t)t * nb, xsum + (size_t)t * nb * xper, 1, y + (size_t)t * ldy, ldy);
}

void g8_gemm_q8_0_i8mm(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                       size_t ldy) {
    gemm(pass_q8_0, g8_kernels_neon.gemm_q8_0, 1, nb, group, x, xsum, T, y, ldy);
}

void g8_gemm_q4_0_i8mm(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                       size_t ldy) {
    gemm(pass_q4_0, g8_kernels_neon.gemm_q4_0, 1, nb, group, x, xsum, T, y, ldy);
}

void g8_gemm_q6_k_i8mm(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                       size_t ldy) {
    gemm(pass_q6_k, g8_kernels_neon.gemm_q6_k, 2, nb, group, x, xsum, T, y, ldy);
}
#endif
