/* bench-kernels.c - GMAC/s of each kernel table's Q8_0 GEMM (64 tokens) and
 * GEMV (one token) on packed weights of a real layer shape (K = 2304, 2048
 * rows), and the GEMV over a matrix larger than the caches (K = 2304, 131072
 * rows, 316 MB: read from memory, as in decode; GB/s of packed weights); the
 * same from memory for Q4_0 at K = 2304 and 9216 (compare with `gemma8 bench
 * --membw`, a plain read of 1 GiB on the same threads); the few-token GEMV (a
 * batch's decode step) from L2; then
 * the decode attention kernels (scores, weighted sum of values) over 4096 f16
 * keys of one head (head_dim 256, 2 query heads), cycling through 16 heads'
 * caches (64 MiB) so that the rows come from memory as in decode. */
#include "kernels.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* y = W x for T tokens, W packed (groups of 16 rows of gb bytes), G8_GEMM_T tokens at a time */
static void gemm_with(g8_gemm_q8_0_fn fn, size_t gb, int nb, const uint8_t *w, int R, const block_q8_0 *xq,
                      const int32_t *xs, int T, float *y) {
    for (int r = 0; r < R; r += 16)
        for (int t = 0; t < T; t += G8_GEMM_T) {
            const int tn = T - t < G8_GEMM_T ? T - t : G8_GEMM_T;
            fn(nb, w + (size_t)(r / 16) * gb, xq + (size_t)t * nb, xs + (size_t)t * nb, tn, y + (size_t)t * R + r,
               (size_t)R);
        }
}

static void gemm(const g8_kernels *kt, int nb, const uint8_t *w, int R, const block_q8_0 *xq, const int32_t *xs,
                 int T, float *y) {
    gemm_with(kt->gemm_q8_0, g8_pack_group_bytes(nb), nb, w, R, xq, xs, T, y);
}

/* one thread's half of a GEMV over the large matrix */
typedef struct half {
    g8_gemm_q8_0_fn fn;
    size_t gb;
    int nb, R;
    const uint8_t *w;
    const block_q8_0 *xq;
    const int32_t *xs;
    float *y;
} half;

static void *gemv_half(void *arg) {
    const half *h = arg;
    gemm_with(h->fn, h->gb, h->nb, h->w, h->R, h->xq, h->xs, 1, h->y);
    return NULL;
}

/* seconds for a GEMV of the large matrix on two threads, each streaming half of it */
static double gemv_pair(g8_gemm_q8_0_fn fn, size_t gb, int nb, const uint8_t *big, int RB, const block_q8_0 *xq,
                        const int32_t *xs, float *y) {
    half h[2] = {{fn, gb, nb, RB / 2, big, xq, xs, y},
                 {fn, gb, nb, RB / 2, big + gb * (size_t)(RB / 32), xq, xs, y + RB / 2}};
    pthread_t th;
    double t0 = now();
    pthread_create(&th, NULL, gemv_half, &h[1]);
    gemv_half(&h[0]);
    pthread_join(th, NULL);
    return now() - t0;
}

