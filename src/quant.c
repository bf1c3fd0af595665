/* quant.c - reference quantization (Q8_0, Q4_0), dequantization (and Q6_K),
 * the packings for the GEMM, and conversions to f32. */
#include "quant.h"
#include "common.h"
#include "gemma8.h"

#include <math.h>

void g8_quantize_row_q8_0_ref(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float *xb = x + b * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = g8_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) y[b].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

void g8_dequantize_row_q8_0(const block_q8_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float d = g8_f16_to_f32(x[b].d);
        for (int j = 0; j < QK8_0; j++) y[b * QK8_0 + j] = d * x[b].qs[j];
    }
}

void g8_quantize_row_q4_0_ref(const float *x, block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const float *xb = x + b * QK4_0;
        float amax = 0.0f, max = 0.0f; /* the value of largest magnitude, with its sign (the first of equals) */
        for (int j = 0; j < QK4_0; j++)
            if (amax < fabsf(xb[j])) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[b].d = g8_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            const float x0 = xb[j] * id, x1 = xb[QK4_0 / 2 + j] * id;
            const uint8_t q0 = (uint8_t)G8_MIN(15, (int8_t)(x0 + 8.5f)), q1 = (uint8_t)G8_MIN(15, (int8_t)(x1 + 8.5f));
            y[b].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void g8_dequantize_row_q4_0(const block_q4_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const float d = g8_f16_to_f32(x[b].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[b * QK4_0 + j] = ((x[b].qs[j] & 0xF) - 8) * d;
            y[b * QK4_0 + j + QK4_0 / 2] = ((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void g8_dequantize_row_q6_K(const block_q6_K *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = g8_f16_to_f32(x[b].d);
        for (int j = 0; j < QK_K; j++) y[b * QK_K + j] = d * x[b].scales[j / 16] * (g8_q6_K_quant(&x[b], j) - 32);
    }
}

/* A group of an odd number of blocks ends in half a pair: its unused block (q quant bytes, e bytes of
 * scales) is zero. */
static void clear_unused_half(uint8_t *group, int64_t nb, size_t q, size_t e) {
    if (nb % 2 == 0) return;
    memset(group + g8_pair_quants(nb, q, e), 0, q);
    memset(group + g8_pair_extra(nb, q, e), 0, e);
}

void g8_pack_q4_0(const block_q4_0 *src, int64_t rows, int64_t nb, int64_t g0, int64_t g1, void *dst) {
    const size_t gbytes = g8_pack4_group_bytes(nb);
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *group = (uint8_t *)dst + (size_t)g * gbytes;
        const int64_t n = G8_MIN(G8_PACK_ROWS, rows - g * G8_PACK_ROWS);
        const block_q4_0 *row0 = src + (size_t)(g * G8_PACK_ROWS) * (size_t)nb;
        for (int64_t b = 0; b < nb; b++) { /* every byte written once, in order */
            uint8_t *out = (uint8_t *)g8_pack4_quants(group, b);
            uint16_t d[G8_PACK_ROWS] = {0}; /* rows past the end: scale 0 */
            uint8_t qs[G8_PACK_ROWS][QK4_0 / 2];
            memset(qs, 0x88, sizeof qs); /* and quants 8 (value 0) */
            for (int64_t i = 0; i < n; i++) {
                const block_q4_0 *blk = row0 + (size_t)i * (size_t)nb + b;
                d[i] = blk->d;
                memcpy(qs[i], blk->qs, sizeof blk->qs);
            }
            /* chunk c, row i, byte k: quant 8c + k low, 8c + 4 + k high; quant m is qs[m] & 15 for
             * m < 16, qs[m - 16] >> 4 after */
            for (int c = 0; c < 4; c++)
                for (int i = 0; i < G8_PACK_ROWS; i++)
                    for (int k = 0; k < 4; k++) {
                        const uint8_t lo = qs[i][8 * (c % 2) + k], hi = qs[i][8 * (c % 2) + 4 + k];
                        out[64 * c + 4 * i + k] =
                            c < 2 ? (uint8_t)((lo & 0xF) | (hi & 0xF) << 4) : (uint8_t)((lo >> 4) | (hi & 0xF0));
                    }
            memcpy((uint16_t *)g8_pack4_scales(group, b), d, sizeof d);
        }
        clear_unused_half(group, nb, G8_PACK4_BLOCK, G8_PACK_EXTRA);
    }
}

void g8_pack_q6_K(const block_q6_K *src, int64_t rows, int64_t nb, int64_t g0, int64_t g1, void *dst) {
    const size_t gbytes = g8_pack6_group_bytes(nb);
    const int64_t nk = nb / (QK_K / QK8_0); /* Q6_K blocks per row */
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *group = (uint8_t *)dst + (size_t)g * gbytes;
        const int64_t n = G8_MIN(G8_PACK_ROWS, rows - g * G8_PACK_ROWS);
        memset(group, 0, gbytes);
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *out = (uint8_t *)g8_pack6_quants(group, b);
            uint16_t *d = (uint16_t *)g8_pack6_d(group, b);
            int8_t *sc = (int8_t *)g8_pack6_sc(group, b);
            for (int64_t i = 0; i < n; i++) {
                const block_q6_K *k = src + (size_t)(g * G8_PACK_ROWS + i) * (size_t)nk + b / 8;
                const int j0 = (int)(b % 8) * QK8_0;
                d[i] = k->d;
                sc[i] = k->scales[j0 / 16];
                sc[G8_PACK_ROWS + i] = k->scales[j0 / 16 + 1];
                for (int j = 0; j < QK8_0; j++) out[g8_pack_at((int)i, j)] = (uint8_t)g8_q6_K_quant(k, j0 + j);
            }
            for (int64_t i = n; i < G8_PACK_ROWS; i++) /* past the end: quants 32 (value 0), scales 0 */
                for (int j = 0; j < QK8_0; j++) out[g8_pack_at((int)i, j)] = 32;
        }
    }
}

size_t g8_packed_bytes(uint32_t type, int64_t rows, int64_t cols) {
    const size_t groups = (size_t)((rows + G8_PACK_ROWS - 1) / G8_PACK_ROWS);
    switch (type) {
    case GEMMA8_TYPE_Q8_0: return groups * g8_pack_group_bytes(cols / QK8_0);
    case GEMMA8_TYPE_Q4_0: return groups * g8_pack4_group_bytes(cols / QK4_0);
    case GEMMA8_TYPE_Q6_K: return groups * g8_pack6_group_bytes(cols / QK8_0);
    default: return 0;
    }
}

void g8_pack_q8_0(const block_q8_0 *src, int64_t rows, int64_t nb, int64_t g0, int64_t g1, void *dst) {
    const size_t gbytes = g8_pack_group_bytes(nb);
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *group = (uint8_t *)dst + (size_t)g * gbytes;
        const int64_t n = G8_MIN(G8_PACK_ROWS, rows - g * G8_PACK_ROWS); /* rows of this group */
        const block_q8_0 *row0 = src + (size_t)(g * G8_PACK_ROWS) * (size_t)nb;
        for (int64_t b = 0; b < nb; b++) { /* a block of the group at a time, written in order */
            uint32_t in[G8_PACK_ROWS][QK8_0 / 4] = {{0}}, out[QK8_0 / 4][G8_PACK_ROWS];
            uint16_t d[G8_PACK_ROWS] = {0};
            for (int64_t i = 0; i < n; i++) {
                const block_q8_0 *blk = row0 + (size_t)i * (size_t)nb + b;
                memcpy(in[i], blk->qs, QK8_0);
                d[i] = blk->d;
            }
            for (int c = 0; c < QK8_0 / 4; c++)
                for (int i = 0; i < G8_PACK_ROWS; i++) out[c][i] = in[i][c];
            memcpy((int8_t *)g8_pack_quants(group, b), out, sizeof out);
            memcpy((uint16_t *)g8_pack_scales(group, b), d, sizeof d);
        }
        clear_unused_half(group, nb, G8_PACK_BLOCK, G8_PACK_EXTRA);
    }
}

