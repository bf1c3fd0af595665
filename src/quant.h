/* quant.h - number formats: f16, bf16 and ggml's Q8_0 blocks. */
#ifndef G8_QUANT_H
#define G8_QUANT_H

#include <assert.h>
#include <stdint.h>
#include <string.h>

#define QK8_0 32

/* ggml's block_q8_0, byte for byte: an f16 scale then 32 signed bytes. */
typedef struct block_q8_0 {
    uint16_t d;          /* f16 scale */
    int8_t qs[QK8_0];    /* x[i] = d * qs[i] */
} block_q8_0;
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must be 34 bytes");

static inline float g8_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round to nearest even, as IEEE conversion does. */
static inline uint16_t g8_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow to inf */
    if (ax < 0x38800000u) { /* subnormal or zero in f16 */
        if (ax < 0x33000000u) return (uint16_t)sign;
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((ax - 0x38000000u) >> 13);
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return (uint16_t)(sign | r);
}

static inline float g8_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t g8_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* Quantizes n floats (n a multiple of 32) into n/32 Q8_0 blocks, exactly as
 * ggml's quantize_row_q8_0_ref (and gguf-py) do. */
void g8_quantize_row_q8_0_ref(const float *x, block_q8_0 *y, int64_t n);
void g8_dequantize_row_q8_0(const block_q8_0 *x, float *y, int64_t n);

/* Q8_0 weights as the GEMM kernels read them: 16 rows at a time (a group).
 * A group of nb blocks holds first the quants, block after block, four bytes
 * of each of the 16 rows at a time: quants[b][16 * 4 * c + 4 * i + j] is row
 * i's quant 4c + j of block b (c < 8). Then the 16 rows' f16 scales of each
 * block: d[b][i]. One 64-byte load holds four quants of each of 16 rows: an
 * activation's four quants, broadcast, multiply all 16 rows at once, and every
 * (row, token) sum stays in its own lane, with no reduction across lanes.
 * Groups are 64 bytes aligned; rows past the matrix's last are zero. */
#define G8_PACK_ROWS 16
#define G8_PACK_BLOCK (G8_PACK_ROWS * QK8_0) /* quant bytes of one block of a group */

/* where row i's quant j of a block lies among the block's G8_PACK_BLOCK bytes */
static inline size_t g8_pack_at(int i, int j) { return (size_t)(4 * (G8_PACK_ROWS * (j / 4) + i) + j % 4); }

/* bytes of one group of nb blocks (a multiple of 64) */
static inline size_t g8_pack_group_bytes(int64_t nb) {
    return ((size_t)nb * (G8_PACK_BLOCK + 2 * G8_PACK_ROWS) + 63) & ~(size_t)63;
}

/* The quants and the scales of a group of nb blocks. */
static inline const int8_t *g8_pack_quants(const void *group) { return group; }
static inline const uint16_t *g8_pack_scales(const void *group, int64_t nb) {
    return (const uint16_t *)((const int8_t *)group + (size_t)nb * G8_PACK_BLOCK);
}

/* Packs rows [g0 * 16, g1 * 16) of a Q8_0 matrix of `rows` rows of nb blocks
 * into groups g0..g1-1 at dst (the matrix's packed start). */
void g8_pack_q8_0(const block_q8_0 *src, int64_t rows, int64_t nb, int64_t g0, int64_t g1, void *dst);

/* Converts n values of a stored type (gemma8_type) to f32. */
void g8_to_f32(uint32_t type, const void *src, float *dst, int64_t n);

#endif
