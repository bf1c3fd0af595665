/* kernels.h - the table of compute kernels, chosen once by CPU feature detection.
 *
 * Every kernel has a portable scalar reference (kernels_scalar.c) and may have
 * SIMD versions with the same signature (cpu/x86_avx2.c, cpu/arm_neon.c).
 * Kernels know nothing about Gemma. */
#ifndef G8_KERNELS_H
#define G8_KERNELS_H

#include "quant.h"
#include <stdbool.h>
#include <stddef.h>

/* The Q8_0 matrix product of one packed group of 16 weight rows (quant.h) by
 * T tokens of nb Q8_0 blocks each (x, token t at x + t * nb), 1 <= T <= G8_GEMM_T:
 * y[t * ldy + i] = dot(row i, token t) for i < 16. xsum[t * nb + b] is -128 times
 * the sum of token t's quants in block b (kernels that make the weights
 * unsigned need it). Every table computes each (row, token) pair the same way:
 * per block the exact int32 sum s_b, then acc = fma((float)s_b, d_w * d_x, acc)
 * block after block from acc = 0. So the result of a pair depends on neither T,
 * the pair's place in the tile, nor the table: batch invariance by design. */
enum { G8_GEMM_T = 8 };
typedef void (*g8_gemm_q8_0_fn)(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                                size_t ldy);

typedef void (*g8_gemv_fn)(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                           float *const *y);

typedef void (*g8_gemv_few_fn)(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                               int T, float *const *y, const size_t *ldy);

typedef struct g8_kernels {
    const char *name;
    /* dot products of n elements: weight row of a type, activations f32 */
    float (*dot_f32)(int n, const float *w, const float *x);
    float (*dot_f16)(int n, const uint16_t *w, const float *x);
    float (*dot_bf16)(int n, const uint16_t *w, const float *x);
    /* dot product of nb Q8_0 blocks by nb Q8_0 blocks (attention over a Q8_0 cache) */
    float (*dot_q8_0)(int nb, const block_q8_0 *w, const block_q8_0 *x);
    g8_gemm_q8_0_fn gemm_q8_0;
    /* The same over Q4_0 weights packed 4-bit (quant.h; xsum as for Q8_0): per
     * block the exact int32 sum of (q - 8) * x, then the same FMA. */
    g8_gemm_q8_0_fn gemm_q4_0;
    /* One token by n groups of Q4_0 weights at once (1 <= n <= q4_groups): y[g] (16 floats each) bit
     * for bit what gemm_q4_0 gives group g with T = 1. Groups far apart are as many streams through
     * memory, which keep more of it busy than one (ops.c), and each broadcast of the token's quants
     * serves them all. */
    g8_gemv_fn gemv_q4_0;
    int q4_groups;
    /* The same over Q8_0 weights: y[g] bit for bit what gemm_q8_0 gives group g with T = 1. */
    g8_gemv_fn gemv_q8_0;
    int q8_groups;
    /* A few tokens (2 <= T <= few_tokens) by n groups at once (1 <= n <= few_groups): y[g] + t * ldy[g]
     * bit for bit what gemm_q8_0 / gemm_q4_0 gives group g, token t: a batch's decode step reading
     * streams far apart as the one-token GEMV does. NULL (and few_tokens 0) where a table has none. */
    g8_gemv_few_fn gemv_few_q8_0;
    g8_gemv_few_fn gemv_few_q4_0;
    int few_tokens, few_groups;
    /* The same over Q6_K weights packed for 32-blocks (quant.h); xsum holds two
     * entries per block, -32 times the sums of the token's quants 0-15 and
     * 16-31: per block s = sc_a * sum_a (q - 32) x + sc_b * sum_b (q - 32) x,
     * exact in int32, then acc = fma((float)s, d_w * d_x, acc). */
    g8_gemm_q8_0_fn gemm_q6_k;
    /* activations to Q8_0 (n a multiple of 32), same result as the reference */
    void (*quantize_q8_0)(const float *x, block_q8_0 *y, int n);
    /* y += a * x */
    void (*axpy)(int n, float a, const float *x, float *y);
    /* y[i] = x[i] as f16, rounded to nearest even (g8_f32_to_f16's bits for every x but NaN,
     * which stays a NaN): the KV cache's rows */
    void (*to_f16)(int n, const float *x, uint16_t *y);
    /* x[i] = cap * tanh(x[i] * scale / cap), or x[i] * scale when cap is 0; returns the largest
     * x[i] after (NaNs passed over; -INFINITY for none) */
    float (*softcap)(int n, float *x, float scale, float cap);
    /* x[i] = exp(x[i] - m); returns the sum */
    float (*exp_sum)(int n, float *x, float m);
    /* g[i] = gelu_tanh(g[i]) * u[i] */
    void (*geglu)(int n, float *g, const float *u);
    /* Attention over n consecutive f16 key/value rows of hd elements (row j at
     * k + j * hd) for the group of query heads that share them (q_h at q + h * hd):
     * scores s[h * ls + j] = dot(k_j, q_h); each row is read once for the group. */
    void (*qk_f16)(int n, const uint16_t *k, int hd, const float *q, int group, float *s, size_t ls);
    /* out[h * hd + i] += sum_j w[h * lw + j] * v_j[i] */
    void (*wsum_f16)(int n, const float *w, size_t lw, const uint16_t *v, int hd, int group, float *out);
    /* scores as qk_f16 over Q8_0 key rows of nb blocks (row j at k + j * nb) and
     * the group's queries as Q8_0 (q_h at q + h * nb): int8 dot products */
    void (*qk_q8_0)(int n, const block_q8_0 *k, int nb, const block_q8_0 *q, int group, float *s, size_t ls);
    /* the same over Q8_0 value rows of hd / 32 blocks (hd a multiple of 32) */
    void (*wsum_q8_0)(int n, const float *w, size_t lw, const block_q8_0 *v, int hd, int group, float *out);
} g8_kernels;

