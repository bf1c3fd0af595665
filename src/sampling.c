/* sampling.c - the sampling chain (llama.cpp's order and semantics). */
#include "sampling.h"

#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct gemma8_sampler {
    gemma8_sampler_params p;
    g8_cands cands;
    size_t cap;
    int32_t *history;       /* ring of the last repeat_last_n tokens */
    size_t hist_n, hist_pos, hist_cap;
    uint64_t rng;
    float mu;               /* mirostat state */
    gemma8_matcher *matcher;/* the grammar, if any */
    uint8_t *mask;          /* its allowed tokens, a bit each */
    gemma8_logit_bias *bias; /* p.logit_bias, copied, by token */
    bool off_grammar;       /* a token was accepted that the grammar refused */
    double mask_seconds;
};

gemma8_sampler_params gemma8_sampler_default_params(void) {
    gemma8_sampler_params p = {
        .temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .min_p = 0.0f, .repeat_penalty = 1.1f,
        .repeat_last_n = 64, .frequency_penalty = 0.0f, .presence_penalty = 0.0f, .mirostat = 0,
        .mirostat_tau = 5.0f, .mirostat_eta = 0.1f, .seed = 42,
    };
    return p;
}

static int by_logit_desc(const void *a, const void *b) {
    const g8_cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

void g8_cands_sort(g8_cands *cs) {
    if (!cs->sorted) qsort(cs->c, cs->n, sizeof *cs->c, by_logit_desc);
    cs->sorted = true;
}

void g8_cands_softmax(g8_cands *cs) {
    g8_cands_sort(cs);
    if (!cs->n) return;
    double sum = 0;
    const float m = cs->c[0].logit;
    for (size_t i = 0; i < cs->n; i++) sum += (cs->c[i].p = expf(cs->c[i].logit - m));
    for (size_t i = 0; i < cs->n; i++) cs->c[i].p = (float)(cs->c[i].p / sum);
}

/* The candidate of a token: direct when the list is still in id order. */
static g8_cand *find_cand(g8_cands *cs, int32_t id) {
    if (id >= 0 && (size_t)id < cs->n && cs->c[id].id == id) return &cs->c[id];
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].id == id) return &cs->c[i];
    return NULL;
}

void g8_apply_penalties(g8_cands *cs, const int32_t *history, size_t n, float repeat, float freq, float presence) {
    if (!n || (repeat == 1.0f && freq == 0.0f && presence == 0.0f)) return;
    for (size_t k = 0; k < n; k++) {
        bool seen = false; /* each distinct token once */
        for (size_t j = 0; j < k && !seen; j++) seen = history[j] == history[k];
        if (seen) continue;
        size_t count = 0;
        for (size_t j = k; j < n; j++) count += history[j] == history[k];
        g8_cand *c = find_cand(cs, history[k]);
        if (!c) continue;
        c->logit = c->logit <= 0 ? c->logit * repeat : c->logit / repeat;
        c->logit -= (float)count * freq + presence;
    }
    cs->sorted = false;
}

static bool cand_before(const g8_cand *a, const g8_cand *b) {
    return a->logit != b->logit ? a->logit > b->logit : a->id < b->id;
}

/* The k best first (sorted), in O(n log k): a min-heap of the best k so far. */
void g8_top_k(g8_cands *cs, size_t k) {
    if (k == 0 || k >= cs->n) return;
    if (cs->sorted) {
        cs->n = k;
        return;
    }
    g8_cand *c = cs->c;
    for (size_t i = 0; i < cs->n; i++) {
        if (i >= k && !cand_before(&c[i], &c[0])) continue; /* not better than the worst kept */
        g8_cand x = c[i];
        size_t n = i < k ? i + 1 : k, pos = i < k ? i : 0;
        if (i < k) { /* sift up */
            while (pos > 0 && cand_before(&c[(pos - 1) / 2], &x)) c[pos] = c[(pos - 1) / 2], pos = (pos - 1) / 2;
        } else { /* replace the root, sift down */
            for (;;) {
                size_t l = 2 * pos + 1, r = l + 1, m = pos;
                const g8_cand *cm = &x;
                if (l < n && cand_before(cm, &c[l])) m = l, cm = &c[l];
                if (r < n && cand_before(cm, &c[r])) m = r;
                if (m == pos) break;
                c[pos] = c[m];
                pos = m;
            }
        }
        c[pos] = x;
    }
    cs->n = k;
    cs->sorted = false;
    g8_cands_sort(cs);
}

