/* cpu/arm_neon.c - kernels for AArch64 NEON with the dot-product extension
 * (ARMv8.2-A sdot, as on Cortex-A76 / RK3588). */
#if defined(__aarch64__)
#include "../kernels.h"

#include <arm_neon.h>
#include <math.h>

static float dot_f32(int n, const float *w, const float *x) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, vld1q_f32(w + i + 4), vld1q_f32(x + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_f16(int n, const uint16_t *w, const float *x) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(w + i));
        a0 = vfmaq_f32(a0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, vcvt_high_f32_f16(h), vld1q_f32(x + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) s += g8_f16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_bf16(int n, const uint16_t *w, const float *x) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vld1q_u16(w + i);
        float32x4_t w0 = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
        float32x4_t w1 = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
        a0 = vfmaq_f32(a0, w0, vld1q_f32(x + i));
        a1 = vfmaq_f32(a1, w1, vld1q_f32(x + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) s += g8_bf16_to_f32(w[i]) * x[i];
    return s;
}

static inline int32x4_t dot_blk(const block_q8_0 *w, const block_q8_0 *x) {
    int32x4_t p = vdotq_s32(vdupq_n_s32(0), vld1q_s8(w->qs), vld1q_s8(x->qs));
    return vdotq_s32(p, vld1q_s8(w->qs + 16), vld1q_s8(x->qs + 16));
}

static float dot_q8_0(int nb, const block_q8_0 *w, const block_q8_0 *x) {
    float32x4_t acc = vdupq_n_f32(0);
    for (int b = 0; b < nb; b++)
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(dot_blk(&w[b], &x[b])), g8_f16_to_f32(w[b].d) * g8_f16_to_f32(x[b].d));
    return vaddvq_f32(acc);
}

/* The GEMM over packed weights (quant.h): a q-register holds four quants of
 * each of four rows; vdotq_laneq_s32 multiplies it by one token's four quants
 * (a lane of a 16-byte load of the token), so each (row, token) sum stays in its
 * own lane. Per block: the exact int32 sums, then one FMA with the scales. */
#define GEMM_TOKENS 2

/* Half h of a Q8_0 block at qb for T tokens (chunks 4h..4h+3, the tokens' quants 16h..16h+15 in
 * xv[t]): each chunk's four row quads (16-byte loads) by a lane of xv[t] into acc[t][quad]. For
 * gemm_pass and gemv_q8. */
#define Q8_CHUNK(h, lane)                                                                                   \
    _Pragma("GCC unroll 8") for (int r = 0; r < 4; r++) {                                                   \
        const int8x16_t w = vld1q_s8(qb + 64 * (4 * (h) + (lane)) + 16 * r);                                \
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) acc[t][r] =                                     \
            vdotq_laneq_s32(acc[t][r], w, xv[t], lane);                                                     \
    }
#define Q8_HALF(h) Q8_CHUNK(h, 0) Q8_CHUNK(h, 1) Q8_CHUNK(h, 2) Q8_CHUNK(h, 3)

static inline __attribute__((always_inline)) void gemm_pass(int nb, const void *group, const block_q8_0 *x,
                                                            const int T, float *y, size_t ldy) {
    float32x4_t f[GEMM_TOKENS][4];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        _Pragma("GCC unroll 8")
        for (int r = 0; r < 4; r++) f[t][r] = vdupq_n_f32(0);
    for (int b = 0; b < nb; b++) {
        const int8_t *qb = g8_pack_quants(group, b);
        const uint16_t *d = g8_pack_scales(group, b);
        int32x4_t acc[GEMM_TOKENS][4];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++)
            _Pragma("GCC unroll 8")
            for (int r = 0; r < 4; r++) acc[t][r] = vdupq_n_s32(0);
        _Pragma("GCC unroll 8")
        for (int h = 0; h < 2; h++) { /* quants 16h..16h+15: chunks 4h..4h+3 */
            int8x16_t xv[GEMM_TOKENS];
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) xv[t] = vld1q_s8(x[(size_t)t * nb + b].qs + 16 * h);
            Q8_HALF(h)
        }
        _Pragma("GCC unroll 8")
        for (int r = 0; r < 4; r++) {
            const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d + 4 * r)));
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) {
                const float32x4_t s = vmulq_n_f32(dw, g8_f16_to_f32(x[(size_t)t * nb + b].d));
                f[t][r] = vfmaq_f32(f[t][r], vcvtq_f32_s32(acc[t][r]), s);
            }
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        _Pragma("GCC unroll 8")
        for (int r = 0; r < 4; r++) vst1q_f32(y + (size_t)t * ldy + 4 * r, f[t][r]);
}

