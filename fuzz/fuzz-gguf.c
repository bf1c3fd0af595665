/* fuzz-gguf.c - the GGUF reader and the model loader on arbitrary bytes; a file
 * that loads is also run on two tokens. */
#include "gemma8.h"
#include "fuzz-common.h"
#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "gguf");
    gguf_file f;
    if (gguf_open(path, &f) == GEMMA8_OK) gguf_close(&f);
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (gemma8_model_load(path, &mp, &m) == GEMMA8_OK) {
        gemma8_model_info info = gemma8_model_get_info(m);
        gemma8_context_params cp = gemma8_context_default_params();
        cp.n_ctx = 8;
        cp.n_threads = 1;
        gemma8_context *ctx;
        /* only small shapes are run: the fuzzer may set any dimension */
        if ((uint64_t)info.n_embd * info.n_ff < (1u << 22) && info.n_vocab < (1 << 20) &&
            gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK) {
            int32_t tok[2] = {0, info.n_vocab - 1};
            gemma8_eval(ctx, tok, 2, NULL);
            gemma8_context_free(ctx);
        }
        gemma8_model_free(m);
    }
    unlink(path);
    return 0;
}