int main(void) {
    const int K = 2304, R = 2048, T = 64, nb = K / 32, RB = 131072;
    float *x = malloc(sizeof(float) * K * T);
    block_q8_0 *w = malloc(sizeof(block_q8_0) * nb * R), *xq = malloc(sizeof(block_q8_0) * nb * T);
    int32_t *xs = calloc((size_t)nb * T, sizeof(int32_t));
    float *y = malloc(sizeof(float) * (size_t)RB * T);
    unsigned s = 1;
    for (int i = 0; i < K * T; i++) s = s * 1664525u + 1013904223u, x[i] = (float)(s >> 8) / (1 << 24) - 0.5f;
    const g8_kernels *ref = g8_kernels_scalar();
    for (int r = 0; r < R; r++) ref->quantize_q8_0(x + (size_t)(r % T) * K, w + (size_t)r * nb, K);
    const size_t gb = g8_pack_group_bytes(nb);
    uint8_t *pw = aligned_alloc(64, gb * (R / 16));
    const size_t big_bytes = (gb * (RB / 16) + (2 << 20) - 1) / (2 << 20) * (2 << 20);
    uint8_t *big = aligned_alloc(2 << 20, big_bytes);
#ifdef MADV_HUGEPAGE
    madvise(big, big_bytes, MADV_HUGEPAGE); /* as the engine's packed weights */
#endif
    g8_pack_q8_0(w, R, nb, 0, R / 16, pw);
    for (int g = 0; g < RB / 16; g++) memcpy(big + (size_t)g * gb, pw + (size_t)(g % (R / 16)) * gb, gb);
    const g8_kernels *all[8];
    int n = g8_kernels_all(all, 8);
    for (int k = 0; k < n; k++) {
        const g8_kernels *kt = all[k];
        kt->quantize_q8_0(x, xq, K * T);
        for (int i = 0; i < nb * T; i++) {
            int32_t sum = 0;
            for (int j = 0; j < 32; j++) sum += xq[i].qs[j];
            xs[i] = -128 * sum;
        }
        const int reps = kt == ref ? 1 : 5;
        double best = 1e9, best2 = 1e9, best3 = 1e9, best4 = 1e9;
        for (int rep = 0; rep < reps; rep++) {
            double t0 = now();
            gemm(kt, nb, pw, R, xq, xs, T, y);
            double t1 = now();
            for (int i = 0; i < 20; i++) gemm(kt, nb, pw, R, xq, xs, 1, y);
            double t2 = now();
            gemm(kt, nb, big, RB, xq, xs, 1, y);
            double t3 = now();
            best = t1 - t0 < best ? t1 - t0 : best;
            best2 = (t2 - t1) / 20 < best2 ? (t2 - t1) / 20 : best2;
            best3 = t3 - t2 < best3 ? t3 - t2 : best3;
            const double t4 = gemv_pair(kt->gemm_q8_0, gb, nb, big, RB, xq, xs, y);
            best4 = t4 < best4 ? t4 : best4;
        }
        printf("%-12s GEMM (64 tokens): %6.1f GMAC/s   GEMV from L2: %6.1f GMAC/s   GEMV from memory: %6.1f GMAC/s"
               " = %5.1f GB/s  (1 thread), %5.1f GB/s (2 threads)\n",
               kt->name, (double)K * R * T / best / 1e9, (double)K * R / best2 / 1e9, (double)K * RB / best3 / 1e9,
               (double)gb * (RB / 16) / best3 / 1e9, (double)gb * (RB / 16) / best4 / 1e9);
        /* a batch's decode step: T tokens by the groups the table's few-token GEMV takes at once, over
         * 32 groups (1.3 MB) that stay in L2: the GB/s of weights one thread can take in when memory
         * does not hold it back (compare with half of `gemma8 bench --membw`) */
        for (int T = 2; kt->gemv_few_q8_0 && T <= kt->few_tokens; T += 2) {
            enum { GROUPS = 32, LOOPS = 100 };
            const int G = kt->few_groups;
            double bestf = 1e9;
            for (int rep = 0; rep < 3; rep++) {
                const double t0 = now();
                for (int l = 0; l < LOOPS; l++)
                    for (int g0 = 0; g0 + G <= GROUPS; g0 += G) {
                        const void *grp[4];
                        float *yg[4];
                        size_t ld[4];
                        for (int i = 0; i < G; i++) {
                            grp[i] = pw + (size_t)(g0 + i) * gb;
                            yg[i] = y + (size_t)(g0 + i) * 16;
                            ld[i] = (size_t)R;
                        }
                        kt->gemv_few_q8_0(G, nb, grp, xq, xs, T, yg, ld);
                    }
                const double t = now() - t0;
                bestf = t < bestf ? t : bestf;
            }
            printf("%-12s Q8_0 few-token GEMV from L2, %d tokens by %d groups: %5.1f GB/s of weights (1 thread)\n",
                   kt->name, T, G, (double)gb * GROUPS * LOOPS / bestf / 1e9);
        }
    }
    free(w);
    free(pw);

    /* Q4_0, one token from memory on two threads, as decode reads it: the same bytes as above in
     * matrices of K = 2304 (q/k/v, o, gate/up of 2B) and 9216 (its down projection) */
    for (int ki = 0; ki < 2; ki++) {
        const int K4 = ki ? 9216 : 2304, nb4 = K4 / 32;
        const size_t gb4 = g8_pack4_group_bytes(nb4);
        const int R4 = (int)(big_bytes / gb4 / 2 * 32), RS = 64; /* rows of the big matrix, of a sample */
        block_q4_0 *w4 = malloc(sizeof(block_q4_0) * (size_t)nb4 * RS);
        float *row = malloc(sizeof(float) * K4);
        for (int r = 0; r < RS; r++) {
            for (int i = 0; i < K4; i++)
                s = s * 1664525u + 1013904223u, row[i] = (float)(s >> 8) / (1 << 24) - 0.5f;
            g8_quantize_row_q4_0_ref(row, w4 + (size_t)r * nb4, K4);
        }
        g8_pack_q4_0(w4, RS, nb4, 0, RS / 16, big);
        for (int g = RS / 16; g < R4 / 16; g++)
            memcpy(big + (size_t)g * gb4, big + (size_t)(g % (RS / 16)) * gb4, gb4);
        block_q8_0 *x4 = malloc(sizeof(block_q8_0) * nb4);
        int32_t *xs4 = malloc(sizeof(int32_t) * nb4);
        ref->quantize_q8_0(row, x4, K4);
        for (int b = 0; b < nb4; b++) {
            int32_t sum = 0;
            for (int j = 0; j < 32; j++) sum += x4[b].qs[j];
            xs4[b] = -128 * sum;
        }
        for (int k = 1; k < n; k++) { /* the scalar table would take minutes */
            double best = 1e9;
            for (int rep = 0; rep < 5; rep++) {
                const double t = gemv_pair(all[k]->gemm_q4_0, gb4, nb4, big, R4, x4, xs4, y);
                best = t < best ? t : best;
            }
            printf("%-12s Q4_0 GEMV from memory, K = %d: %5.1f GB/s (2 threads)\n", all[k]->name, K4,
                   (double)gb4 * (R4 / 16) / best / 1e9);
        }
        free(w4);
        free(row);
        free(x4);
        free(xs4);
    }
    free(x);
    free(xq);
    free(xs);
    free(y);
    free(big);

    enum { NK = 4096, HD = 256, GROUP = 2, HEADS = 16 };
    uint16_t *kv = malloc(sizeof(uint16_t) * (size_t)HEADS * NK * HD);
    float *q = malloc(sizeof(float) * GROUP * HD), *sc = malloc(sizeof(float) * GROUP * NK), *o = malloc(sizeof(float) * GROUP * HD);
    for (size_t i = 0; i < (size_t)HEADS * NK * HD; i++) s = s * 1664525u + 1013904223u, kv[i] = (uint16_t)(0x3000 + (s >> 22));
    for (int i = 0; i < GROUP * HD; i++) q[i] = 0.01f * (float)(i % 7);
    for (int k = 0; k < n; k++) {
        const g8_kernels *kt = all[k];
        double tq = 0, tv = 0;
        for (int rep = 0; rep < 3 * HEADS; rep++) {
            const uint16_t *head = kv + (size_t)(rep % HEADS) * NK * HD;
            const uint16_t *vhead = kv + (size_t)((rep + HEADS / 2) % HEADS) * NK * HD;
            double t0 = now();
            kt->qk_f16(NK, head, HD, q, GROUP, sc, NK);
            double t1 = now();
            for (int i = 0; i < GROUP * NK; i++) sc[i] = 1.0f / NK;
            for (int i = 0; i < GROUP * HD; i++) o[i] = 0;
            double t2 = now();
            kt->wsum_f16(NK, sc, NK, vhead, HD, GROUP, o);
            tq += t1 - t0, tv += now() - t2;
        }
        const double bytes = 3.0 * HEADS * NK * HD * 2;
        printf("%-14s attention, %d keys x %d, group %d: scores %5.1f GB/s, values %5.1f GB/s of f16 rows  (1 thread)\n",
               kt->name, NK, HD, GROUP, bytes / tq / 1e9, bytes / tv / 1e9);
    }
    free(kv);
    free(q);
    free(sc);
    free(o);
    return 0;
}
