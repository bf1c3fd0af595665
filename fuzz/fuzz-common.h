/* fuzz-common.h - helpers for the libFuzzer harnesses. */
#ifndef G8_FUZZ_COMMON_H
#define G8_FUZZ_COMMON_H

#include "gemma8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Writes the input to a per-process file and returns its path (the loaders take paths). */
static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *ext) {
    static char path[256];
    snprintf(path, sizeof path, "/tmp/gemma8-fuzz-%d.%s", (int)getpid(), ext);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return path;
}

/* Decodes n tokens on sequence 0. */
static inline gemma8_status fuzz_eval(gemma8_context *ctx, const int32_t *tokens, int32_t n) {
    const gemma8_batch b = gemma8_batch_tokens(0, tokens, n);
    return gemma8_decode(ctx, &b);
}

/* A model under the repository's test data (fuzzers run from the repository root). */
static inline const char *fuzz_data(const char *rel) {
    static char path[512];
    const char *d = getenv("GEMMA8_TESTDATA");
    snprintf(path, sizeof path, "%s/%s", d ? d : "tests/data", rel);
    return path;
}

/* The real 256000-piece vocabulary (llama.cpp's fullvocab GGUF), loaded once. */
static inline struct gemma8_model *fuzz_load_fullvocab(void) {
    struct gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (gemma8_model_load(fuzz_data("llamacpp-gguf/fullvocab-f16.gguf"), &mp, &m)) abort();
    return m;
}

#endif
