/* kernels_scalar.c - the portable reference kernels and their table. */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float dot_f32(int n, const float *w, const float *x) {
    float s = 0;
    for (int i = 0; i < n; i++) s += w[i] * x[i];
    return s;
}

static float dot_f16(int n, const uint16_t *w, const float *x) {
    float s = 0;
    for (int i = 0; i < n; i++) s += g8_f16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_bf16(int n, const uint16_t *w, const float *x) {
    float s = 0;
    for (int i = 0; i < n; i++) s += g8_bf16_to_f32(w[i]) * x[i];
    return s;
}

static float dot_q8_0(int nb, const block_q8_0 *w, const block_q8_0 *x) {
    float s = 0;
    for (int b = 0; b < nb; b++) {
        int32_t acc = 0;
        for (int j = 0; j < QK8_0; j++) acc += (int32_t)w[b].qs[j] * x[b].qs[j];
        s += (float)acc * (g8_f16_to_f32(w[b].d) * g8_f16_to_f32(x[b].d));
    }
    return s;
}

/* The definition every table's GEMM meets bit for bit (kernels.h): per block the
 * exact int32 sum of row i's quants by the token's, then one FMA with the scales.
 * What differs by format is only the block's sum and its weight scale. */
enum pack_format { PACK_Q8_0, PACK_Q4_0, PACK_Q6_K };

static int32_t block_sum(enum pack_format type, const void *group, int b, int i, const int8_t *x, uint16_t *d_w) {
    int32_t sum = 0;
    if (type == PACK_Q4_0) { /* (q - 8) * x */
        const uint8_t *qb = g8_pack4_quants(group, b);
        for (int j = 0; j < QK4_0; j++) sum += (g8_pack4_quant(qb, i, j) - 8) * x[j];
        *d_w = g8_pack4_scales(group, b)[i];
    } else if (type == PACK_Q6_K) { /* sc_a * sum_a + sc_b * sum_b of (q - 32) * x */
        const uint8_t *qb = g8_pack6_quants(group, b);
        const int8_t *sc = g8_pack6_sc(group, b);
        int32_t half[2] = {0, 0};
        for (int j = 0; j < QK8_0; j++) half[j / 16] += (qb[g8_pack_at(i, j)] - 32) * x[j];
        sum = sc[i] * half[0] + sc[G8_PACK_ROWS + i] * half[1];
        *d_w = g8_pack6_d(group, b)[i];
    } else { /* Q8_0: q * x */
        const int8_t *qb = g8_pack_quants(group, b);
        for (int j = 0; j < QK8_0; j++) sum += qb[g8_pack_at(i, j)] * x[j];
        *d_w = g8_pack_scales(group, b)[i];
    }
    return sum;
}

static void gemm_def(enum pack_format type, int nb, const void *group, const block_q8_0 *x, int T, float *y, size_t ldy) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < G8_PACK_ROWS; i++) {
            float acc = 0;
            for (int b = 0; b < nb; b++) {
                const block_q8_0 *xb = x + (size_t)t * nb + b;
                uint16_t d_w;
                const int32_t sum = block_sum(type, group, b, i, xb->qs, &d_w);
                acc = fmaf((float)sum, g8_f16_to_f32(d_w) * g8_f16_to_f32(xb->d), acc);
            }
            y[(size_t)t * ldy + i] = acc;
        }
}

static void gemm_q8_0(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                      size_t ldy) {
    (void)xsum;
    gemm_def(PACK_Q8_0, nb, group, x, T, y, ldy);
}

static void gemm_q4_0(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                      size_t ldy) {
    (void)xsum;
    gemm_def(PACK_Q4_0, nb, group, x, T, y, ldy);
}

static void gemv_q4_0(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                      float *const *y) {
    for (int g = 0; g < n; g++) gemm_q4_0(nb, group[g], x, xsum, 1, y[g], G8_PACK_ROWS);
}

static void gemv_q8_0(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                      float *const *y) {
    for (int g = 0; g < n; g++) gemm_q8_0(nb, group[g], x, xsum, 1, y[g], G8_PACK_ROWS);
}