void g8_top_p(g8_cands *cs, float p, size_t min_keep) {
    if (p >= 1.0f) return;
    g8_cands_softmax(cs);
    double cum = 0;
    for (size_t i = 0; i < cs->n; i++) {
        cum += cs->c[i].p;
        if (cum >= p && i + 1 >= min_keep) {
            cs->n = i + 1;
            return;
        }
    }
}

void g8_min_p(g8_cands *cs, float p, size_t min_keep) {
    if (p <= 0.0f || !cs->n) return;
    g8_cands_softmax(cs);
    const float bar = p * cs->c[0].p;
    size_t keep = 1;
    while (keep < cs->n && (cs->c[keep].p >= bar || keep < min_keep)) keep++;
    cs->n = keep;
}

void g8_temperature(g8_cands *cs, float t) {
    for (size_t i = 0; i < cs->n; i++) cs->c[i].logit /= t;
}

/* In the candidates' order as they are: a draw needs no sort (a full vocabulary
 * of 256000 would cost far more than the forward pass of a small model). */
int32_t g8_draw(g8_cands *cs, float u) {
    if (!cs->n) return -1;
    float m = cs->c[0].logit;
    for (size_t i = 1; i < cs->n; i++) m = cs->c[i].logit > m ? cs->c[i].logit : m;
    double sum = 0;
    for (size_t i = 0; i < cs->n; i++) sum += (cs->c[i].p = expf(cs->c[i].logit - m));
    const double target = (double)u * sum;
    double cum = 0;
    for (size_t i = 0; i < cs->n; i++) {
        cum += cs->c[i].p;
        if (target < cum) return cs->c[i].id;
    }
    return cs->c[cs->n - 1].id;
}

/* ---- the sampler --------------------------------------------------------- */

static uint32_t next_u32(gemma8_sampler *s) { /* xorshift64* */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (uint32_t)((s->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static float next_uniform(gemma8_sampler *s) { return (float)(next_u32(s) >> 8) / (float)(1 << 24); }

void gemma8_sampler_reset(gemma8_sampler *s) {
    s->hist_n = s->hist_pos = 0;
    s->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)s->p.seed * 0xbf58476d1ce4e5b9ull);
    if (!s->rng) s->rng = 1;
    s->mu = 2.0f * s->p.mirostat_tau;
    if (s->matcher) gemma8_matcher_reset(s->matcher);
    s->off_grammar = false;
    s->mask_seconds = 0;
}

gemma8_status gemma8_sampler_set_grammar(gemma8_sampler *s, const gemma8_model *model, const gemma8_grammar *g) {
    if (!s) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no sampler");
    gemma8_matcher_free(s->matcher);
    free(s->mask);
    s->matcher = NULL;
    s->mask = NULL;
    s->off_grammar = false;
    if (!g) return GEMMA8_OK;
    if (!model) return g8_fail(GEMMA8_ERR_INVALID_ARG, "a grammar needs the model");
    gemma8_status st = gemma8_matcher_new(model, g, &s->matcher);
    if (st) return st;
    /* as many bits as logits or tokens, whichever is more; the rest stay 0 */
    s->mask = calloc(((size_t)G8_MAX(model->hp.n_vocab, model->vocab.n) + 7) / 8, 1);
    if (!s->mask) {
        gemma8_matcher_free(s->matcher);
        s->matcher = NULL;
        return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for a grammar's mask");
    }
    return GEMMA8_OK;
}

void g8_sampler_set_budget(gemma8_sampler *s, int32_t tokens) {
    if (s->matcher) gemma8_matcher_set_budget(s->matcher, tokens > 0 ? tokens : 1);
}

bool g8_sampler_grammar_done(const gemma8_sampler *s) { return s->matcher && gemma8_matcher_done(s->matcher); }

double g8_sampler_mask_seconds(const gemma8_sampler *s) { return s->mask_seconds; }

static int cmp_bias(const void *a, const void *b) {
    int32_t x = ((const gemma8_logit_bias *)a)->token, y = ((const gemma8_logit_bias *)b)->token;
    return (x > y) - (x < y);
}

/* The logit biases on the candidates; those at -inf leave. False when none is left. */
static bool apply_bias(const gemma8_sampler *s, g8_cands *cs) {
    const int32_t nb = s->p.n_logit_bias;
    if (!nb) return true;
    size_t kept = 0;
    for (size_t i = 0; i < cs->n; i++) {
        g8_cand c = cs->c[i];
        int32_t lo = 0, hi = nb; /* the first entry for c.id */
        while (lo < hi) {
            int32_t mid = (lo + hi) / 2;
            if (s->bias[mid].token < c.id)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (int32_t k = lo; k < nb && s->bias[k].token == c.id; k++) c.logit += s->bias[k].bias;
        if (c.logit != -INFINITY) cs->c[kept++] = c;
    }
    cs->n = kept;
    return kept > 0;
}

gemma8_status gemma8_sampler_new(const gemma8_sampler_params *params, gemma8_sampler **out) {
    *out = NULL;
    const gemma8_sampler_params *p = params;
    if (!p) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no sampling parameters");
    if (!(p->temperature >= 0)) return g8_fail(GEMMA8_ERR_INVALID_ARG, "temperature %g is not >= 0", p->temperature);
    if (p->top_k < 0) return g8_fail(GEMMA8_ERR_INVALID_ARG, "top_k %d is negative", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1)) return g8_fail(GEMMA8_ERR_INVALID_ARG, "top_p %g is not in (0, 1]", p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1)) return g8_fail(GEMMA8_ERR_INVALID_ARG, "min_p %g is not in [0, 1]", p->min_p);
    if (!(p->repeat_penalty > 0))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "repeat_penalty %g is not > 0", p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "repeat_last_n %d is not in 0..%d", p->repeat_last_n, 1 << 20);
    if (p->mirostat < 0 || p->mirostat > 2)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "mirostat %d is not 0, 1 or 2", p->mirostat);
    if (isnan(p->frequency_penalty) || isnan(p->presence_penalty))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "a penalty is not a number");
    if (p->n_logit_bias < 0 || (p->n_logit_bias && !p->logit_bias))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "an invalid logit_bias list");
    for (int32_t i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].token < 0 || isnan(p->logit_bias[i].bias) || p->logit_bias[i].bias == INFINITY)
            return g8_fail(GEMMA8_ERR_INVALID_ARG, "logit_bias entry %d: token %d, bias %g", i,
                           p->logit_bias[i].token, p->logit_bias[i].bias);
    gemma8_sampler *s = g8_calloc(1, sizeof *s, "sampler");
    if (!s) return GEMMA8_ERR_NOMEM;
    s->p = *p;
    if (p->n_logit_bias) {
        s->bias = g8_calloc((size_t)p->n_logit_bias, sizeof *s->bias, "logit bias");
        if (!s->bias) {
            free(s);
            return GEMMA8_ERR_NOMEM;
        }
        memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
        qsort(s->bias, (size_t)p->n_logit_bias, sizeof *s->bias, cmp_bias);
    }
    s->p.logit_bias = s->bias;
    s->hist_cap = (size_t)p->repeat_last_n;
    s->history = g8_calloc(s->hist_cap + 1, sizeof(int32_t), "sampler history");
    if (!s->history) {
        free(s);
        return GEMMA8_ERR_NOMEM;
    }
    gemma8_sampler_reset(s);
    *out = s;
    return GEMMA8_OK;
}

