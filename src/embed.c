/* embed.c - embeddings: the mean of a prompt's last hidden layers, L2-normalised.
 * One pooling for every front end (the server's endpoints, the CLI, bindings). */
#include "context.h"

#include <math.h>
#include <string.h>

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
    const double inv = 1.0 / sqrt(norm);
    for (int32_t d = 0; d < n_embd; d++) out[d] = (float)(out[d] * inv);
}

gemma8_status gemma8_embed(gemma8_context *ctx, int32_t seq, const int32_t *tokens, int32_t n, float *out) {
    if (!ctx || !tokens || n <= 0 || !out)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "gemma8_embed needs a context, tokens and an output");
    gemma8_generate_params p = gemma8_generate_default_params();
    p.seq = seq;
    p.embed = true;
    gemma8_gen *g;
    gemma8_status st = gemma8_gen_begin(ctx, tokens, n, &p, &g);
    if (st) return st;
    bool done = false;
    while (!done) gemma8_gen_step(g, &done);
    const float *v = gemma8_gen_embedding(g);
    if (v) memcpy(out, v, (size_t)ctx->model->hp.n_embd * sizeof(float));
    st = gemma8_gen_end(g, NULL);
    gemma8_seq_clear(ctx, seq);
    return st;
}
