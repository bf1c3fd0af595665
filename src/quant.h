/* quant.h - number formats: f16, bf16 and ggml's Q8_0, Q4_0 and Q6_K blocks. */
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

#define QK4_0 32

/* ggml's block_q4_0: an f16 scale, then 32 4-bit quants: qs[j] holds element j
 * (low nibble) and element j + 16 (high nibble); x = d * (q - 8). */
typedef struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
} block_q4_0;
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must be 18 bytes");

#define QK_K 256

/* ggml's block_q6_K: 256 6-bit quants (low 4 bits in ql, high 2 in qh), an int8
 * scale per 16, an f16 scale for all: x = d * scales[i / 16] * (q - 32). */
typedef struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} block_q6_K;
static_assert(sizeof(block_q6_K) == 210, "block_q6_K must be 210 bytes");

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
/* ggml's quantize_row_q4_0_ref, byte for byte; n a multiple of 32 */
void g8_quantize_row_q4_0_ref(const float *x, block_q4_0 *y, int64_t n);
void g8_dequantize_row_q4_0(const block_q4_0 *x, float *y, int64_t n);
/* n a multiple of 256 */
void g8_dequantize_row_q6_K(const block_q6_K *x, float *y, int64_t n);
/* Quant j (0..255) of a Q6_K block, 0..63 (its value is q - 32), and its scale's index. */
static inline int g8_q6_K_quant(const block_q6_K *b, int j) {
    const int h = j / 128, l = j % 32, k = (j % 128) / 32; /* half, lane, quarter */
    const uint8_t lo = b->ql[64 * h + l + 32 * (k & 1)], hi = b->qh[32 * h + l];
    return ((k < 2 ? lo & 0xF : lo >> 4) | (((hi >> (2 * k)) & 3) << 4));
}

/* Q8_0 weights as the GEMM kernels read them: 16 rows at a time (a group).
 * A block of a group holds four bytes of each of the 16 rows at a time:
 * quants[16 * 4 * c + 4 * i + j] is row i's quant 4c + j of the block (c < 8),
 * and then the 16 rows' f16 scales of the block. One 64-byte load holds four
 * quants of each of 16 rows: an activation's four quants, broadcast, multiply
 * all 16 rows at once, and every (row, token) sum stays in its own lane, with
 * no reduction across lanes. Rows past the matrix's last are zero.
 *
 * The blocks lie in pairs: the quants of blocks 2p and 2p + 1, then the scales
 * of both. So a group is one stream a GEMV reads front to back (a stream of
 * scales apart from the quants' cost decode ~20% of its bandwidth: a new stream
 * to find at every group), and every 64-byte load stays aligned. Q4_0 and Q6_K
 * pack the same way with their own quants and scales. */
#define G8_PACK_ROWS 16
#define G8_PACK_BLOCK (G8_PACK_ROWS * QK8_0) /* quant bytes of one block of a group */

/* where row i's quant j of a block lies among the block's G8_PACK_BLOCK bytes */
static inline size_t g8_pack_at(int i, int j) { return (size_t)(4 * (G8_PACK_ROWS * (j / 4) + i) + j % 4); }

/* Where block b's quants (q bytes a block) and its scales (e bytes) lie in a group. */
static inline size_t g8_pair_quants(int64_t b, size_t q, size_t e) {
    return (size_t)(b / 2) * 2 * (q + e) + (size_t)(b % 2) * q;
}
static inline size_t g8_pair_extra(int64_t b, size_t q, size_t e) {
    return (size_t)(b / 2) * 2 * (q + e) + 2 * q + (size_t)(b % 2) * e;
}
/* bytes of a group of nb blocks (whole pairs: a multiple of 64 for every format) */
static inline size_t g8_pair_group_bytes(int64_t nb, size_t q, size_t e) { return (size_t)(nb + 1) / 2 * 2 * (q + e); }

#define G8_PACK_EXTRA (2 * G8_PACK_ROWS) /* the 16 rows' f16 scales */
static inline size_t g8_pack_group_bytes(int64_t nb) { return g8_pair_group_bytes(nb, G8_PACK_BLOCK, G8_PACK_EXTRA); }
static inline const int8_t *g8_pack_quants(const void *group, int64_t b) {
    return (const int8_t *)group + g8_pair_quants(b, G8_PACK_BLOCK, G8_PACK_EXTRA);
}
static inline const uint16_t *g8_pack_scales(const void *group, int64_t b) {
    return (const uint16_t *)((const uint8_t *)group + g8_pair_extra(b, G8_PACK_BLOCK, G8_PACK_EXTRA));
}

