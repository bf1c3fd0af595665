/* test-kernels.c - every SIMD kernel against the scalar reference, on random
 * data of awkward sizes; number formats against known values. */
#include "kernels.h"
#include "ops.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif
#include <stdlib.h>
#include <string.h>

static uint32_t rng_state = 1;
static float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}

static bool close_rel(float a, float b, float tol) { return fabsf(a - b) <= tol * (1.0f + fabsf(b)); }

/* sum over blocks of |d_w d_x| * sum |w_i x_i|: what float rounding of a Q8_0 dot
 * product is relative to (a sum that cancels to near zero is still rounded at
 * this scale); a wrong lane or scale moves the result by ~1/nb of it */
static float q8_abs_dot(int nb, const block_q8_0 *w, const block_q8_0 *x) {
    float s = 0;
    for (int b = 0; b < nb; b++) {
        int32_t acc = 0;
        for (int i = 0; i < QK8_0; i++) acc += abs(w[b].qs[i] * x[b].qs[i]);
        s += fabsf(g8_f16_to_f32(w[b].d) * g8_f16_to_f32(x[b].d)) * (float)acc;
    }
    return s;
}

/* The table this CPU's flags call for: read from /proc/cpuinfo on x86 (not the
 * CPUID code under test; with AVX512-VNNI the prefetching table on Intel); from the
 * hardware capabilities on AArch64 (qemu-user shows the host's /proc/cpuinfo). */
static const char *expected_table(void) {
#if defined(__x86_64__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    const char *want = "scalar";
    bool intel = false; /* the vendor_id line comes before flags */
    while (f && fgets(line, sizeof line, f)) {
        intel |= !strncmp(line, "vendor_id", 9) && strstr(line, "GenuineIntel");
        if (strncmp(line, "flags", 5)) continue;
        char *tok = strtok(line, " \t\n:");
        bool avx2 = false, fma = false, f16c = false, avxvnni = false, vnni512 = false, vl = false, f512 = false;
        bool bw = false;
        while ((tok = strtok(NULL, " \t\n"))) {
            avx2 |= !strcmp(tok, "avx2");
            fma |= !strcmp(tok, "fma");
            f16c |= !strcmp(tok, "f16c");
            avxvnni |= !strcmp(tok, "avx_vnni");
            vnni512 |= !strcmp(tok, "avx512_vnni");
            vl |= !strcmp(tok, "avx512vl");
            f512 |= !strcmp(tok, "avx512f");
            bw |= !strcmp(tok, "avx512bw");
        }
        if (avx2 && fma && f16c) want = vnni512 && vl && f512 && bw ? "avx512-vnni" : avxvnni ? "avx-vnni" : "avx2";
        if (!strcmp(want, "avx512-vnni") && intel) want = "avx512-vnni-pf";
        break;
    }
    if (f) fclose(f);
    return want;
#elif defined(__aarch64__)
    if (!(getauxval(AT_HWCAP) & (1ul << 20))) return "scalar"; /* HWCAP_ASIMDDP */
    return getauxval(AT_HWCAP2) & (1ul << 13) ? "neon-i8mm" : "neon-dotprod"; /* HWCAP2_I8MM */
#else
    return "scalar";
#endif
}

TEST(kernels_available) {
    const g8_kernels *all[8];
    int n = g8_kernels_all(all, 8);
    CHECK(n >= 1 && !strcmp(all[0]->name, "scalar"));
    char names[128] = "";
    for (int i = 0; i < n; i++) {
        strcat(names, all[i]->name);
        strcat(names, " ");
    }
    const char *best = getenv("GEMMA8_KERNELS") ? all[n - 1]->name : g8_kernels_best()->name;
    CHECKF(!strcmp(best, expected_table()), "the CPU flags call for the %s table, %s was chosen", expected_table(),
           best);
    harness_note("kernel tables on this CPU: %s(best: %s)", names, best);
}

TEST(kernels_dot_float_match_scalar) {
    const g8_kernels *all[8], *ref = g8_kernels_scalar();
    int nk = g8_kernels_all(all, 8);
    const int sizes[] = {1, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257, 2304};
    float *x = malloc(4096 * sizeof(float)), *w = malloc(4096 * sizeof(float));
    uint16_t *h = malloc(4096 * 2), *b = malloc(4096 * 2);
    for (int i = 0; i < 4096; i++) {
        x[i] = frand();
        w[i] = frand();
        h[i] = g8_f32_to_f16(w[i]);
        b[i] = g8_f32_to_bf16(w[i]);
    }
    for (int k = 0; k < nk; k++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int n = sizes[s];
            CHECKF(close_rel(all[k]->dot_f32(n, w, x), ref->dot_f32(n, w, x), 1e-5f), "%s dot_f32 n=%d", all[k]->name, n);
            CHECKF(close_rel(all[k]->dot_f16(n, h, x), ref->dot_f16(n, h, x), 1e-5f), "%s dot_f16 n=%d", all[k]->name, n);
            CHECKF(close_rel(all[k]->dot_bf16(n, b, x), ref->dot_bf16(n, b, x), 1e-5f), "%s dot_bf16 n=%d", all[k]->name,
                   n);
            float y1[4096], y2[4096];
            memcpy(y1, w, n * sizeof(float));
            memcpy(y2, w, n * sizeof(float));
            all[k]->axpy(n, 0.37f, x, y1);
            ref->axpy(n, 0.37f, x, y2);
            CHECKF(max_abs_diff(y1, y2, (size_t)n) <= 1e-6f, "%s axpy n=%d", all[k]->name, n);
        }
    free(x);
    free(w);
    free(h);
    free(b);
}

/* f32 -> f16 (the KV cache's rows): every table gives g8_f32_to_f16's bits (round to nearest even)
 * over all exponents, halfway cases, f16 subnormals, overflow to infinity and infinities, at
 * lengths around the vector widths; a NaN stays a NaN. */