/* scalar versions, for tables that have no SIMD one */
float g8_softcap_scalar(int n, float *x, float scale, float cap);
float g8_exp_sum_scalar(int n, float *x, float m);
void g8_geglu_scalar(int n, float *g, const float *u);
void g8_qk_f16_scalar(int n, const uint16_t *k, int hd, const float *q, int group, float *s, size_t ls);
void g8_wsum_f16_scalar(int n, const float *w, size_t lw, const uint16_t *v, int hd, int group, float *out);
void g8_qk_q8_0_scalar(int n, const block_q8_0 *k, int nb, const block_q8_0 *q, int group, float *s, size_t ls);
void g8_wsum_q8_0_scalar(int n, const float *w, size_t lw, const block_q8_0 *v, int hd, int group, float *out);

/* The best table for this CPU (GEMMA8_KERNELS=scalar in the environment forces
 * the reference). */
const g8_kernels *g8_kernels_best(void);
const g8_kernels *g8_kernels_scalar(void);
/* Every table this build has that this CPU can run (scalar first); returns the count. */
int g8_kernels_all(const g8_kernels **out, int max);

#if defined(__x86_64__)
extern const g8_kernels g8_kernels_avx2;
/* AVX2 with the GEMM on vpdpbusd: 256-bit (AVX-VNNI, or AVX512-VNNI with VL) and 512-bit */
extern const g8_kernels g8_kernels_avxvnni, g8_kernels_avx512vnni;
/* the 512-bit table with the one-token GEMVs that prefetch (Intel; the plain one elsewhere) */
extern const g8_kernels g8_kernels_avx512vnni_pf;
void g8_gemm_q8_0_avxvnni(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                          size_t ldy);
void g8_gemm_q8_0_avx512vnni(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                             size_t ldy);
void g8_gemm_q4_0_avxvnni(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                          size_t ldy);
void g8_gemv_few_q8_0_avx512vnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                                 int T, float *const *y, const size_t *ldy);
void g8_gemv_few_q4_0_avx512vnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                                 int T, float *const *y, const size_t *ldy);
void g8_gemm_q4_0_avx512vnni(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                             size_t ldy);
void g8_gemm_q6_k_avxvnni(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                          size_t ldy);
void g8_gemm_q6_k_avx512vnni(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                             size_t ldy);
/* the 256-bit VNNI GEMMs with vpdpbusd emulated in AVX2 (built into the tests only) */
void g8_gemm_q8_0_vnni_emulated(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                                size_t ldy);
void g8_gemm_q4_0_vnni_emulated(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                                size_t ldy);
void g8_gemv_q4_0_vnni_emulated(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                                float *const *y);
void g8_gemv_q8_0_vnni_emulated(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                                float *const *y);
void g8_gemv_few_q8_0_vnni_emulated(int n, int nb, const void *const *group, const block_q8_0 *x,
                                    const int32_t *xsum, int T, float *const *y, const size_t *ldy);
