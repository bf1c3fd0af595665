/* arch/arm_neon.c - kernels for AArch64 NEON with the dot-product extension
 * (ARMv8.2-A sdot, as on Cortex-A76 / RK3588). */
#if defined(__aarch64__)
#include "../kernels.h"

#include <arm_neon.h>

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

static void tile_q8_0(int nb, const block_q8_0 *w, size_t ws, const block_q8_0 *x, size_t xs, float *y, size_t ldy) {
    float32x4_t acc[4][4];
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < 4; t++) acc[r][t] = vdupq_n_f32(0);
    for (int b = 0; b < nb; b++) {
        int8x16_t x0[4], x1[4];
        float dx[4];
        for (int t = 0; t < 4; t++) {
            x0[t] = vld1q_s8(x[t * xs + b].qs);
            x1[t] = vld1q_s8(x[t * xs + b].qs + 16);
            dx[t] = g8_f16_to_f32(x[t * xs + b].d);
        }
        for (int r = 0; r < 4; r++) {
            const block_q8_0 *wb = &w[r * ws + b];
            int8x16_t w0 = vld1q_s8(wb->qs), w1 = vld1q_s8(wb->qs + 16);
            float dw = g8_f16_to_f32(wb->d);
            for (int t = 0; t < 4; t++) {
                int32x4_t p = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, x0[t]), w1, x1[t]);
                acc[r][t] = vfmaq_n_f32(acc[r][t], vcvtq_f32_s32(p), dw * dx[t]);
            }
        }
    }
    for (int t = 0; t < 4; t++)
        for (int r = 0; r < 4; r++) y[t * ldy + r] = vaddvq_f32(acc[r][t]);
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

const g8_kernels g8_kernels_neon = {
    "neon-dotprod", dot_f32, dot_f16, dot_bf16, dot_q8_0, tile_q8_0, quantize_q8_0, axpy,
    g8_softcap_scalar, g8_exp_sum_scalar, g8_geglu_scalar, g8_wsum_f16_scalar,
};
#endif
