/* fuzz-gguf.c - the GGUF reader, the model loader and the LoRA adapter loader
 * (against tiny-a, llama.cpp's file of it) on arbitrary bytes; a model that loads
 * is also run on two tokens, an adapter that loads on two tokens of tiny-a. */
#include "gemma8.h"
#include "fuzz-common.h"
#include "gguf.h"

/* tiny-a and a context of it, made once (NULL when the test data is not there) */
static gemma8_context *base_context(const gemma8_model **model) {
    static gemma8_model *m;
    static gemma8_context *ctx;
    static bool tried;
    if (!tried) {
        tried = true;
        gemma8_model_params mp = gemma8_model_default_params();
        gemma8_context_params cp = gemma8_context_default_params();
        cp.n_ctx = 8;
        cp.n_threads = 1;
        if (gemma8_model_load("tests/data/llamacpp-gguf/tiny-a-f32.gguf", &mp, &m) == GEMMA8_OK &&
            gemma8_context_new(m, &cp, &ctx) != GEMMA8_OK)
            ctx = NULL;
    }
    *model = m;
    return ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "gguf");
    const gemma8_model *base;
    gemma8_context *base_ctx = base_context(&base);
    gemma8_lora *lora;
    if (base_ctx && gemma8_lora_load(base, path, &lora) == GEMMA8_OK) {
        const gemma8_lora *set[1] = {lora};
        const float scale = 1.0f;
        int32_t tok[2] = {2, 5};
        if (gemma8_seq_set_lora(base_ctx, 0, set, &scale, 1) == GEMMA8_OK) fuzz_eval(base_ctx, tok, 2);
        gemma8_seq_set_lora(base_ctx, 0, NULL, NULL, 0);
        gemma8_lora_free(lora);
    }
    gguf_file f;
    if (g8_gguf_open(path, &f) == GEMMA8_OK) g8_gguf_close(&f);
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
            fuzz_eval(ctx, tok, 2);
            gemma8_context_free(ctx);
        }
        gemma8_model_free(m);
    }
    unlink(path);
    return 0;
}