TEST(kernels_to_f16_matches_scalar) {
    const g8_kernels *all[8];
    int nk = g8_kernels_all(all, 8);
    enum { N = 4099 };
    float *x = malloc(N * sizeof(float));
    uint16_t *got = malloc(N * sizeof(uint16_t));
    unsigned st = 7;
    for (int i = 0; i < N; i++) {
        st = st * 1664525u + 1013904223u;
        uint32_t bits = st;
        if (i % 4 == 1) /* around the f16 range */
            bits = (st & 0x80000000u) | ((uint32_t)(103 + i % 40) << 23) | (st & 0x7fffffu);
        if (i % 4 == 2) bits = (bits & ~0x1fffu) | 0x1000u;     /* halfway between two f16 */
        if (i % 4 == 3) bits = (bits & 0x807fffffu) | (101u << 23); /* f16 subnormals */
        memcpy(&x[i], &bits, 4);
        if (isnan(x[i])) x[i] = 1e9f;
    }
    x[0] = INFINITY, x[1] = -INFINITY, x[2] = 65520.0f, x[3] = 65519.0f, x[4] = -0.0f, x[5] = 5.96e-8f;
    for (int k = 0; k < nk; k++) {
        const int lens[] = {1, 3, 4, 7, 8, 9, 17, 256, N};
        for (int l = 0; l < 9; l++) {
            memset(got, 0xAB, N * sizeof(uint16_t));
            all[k]->to_f16(lens[l], x, got);
            int bad = 0;
            for (int i = 0; i < lens[l]; i++) bad += got[i] != g8_f32_to_f16(x[i]);
            CHECKF(bad == 0, "%s to_f16 n=%d: %d values differ from the scalar rounding", all[k]->name, lens[l],
                   bad);
        }
        const float nan[9] = {NAN, 1, NAN, 2, 3, 4, 5, 6, -NAN};
        all[k]->to_f16(9, nan, got);
        CHECKF((got[0] & 0x7fff) > 0x7c00 && (got[2] & 0x7fff) > 0x7c00 && (got[8] & 0x7fff) > 0x7c00,
               "%s to_f16: a NaN did not stay a NaN", all[k]->name);
    }
    free(x);
    free(got);
}

/* One packed group of 16 rows of nb blocks (rows past `rows` zero) from random
 * floats, with the extremes -128 and 127 among the quants (real files rarely
 * have -128, a valid Q8_0 file may), and T tokens of activations with +-127. */
static void *random_group(int nb, int rows, block_q8_0 *xq, int T) {
    float *f = calloc((size_t)16 * nb * 32, sizeof(float));
    for (int i = 0; i < 16 * nb * 32; i++) f[i] = frand() * (i % 89 == 0 ? 30.0f : 1.0f);
    block_q8_0 *w = malloc((size_t)16 * nb * sizeof(block_q8_0));
    g8_quantize_row_q8_0_ref(f, w, (int64_t)16 * nb * 32);
    for (int i = 0; i < 16 * nb; i++) w[i].qs[i % 32] = (int8_t)(i % 3 ? -128 : 127);
    for (int i = 0; i < 16 * nb * 32; i++) f[i] = frand() * (i % 61 == 0 ? 20.0f : 1.0f);
    g8_quantize_row_q8_0_ref(f, xq, (int64_t)(T < 16 ? T : 16) * nb * 32);
    for (int i = 0; i < T * nb; i++) xq[i].qs[(i * 7) % 32] = (int8_t)(i % 2 ? -127 : 127);
    void *g = aligned_alloc(64, g8_pack_group_bytes(nb));
    g8_pack_q8_0(w, rows, nb, 0, 1, g);
    free(f);
    free(w);
    return g;
}

static void block_sums(int nb, int T, const block_q8_0 *xq, int32_t *xsum) {
    for (int i = 0; i < T * nb; i++) {
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += xq[i].qs[j];
        xsum[i] = -128 * s;
    }
}

/* Every table's GEMM equals the scalar definition bit for bit, for every token
 * count (so a token's result never depends on the others in its tile), on
 * awkward sizes; the definition itself agrees with a sum in double. */
TEST(kernels_gemm_q8_0_bit_identical) {
    const g8_kernels *all[8], *ref = g8_kernels_scalar();
    int nk = g8_kernels_all(all, 8);
    const int nbs[] = {1, 2, 3, 7, 72, 288};
    const int rows[] = {16, 16, 13, 16, 16, 5};
    block_q8_0 *xq = malloc((size_t)G8_GEMM_T * 288 * sizeof(block_q8_0));
    int32_t *xsum = malloc((size_t)G8_GEMM_T * 288 * sizeof(int32_t));
    float want[G8_GEMM_T * 16], got[G8_GEMM_T * 16];
    for (size_t s = 0; s < sizeof nbs / sizeof nbs[0]; s++) {
        const int nb = nbs[s];
        void *g = random_group(nb, rows[s], xq, G8_GEMM_T);
        block_sums(nb, G8_GEMM_T, xq, xsum);
        ref->gemm_q8_0(nb, g, xq, xsum, G8_GEMM_T, want, 16);
        for (int t = 0; t < G8_GEMM_T; t++)
            for (int i = 0; i < 16; i++) {
                double e = 0, mag = 0;
                for (int b = 0; b < nb; b++) {
                    long sum = 0;
                    for (int j = 0; j < 32; j++) sum += (long)g8_pack_quants(g, b)[64 * (j / 4) + 4 * i + j % 4] * xq[t * nb + b].qs[j];
                    const double sc = (double)g8_f16_to_f32(g8_pack_scales(g, b)[i]) * g8_f16_to_f32(xq[t * nb + b].d);
                    e += sc * (double)sum;
                    mag += fabs(sc) * 32 * 128 * 127;
                }
                CHECKF(fabs(want[t * 16 + i] - e) <= 1e-6 * mag, "reference nb=%d (%d,%d): %g vs %g", nb, i, t,
                       want[t * 16 + i], e);
                if (i >= rows[s]) CHECKF(want[t * 16 + i] == 0, "padding row %d is not zero", i);
            }
        for (int k = 0; k < nk; k++)
            for (int T = 1; T <= G8_GEMM_T; T++)
                for (int t0 = 0; t0 + T <= G8_GEMM_T; t0 += T) {
                    memset(got, 0xff, sizeof got);
                    all[k]->gemm_q8_0(nb, g, xq + (size_t)t0 * nb, xsum + (size_t)t0 * nb, T, got, 16);
                    CHECKF(!memcmp(got, want + t0 * 16, (size_t)T * 16 * sizeof(float)),
                           "%s gemm nb=%d T=%d from token %d differs from the definition", all[k]->name, nb, T, t0);
                }
        free(g);
    }
    free(xq);
    free(xsum);
}

/* A group of Q4_0 or Q6_K weights (rows of nb 32-blocks, packed; the rows as
 * floats in f), tokens as Q8_0 with their sums as the kernels want them. */