void gemma8_sampler_free(gemma8_sampler *s) {
    if (!s) return;
    gemma8_matcher_free(s->matcher);
    free(s->bias);
    free(s->mask);
    free(s->cands.c);
    free(s->history);
    free(s);
}

void gemma8_sampler_accept(gemma8_sampler *s, int32_t token) {
    if (s->matcher && gemma8_matcher_accept(s->matcher, token)) s->off_grammar = true;
    if (!s->hist_cap) return;
    s->history[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->hist_cap;
    if (s->hist_n < s->hist_cap) s->hist_n++;
}

/* mirostat v1 (Basu et al.), with llama.cpp's m = 100 */
static int32_t mirostat_v1(gemma8_sampler *s, g8_cands *cs, int32_t n_vocab) {
    g8_cands_softmax(cs);
    const int m = 100;
    double sum_ti_bi = 0, sum_ti_sq = 0;
    for (int i = 0; i < m - 1 && (size_t)i + 1 < cs->n; i++) {
        double ti = log((i + 2) / (double)(i + 1)), bi = log(cs->c[i].p / cs->c[i + 1].p);
        sum_ti_bi += ti * bi;
        sum_ti_sq += ti * ti;
    }
    double s_hat = sum_ti_sq > 0 ? sum_ti_bi / sum_ti_sq : 1.0;
    double eps = s_hat - 1, k = pow((eps * pow(2, s->mu)) / (1 - pow(n_vocab, -eps)), 1 / s_hat);
    if (!(k >= 1)) k = 1;
    g8_top_k(cs, (size_t)k);
    int32_t tok = g8_draw(cs, next_uniform(s));
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].id == tok) s->mu -= s->p.mirostat_eta * (float)(-log2(cs->c[i].p) - s->p.mirostat_tau);
    return tok;
}