static void gemm_q8_0(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                      size_t ldy) {
    (void)xsum;
    int t = 0;
    for (; t + GEMM_TOKENS <= T; t += GEMM_TOKENS)
        gemm_pass(nb, group, x + (size_t)t * nb, GEMM_TOKENS, y + (size_t)t * ldy, ldy);
    if (t < T) gemm_pass(nb, group, x + (size_t)t * nb, 1, y + (size_t)t * ldy, ldy);
}

/* A Q4_0 block at qb for T tokens: chunk c's four row quads (16-byte loads), masked (low nibbles)
 * and shifted (high), less 8, by the tokens' quants 8c..8c+3 and 8c+4..8c+7 (xv[t], the token's
 * block) into acc[t][quad]; m4 and eight are the masks. For gemm_pass_q4 and gemv_q4. */
#define Q4_CHUNK(c, half, lane)                                                                             \
    _Pragma("GCC unroll 8") for (int r = 0; r < 4; r++) {                                                   \
        const uint8x16_t v = vld1q_u8(qb + 64 * (c) + 16 * r);                                              \
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), eight);                         \
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);                        \
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {                                               \
            acc[t][r] = vdotq_laneq_s32(acc[t][r], lo, xv[t][half], lane);                                  \
            acc[t][r] = vdotq_laneq_s32(acc[t][r], hi, xv[t][half], (lane) + 1);                            \
        }                                                                                                   \
    }
#define Q4_BLOCK() Q4_CHUNK(0, 0, 0) Q4_CHUNK(1, 0, 2) Q4_CHUNK(2, 1, 0) Q4_CHUNK(3, 1, 2)

/* Q4_0 (quant.h's 4-bit packing): a 16-byte load holds eight quants of each of
 * four rows as nibbles; masked (low) and shifted (high), less 8, they are signed
 * quants for vdotq_laneq_s32 with the token's quants 8c..8c+3 and 8c+4..8c+7. */
static inline __attribute__((always_inline)) void gemm_pass_q4(int nb, const void *group, const block_q8_0 *x,
                                                               const int T, float *y, size_t ldy) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float32x4_t f[GEMM_TOKENS][4];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        _Pragma("GCC unroll 8")
        for (int r = 0; r < 4; r++) f[t][r] = vdupq_n_f32(0);
    for (int b = 0; b < nb; b++) {
        const uint8_t *qb = g8_pack4_quants(group, b);
        const uint16_t *d = g8_pack4_scales(group, b);
        int32x4_t acc[GEMM_TOKENS][4];
        int8x16_t xv[GEMM_TOKENS][2];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++) {
            xv[t][0] = vld1q_s8(x[(size_t)t * nb + b].qs);
            xv[t][1] = vld1q_s8(x[(size_t)t * nb + b].qs + 16);
            _Pragma("GCC unroll 8")
            for (int r = 0; r < 4; r++) acc[t][r] = vdupq_n_s32(0);
        }
        Q4_BLOCK()
        _Pragma("GCC unroll 8")
        for (int r = 0; r < 4; r++) {
            const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d + 4 * r)));
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) {
                const float32x4_t s = vmulq_n_f32(dw, g8_f16_to_f32(x[(size_t)t * nb + b].d));
                f[t][r] = vfmaq_f32(f[t][r], vcvtq_f32_s32(acc[t][r]), s);
            }
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        _Pragma("GCC unroll 8")
        for (int r = 0; r < 4; r++) vst1q_f32(y + (size_t)t * ldy + 4 * r, f[t][r]);
}

/* Q6_K (quant.h): unsigned 6-bit quants in Q8_0's packing, less 32, by lane; the
 * halves of a block sum apart, then s = sc_a * a + sc_b * b. */