static void *random_group_q(uint32_t type, int nb, int rows, float *f, block_q8_0 *xq, int32_t *xsum, int T) {
    const int n = nb * 32;
    void *g = aligned_alloc(64, g8_packed_bytes(type, 16, n));
    if (type == GEMMA8_TYPE_Q4_0) {
        block_q4_0 *w = malloc((size_t)16 * nb * sizeof *w);
        for (int i = 0; i < 16 * n; i++) f[i] = frand() * (i % 89 == 0 ? 30.0f : 1.0f);
        g8_quantize_row_q4_0_ref(f, w, (int64_t)16 * n);
        for (int i = 0; i < 16 * nb; i++) w[i].qs[i % 16] = (uint8_t)(i % 3 ? 0x0F : 0xF0); /* extremes 0, 15 */
        g8_pack_q4_0(w, rows, nb, 0, 1, g);
        for (int r = 0; r < 16; r++) g8_dequantize_row_q4_0(w + (size_t)r * nb, f + (size_t)r * n, n);
        free(w);
    } else {
        block_q6_K *w = malloc((size_t)16 * (nb / 8) * sizeof *w);
        uint8_t *bytes = (uint8_t *)w;
        uint32_t h = 0x9e3779b9u + (uint32_t)nb;
        for (size_t i = 0; i < (size_t)16 * (nb / 8) * sizeof *w; i++) {
            h ^= h << 13, h ^= h >> 17, h ^= h << 5; /* xorshift32: any byte */
            bytes[i] = (uint8_t)h;
        }
        for (int k = 0; k < 16 * (nb / 8); k++) {
            w[k].d = g8_f32_to_f16(0.001f + 0.01f * fabsf(frand()));
            w[k].scales[k % 16] = (int8_t)(k % 2 ? -128 : 127);
            w[k].ql[k % 128] = 0xFF, w[k].qh[k % 64] = 0xFF; /* quants of 63 */
        }
        g8_pack_q6_K(w, rows, nb, 0, 1, g);
        for (int r = 0; r < 16; r++) g8_dequantize_row_q6_K(w + (size_t)r * (nb / 8), f + (size_t)r * n, n);
        free(w);
    }
    float *xf = malloc((size_t)T * n * sizeof *xf);
    for (int i = 0; i < T * n; i++) xf[i] = frand() * (i % 61 == 0 ? 20.0f : 1.0f);
    g8_quantize_row_q8_0_ref(xf, xq, (int64_t)T * n);
    for (int i = 0; i < T * nb; i++) xq[i].qs[(i * 7) % 32] = (int8_t)(i % 2 ? -127 : 127);
    for (int i = 0; i < T * nb; i++) {
        int32_t lo = 0, hi = 0;
        for (int j = 0; j < 16; j++) lo += xq[i].qs[j], hi += xq[i].qs[16 + j];
        if (type == GEMMA8_TYPE_Q4_0) xsum[i] = -128 * (lo + hi);
        else xsum[2 * i] = -32 * lo, xsum[2 * i + 1] = -32 * hi;
    }
    free(xf);
    return g;
}

/* Q4_0 and Q6_K: every table's GEMM equals the scalar definition bit for bit
 * for every token count, padding rows are zero, and the definition agrees
 * with the dequantized weights in double. */
TEST(kernels_gemm_q4_0_q6_k_bit_identical) {
    const g8_kernels *all[8], *ref = g8_kernels_scalar();
    int nk = g8_kernels_all(all, 8);
    const uint32_t types[] = {GEMMA8_TYPE_Q4_0, GEMMA8_TYPE_Q6_K};
    const int nbs[2][6] = {{1, 2, 3, 7, 72, 288}, {8, 16, 8, 72, 288, 8}};
    const int rows[] = {16, 16, 13, 16, 16, 5};
    block_q8_0 *xq = malloc((size_t)G8_GEMM_T * 288 * sizeof(block_q8_0));
    int32_t *xsum = malloc((size_t)2 * G8_GEMM_T * 288 * sizeof(int32_t));
    float *f = malloc((size_t)16 * 288 * 32 * sizeof(float));
    float want[G8_GEMM_T * 16], got[G8_GEMM_T * 16];
    for (int ty = 0; ty < 2; ty++)
        for (int s = 0; s < 6; s++) {
            const int nb = nbs[ty][s];
            void *g = random_group_q(types[ty], nb, rows[s], f, xq, xsum, G8_GEMM_T);
            g8_gemm_q8_0_fn def = ty ? ref->gemm_q6_k : ref->gemm_q4_0;
            def(nb, g, xq, xsum, G8_GEMM_T, want, 16);
            for (int t = 0; t < G8_GEMM_T; t++)
                for (int i = 0; i < 16; i++) {
                    double e = 0, mag = 0;
                    for (int j = 0; j < nb * 32; j++) {
                        const double xv = (double)g8_f16_to_f32(xq[t * nb + j / 32].d) * xq[t * nb + j / 32].qs[j % 32];
                        e += (double)f[(size_t)i * nb * 32 + j] * xv;
                        mag += fabs(f[(size_t)i * nb * 32 + j] * xv);
                    }
                    if (i < rows[s])
                        CHECKF(fabs(want[t * 16 + i] - e) <= 1e-5 * mag + 1e-30, "%s nb=%d (%d,%d): %g vs %g",
                               ty ? "q6_k" : "q4_0", nb, i, t, want[t * 16 + i], e);
                    else
                        CHECKF(want[t * 16 + i] == 0, "padding row %d is not zero", i);
                }
            for (int k = 0; k < nk; k++)
                for (int T = 1; T <= G8_GEMM_T; T++)
                    for (int t0 = 0; t0 + T <= G8_GEMM_T; t0 += T) {
                        g8_gemm_q8_0_fn fn = ty ? all[k]->gemm_q6_k : all[k]->gemm_q4_0;
                        memset(got, 0xff, sizeof got);
                        fn(nb, g, xq + (size_t)t0 * nb, xsum + (size_t)t0 * nb * (ty + 1), T, got, 16);
                        CHECKF(!memcmp(got, want + t0 * 16, (size_t)T * 16 * sizeof(float)),
                               "%s %s nb=%d T=%d from token %d differs from the definition", all[k]->name,
                               ty ? "q6_k" : "q4_0", nb, T, t0);
                    }
#if defined(__x86_64__)
            if (nk >= 2) /* the 256-bit VNNI logic, vpdpbusd emulated */
                for (int T = 1; T <= G8_GEMM_T; T++) {
                    (ty ? g8_gemm_q6_k_vnni_emulated : g8_gemm_q4_0_vnni_emulated)(nb, g, xq, xsum, T, got, 16);
                    CHECKF(!memcmp(got, want, (size_t)T * 16 * sizeof(float)), "emulated vnni %s nb=%d T=%d",
                           ty ? "q6_k" : "q4_0", nb, T);
                }
#endif
            /* a row read back from the packing is the dequantized row */
            g8_matrix W = {.type = types[ty], .rows = rows[s], .cols = nb * 32, .packed = g};
            float *row = malloc((size_t)nb * 32 * sizeof *row);
            for (int r = 0; r < rows[s]; r++) {
                g8_matrix_row(&W, r, row);
                CHECKF(!memcmp(row, f + (size_t)r * nb * 32, (size_t)nb * 32 * sizeof *row), "row %d read back", r);
            }
            free(row);
            free(g);
        }
    free(xq);
    free(xsum);
    free(f);
}