void g8_gemv_few_q4_0_vnni_emulated(int n, int nb, const void *const *group, const block_q8_0 *x,
                                    const int32_t *xsum, int T, float *const *y, const size_t *ldy);
void g8_gemv_few_q8_0_avxvnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                              int T, float *const *y, const size_t *ldy);
void g8_gemv_few_q4_0_avxvnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                              int T, float *const *y, const size_t *ldy);
void g8_gemv_q4_0_avxvnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                          float *const *y);
void g8_gemv_q8_0_avxvnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                          float *const *y);
void g8_gemv_q4_0_avx512vnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                             float *const *y);
void g8_gemv_q8_0_avx512vnni(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                             float *const *y);
/* the same with a software prefetch ahead in each stream (the table Intel CPUs take, kernels.c) */
void g8_gemv_q4_0_avx512vnni_pf(int n, int nb, const void *const *group, const block_q8_0 *x,
                                const int32_t *xsum, float *const *y);
void g8_gemv_q8_0_avx512vnni_pf(int n, int nb, const void *const *group, const block_q8_0 *x,
                                const int32_t *xsum, float *const *y);
/* the AVX2 table's quantization of activations in 512-bit registers, the same bits (x86_avx512.c) */
void g8_quantize_q8_0_avx512(const float *x, block_q8_0 *y, int n);
/* the AVX2 table's attention kernels in 512-bit registers, the same bits (x86_avx512_attn.c) */
void g8_qk_f16_avx512(int n, const uint16_t *k, int hd, const float *q, int group, float *s, size_t ls);
void g8_wsum_f16_avx512(int n, const float *w, size_t lw, const uint16_t *v, int hd, int group, float *out);
void g8_qk_q8_0_avx512(int n, const block_q8_0 *k, int nb, const block_q8_0 *q, int group, float *s,
                       size_t ls);
void g8_wsum_q8_0_avx512(int n, const float *w, size_t lw, const block_q8_0 *v, int hd, int group,
                         float *out);
void g8_gemm_q6_k_vnni_emulated(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                                size_t ldy);
#endif
#if defined(__aarch64__)
extern const g8_kernels g8_kernels_neon;
/* the NEON table with the GEMMs on smmla (FEAT_I8MM) */
extern const g8_kernels g8_kernels_neon_i8mm;
void g8_gemv_q4_0_neon(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                       float *const *y);
void g8_gemv_q8_0_neon(int n, int nb, const void *const *group, const block_q8_0 *x, const int32_t *xsum,
                       float *const *y);
void g8_gemm_q8_0_i8mm(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                       size_t ldy);
void g8_gemm_q4_0_i8mm(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                       size_t ldy);
void g8_gemm_q6_k_i8mm(int nb, const void *group, const block_q8_0 *x, const int32_t *xsum, int T, float *y,
                       size_t ldy);
#endif

#endif