static inline __attribute__((always_inline)) void gemm_pass_q6(int nb, const void *group, const block_q8_0 *x,
                                                               const int T, float *y, size_t ldy) {
    const int8x16_t k32 = vdupq_n_s8(32);
    float32x4_t f[GEMM_TOKENS][4];
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        _Pragma("GCC unroll 8")
        for (int r = 0; r < 4; r++) f[t][r] = vdupq_n_f32(0);
    for (int b = 0; b < nb; b++) {
        const uint8_t *qb = g8_pack6_quants(group, b);
        const uint16_t *d = g8_pack6_d(group, b);
        const int8_t *sc = g8_pack6_sc(group, b);
        int32x4_t s[GEMM_TOKENS][4];
        _Pragma("GCC unroll 8")
        for (int t = 0; t < T; t++)
            _Pragma("GCC unroll 8")
            for (int r = 0; r < 4; r++) s[t][r] = vdupq_n_s32(0);
        _Pragma("GCC unroll 2")
        for (int h = 0; h < 2; h++) {
            int32x4_t acc[GEMM_TOKENS][4];
            int8x16_t xv[GEMM_TOKENS];
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) {
                xv[t] = vld1q_s8(x[(size_t)t * nb + b].qs + 16 * h);
                _Pragma("GCC unroll 8")
                for (int r = 0; r < 4; r++) acc[t][r] = vdupq_n_s32(0);
            }
#define CHUNK6(lane)                                                                                        \
    _Pragma("GCC unroll 8") for (int r = 0; r < 4; r++) {                                                   \
        const int8x16_t w = vsubq_s8(vreinterpretq_s8_u8(vld1q_u8(qb + 64 * (4 * h + (lane)) + 16 * r)), k32); \
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) acc[t][r] =                                     \
            vdotq_laneq_s32(acc[t][r], w, xv[t], lane);                                                     \
    }
            CHUNK6(0)
            CHUNK6(1)
            CHUNK6(2)
            CHUNK6(3)
#undef CHUNK6
            _Pragma("GCC unroll 8")
            for (int r = 0; r < 4; r++) {
                const int8_t *sr = sc + h * G8_PACK_ROWS + 4 * r;
                const int32x4_t sv = {sr[0], sr[1], sr[2], sr[3]};
                _Pragma("GCC unroll 8")
                for (int t = 0; t < T; t++) s[t][r] = vmlaq_s32(s[t][r], acc[t][r], sv);
            }
        }
        _Pragma("GCC unroll 8")
        for (int r = 0; r < 4; r++) {
            const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d + 4 * r)));
            _Pragma("GCC unroll 8")
            for (int t = 0; t < T; t++) {
                const float32x4_t m = vmulq_n_f32(dw, g8_f16_to_f32(x[(size_t)t * nb + b].d));
                f[t][r] = vfmaq_f32(f[t][r], vcvtq_f32_s32(s[t][r]), m);
            }
        }
    }
    _Pragma("GCC unroll 8")
    for (int t = 0; t < T; t++)
        _Pragma("GCC unroll 8")
        for (int r = 0; r < 4; r++) vst1q_f32(y + (size_t)t * ldy + 4 * r, f[t][r]);
}

static void gemm_q4_0(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                      size_t ldy) {
    (void)xsum;
    int t = 0;
    for (; t + GEMM_TOKENS <= T; t += GEMM_TOKENS)
        gemm_pass_q4(nb, group, x + (size_t)t * nb, GEMM_TOKENS, y + (size_t)t * ldy, ldy);
    if (t < T) gemm_pass_q4(nb, group, x + (size_t)t * nb, 1, y + (size_t)t * ldy, ldy);
}

/* One token by n <= 2 groups of Q4_0 (kernels.h): gemm_pass_q4's sums and FMAs for T = 1, the
 * token's quants loaded once a block for both groups (32 registers hold the sums of no more). */
static inline __attribute__((always_inline)) void gemv_q4(const int G, int nb, const void *const *group,
                                                          const block_q8_0 *x, float *const *y) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float32x4_t f[2][4];
    _Pragma("GCC unroll 2")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) f[g][r] = vdupq_n_f32(0);
    const int T = 1;
    for (int b = 0; b < nb; b++) {
        const int8x16_t xv[1][2] = {{vld1q_s8(x[b].qs), vld1q_s8(x[b].qs + 16)}};
        const float dx = g8_f16_to_f32(x[b].d);
        _Pragma("GCC unroll 2")
        for (int g = 0; g < G; g++) {
            const uint8_t *qb = g8_pack4_quants(group[g], b);
            const uint16_t *d = g8_pack4_scales(group[g], b);
            int32x4_t acc[1][4];
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) acc[0][r] = vdupq_n_s32(0);
            Q4_BLOCK()
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) {
                const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d + 4 * r)));
                f[g][r] = vfmaq_f32(f[g][r], vcvtq_f32_s32(acc[0][r]), vmulq_n_f32(dw, dx));
            }
        }
    }
    _Pragma("GCC unroll 2")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) vst1q_f32(y[g] + 4 * r, f[g][r]);
}

