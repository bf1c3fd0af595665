/* fuzz-grammar.c - grammars and JSON Schemas from arbitrary bytes: compiled,
 * followed byte by byte, and masked over the real vocabulary for a few tokens.
 * Input: a mode byte (even: GBNF, odd: JSON Schema), the text up to a NUL, then
 * bytes to follow and token choices. */
#include "gemma8.h"
#include "fuzz-common.h"
#include "grammar.h"

#include <stdlib.h>
#include <string.h>

static gemma8_model *model;
static uint8_t *mask;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    model = fuzz_load_fullvocab();
    mask = malloc((256000 + 7) / 8 + 64);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const uint8_t *nul = memchr(data + 1, 0, size - 1);
    size_t text_len = nul ? (size_t)(nul - data - 1) : size - 1;
    char *text = malloc(text_len + 1);
    memcpy(text, data + 1, text_len);
    text[text_len] = 0;
    const uint8_t *rest = nul ? nul + 1 : data + size;
    size_t n_rest = (size_t)(data + size - rest);
    gemma8_grammar *g = NULL;
    gemma8_status st = data[0] & 1 ? gemma8_grammar_from_json_schema(text, &g) : gemma8_grammar_from_gbnf(text, &g);
    free(text);
    if (st) {
        if (g || !gemma8_last_error()[0]) abort(); /* a failure says why and leaves nothing */
        return 0;
    }
    /* the bytes, one by one: the automaton never loops or breaks */
    g8_garena a = {0};
    g8_gstate cur, next;
    bool live = g8_gstate_start(g, &a, &cur);
    for (size_t i = 0; live && i < n_rest; i++) {
        live = g8_gstate_byte(g, &a, &cur, rest[i], &next);
        if (live) cur = next, g8_gstate_distance(g, &a, &cur);
    }
    g8_garena_free(&a);
    /* a few tokens through a matcher: the chosen one if allowed, else the first allowed */
    gemma8_matcher *m = NULL;
    if (model && gemma8_matcher_new(model, g, &m) == GEMMA8_OK) {
        for (size_t k = 0; k < 4 && !gemma8_matcher_done(m); k++) {
            gemma8_matcher_set_budget(m, k + 1 < n_rest ? rest[k] : 0);
            if (gemma8_matcher_mask(m, mask)) break;
            int32_t want = k < n_rest ? (int32_t)(rest[k] * 997u % 256000u) : 0, pick = -1;
            for (int32_t id = 0; id < 256000 && pick < 0; id++) {
                int32_t t = (want + id) % 256000;
                if (mask[t >> 3] >> (t & 7) & 1) pick = t;
            }
            if (pick < 0) break;
            if (gemma8_matcher_accept(m, pick)) abort(); /* what the mask allows is accepted */
        }
        gemma8_matcher_free(m);
    }
    gemma8_grammar_free(g);
    return 0;
}