void g8_to_f32(uint32_t type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case GEMMA8_TYPE_F32: memcpy(dst, src, (size_t)n * 4); break;
    case GEMMA8_TYPE_F16: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = g8_f16_to_f32(h);
        }
        break;
    }
    case GEMMA8_TYPE_BF16: {
        const uint8_t *p = src;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = g8_bf16_to_f32(h);
        }
        break;
    }
    case GEMMA8_TYPE_Q8_0: g8_dequantize_row_q8_0(src, dst, n); break;
    case GEMMA8_TYPE_Q4_0: g8_dequantize_row_q4_0(src, dst, n); break;
    case GEMMA8_TYPE_Q6_K: g8_dequantize_row_q6_K(src, dst, n); break;
    default:
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
    }
}

const char *gemma8_type_name(gemma8_type type) {
    switch (type) {
    case GEMMA8_TYPE_F32: return "f32";
    case GEMMA8_TYPE_F16: return "f16";
    case GEMMA8_TYPE_BF16: return "bf16";
    case GEMMA8_TYPE_Q8_0: return "q8_0";
    case GEMMA8_TYPE_Q4_0: return "q4_0";
    case GEMMA8_TYPE_Q6_K: return "q6_k";
    }
    return "?";
}

bool gemma8_type_parse(const char *name, gemma8_type *out) {
    static const gemma8_type all[] = {GEMMA8_TYPE_F32,  GEMMA8_TYPE_F16,  GEMMA8_TYPE_BF16,
                                      GEMMA8_TYPE_Q8_0, GEMMA8_TYPE_Q4_0, GEMMA8_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, gemma8_type_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    return false;
}