static int32_t mirostat_v2(gemma8_sampler *s, g8_cands *cs) {
    g8_cands_softmax(cs);
    size_t keep = 1;
    while (keep < cs->n && -log2(cs->c[keep].p) <= s->mu) keep++;
    cs->n = keep;
    int32_t tok = g8_draw(cs, next_uniform(s));
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].id == tok) s->mu -= s->p.mirostat_eta * (float)(-log2(cs->c[i].p) - s->p.mirostat_tau);
    return tok;
}

static int32_t sample(gemma8_sampler *s, const float *logits, int32_t n_vocab, gemma8_status *st) {
    *st = GEMMA8_ERR_NOMEM;
    if (n_vocab <= 0) {
        *st = g8_fail(GEMMA8_ERR_INVALID_ARG, "no logits to sample from");
        return -1;
    }
    if ((size_t)n_vocab > s->cap) {
        g8_cand *nc = realloc(s->cands.c, (size_t)n_vocab * sizeof *nc);
        if (!nc) {
            g8_fail(GEMMA8_ERR_NOMEM, "out of memory sampling");
            return -1;
        }
        s->cands.c = nc;
        s->cap = (size_t)n_vocab;
    }
    g8_cands *cs = &s->cands;
    cs->sorted = false;
    if (s->matcher) { /* only what the grammar allows */
        if (s->off_grammar) {
            *st = g8_fail(GEMMA8_ERR_INVALID_ARG, "a token the grammar refused was accepted: it cannot go on");
            return -1;
        }
        double t0 = gemma8_time();
        *st = gemma8_matcher_mask(s->matcher, s->mask);
        s->mask_seconds += gemma8_time() - t0;
        if (*st) return -1;
        size_t n = 0;
        for (int32_t i = 0; i < n_vocab; i += 8) {
            uint8_t bits = s->mask[i >> 3];
            while (bits) {
                int32_t id = i + __builtin_ctz(bits);
                bits &= (uint8_t)(bits - 1);
                if (id < n_vocab) cs->c[n++] = (g8_cand){id, logits[id], 0};
            }
        }
        if (!n) {
            *st = g8_fail(GEMMA8_ERR_INVALID_ARG, "the grammar allows no token here");
            return -1;
        }
        cs->n = n;
    } else {
        cs->n = (size_t)n_vocab;
        for (int32_t i = 0; i < n_vocab; i++) cs->c[i] = (g8_cand){i, logits[i], 0};
    }
    if (!apply_bias(s, cs)) {
        *st = g8_fail(GEMMA8_ERR_INVALID_ARG, "logit_bias leaves no token to draw%s",
                      s->matcher ? " that the grammar "
                                   "allows"
                                 : "");
        return -1;
    }
    /* the history window, oldest first */
    int32_t window[1024] = {0}, *w = s->hist_n <= 1024 ? window : malloc(s->hist_n * sizeof(int32_t));
    if (!w) {
        g8_fail(GEMMA8_ERR_NOMEM, "out of memory sampling");
        return -1;
    }
    *st = GEMMA8_OK;
    for (size_t k = 0; k < s->hist_n; k++)
        w[k] = s->history[(s->hist_pos + s->hist_cap - s->hist_n + k) % s->hist_cap];
    g8_apply_penalties(cs, w, s->hist_n, s->p.repeat_penalty, s->p.frequency_penalty, s->p.presence_penalty);
    if (w != window) free(w);
    const gemma8_sampler_params *p = &s->p;
    if (p->temperature == 0.0f) { /* greedy */
        size_t best = 0;
        for (size_t i = 1; i < cs->n; i++)
            if (cs->c[i].logit > cs->c[best].logit) best = i;
        return cs->c[best].id;
    }
    if (p->mirostat) {
        g8_temperature(cs, p->temperature);
        return p->mirostat == 1 ? mirostat_v1(s, cs, n_vocab) : mirostat_v2(s, cs);
    }
    g8_top_k(cs, (size_t)p->top_k);
    g8_top_p(cs, p->top_p, 1);
    g8_min_p(cs, p->min_p, 1);
    g8_temperature(cs, p->temperature);
    return g8_draw(cs, next_uniform(s));
}

gemma8_status gemma8_sampler_sample(gemma8_sampler *s, const float *logits, int32_t n_vocab, int32_t *token) {
    if (!s || !logits || !token)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "gemma8_sampler_sample needs a sampler, logits and a token");
    gemma8_status st;
    *token = sample(s, logits, n_vocab, &st);
    return *token < 0 ? st : GEMMA8_OK;
}