/* One token by several groups at once (decode's streams, ops.c): each table's gemv_q4_0 and
 * gemv_q8_0 give each group bit for bit what the scalar definition gives it alone, for every group
 * count they take, on awkward sizes (odd block counts, a partial group). */
TEST(kernels_gemv_bit_identical) {
    const g8_kernels *all[8], *ref = g8_kernels_scalar();
    const int nk = g8_kernels_all(all, 8);
    const int nbs[] = {1, 2, 3, 7, 72, 288};
    block_q8_0 *xq = malloc(288 * sizeof(block_q8_0)), *xq_other = malloc(288 * sizeof(block_q8_0));
    int32_t *xsum = malloc(2 * 288 * sizeof(int32_t)), *xsum_other = malloc(2 * 288 * sizeof(int32_t));
    float *f = malloc((size_t)16 * 288 * 32 * sizeof(float));
    for (int q8 = 0; q8 < 2; q8++)
        for (size_t s = 0; s < sizeof nbs / sizeof nbs[0]; s++) {
            const int nb = nbs[s];
            const uint32_t type = q8 ? GEMMA8_TYPE_Q8_0 : GEMMA8_TYPE_Q4_0;
            const char *name = q8 ? "gemv_q8_0" : "gemv_q4_0";
            void *g[4];
            float want[4][16], got[4][16];
            float *yg[4] = {got[0], got[1], got[2], got[3]};
            for (int i = 3; i >= 0; i--) { /* other groups (of 13, 10, 7 rows), then the token's (xq) */
                const int rows = 16 - 3 * i;
                block_q8_0 *x = i ? xq_other : xq;
                int32_t *xs = i ? xsum_other : xsum;
                g[i] = q8 ? random_group(nb, rows, x, 1) : random_group_q(type, nb, rows, f, x, xs, 1);
                if (q8) block_sums(nb, 1, x, xs);
            }
            const g8_gemm_q8_0_fn gemm = q8 ? ref->gemm_q8_0 : ref->gemm_q4_0;
            for (int i = 0; i < 4; i++) gemm(nb, g[i], xq, xsum, 1, want[i], 16);
            for (int k = 0; k < nk; k++) {
                const int groups = q8 ? all[k]->q8_groups : all[k]->q4_groups;
                CHECKF(groups >= 1 && groups <= 4, "%s %s takes %d groups", all[k]->name, name, groups);
                for (int n = 1; n <= groups; n++) {
                    memset(got, 0xff, sizeof got);
                    (q8 ? all[k]->gemv_q8_0 : all[k]->gemv_q4_0)(n, nb, (const void *const *)g, xq, xsum, yg);
                    CHECKF(!memcmp(got, want, (size_t)n * sizeof want[0]), "%s %s of %d nb=%d differs",
                           all[k]->name, name, n, nb);
                }
            }
#if defined(__x86_64__)
            for (int n = 1; nk >= 2 && n <= 2; n++) { /* the 256-bit VNNI logic, vpdpbusd emulated */
                (q8 ? g8_gemv_q8_0_vnni_emulated : g8_gemv_q4_0_vnni_emulated)(n, nb, (const void *const *)g, xq,
                                                                                 xsum, yg);
                CHECKF(!memcmp(got, want, (size_t)n * sizeof want[0]), "emulated vnni %s of %d nb=%d", name, n,
                       nb);
            }
#endif
            for (int i = 0; i < 4; i++) free(g[i]);
        }
    free(xq);
    free(xq_other);
    free(xsum);
    free(xsum_other);
    free(f);
}

/* A few tokens by several groups at once (the batched decode step): for every table that has it, each
 * group's and token's 16 floats bit for bit what the reference GEMM gives, at every T and group count,
 * with groups of different row strides (as q, k and v of one call). */
