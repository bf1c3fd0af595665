/* cpu/arm_i8mm.c - the Q8_0 GEMM tile with the int8 matrix-multiply extension
 * (FEAT_I8MM, ARMv8.6-A: smmla, on Cortex-A710/X2 and later; RK3588's A76 has
 * only sdot). One smmla multiplies a 2x8 by an 8x2 int8 matrix: a 2x2 tile of
 * (row, token) dot products gains 8 products each, twice the work of an sdot. */
#if defined(__aarch64__) && defined(__ARM_FEATURE_MATMUL_INT8)
#include "../kernels.h"

#include <arm_neon.h>

void g8_tile_q8_0_i8mm(int nb, const block_q8_0 *w, size_t ws, const block_q8_0 *x, size_t xs, float *y, size_t ldy) {
    /* acc[rp][tp] lanes: (row 2rp, token 2tp), (2rp, 2tp+1), (2rp+1, 2tp), (2rp+1, 2tp+1) */
    float32x4_t acc[2][2];
    for (int rp = 0; rp < 2; rp++)
        for (int tp = 0; tp < 2; tp++) acc[rp][tp] = vdupq_n_f32(0);
    for (int b = 0; b < nb; b++) {
        int8x16_t xs8[2][4]; /* per token pair, the four 8-byte chunks of both tokens side by side */
        float32x4_t dx[2];
        for (int tp = 0; tp < 2; tp++) {
            const block_q8_0 *x0 = &x[(size_t)(2 * tp) * xs + b], *x1 = &x[(size_t)(2 * tp + 1) * xs + b];
            for (int half = 0; half < 2; half++) {
                const int64x2_t a = vreinterpretq_s64_s8(vld1q_s8(x0->qs + 16 * half));
                const int64x2_t c = vreinterpretq_s64_s8(vld1q_s8(x1->qs + 16 * half));
                xs8[tp][2 * half] = vreinterpretq_s8_s64(vzip1q_s64(a, c));
                xs8[tp][2 * half + 1] = vreinterpretq_s8_s64(vzip2q_s64(a, c));
            }
            const float d0 = g8_f16_to_f32(x0->d), d1 = g8_f16_to_f32(x1->d);
            dx[tp] = (float32x4_t){d0, d1, d0, d1};
        }
        for (int rp = 0; rp < 2; rp++) {
            const block_q8_0 *w0 = &w[(size_t)(2 * rp) * ws + b], *w1 = &w[(size_t)(2 * rp + 1) * ws + b];
            int8x16_t ws8[4];
            for (int half = 0; half < 2; half++) {
                const int64x2_t a = vreinterpretq_s64_s8(vld1q_s8(w0->qs + 16 * half));
                const int64x2_t c = vreinterpretq_s64_s8(vld1q_s8(w1->qs + 16 * half));
                ws8[2 * half] = vreinterpretq_s8_s64(vzip1q_s64(a, c));
                ws8[2 * half + 1] = vreinterpretq_s8_s64(vzip2q_s64(a, c));
            }
            const float e0 = g8_f16_to_f32(w0->d), e1 = g8_f16_to_f32(w1->d);
            const float32x4_t dw = {e0, e0, e1, e1};
            for (int tp = 0; tp < 2; tp++) {
                int32x4_t p = vdupq_n_s32(0);
                for (int c = 0; c < 4; c++) p = vmmlaq_s32(p, ws8[c], xs8[tp][c]);
                acc[rp][tp] = vfmaq_f32(acc[rp][tp], vcvtq_f32_s32(p), vmulq_f32(dw, dx[tp]));
            }
        }
    }
    for (int rp = 0; rp < 2; rp++)
        for (int tp = 0; tp < 2; tp++) {
            float v[4];
            vst1q_f32(v, acc[rp][tp]);
            y[(size_t)(2 * tp) * ldy + 2 * rp] = v[0];
            y[(size_t)(2 * tp + 1) * ldy + 2 * rp] = v[1];
            y[(size_t)(2 * tp) * ldy + 2 * rp + 1] = v[2];
            y[(size_t)(2 * tp + 1) * ldy + 2 * rp + 1] = v[3];
        }
}
#endif