void g8_gemv_q4_0_neon(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                       float *const *y) {
    (void)xsum;
    if (n == 1)
        gemv_q4(1, nb, group, x, y);
    else
        gemv_q4(2, nb, group, x, y);
}

/* One token by n <= 2 groups of Q8_0 (kernels.h): gemm_pass's sums and FMAs for T = 1, a block of
 * each group in turn. */
static inline __attribute__((always_inline)) void gemv_q8(const int G, int nb, const void *const *group,
                                                          const block_q8_0 *x, float *const *y) {
    float32x4_t f[2][4];
    _Pragma("GCC unroll 2")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) f[g][r] = vdupq_n_f32(0);
    const int T = 1;
    for (int b = 0; b < nb; b++) {
        const float dx = g8_f16_to_f32(x[b].d);
        _Pragma("GCC unroll 2")
        for (int g = 0; g < G; g++) {
            const int8_t *qb = g8_pack_quants(group[g], b);
            const uint16_t *d = g8_pack_scales(group[g], b);
            int32x4_t acc[1][4];
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) acc[0][r] = vdupq_n_s32(0);
            _Pragma("GCC unroll 2")
            for (int h = 0; h < 2; h++) {
                const int8x16_t xv[1] = {vld1q_s8(x[b].qs + 16 * h)};
                Q8_HALF(h)
            }
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) {
                const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d + 4 * r)));
                f[g][r] = vfmaq_f32(f[g][r], vcvtq_f32_s32(acc[0][r]), vmulq_n_f32(dw, dx));
            }
        }
    }
    _Pragma("GCC unroll 2")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) vst1q_f32(y[g] + 4 * r, f[g][r]);
}

void g8_gemv_q8_0_neon(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                       float *const *y) {
    (void)xsum;
    if (n == 1)
        gemv_q8(1, nb, group, x, y);
    else
        gemv_q8(2, nb, group, x, y);
}

/* Two tokens by n <= 2 groups of Q8_0 or Q4_0 weights (kernels.h's gemv_few), y[g] + t * ldy[g] for
 * tokens t0 and t0 + 1: gemm_pass's (and gemm_pass_q4's) sums and FMAs, a block of each group in
 * turn, so that the groups are two streams through memory as in the one-token GEMV. The sums of two
 * tokens by two groups take 16 of the 32 registers; four tokens are two such passes. */
static inline __attribute__((always_inline)) void few_pair(const bool q4, const int G, int nb,
                                                           const void *const *group, const block_q8_0 *x,
                                                           int t0, float *const *y, const size_t *ldy) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    const int T = 2;
    float32x4_t f[2][2][4];
    _Pragma("GCC unroll 2")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 2")
        for (int t = 0; t < T; t++)
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) f[g][t][r] = vdupq_n_f32(0);
    const block_q8_0 *xt[2] = {x + (size_t)t0 * nb, x + (size_t)(t0 + 1) * nb};
    for (int b = 0; b < nb; b++) {
        const float dx[2] = {g8_f16_to_f32(xt[0][b].d), g8_f16_to_f32(xt[1][b].d)};
        _Pragma("GCC unroll 2")
        for (int g = 0; g < G; g++) {
            int32x4_t acc[2][4];
            _Pragma("GCC unroll 2")
            for (int t = 0; t < T; t++)
                _Pragma("GCC unroll 4")
                for (int r = 0; r < 4; r++) acc[t][r] = vdupq_n_s32(0);
            if (q4) {
                const uint8_t *qb = g8_pack4_quants(group[g], b);
                int8x16_t xv[2][2];
                _Pragma("GCC unroll 2")
                for (int t = 0; t < T; t++) {
                    xv[t][0] = vld1q_s8(xt[t][b].qs);
                    xv[t][1] = vld1q_s8(xt[t][b].qs + 16);
                }
                Q4_BLOCK()
            } else {
                const int8_t *qb = g8_pack_quants(group[g], b);
                _Pragma("GCC unroll 2")
                for (int h = 0; h < 2; h++) {
                    const int8x16_t xv[2] = {vld1q_s8(xt[0][b].qs + 16 * h), vld1q_s8(xt[1][b].qs + 16 * h)};
                    Q8_HALF(h)
                }
            }
            const uint16_t *d = q4 ? g8_pack4_scales(group[g], b) : g8_pack_scales(group[g], b);
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) {
                const float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d + 4 * r)));
                _Pragma("GCC unroll 2")
                for (int t = 0; t < T; t++)
                    f[g][t][r] = vfmaq_f32(f[g][t][r], vcvtq_f32_s32(acc[t][r]), vmulq_n_f32(dw, dx[t]));
            }
        }
    }
    _Pragma("GCC unroll 2")
    for (int g = 0; g < G; g++)
        _Pragma("GCC unroll 2")
        for (int t = 0; t < T; t++)
            _Pragma("GCC unroll 4")
            for (int r = 0; r < 4; r++) vst1q_f32(y[g] + (size_t)(t0 + t) * ldy[g] + 4 * r, f[g][t][r]);
}