TEST(kernels_gemv_few_bit_identical) {
    const g8_kernels *all[8], *ref = g8_kernels_scalar();
    const int nk = g8_kernels_all(all, 8);
    const int nbs[] = {1, 2, 3, 7, 72, 288};
    enum { TT = 4 };
    block_q8_0 *xq = malloc(TT * 288 * sizeof(block_q8_0)), *xq_other = malloc(TT * 288 * sizeof(block_q8_0));
    int32_t *xsum = malloc(2 * TT * 288 * sizeof(int32_t)), *xsum_other = malloc(2 * TT * 288 * sizeof(int32_t));
    float *f = malloc((size_t)16 * 288 * 32 * sizeof(float));
    int tested = 0;
    for (int q8 = 0; q8 < 2; q8++)
        for (size_t s = 0; s < sizeof nbs / sizeof nbs[0]; s++) {
            const int nb = nbs[s];
            const uint32_t type = q8 ? GEMMA8_TYPE_Q8_0 : GEMMA8_TYPE_Q4_0;
            void *g[4];
            float want[4][TT * 16], got[4][TT * 16 * 3];
            const size_t ldy[4] = {16, 48, 32, 16}; /* strides of token rows, floats */
            float *yg[4] = {got[0], got[1], got[2], got[3]};
            for (int i = 3; i >= 0; i--) { /* other groups' tokens first, then the tokens (xq) */
                block_q8_0 *x = i ? xq_other : xq;
                int32_t *xs = i ? xsum_other : xsum;
                g[i] = q8 ? random_group(nb, 16 - 3 * i, x, TT) : random_group_q(type, nb, 16 - 3 * i, f, x, xs, TT);
                if (q8) block_sums(nb, TT, x, xs);
            }
            const g8_gemm_q8_0_fn gemm = q8 ? ref->gemm_q8_0 : ref->gemm_q4_0;
            for (int i = 0; i < 4; i++) gemm(nb, g[i], xq, xsum, TT, want[i], 16);
            for (int k = 0; k < nk; k++) {
                const g8_gemv_few_fn few = q8 ? all[k]->gemv_few_q8_0 : all[k]->gemv_few_q4_0;
                CHECKF(!few == !all[k]->few_tokens, "%s: a few-token GEMV and its token count go together",
                       all[k]->name);
                if (!few) continue;
                for (int T = 2; T <= all[k]->few_tokens; T++)
                    for (int n = 1; n <= all[k]->few_groups; n++) {
                        memset(got, 0xff, sizeof got);
                        few(n, nb, (const void *const *)g, xq, xsum, T, yg, ldy);
                        for (int i = 0; i < n; i++)
                            for (int t = 0; t < T; t++)
                                CHECKF(!memcmp(got[i] + t * ldy[i], want[i] + t * 16, 16 * sizeof(float)),
                                       "%s few %s: T=%d of %d groups nb=%d: group %d token %d differs",
                                       all[k]->name, q8 ? "q8_0" : "q4_0", T, n, nb, i, t);
                        tested++;
                    }
            }
#if defined(__x86_64__)
            for (int T = 2; nk >= 2 && T <= 4; T++) /* the 256-bit VNNI logic, vpdpbusd emulated */
                for (int n = 1; n <= 2; n++) {
                    memset(got, 0xff, sizeof got);
                    (q8 ? g8_gemv_few_q8_0_vnni_emulated : g8_gemv_few_q4_0_vnni_emulated)(
                        n, nb, (const void *const *)g, xq, xsum, T, yg, ldy);
                    for (int i = 0; i < n; i++)
                        for (int t = 0; t < T; t++)
                            CHECKF(!memcmp(got[i] + t * ldy[i], want[i] + t * 16, 16 * sizeof(float)),
                                   "emulated vnni few %s: T=%d of %d groups nb=%d: group %d token %d differs",
                                   q8 ? "q8_0" : "q4_0", T, n, nb, i, t);
                    tested++;
                }
#endif
            for (int i = 0; i < 4; i++) free(g[i]);
        }
    printf("      %d few-token cases on this CPU's tables\n", tested);
    free(xq);
    free(xq_other);
    free(xsum);
    free(xsum_other);
    free(f);
}

/* ggml's Q4_0 rounding: d = max / -8 (the signed value of largest magnitude),
 * q = min(15, (int8)(x / d + 8.5)); the first of equal magnitudes sets the sign. */
TEST(quant_q4_0_reference_rule) {
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.25f; /* -4 .. 3.75: max = -4, d = 0.5 */
    block_q4_0 q;
    g8_quantize_row_q4_0_ref(x, &q, 32);
    CHECK(g8_f16_to_f32(q.d) == 0.5f);
    CHECK((q.qs[0] & 0xF) == 0);  /* x[0] = -4: -4 * 2 + 8.5 = 0.5, truncated to 0 */
    CHECK((q.qs[15] >> 4) == 15); /* x[31] = 3.75: 7.5 + 8.5 = 16, capped at 15 */
    CHECK((q.qs[8] & 0xF) == 4);  /* x[8] = -2: -4 + 8.5 = 4.5, truncated to 4 */
    float back[32];
    g8_dequantize_row_q4_0(&q, back, 32);
    for (int i = 0; i < 32; i++) CHECKF(fabsf(back[i] - x[i]) <= 0.25f + 1e-6f, "%d: %g vs %g", i, back[i], x[i]);
    x[3] = 4.0f; /* +4 after -4 of equal magnitude: the first one (-4) keeps the sign */
    g8_quantize_row_q4_0_ref(x, &q, 32);
    CHECK(g8_f16_to_f32(q.d) == 0.5f);
}

TEST(kernels_q8_0_match_scalar) {
    const g8_kernels *all[8], *ref = g8_kernels_scalar();
    int nk = g8_kernels_all(all, 8);
    const int nbs[] = {1, 2, 3, 7, 72, 288};
    const int maxb = 288;
    float *x = malloc((size_t)8 * maxb * 32 * sizeof(float));
    for (int i = 0; i < 8 * maxb * 32; i++) x[i] = frand() * (i % 97 == 0 ? 40.0f : 1.0f);
    x[5] = 0.5f * 127.0f / 127.0f; /* values that land on .5 after scaling are covered by the rounding test */
    block_q8_0 *qa = malloc((size_t)8 * maxb * sizeof(block_q8_0)), *qb = malloc((size_t)8 * maxb * sizeof(block_q8_0));
    for (int k = 0; k < nk; k++) {
        /* quantization is bit-identical to the reference */
        ref->quantize_q8_0(x, qa, 8 * maxb * 32);
        all[k]->quantize_q8_0(x, qb, 8 * maxb * 32);
        CHECKF(!memcmp(qa, qb, (size_t)8 * maxb * sizeof(block_q8_0)), "%s quantize_q8_0 differs", all[k]->name);
        for (size_t s = 0; s < sizeof nbs / sizeof nbs[0]; s++) {
            int nb = nbs[s];
            float d1 = all[k]->dot_q8_0(nb, qa, qa + 4 * maxb), d2 = ref->dot_q8_0(nb, qa, qa + 4 * maxb);
            float scale = q8_abs_dot(nb, qa, qa + 4 * maxb);
            CHECKF(fabsf(d1 - d2) <= 2e-5f * scale, "%s dot_q8_0 nb=%d: %g vs %g", all[k]->name, nb, d1, d2);
        }
    }
    free(x);
    free(qa);
    free(qb);
}

/* The tables this CPU cannot run are reported as skipped, not passed: their
 * kernels are checked above only where the CPU has them. */
TEST(kernels_tables_this_cpu_lacks) {
#if defined(__x86_64__)
    const char *names[] = {"avx2", "avx-vnni", "avx512-vnni", "avx512-vnni-pf"};
#elif defined(__aarch64__)
    const char *names[] = {"neon-dotprod", "neon-i8mm"};
#else
    const char *names[] = {"scalar"};
#endif
    const g8_kernels *all[8];
    int n = g8_kernels_all(all, 8);
    char missing[128] = "";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bool have = false;
        for (int k = 0; k < n; k++) have |= !strcmp(all[k]->name, names[i]);
        if (!have) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), " %s", names[i]);
    }
    CHECK(n >= 1);
    if (missing[0]) harness_skip("not run on this CPU:%s (run them on a CPU that has them)", missing);
}

