/* bench-kernels.c - GMAC/s of each kernel table's Q8_0 GEMM tile and GEMV, on
 * a weight matrix of a real layer shape (K = 2304, 2048 rows) and 64 tokens. */
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
    return 0;
}