/* 2 <= T <= 4 tokens by n <= 2 groups: pairs of tokens, an odd last token by the one-token GEMV */
static inline __attribute__((always_inline)) void gemv_few_of(const bool q4, int n, int nb,
                                                              const void *const *group,
                                                              const block_q8_0 *x, int T, float *const *y,
                                                              const size_t *ldy) {
    int t = 0;
    for (; t + 2 <= T; t += 2) {
        if (n == 1)
            few_pair(q4, 1, nb, group, x, t, y, ldy);
        else
            few_pair(q4, 2, nb, group, x, t, y, ldy);
    }
    if (t == T) return;
    float *const yt[2] = {y[0] + (size_t)t * ldy[0], n > 1 ? y[1] + (size_t)t * ldy[1] : NULL};
    if (q4)
        g8_gemv_q4_0_neon(n, nb, group, x + (size_t)t * nb, NULL, yt);
    else
        g8_gemv_q8_0_neon(n, nb, group, x + (size_t)t * nb, NULL, yt);
}

static void gemv_few_q8_0(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum, int T,
                          float *const *y, const size_t *ldy) {
    (void)xsum;
    gemv_few_of(false, n, nb, group, x, T, y, ldy);
}

static void gemv_few_q4_0(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum, int T,
                          float *const *y, const size_t *ldy) {
    (void)xsum;
    gemv_few_of(true, n, nb, group, x, T, y, ldy);
}

static void gemm_q6_k(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                      size_t ldy) {
    (void)xsum;
    int t = 0;
    for (; t + GEMM_TOKENS <= T; t += GEMM_TOKENS)
        gemm_pass_q6(nb, group, x + (size_t)t * nb, GEMM_TOKENS, y + (size_t)t * ldy, ldy);
    if (t < T) gemm_pass_q6(nb, group, x + (size_t)t * nb, 1, y + (size_t)t * ldy, ldy);
}

static void quantize_q8_0(const float *x, block_q8_0 *y, int n) {
    for (int b = 0; b < n / QK8_0; b++) {
        const float *xb = x + b * QK8_0;
        float32x4_t v[8], m = vdupq_n_f32(0);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(xb + 4 * k);
            m = vmaxq_f32(m, vabsq_f32(v[k]));
        }
        const float amax = vmaxvq_f32(m);
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = g8_f32_to_f16(d);
        for (int k = 0; k < 8; k++) {
            int32x4_t q = vcvtaq_s32_f32(vmulq_n_f32(v[k], id)); /* round half away, as roundf */
            int16x4_t q16 = vmovn_s32(q);
            int8x8_t q8 = vmovn_s16(vcombine_s16(q16, q16));
            for (int j = 0; j < 4; j++) y[b].qs[4 * k + j] = vget_lane_s8(q8, 0), q8 = vext_s8(q8, q8, 1);
        }
    }
}

static void axpy(int n, float a, const float *x, float *y) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] += a * x[i];
}

static void to_f16(int n, const float *x, uint16_t *y) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++) y[i] = g8_f32_to_f16(x[i]);
}

/* exp(x) for 4 floats: 2^n * p(r), r = x - n ln 2 (Cephes' polynomial, as the
 * AVX2 kernel) */
static inline float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.3f));
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

/* tanh(x) = sign(x) (1 - t) / (1 + t), t = exp(-2|x|) */
static inline float32x4_t tanh4(float32x4_t x) {
    const float32x4_t t = exp4(vmulq_n_f32(vabsq_f32(x), -2.0f));
    const float32x4_t y = vdivq_f32(vsubq_f32(vdupq_n_f32(1.0f), t), vaddq_f32(vdupq_n_f32(1.0f), t));
    return vbslq_f32(vdupq_n_u32(0x80000000u), x, y); /* the sign of x, the magnitude of y */
}

