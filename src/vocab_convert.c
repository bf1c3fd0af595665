/* vocab_convert.c - tokenizer metadata for the converter. */
#include "vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gemma8_status placeholder(gguf_writer *w, int n_vocab) {
    char **tokens = g8_calloc((size_t)n_vocab, sizeof(char *), "vocabulary");
    float *scores = g8_calloc((size_t)n_vocab, sizeof(float), "vocabulary");
    int32_t *types = g8_calloc((size_t)n_vocab, sizeof(int32_t), "vocabulary");
    gemma8_status st = GEMMA8_OK;
    if (!tokens || !scores || !types) {
        st = GEMMA8_ERR_NOMEM;
        goto done;
    }
    static const char *const control[4] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    for (int i = 0; i < n_vocab; i++) {
        char buf[32];
        if (i < 4) {
            snprintf(buf, sizeof buf, "%s", control[i]);
            types[i] = G8_TOKEN_CONTROL;
        } else if (i < 4 + 256) {
            snprintf(buf, sizeof buf, "<0x%02X>", i - 4);
            types[i] = G8_TOKEN_BYTE;
        } else {
            snprintf(buf, sizeof buf, "[filler%d]", i);
            types[i] = G8_TOKEN_NORMAL;
        }
        if (!(tokens[i] = strdup(buf))) {
            st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    gguf_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, (uint64_t)n_vocab);
    gguf_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, scores, (uint64_t)n_vocab);
    gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, types, (uint64_t)n_vocab);
    gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 2);
    gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 1);
    gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 3);
    gguf_set_u32(w, "tokenizer.ggml.padding_token_id", 0);
    gguf_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    gguf_set_bool(w, "tokenizer.ggml.add_eos_token", false);
done:
    if (tokens)
        for (int i = 0; i < n_vocab; i++) free(tokens[i]);
    free(tokens);
    free(scores);
    free(types);
    return st;
}

gemma8_status g8_vocab_convert(gguf_writer *w, const char *dir, int n_vocab) {
    (void)dir;
    return placeholder(w, n_vocab);
}
