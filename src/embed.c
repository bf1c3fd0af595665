/* embed.c - the pooling of embeddings: the mean of a prompt's last hidden layers,
 * L2-normalised. One pooling for every front end (the server's endpoints, the CLI,
 * bindings); gemma8_embed (generate.c) runs the prompt and pools with it. */
#include "context.h"

#include <math.h>

void gemma8_pool_add(double *sum, const float *hidden, int32_t n_embd) {
    for (int32_t d = 0; d < n_embd; d++) sum[d] += hidden[d];
}

void gemma8_pool_finish(const double *sum, int32_t n_positions, int32_t n_embd, float *out) {
    double norm = 0;
    for (int32_t d = 0; d < n_embd; d++) {
        out[d] = (float)(sum[d] / G8_MAX(n_positions, 1));
        norm += (double)out[d] * out[d];
    }
    if (norm <= 0) return;
    const double len = sqrt(norm);
    for (int32_t d = 0; d < n_embd; d++) out[d] = (float)(out[d] / len);
}