static float softcap(int n, float *x, float scale, float cap) {
    float32x4_t m = vdupq_n_f32(-INFINITY);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v = vld1q_f32(x + i);
        const float32x4_t y = cap == 0 ? vmulq_n_f32(v, scale) : vmulq_n_f32(tanh4(vmulq_n_f32(v, scale / cap)), cap);
        vst1q_f32(x + i, y);
        m = vmaxnmq_f32(m, y); /* a NaN y leaves m */
    }
    const float r = vmaxnmvq_f32(m), rest = g8_softcap_scalar(n - i, x + i, scale, cap);
    return rest > r ? rest : r;
}

static float exp_sum(int n, float *x, float m) {
    float32x4_t acc = vdupq_n_f32(0);
    const float32x4_t vm = vdupq_n_f32(m);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), vm));
        vst1q_f32(x + i, e);
        acc = vaddq_f32(acc, e);
    }
    return vaddvq_f32(acc) + g8_exp_sum_scalar(n - i, x + i, m);
}

static void geglu(int n, float *g, const float *u) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t x = vld1q_f32(g + i);
        const float32x4_t inner = vmulq_n_f32(vfmaq_f32(x, vmulq_n_f32(x, 0.044715f), vmulq_f32(x, x)), 0.7978845608028654f);
        const float32x4_t y = vmulq_f32(vmulq_n_f32(x, 0.5f), vaddq_f32(vdupq_n_f32(1.0f), tanh4(inner)));
        vst1q_f32(g + i, vmulq_f32(y, vld1q_f32(u + i)));
    }
    g8_geglu_scalar(n - i, g + i, u + i);
}

/* Scores of two query heads against two keys at a time (see the AVX2 kernel). */
static void qk_f16(int n, const uint16_t *k, int hd, const float *q, int group, float *s, size_t ls) {
    if (hd % 8) {
        g8_qk_f16_scalar(n, k, hd, q, group, s, ls);
        return;
    }
    int h = 0;
    for (; h + 2 <= group; h += 2) {
        const float *q0 = q + (size_t)h * hd, *q1 = q0 + hd;
        float *s0 = s + h * ls, *s1 = s0 + ls;
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            const uint16_t *k0 = k + (size_t)j * hd, *k1 = k0 + hd;
            float32x4_t a[8];
            for (int c = 0; c < 8; c++) a[c] = vdupq_n_f32(0);
            for (int i = 0; i < hd; i += 8) {
                const float16x8_t h0 = vreinterpretq_f16_u16(vld1q_u16(k0 + i));
                const float16x8_t h1 = vreinterpretq_f16_u16(vld1q_u16(k1 + i));
                const float32x4_t x0[2] = {vcvt_f32_f16(vget_low_f16(h0)), vcvt_high_f32_f16(h0)};
                const float32x4_t x1[2] = {vcvt_f32_f16(vget_low_f16(h1)), vcvt_high_f32_f16(h1)};
                for (int u = 0; u < 2; u++) {
                    const float32x4_t y0 = vld1q_f32(q0 + i + 4 * u), y1 = vld1q_f32(q1 + i + 4 * u);
                    a[4 * u + 0] = vfmaq_f32(a[4 * u + 0], x0[u], y0);
                    a[4 * u + 1] = vfmaq_f32(a[4 * u + 1], x0[u], y1);
                    a[4 * u + 2] = vfmaq_f32(a[4 * u + 2], x1[u], y0);
                    a[4 * u + 3] = vfmaq_f32(a[4 * u + 3], x1[u], y1);
                }
            }
            s0[j] = vaddvq_f32(vaddq_f32(a[0], a[4]));
            s1[j] = vaddvq_f32(vaddq_f32(a[1], a[5]));
            s0[j + 1] = vaddvq_f32(vaddq_f32(a[2], a[6]));
            s1[j + 1] = vaddvq_f32(vaddq_f32(a[3], a[7]));
        }
        for (; j < n; j++) {
            s0[j] = dot_f16(hd, k + (size_t)j * hd, q0);
            s1[j] = dot_f16(hd, k + (size_t)j * hd, q1);
        }
    }
    for (; h < group; h++)
        for (int j = 0; j < n; j++) s[h * ls + j] = dot_f16(hd, k + (size_t)j * hd, q + (size_t)h * hd);
}

