/* bench-kernels.c - GMAC/s of each kernel table's Q8_0 GEMM tile and GEMV, on
 * a weight matrix of a real layer shape (K = 2304, 2048 rows) and 64 tokens;
 * then the decode attention kernels (scores, weighted sum of values) over 4096
 * f16 keys of one head (head_dim 256, 2 query heads), cycling through 16 heads'
 * caches (64 MiB) so that the rows come from memory as in decode. */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
    const int K = 2304, R = 2048, T = 64, nb = K / 32;
    float *x = malloc(sizeof(float) * K * T);
    block_q8_0 *w = malloc(sizeof(block_q8_0) * nb * R), *xq = malloc(sizeof(block_q8_0) * nb * T);
    float *y = malloc(sizeof(float) * R * T);
    unsigned s = 1;
    for (int i = 0; i < K * T; i++) s = s * 1664525u + 1013904223u, x[i] = (float)(s >> 8) / (1 << 24) - 0.5f;
    const g8_kernels *ref = g8_kernels_scalar();
    for (int r = 0; r < R; r++) ref->quantize_q8_0(x + (size_t)(r % T) * K, w + (size_t)r * nb, K);
    const g8_kernels *all[8];
    int n = g8_kernels_all(all, 8);
    for (int k = 0; k < n; k++) {
        const g8_kernels *kt = all[k];
        kt->quantize_q8_0(x, xq, K * T);
        int reps = kt == ref ? 1 : 5;
        double best = 1e9;
        for (int rep = 0; rep < reps; rep++) {
            double t0 = now();
            for (int r = 0; r < R; r += 4)
                for (int t = 0; t < T; t += 4)
                    kt->tile_q8_0(nb, w + (size_t)r * nb, nb, xq + (size_t)t * nb, nb, y + (size_t)t * R + r, R);
            double dt = now() - t0;
            if (dt < best) best = dt;
        }
        double best2 = 1e9;
        for (int rep = 0; rep < reps; rep++) {
            double t0 = now();
            for (int r = 0; r < R; r++) y[r] = kt->dot_q8_0(nb, w + (size_t)r * nb, xq);
            double dt = now() - t0;
            if (dt < best2) best2 = dt;
        }
        printf("%-14s GEMM tile 4x4: %6.1f GMAC/s   GEMV (L2-resident): %6.1f GMAC/s  (1 thread)\n", kt->name,
               (double)K * R * T / best / 1e9, (double)K * R / best2 / 1e9);
    }
    free(x);
    free(w);
    free(xq);
    free(y);

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
