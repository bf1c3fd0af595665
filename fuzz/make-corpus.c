/* make-corpus.c - writes prompt-cache seeds for fuzz-promptcache (run once;
 * the files live in fuzz/corpus/promptcache). */
#include "gemma8.h"

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (gemma8_model_load(argv[1], &mp, &m)) return 1;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 8;
    gemma8_context *ctx;
    if (gemma8_context_new(m, &cp, &ctx)) return 1;
    int32_t tok[20];
    for (int i = 0; i < 20; i++) tok[i] = (i * 7 + 2) % 512;
    char path[512];
    for (int n = 1; n <= 20; n += 19) {
        gemma8_seq_clear(ctx, 0);
        const gemma8_batch b = gemma8_batch_tokens(0, tok, n);
        gemma8_decode(ctx, &b);
        snprintf(path, sizeof path, "%s/cache-%d.g8kv", argv[2], n);
        if (gemma8_cache_save(ctx, 0, path)) return 1;
    }
    gemma8_context_free(ctx);
    gemma8_model_free(m);
    return 0;
}