/* The weighted sum of value rows, two heads at a time, rows in L1-sized blocks
 * and 16-element output slices in registers (see the AVX2 kernel). */
static void wsum_f16(int n, const float *w, size_t lw, const uint16_t *v, int hd, int group, float *out) {
    enum { ROWS = 32 };
    if (hd % 16) {
        g8_wsum_f16_scalar(n, w, lw, v, hd, group, out);
        return;
    }
    for (int j0 = 0; j0 < n; j0 += ROWS) {
        const int nj = n - j0 < ROWS ? n - j0 : ROWS;
        const uint16_t *vb = v + (size_t)j0 * hd;
        for (int h = 0; h < group; h += 2) {
            const int pair = h + 1 < group;
            const float *w0 = w + h * lw + j0, *w1 = pair ? w0 + lw : w0;
            float *o0 = out + (size_t)h * hd, *o1 = o0 + hd;
            for (int d = 0; d < hd; d += 16) {
                float32x4_t a[4], b[4];
                for (int c = 0; c < 4; c++) {
                    a[c] = vld1q_f32(o0 + d + 4 * c);
                    b[c] = pair ? vld1q_f32(o1 + d + 4 * c) : vdupq_n_f32(0);
                }
                for (int j = 0; j < nj; j++) {
                    const uint16_t *row = vb + (size_t)j * hd + d;
                    const float16x8_t r0 = vreinterpretq_f16_u16(vld1q_u16(row));
                    const float16x8_t r1 = vreinterpretq_f16_u16(vld1q_u16(row + 8));
                    const float32x4_t x[4] = {vcvt_f32_f16(vget_low_f16(r0)), vcvt_high_f32_f16(r0),
                                              vcvt_f32_f16(vget_low_f16(r1)), vcvt_high_f32_f16(r1)};
                    for (int c = 0; c < 4; c++) {
                        a[c] = vfmaq_n_f32(a[c], x[c], w0[j]);
                        b[c] = vfmaq_n_f32(b[c], x[c], w1[j]);
                    }
                }
                for (int c = 0; c < 4; c++) {
                    vst1q_f32(o0 + d + 4 * c, a[c]);
                    if (pair) vst1q_f32(o1 + d + 4 * c, b[c]);
                }
            }
        }
    }
}

/* Scores against Q8_0 keys, two keys and two heads at a time (sdot on the
 * signed bytes directly). */
static void qk_q8_0(int n, const block_q8_0 *k, int nb, const block_q8_0 *q, int group, float *s, size_t ls) {
    int h = 0;
    for (; h + 2 <= group; h += 2) {
        const block_q8_0 *q0 = q + (size_t)h * nb, *q1 = q0 + nb;
        float *s0 = s + h * ls, *s1 = s0 + ls;
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            const block_q8_0 *k0 = k + (size_t)j * nb, *k1 = k0 + nb;
            float32x4_t a00 = vdupq_n_f32(0), a01 = a00, a10 = a00, a11 = a00;
            for (int b = 0; b < nb; b++) {
                const float d0 = g8_f16_to_f32(k0[b].d), d1 = g8_f16_to_f32(k1[b].d);
                const float e0 = g8_f16_to_f32(q0[b].d), e1 = g8_f16_to_f32(q1[b].d);
                a00 = vfmaq_n_f32(a00, vcvtq_f32_s32(dot_blk(&k0[b], &q0[b])), d0 * e0);
                a01 = vfmaq_n_f32(a01, vcvtq_f32_s32(dot_blk(&k0[b], &q1[b])), d0 * e1);
                a10 = vfmaq_n_f32(a10, vcvtq_f32_s32(dot_blk(&k1[b], &q0[b])), d1 * e0);
                a11 = vfmaq_n_f32(a11, vcvtq_f32_s32(dot_blk(&k1[b], &q1[b])), d1 * e1);
            }
            s0[j] = vaddvq_f32(a00), s1[j] = vaddvq_f32(a01), s0[j + 1] = vaddvq_f32(a10), s1[j + 1] = vaddvq_f32(a11);
        }
        for (; j < n; j++) {
            s0[j] = dot_q8_0(nb, k + (size_t)j * nb, q0);
            s1[j] = dot_q8_0(nb, k + (size_t)j * nb, q1);
        }
    }
    for (; h < group; h++)
        for (int j = 0; j < n; j++) s[h * ls + j] = dot_q8_0(nb, k + (size_t)j * nb, q + (size_t)h * nb);
}