static void gemm_q6_k(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                      size_t ldy) {
    (void)xsum;
    gemm_def(PACK_Q6_K, nb, group, x, T, y, ldy);
}

static void quantize_q8_0(const float *x, block_q8_0 *y, int n) { g8_quantize_row_q8_0_ref(x, y, n); }

static void axpy(int n, float a, const float *x, float *y) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void to_f16(int n, const float *x, uint16_t *y) {
    for (int i = 0; i < n; i++) y[i] = g8_f32_to_f16(x[i]);
}

float g8_softcap_scalar(int n, float *x, float scale, float cap) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++) {
        x[i] = cap == 0 ? x[i] * scale : tanhf(x[i] * scale / cap) * cap;
        m = x[i] > m ? x[i] : m;
    }
    return m;
}

float g8_exp_sum_scalar(int n, float *x, float m) {
    float sum = 0;
    for (int i = 0; i < n; i++) sum += (x[i] = expf(x[i] - m));
    return sum;
}

void g8_geglu_scalar(int n, float *g, const float *u) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int i = 0; i < n; i++) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x))) * u[i];
    }
}

void g8_qk_f16_scalar(int n, const uint16_t *k, int hd, const float *q, int group, float *s, size_t ls) {
    for (int j = 0; j < n; j++)
        for (int h = 0; h < group; h++) s[h * ls + (size_t)j] = dot_f16(hd, k + (size_t)j * hd, q + (size_t)h * hd);
}

void g8_wsum_f16_scalar(int n, const float *w, size_t lw, const uint16_t *v, int hd, int group, float *out) {
    for (int j = 0; j < n; j++)
        for (int h = 0; h < group; h++) {
            const float wj = w[h * lw + (size_t)j];
            for (int i = 0; i < hd; i++) out[(size_t)h * hd + i] += wj * g8_f16_to_f32(v[(size_t)j * hd + i]);
        }
}

void g8_qk_q8_0_scalar(int n, const block_q8_0 *k, int nb, const block_q8_0 *q, int group, float *s, size_t ls) {
    for (int j = 0; j < n; j++)
        for (int h = 0; h < group; h++) s[h * ls + (size_t)j] = dot_q8_0(nb, k + (size_t)j * nb, q + (size_t)h * nb);
}

void g8_wsum_q8_0_scalar(int n, const float *w, size_t lw, const block_q8_0 *v, int hd, int group, float *out) {
    const int nb = hd / QK8_0;
    for (int j = 0; j < n; j++)
        for (int h = 0; h < group; h++)
            for (int b = 0; b < nb; b++) {
                const block_q8_0 *blk = v + (size_t)j * nb + b;
                const float s = w[h * lw + (size_t)j] * g8_f16_to_f32(blk->d);
                for (int i = 0; i < QK8_0; i++) out[(size_t)h * hd + b * QK8_0 + i] += s * (float)blk->qs[i];
            }
}

static const g8_kernels scalar = {
    .name = "scalar",
    .dot_f32 = dot_f32,
    .dot_f16 = dot_f16,
    .dot_bf16 = dot_bf16,
    .dot_q8_0 = dot_q8_0,
    .gemm_q8_0 = gemm_q8_0,
    .gemm_q4_0 = gemm_q4_0,
    .gemv_q4_0 = gemv_q4_0,
    .q4_groups = 4,
    .gemv_q8_0 = gemv_q8_0,
    .q8_groups = 4,
    .gemm_q6_k = gemm_q6_k,
    .quantize_q8_0 = quantize_q8_0,
    .axpy = axpy,
    .to_f16 = to_f16,
    .softcap = g8_softcap_scalar,
    .exp_sum = g8_exp_sum_scalar,
    .geglu = g8_geglu_scalar,
    .qk_f16 = g8_qk_f16_scalar,
    .wsum_f16 = g8_wsum_f16_scalar,
    .qk_q8_0 = g8_qk_q8_0_scalar,
    .wsum_q8_0 = g8_wsum_q8_0_scalar,
};

const g8_kernels *g8_kernels_scalar(void) { return &scalar; }