/* Packs rows [g0 * 16, g1 * 16) of a Q8_0 matrix of `rows` rows of nb blocks
 * into groups g0..g1-1 at dst (the matrix's packed start). */
void g8_pack_q8_0(const block_q8_0 *src, int64_t rows, int64_t nb, int64_t g0, int64_t g1, void *dst);

/* Q4_0 packed as Q8_0 is (16 rows a group), in 4-bit: per block, four 64-byte
 * chunks of 16 rows x 4 bytes; byte j of row i in chunk c holds quant 8c + j in
 * its low nibble and quant 8c + 4 + j in its high one (unsigned, 0..15: the
 * value is q - 8). One load and a mask give four quants of each of 16 rows, a
 * shift and the mask four more. Each block's 16 f16 scales as for Q8_0. */
#define G8_PACK4_BLOCK (G8_PACK_ROWS * QK4_0 / 2)
static inline size_t g8_pack4_group_bytes(int64_t nb) {
    return g8_pair_group_bytes(nb, G8_PACK4_BLOCK, G8_PACK_EXTRA);
}
static inline const uint8_t *g8_pack4_quants(const void *group, int64_t b) {
    return (const uint8_t *)group + g8_pair_quants(b, G8_PACK4_BLOCK, G8_PACK_EXTRA);
}
static inline const uint16_t *g8_pack4_scales(const void *group, int64_t b) {
    return (const uint16_t *)((const uint8_t *)group + g8_pair_extra(b, G8_PACK4_BLOCK, G8_PACK_EXTRA));
}
/* row i's quant j (0..31) of a block's G8_PACK4_BLOCK bytes, 0..15 */
static inline int g8_pack4_quant(const uint8_t *block, int i, int j) {
    const uint8_t v = block[64 * (j / 8) + 4 * i + j % 4];
    return (j % 8) < 4 ? v & 0xF : v >> 4;
}
void g8_pack_q4_0(const block_q4_0 *src, int64_t rows, int64_t nb, int64_t g0, int64_t g1, void *dst);

/* Q6_K packed for the GEMM on 32-blocks: the quants as Q8_0's packing places
 * them (unsigned, 0..63: the value is q - 32); per block, the 16 rows' f16
 * super-block scales, then their int8 scales of the block's two halves (16
 * rows for elements 0-15, 16 rows for 16-31). */
#define G8_PACK6_EXTRA (2 * G8_PACK_ROWS + 2 * G8_PACK_ROWS) /* bytes of scales per block */
static inline size_t g8_pack6_group_bytes(int64_t nb) {
    return g8_pair_group_bytes(nb, G8_PACK_BLOCK, G8_PACK6_EXTRA);
}
static inline const uint8_t *g8_pack6_quants(const void *group, int64_t b) {
    return (const uint8_t *)group + g8_pair_quants(b, G8_PACK_BLOCK, G8_PACK6_EXTRA);
}
static inline const uint16_t *g8_pack6_d(const void *group, int64_t b) {
    return (const uint16_t *)((const uint8_t *)group + g8_pair_extra(b, G8_PACK_BLOCK, G8_PACK6_EXTRA));
}
static inline const int8_t *g8_pack6_sc(const void *group, int64_t b) {
    return (const int8_t *)group + g8_pair_extra(b, G8_PACK_BLOCK, G8_PACK6_EXTRA) + 2 * G8_PACK_ROWS;
}
/* nb: 32-blocks per row (8 per Q6_K block) */
void g8_pack_q6_K(const block_q6_K *src, int64_t rows, int64_t nb, int64_t g0, int64_t g1, void *dst);

/* The packed size of a matrix of a type (0 if the type is not packed). */
size_t g8_packed_bytes(uint32_t type, int64_t rows, int64_t cols);

/* Converts n values of a stored type (gemma8_type) to f32. */
void g8_to_f32(uint32_t type, const void *src, float *dst, int64_t n);

#endif
