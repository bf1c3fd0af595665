/* fuzz-promptcache.c - the prompt-cache loader on arbitrary bytes; a cache that
 * loads must leave the context usable. */
#include "gemma8.h"
#include "fuzz-common.h"

static gemma8_model *model;
static gemma8_context *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    gemma8_model_params mp = gemma8_model_default_params();
    if (gemma8_model_load(fuzz_data("llamacpp-gguf/tiny-a-f32.gguf"), &mp, &model)) abort();
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 8;
    cp.n_threads = 1;
    if (gemma8_context_new(model, &cp, &ctx)) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "g8kv");
    if (gemma8_cache_load(ctx, 0, path) == GEMMA8_OK) {
        int32_t tok = 5;
        if (gemma8_seq_n_past(ctx, 0) < 64 && fuzz_eval(ctx, &tok, 1)) abort();
    }
    gemma8_seq_clear(ctx, 0);
    unlink(path);
    return 0;
}
