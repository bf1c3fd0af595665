/* fuzz-tokenizer.c - encode arbitrary bytes, decode arbitrary ids, stream them,
 * with the real 256000-piece Gemma vocabulary. */
#include "gemma8.h"
#include "fuzz-common.h"
#include "model.h"

#include <string.h>

static gemma8_model *model;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    model = fuzz_load_fullvocab();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    bool special = data[0] & 1;
    int32_t *ids = malloc((size + 2) * sizeof *ids), n;
    if (gemma8_tokenize(model, (const char *)data + 1, size - 1, data[0] & 2, special, ids, (int32_t)size + 2, &n))
        abort(); /* never more tokens than bytes + bos */
    /* decoding what was encoded gives the text back (no special parsing, no bos) */
    if (!special && !(data[0] & 2)) {
        size_t len;
        char *text = malloc(4 * size + 16);
        if (gemma8_detokenize(model, ids, n, false, text, 4 * size + 16, &len)) abort();
        bool valid_utf8 = true; /* only valid UTF-8 can round-trip byte for byte */
        for (size_t i = 1; i < size; i++)
            if (data[i] >= 0x80) valid_utf8 = false;
        if (valid_utf8 && (len != size - 1 || memcmp(text, data + 1, len))) abort();
        free(text);
    }
    /* arbitrary ids: decode and stream (ids outside the vocabulary are refused) */
    int32_t m = (int32_t)(size / 4);
    const int32_t *raw = (const int32_t *)data;
    int32_t *rid = malloc(((size_t)m + 1) * sizeof *rid);
    for (int32_t i = 0; i < m; i++) {
        int32_t v;
        memcpy(&v, raw + i, 4);
        rid[i] = (int32_t)((uint32_t)v % 256100u);
    }
    size_t need;
    gemma8_status st = gemma8_detokenize(model, rid, m, data[0] & 4, NULL, 0, &need);
    if (st == GEMMA8_ERR_BUFFER_TOO_SMALL) {
        char *text = malloc(need + 1);
        gemma8_detokenize(model, rid, m, data[0] & 4, text, need + 1, &need);
        free(text);
    }
    g8_stream s = {0};
    char *out = NULL;
    size_t len = 0;
    for (int32_t i = 0; i < m; i++)
        if (rid[i] < model->vocab.n) g8_stream_feed(&model->vocab, &s, rid[i], &out, &len);
    g8_stream_flush(&s, &out, &len);
    free(out);
    free(rid);
    free(ids);
    return 0;
}
