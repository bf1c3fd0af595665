/* sampling.h - the steps of the sampling chain, over a candidate list. */
#ifndef G8_SAMPLING_H
#define G8_SAMPLING_H

#include "common.h"

typedef struct g8_cand {
    int32_t id;
    float logit;
    float p;
} g8_cand;

typedef struct g8_cands {
    g8_cand *c;
    size_t n;
    bool sorted;     /* by logit, descending */
} g8_cands;

void g8_cands_sort(g8_cands *cs);
/* p = softmax(logit) over the candidates (sorts them). */
void g8_cands_softmax(g8_cands *cs);

/* history: the last n tokens (oldest first) */
void g8_apply_penalties(g8_cands *cs, const int32_t *history, size_t n, float repeat, float freq, float presence);
void g8_top_k(g8_cands *cs, size_t k);
void g8_top_p(g8_cands *cs, float p, size_t min_keep);
void g8_min_p(g8_cands *cs, float p, size_t min_keep);
void g8_temperature(g8_cands *cs, float t);
/* Draws from the softmax of the logits, in the candidates' order; u uniform in [0, 1). */
int32_t g8_draw(g8_cands *cs, float u);

/* Tokens the reply may still take (its grammar completes within them). */
void g8_sampler_set_budget(gemma8_sampler *s, int32_t tokens);
/* The sampler's grammar is complete: nothing more may follow. */
bool g8_sampler_grammar_done(const gemma8_sampler *s);
/* Time spent finding the tokens the grammar allows, since the last reset. */
double g8_sampler_mask_seconds(const gemma8_sampler *s);

#endif