#if defined(__x86_64__)
/* The 256-bit VNNI GEMM (vpdpbusd on weights + 128) with vpdpbusd emulated in
 * AVX2: its logic must meet the definition bit for bit, so that the real build
 * (AVX-VNNI, in the table on CPUs that have it and checked above there) is
 * tested on every x86 machine. */
TEST(kernels_vnni_gemm_logic_emulated) {
    const g8_kernels *all[8];
    int nk = g8_kernels_all(all, 8);
    if (nk < 2) {
        harness_skip("no AVX2 here: the emulation needs it");
        return;
    }
    const int nbs[] = {1, 2, 5, 72};
    block_q8_0 xq[G8_GEMM_T * 72];
    int32_t xsum[G8_GEMM_T * 72];
    float want[G8_GEMM_T * 16], got[G8_GEMM_T * 16];
    for (size_t s = 0; s < sizeof nbs / sizeof nbs[0]; s++) {
        void *g = random_group(nbs[s], 16, xq, G8_GEMM_T);
        block_sums(nbs[s], G8_GEMM_T, xq, xsum);
        g8_kernels_scalar()->gemm_q8_0(nbs[s], g, xq, xsum, G8_GEMM_T, want, 16);
        for (int T = 1; T <= G8_GEMM_T; T++) {
            g8_gemm_q8_0_vnni_emulated(nbs[s], g, xq, xsum, T, got, 16);
            CHECKF(!memcmp(got, want, (size_t)T * 16 * sizeof(float)), "nb=%d T=%d differs from the definition",
                   nbs[s], T);
        }
        free(g);
    }
}
#endif

/* Blocks whose scale is 0, an f16 subnormal (two sizes), f16's largest or past its range (inf): each
 * table's conversion of the scale (F16C in some) gives g8_f32_to_f16's bits, the quants the reference's. */
TEST(kernels_q8_0_scale_edges) {
    const g8_kernels *all[8], *ref = g8_kernels_scalar();
    const int nk = g8_kernels_all(all, 8);
    const float sizes[] = {0.0f, 1e-6f, 1e-4f, 65504.0f * 127.0f, 1e7f, 3e-3f};
    enum { NB = sizeof sizes / sizeof sizes[0] };
    float x[NB * 32];
    for (int b = 0; b < NB; b++)
        for (int j = 0; j < 32; j++) x[b * 32 + j] = sizes[b] * (j == 7 ? -1.0f : frand());
    block_q8_0 qa[NB], qb[NB];
    ref->quantize_q8_0(x, qa, NB * 32);
    CHECK(qa[0].d == 0 && qa[4].d == 0x7c00 && qa[3].d == 0x7bff); /* 0, inf, 65504 */
    CHECK(qa[1].d < 0x0400 && qa[2].d < 0x0400 && qa[2].d > 0);  /* subnormal */
    for (int k = 0; k < nk; k++) {
        all[k]->quantize_q8_0(x, qb, NB * 32);
        for (int b = 0; b < NB; b++)
            CHECKF(!memcmp(&qa[b], &qb[b], sizeof qa[b]), "%s quantize_q8_0, block of size %g: d %04x vs %04x",
                   all[k]->name, sizes[b], qb[b].d, qa[b].d);
    }
}

/* Exact halves must round away from zero, as roundf and ggml do. */
TEST(kernels_q8_0_rounding_ties) {
    const g8_kernels *all[8];
    int nk = g8_kernels_all(all, 8);
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) + 0.5f; /* with amax scaled to 127 below */
    x[31] = 127.0f;                                            /* d = 1, id = 1: x * id stays x.5 */
    for (int k = 0; k < nk; k++) {
        block_q8_0 q;
        all[k]->quantize_q8_0(x, &q, 32);
        CHECKF(g8_f16_to_f32(q.d) == 1.0f, "%s d", all[k]->name);
        CHECKF(q.qs[0] == -16 && q.qs[15] == -1 && q.qs[16] == 1 && q.qs[17] == 2, "%s ties: %d %d %d %d", all[k]->name,
               q.qs[0], q.qs[15], q.qs[16], q.qs[17]);
    }
}

