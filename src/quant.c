/* quant.c - reference Q8_0 quantization and conversions to f32. */
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

void g8_pack_q8_0(const block_q8_0 *src, int64_t rows, int64_t nb, int64_t g0, int64_t g1, void *dst) {
    const size_t gbytes = g8_pack_group_bytes(nb);
    for (int64_t g = g0; g < g1; g++) {
        uint8_t *group = (uint8_t *)dst + (size_t)g * gbytes;
        uint16_t *d = (uint16_t *)(group + (size_t)nb * G8_PACK_BLOCK);
        const int64_t n = G8_MIN(G8_PACK_ROWS, rows - g * G8_PACK_ROWS); /* rows of this group */
        const block_q8_0 *row0 = src + (size_t)(g * G8_PACK_ROWS) * (size_t)nb;
        if (n < G8_PACK_ROWS) memset(d, 0, (size_t)nb * G8_PACK_ROWS * sizeof *d);
        for (int64_t b = 0; b < nb; b++) { /* a block of the group at a time, written in order */
            uint32_t in[G8_PACK_ROWS][QK8_0 / 4] = {{0}}, out[QK8_0 / 4][G8_PACK_ROWS];
            for (int64_t i = 0; i < n; i++) {
                const block_q8_0 *blk = row0 + (size_t)i * (size_t)nb + b;
                memcpy(in[i], blk->qs, QK8_0);
                d[b * G8_PACK_ROWS + i] = blk->d;
            }
            for (int c = 0; c < QK8_0 / 4; c++)
                for (int i = 0; i < G8_PACK_ROWS; i++) out[c][i] = in[i][c];
            memcpy(group + (size_t)b * G8_PACK_BLOCK, out, sizeof out);
        }
        const size_t used = (size_t)nb * (G8_PACK_BLOCK + 2 * G8_PACK_ROWS);
        memset(group + used, 0, gbytes - used); /* to the 64-byte boundary */
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
    }
    return "?";
}

bool gemma8_type_parse(const char *name, gemma8_type *out) {
    static const gemma8_type all[] = {GEMMA8_TYPE_F32, GEMMA8_TYPE_F16, GEMMA8_TYPE_BF16, GEMMA8_TYPE_Q8_0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(name, gemma8_type_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    return false;
}