/* The weighted sum of Q8_0 value rows: one 32-element output slice per block,
 * two heads at a time (see the AVX2 kernel). */
static void wsum_q8_0(int n, const float *w, size_t lw, const block_q8_0 *v, int hd, int group, float *out) {
    enum { ROWS = 16 };
    const int nb = hd / QK8_0;
    for (int j0 = 0; j0 < n; j0 += ROWS) {
        const int nj = n - j0 < ROWS ? n - j0 : ROWS;
        const block_q8_0 *vb = v + (size_t)j0 * nb;
        for (int h = 0; h < group; h += 2) {
            const int pair = h + 1 < group;
            const float *w0 = w + h * lw + j0, *w1 = pair ? w0 + lw : w0;
            for (int b = 0; b < nb; b++) {
                float *p0 = out + (size_t)h * hd + b * QK8_0, *p1 = p0 + hd;
                float32x4_t a[8], c[8];
                for (int k = 0; k < 8; k++) {
                    a[k] = vld1q_f32(p0 + 4 * k);
                    c[k] = pair ? vld1q_f32(p1 + 4 * k) : vdupq_n_f32(0);
                }
                for (int j = 0; j < nj; j++) {
                    const block_q8_0 *blk = vb + (size_t)j * nb + b;
                    const float d = g8_f16_to_f32(blk->d), wa = w0[j] * d, wb = w1[j] * d;
                    for (int half = 0; half < 2; half++) {
                        const int8x16_t q = vld1q_s8(blk->qs + 16 * half);
                        const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
                        const float32x4_t x[4] = {vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), vcvtq_f32_s32(vmovl_high_s16(lo)),
                                                  vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), vcvtq_f32_s32(vmovl_high_s16(hi))};
                        for (int k = 0; k < 4; k++) {
                            a[4 * half + k] = vfmaq_n_f32(a[4 * half + k], x[k], wa);
                            c[4 * half + k] = vfmaq_n_f32(c[4 * half + k], x[k], wb);
                        }
                    }
                }
                for (int k = 0; k < 8; k++) {
                    vst1q_f32(p0 + 4 * k, a[k]);
                    if (pair) vst1q_f32(p1 + 4 * k, c[k]);
                }
            }
        }
    }
}

/* what the dot-product and the i8mm tables share: all but the GEMMs */
#define NEON_COMMON                                                                                          \
    .dot_f32 = dot_f32, .dot_f16 = dot_f16, .dot_bf16 = dot_bf16, .dot_q8_0 = dot_q8_0,                      \
    .quantize_q8_0 = quantize_q8_0, .axpy = axpy, .to_f16 = to_f16, .softcap = softcap, .exp_sum = exp_sum,  \
    .geglu = geglu, .qk_f16 = qk_f16, .wsum_f16 = wsum_f16, .qk_q8_0 = qk_q8_0, .wsum_q8_0 = wsum_q8_0

const g8_kernels g8_kernels_neon = {
    .name = "neon-dotprod",
    NEON_COMMON,
    .gemm_q8_0 = gemm_q8_0,
    .gemm_q4_0 = gemm_q4_0,
    .gemv_q4_0 = g8_gemv_q4_0_neon,
    .q4_groups = 2,
    .gemv_q8_0 = g8_gemv_q8_0_neon,
    .q8_groups = 2,
    .gemv_few_q8_0 = gemv_few_q8_0,
    .gemv_few_q4_0 = gemv_few_q4_0,
    .few_tokens = 4,
    .few_groups = 2,
    .gemm_q6_k = gemm_q6_k,
};

const g8_kernels g8_kernels_neon_i8mm = {
    .name = "neon-i8mm",
    NEON_COMMON,
    .gemm_q8_0 = g8_gemm_q8_0_i8mm,
    .gemm_q4_0 = g8_gemm_q4_0_i8mm,
    .gemv_q4_0 = g8_gemv_q4_0_neon,
    .q4_groups = 2,
    .gemv_q8_0 = g8_gemv_q8_0_neon,
    .q8_groups = 2,
    .gemv_few_q8_0 = gemv_few_q8_0,
    .gemv_few_q4_0 = gemv_few_q4_0,
    .few_tokens = 4,
    .few_groups = 2,
    .gemm_q6_k = g8_gemm_q6_k_i8mm,
};
#endif