TEST(quant_half_conversions) {
    CHECK(g8_f16_to_f32(0x3c00) == 1.0f);
    CHECK(g8_f16_to_f32(0xc000) == -2.0f);
    CHECK(g8_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(g8_f16_to_f32(0x0001) == 5.960464477539063e-08f);
    CHECK(isinf(g8_f16_to_f32(0x7c00)));
    CHECK(isnan(g8_f16_to_f32(0x7e00)));
    CHECK(g8_f32_to_f16(1.0f) == 0x3c00);
    CHECK(g8_f32_to_f16(65520.0f) == 0x7c00);     /* rounds to infinity */
    CHECK(g8_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie to even */
    CHECK(g8_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);
    CHECK(g8_f32_to_f16(5.960464477539063e-08f) == 0x0001);
    CHECK(g8_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(g8_f32_to_bf16(1.00390625f) == 0x3f80); /* tie to even */
    CHECK(g8_f32_to_bf16(1.01171875f) == 0x3f82);
    /* every f16 value survives f16 -> f32 -> f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t v = (uint16_t)h;
        if ((v & 0x7c00) == 0x7c00 && (v & 0x3ff)) continue; /* NaN payloads */
        bad += g8_f32_to_f16(g8_f16_to_f32(v)) != v;
    }
    CHECKF(bad == 0, "%d f16 values do not round-trip", bad);
}

/* the vectorized exp, tanh soft-cap and GeGLU against libm */
TEST(kernels_elementwise_match_scalar) {
    const g8_kernels *all[8];
    int nk = g8_kernels_all(all, 8);
    float x[203], y[203], u[203], z[203];
    for (int k = 0; k < nk; k++) {
        for (int i = 0; i < 203; i++) x[i] = y[i] = (frand() * 60.0f) * (i % 7 == 0 ? 3.0f : 1.0f), u[i] = frand();
        all[k]->softcap(203, x, 0.0625f, 50.0f);
        g8_softcap_scalar(203, y, 0.0625f, 50.0f);
        CHECKF(max_abs_diff(x, y, 203) <= 2e-5f, "%s softcap: %g", all[k]->name, max_abs_diff(x, y, 203));
        /* the largest result returned, NaNs passed over: the largest at the front, in the
         * vector part and in the scalar tail, with and without a cap */
        for (int c = 0; c < 6; c++) {
            const int n = c < 3 ? 203 : 200, at = c % 3 == 0 ? 0 : c % 3 == 1 ? 77 : n - 1;
            for (int i = 0; i < n; i++) x[i] = frand() * 40.0f - 30.0f;
            x[at] = 35.0f;
            if (c % 2) x[(at + 5) % n] = NAN; /* (a soft-cap takes a NaN to +-cap in the SIMD tables) */
            const float m = all[k]->softcap(n, x, 0.5f, c % 2 ? 0.0f : 50.0f);
            float want = -INFINITY;
            for (int i = 0; i < n; i++) want = x[i] > want ? x[i] : want;
            CHECKF(m == want && want == x[at], "%s softcap's largest %g, not %g (case %d)", all[k]->name, m, want,
                   c);
        }
        CHECKF(all[k]->softcap(0, x, 1.0f, 0.0f) == -INFINITY, "%s softcap of none", all[k]->name);
        for (int i = 0; i < 203; i++) x[i] = y[i] = frand() * 80.0f - 40.0f;
        float s1 = all[k]->exp_sum(203, x, 40.0f), s2 = g8_exp_sum_scalar(203, y, 40.0f);
        CHECKF(close_rel(s1, s2, 1e-5f), "%s exp_sum %g vs %g", all[k]->name, s1, s2);
        bool ok = true;
        for (int i = 0; i < 203; i++) ok &= fabsf(x[i] - y[i]) <= 3e-7f * y[i] + 1e-30f;
        CHECKF(ok, "%s exp values", all[k]->name);
        for (int i = 0; i < 203; i++) x[i] = z[i] = frand() * 8.0f;
        all[k]->geglu(203, x, u);
        g8_geglu_scalar(203, z, u);
        CHECKF(max_abs_diff(x, z, 203) <= 1e-6f, "%s geglu: %g", all[k]->name, max_abs_diff(x, z, 203));
    }
}

/* attention over f16 rows: scores of a group of heads, then the weighted sum of
 * values, for odd key counts, head sizes that are and are not a multiple of the
 * vector width and groups of 1 (MHA), 2 (Gemma 2), 3 (odd) and 8 (MQA-like) */
TEST(kernels_attention_f16_match_scalar) {
    const g8_kernels *all[8];
    int nk = g8_kernels_all(all, 8);
    const int hds[] = {16, 40, 64, 96, 256}, groups[] = {1, 2, 3, 8}, ns[] = {1, 2, 37, 70};
    static uint16_t kv[70 * 256];
    static float q[8 * 256], s1[8 * 71], s2[8 * 71], o1[8 * 256], o2[8 * 256];
    for (int i = 0; i < 70 * 256; i++) kv[i] = g8_f32_to_f16(frand() * 2 - 1);
    for (int i = 0; i < 8 * 256; i++) q[i] = frand() * 2 - 1;
    for (int k = 0; k < nk; k++)
        for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
            for (size_t b = 0; b < sizeof groups / sizeof groups[0]; b++)
                for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++) {
                    const int hd = hds[a], group = groups[b], n = ns[c];
                    for (int i = 0; i < 8 * 71; i++) s1[i] = s2[i] = -1;
                    all[k]->qk_f16(n, kv, hd, q, group, s1, 71);
                    g8_qk_f16_scalar(n, kv, hd, q, group, s2, 71);
                    float worst = 0;
                    for (int i = 0; i < 8 * 71; i++) worst = fmaxf(worst, fabsf(s1[i] - s2[i]));
                    CHECKF(worst <= 2e-5f * hd, "%s qk_f16 hd=%d group=%d n=%d: %g", all[k]->name, hd, group, n, worst);
                    for (int i = 0; i < 8 * 256; i++) o1[i] = o2[i] = frand();
                    all[k]->wsum_f16(n, s2, 71, kv, hd, group, o1);
                    g8_wsum_f16_scalar(n, s2, 71, kv, hd, group, o2);
                    float big = 1;
                    for (int i = 0; i < 8 * 256; i++) big = fmaxf(big, fabsf(o2[i]));
                    worst = max_abs_diff(o1, o2, 8 * 256);
                    CHECKF(worst <= 1e-6f * big, "%s wsum_f16 hd=%d group=%d n=%d: %g of %g", all[k]->name, hd, group, n,
                           worst, big);
                    if (hd % QK8_0) continue;
                    /* Q8_0 value rows (the q8_0 KV cache) */
                    static block_q8_0 vq[70 * 8];
                    static float vf[70 * 256];
                    for (int i = 0; i < 70 * hd; i++) vf[i] = frand() * 2 - 1;
                    g8_quantize_row_q8_0_ref(vf, vq, 70 * hd);
                    for (int i = 0; i < 8 * 256; i++) o1[i] = o2[i] = frand();
                    /* Q8_0 keys against Q8_0 queries (the q8_0 KV cache's scores) */
                    static block_q8_0 qq[8 * 8];
                    g8_quantize_row_q8_0_ref(q, qq, group * hd);
                    float sq1[8 * 71], sq2[8 * 71];
                    for (int i = 0; i < 8 * 71; i++) sq1[i] = sq2[i] = -1;
                    all[k]->qk_q8_0(n, vq, hd / QK8_0, qq, group, sq1, 71);
                    g8_qk_q8_0_scalar(n, vq, hd / QK8_0, qq, group, sq2, 71);
                    float wq = 0;
                    for (int i = 0; i < 8 * 71; i++) wq = fmaxf(wq, fabsf(sq1[i] - sq2[i]));
                    CHECKF(wq <= 2e-5f * hd, "%s qk_q8_0 hd=%d group=%d n=%d: %g", all[k]->name, hd, group, n, wq);
                    all[k]->wsum_q8_0(n, s2, 71, vq, hd, group, o1);
                    g8_wsum_q8_0_scalar(n, s2, 71, vq, hd, group, o2);
                    big = 1;
                    for (int i = 0; i < 8 * 256; i++) big = fmaxf(big, fabsf(o2[i]));
                    worst = max_abs_diff(o1, o2, 8 * 256);
                    CHECKF(worst <= 1e-6f * big, "%s wsum_q8_0 hd=%d group=%d n=%d: %g of %g", all[k]->name, hd, group,
                           n, worst, big);
                }
}

/* A key's score is the same bits whatever run of keys it is scored in: attention scores a query's
 * keys in blocks whose bounds depend on its tile (a prefill chunk) or not (a decoded token), and the
 * kernels pair keys within a run, so a key paired in one run can be the odd one out in another. */
TEST(kernels_attention_scores_independent_of_run) {
    const g8_kernels *all[8];
    int nk = g8_kernels_all(all, 8);
    enum { N = 41 };
    const int hds[] = {32, 40, 256}, groups[] = {1, 2, 3, 4, 8};
    static uint16_t kv[N * 256];
    static block_q8_0 kq[N * 8], qq[8 * 8];
    static float q[8 * 256], vf[N * 256], whole[8 * N], part[8 * N], wq[8 * N], pq[8 * N];
    for (int i = 0; i < N * 256; i++) vf[i] = frand() * 2 - 1, kv[i] = g8_f32_to_f16(vf[i]);
    for (int i = 0; i < 8 * 256; i++) q[i] = frand() * 2 - 1;
    for (int k = 0; k < nk; k++)
        for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
            for (size_t b = 0; b < sizeof groups / sizeof groups[0]; b++) {
                const int hd = hds[a], group = groups[b], nb = hd / QK8_0;
                const bool q8 = hd % QK8_0 == 0;
                if (q8) {
                    g8_quantize_row_q8_0_ref(vf, kq, N * hd);
                    g8_quantize_row_q8_0_ref(q, qq, group * hd);
                }
                all[k]->qk_f16(N, kv, hd, q, group, whole, N);
                if (q8) all[k]->qk_q8_0(N, kq, nb, qq, group, wq, N);
                int diffs = 0, diffs_q8 = 0;
                for (int j0 = 0; j0 < N; j0 += 3)
                    for (int n = 1; j0 + n <= N; n += 1 + n / 4) {
                        all[k]->qk_f16(n, kv + (size_t)j0 * hd, hd, q, group, part, N);
                        if (q8) all[k]->qk_q8_0(n, kq + (size_t)j0 * nb, nb, qq, group, pq, N);
                        for (int h = 0; h < group; h++)
                            for (int j = 0; j < n; j++) {
                                diffs += memcmp(&part[h * N + j], &whole[h * N + j0 + j], sizeof(float)) != 0;
                                const float *got = &pq[h * N + j], *want = &wq[h * N + j0 + j];
                                diffs_q8 += q8 && memcmp(got, want, sizeof(float)) != 0;
                            }
                    }
                CHECKF(diffs == 0, "%s qk_f16 hd=%d group=%d: %d scores differ by run", all[k]->name, hd,
                       group, diffs);
                CHECKF(diffs_q8 == 0, "%s qk_q8_0 hd=%d group=%d: %d scores differ by run", all[k]->name, hd,
                       group, diffs_q8);
            }
}

#if defined(__x86_64__)
/* n Q8_0 blocks of random int8 over the whole range (-128 in the first) and scales of both signs */
static void random_q8_0_blocks(block_q8_0 *b, int n) {
    for (int i = 0; i < n; i++) {
        b[i].d = g8_f32_to_f16(frand() * 0.01f);
        for (int e = 0; e < QK8_0; e++) b[i].qs[e] = (int8_t)floorf(frand() * 128.0f);
    }
    b[0].qs[0] = -128;
}
#endif

/* The AVX-512 table's attention kernels give the AVX2 ones' bits on f16 and Q8_0 caches
 * (x86_avx512_attn.c): every head count (the four-head, two-head and odd-head paths), odd and even
 * key counts, head sizes that take the scalar path, every int8 (-128 too) in the Q8_0 blocks;
 * skipped where this CPU has no AVX-512. */
TEST(kernels_attention_avx512_same_bits_as_avx2) {
#if defined(__x86_64__)
    const g8_kernels *all[8], *wide = NULL;
    int nk = g8_kernels_all(all, 8);
    for (int k = 0; k < nk; k++)
        if (!strcmp(all[k]->name, "avx512-vnni")) wide = all[k];
    if (!wide) {
        harness_skip("this CPU has no AVX512-VNNI");
        return;
    }
    const g8_kernels *avx2 = &g8_kernels_avx2;
    const int hds[] = {16, 32, 40, 64, 96, 256}, ns[] = {1, 2, 3, 37, 70};
    static uint16_t kv[70 * 256];
    static block_q8_0 kq[70 * 256 / QK8_0], qq[8 * 256 / QK8_0];
    static float q[8 * 256], s1[8 * 71], s2[8 * 71], o1[8 * 256], o2[8 * 256];
    for (int i = 0; i < 70 * 256; i++) kv[i] = g8_f32_to_f16(frand());
    for (int i = 0; i < 8 * 256; i++) q[i] = frand();
    random_q8_0_blocks(kq, 70 * 256 / QK8_0);
    random_q8_0_blocks(qq, 8 * 256 / QK8_0);
    int diffs = 0, cases = 0;
    for (size_t a = 0; a < sizeof hds / sizeof hds[0]; a++)
        for (int group = 1; group <= 8; group++)
            for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++)
                for (int q8 = 0; q8 < 2; q8++) {
                    const int hd = hds[a], n = ns[c];
                    if (q8 && hd % QK8_0) continue;
                    for (int i = 0; i < 8 * 71; i++) s1[i] = s2[i] = -1;
                    if (q8) {
                        wide->qk_q8_0(n, kq, hd / QK8_0, qq, group, s1, 71);
                        avx2->qk_q8_0(n, kq, hd / QK8_0, qq, group, s2, 71);
                    } else {
                        wide->qk_f16(n, kv, hd, q, group, s1, 71);
                        avx2->qk_f16(n, kv, hd, q, group, s2, 71);
                    }
                    const int dq = memcmp(s1, s2, sizeof s1) != 0;
                    for (int i = 0; i < 8 * 256; i++) o1[i] = o2[i] = frand();
                    if (q8) {
                        wide->wsum_q8_0(n, s2, 71, kq, hd, group, o1);
                        avx2->wsum_q8_0(n, s2, 71, kq, hd, group, o2);
                    } else {
                        wide->wsum_f16(n, s2, 71, kv, hd, group, o1);
                        avx2->wsum_f16(n, s2, 71, kv, hd, group, o2);
                    }
                    const int dw = memcmp(o1, o2, sizeof o1) != 0;
                    CHECKF(!dq && !dw, "%s hd=%d group=%d n=%d: scores %s, weighted sum %s",
                           q8 ? "q8_0" : "f16", hd, group, n, dq ? "differ" : "same",
                           dw ? "differs" : "same");
                    diffs += dq + dw;
                    cases++;
                }
    harness_note("%d cases of qk and wsum on f16 and q8_0 caches, %d differ", cases, diffs);
#else
    harness_skip("not x86-64");
#endif
}
