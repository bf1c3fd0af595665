/* prog.c - a program linked against a ggml-like library first and libgemma8 second:
 * it converts a checkpoint (the GGUF writer, safetensors), loads the GGUF file
 * (the reader) and evaluates a prompt, through the public API only.
 *   prog HF_DIR OUT.gguf */
#include "gemma8.h"

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    gemma8_convert_params cp = gemma8_convert_default_params();
    cp.type = GEMMA8_TYPE_F32;
    if (gemma8_convert_hf(argv[1], argv[2], &cp)) {
        fprintf(stderr, "convert: %s\n", gemma8_last_error());
        return 1;
    }
    gemma8_model *model;
    gemma8_model_params mp = gemma8_model_default_params();
    if (gemma8_model_load(argv[2], &mp, &model)) {
        fprintf(stderr, "load: %s\n", gemma8_last_error());
        return 1;
    }
    gemma8_context *ctx;
    gemma8_context_params xp = gemma8_context_default_params();
    xp.n_ctx = 64;
    xp.n_threads = 1;
    if (gemma8_context_new(model, &xp, &ctx)) {
        fprintf(stderr, "context: %s\n", gemma8_last_error());
        return 1;
    }
    const int32_t prompt[] = {2, 17, 43};
    const gemma8_batch b = gemma8_batch_tokens(0, prompt, 3);
    const gemma8_status st = gemma8_decode(ctx, &b);
    const int32_t n_vocab = gemma8_model_get_info(model).n_vocab;
    const float *logits = gemma8_get_logits(ctx, -1);
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    printf("ok: eval %s, argmax %d\n", gemma8_status_str(st), best);
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return st != GEMMA8_OK;
}
