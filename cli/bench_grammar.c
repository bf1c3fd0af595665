/* bench_grammar.c - `gemma8 bench --json-schema FILE...`: what constrained
 * decoding costs. Sampled decode (temperature 1) of N streams, batched, with
 * and without a grammar each (the files taken in turn), alternating runs; then
 * the time of each mask, replayed through a fresh matcher over the tokens the
 * constrained streams produced (mean and p99). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct stream {
    int32_t *tok;
    int n, cap;
} stream;

static bool collect(int32_t token, const char *text, size_t len, gemma8_run_state st, void *user) {
    (void)text, (void)len;
    stream *s = user;
    if (token < 0 || st == GEMMA8_RUN_FINISH || st == GEMMA8_RUN_ERROR) return true;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        int32_t *nt = realloc(s->tok, (size_t)cap * sizeof *nt);
        if (!nt) return false;
        s->tok = nt;
        s->cap = cap;
    }
    s->tok[s->n++] = token;
    return true;
}

/* One run of n streams; the decode rate counts only steps where all n decode. */
static gemma8_status run_streams(gemma8_context *ctx, int n, const int32_t *prompt, int n_prompt, int n_gen,
                                 gemma8_grammar **g, int n_g, uint32_t seed, stream *out, double *tok_s,
                                 double *mask_s) {
    gemma8_gen *gens[256];
    bool done[256] = {0};
    gemma8_status st = GEMMA8_OK;
    int made = 0;
    for (int q = 0; q < n && !st; q++, made++) {
        gemma8_generate_params p = gemma8_generate_default_params();
        p.sampling.temperature = 1.0f;
        p.sampling.top_k = 0;
        p.sampling.top_p = 1.0f;
        p.sampling.repeat_penalty = 1.0f;
        p.sampling.seed = seed + (uint32_t)q;
        p.max_new_tokens = n_gen;
        p.seq = q;
        p.grammar = g ? g[q % n_g] : NULL;
        p.ignore_eos = !g;
        p.on_token = collect;
        p.user_data = &out[q];
        out[q].n = 0;
        gemma8_seq_clear(ctx, q);
        st = gemma8_gen_begin(ctx, prompt, n_prompt, &p, &gens[q]);
    }
    double t_all = 0;
    int64_t n_all = 0;
    for (bool all_done = false; !st && !all_done;) {
        bool all_decoding = true;
        for (int q = 0; q < n; q++) all_decoding &= !done[q] && gemma8_gen_prefilled(gens[q]);
        double a = gemma8_time();
        st = gemma8_gen_step_many(gens, n, done);
        if (all_decoding) {
            t_all += gemma8_time() - a;
            n_all += n;
        }
        all_done = true;
        for (int q = 0; q < n; q++) all_done &= done[q];
    }
    *mask_s = 0;
    for (int q = 0; q < made; q++) {
        gemma8_generate_result res;
        gemma8_status e = gemma8_gen_end(gens[q], &res);
        if (!st) st = e;
        *mask_s += res.mask_seconds;
    }
    *tok_s = t_all > 0 ? n_all / t_all : 0;
    return st;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Each mask along the streams' tokens, timed. */
static int replay(const gemma8_model *model, gemma8_grammar **g, int n_g, const stream *s, int n, int n_gen) {
    size_t total = 0;
    for (int q = 0; q < n; q++) total += (size_t)s[q].n + 1;
    double *t = malloc((total + 1) * sizeof *t);
    uint8_t *mask = malloc(((size_t)gemma8_model_get_info(model).n_vocab + 7) / 8 + 8);
    size_t k = 0;
    int rc = !t || !mask;
    for (int q = 0; q < n && !rc; q++) {
        gemma8_matcher *m;
        if (gemma8_matcher_new(model, g[q % n_g], &m)) {
            rc = cli_fail(GEMMA8_ERR_INVALID_ARG);
            break;
        }
        for (int i = 0; i <= s[q].n && !rc; i++) {
            gemma8_matcher_set_budget(m, n_gen - i);
            double a = gemma8_time();
            if (gemma8_matcher_mask(m, mask)) rc = cli_fail(GEMMA8_ERR_INVALID_ARG);
            t[k++] = gemma8_time() - a;
            if (i < s[q].n && gemma8_matcher_accept(m, s[q].tok[i])) rc = cli_fail(GEMMA8_ERR_INVALID_ARG);
        }
        gemma8_matcher_free(m);
    }
    if (!rc && k) {
        double sum = 0;
        for (size_t i = 0; i < k; i++) sum += t[i];
        qsort(t, k, sizeof *t, cmp_double);
        printf("mask time per token: mean %.3f ms, p99 %.3f ms, max %.3f ms over %zu masks\n", sum / k * 1e3,
               t[(size_t)(0.99 * (k - 1))] * 1e3, t[k - 1] * 1e3, k);
    }
    free(t);
    free(mask);
    return rc;
}

int cli_bench_grammar(gemma8_model *model, gemma8_context *ctx, const cli_list *schemas, bool json, int n_streams,
                      int n_gen, int reps) {
    gemma8_grammar *g[16];
    int n_g = 0, rc = 0;
    for (int i = 0; i < schemas->n; i++) {
        char *text = cli_read_file(schemas->v[i], NULL);
        if (!text) {
            fprintf(stderr, "gemma8 bench: cannot read '%s'\n", schemas->v[i]);
            rc = 1;
            break;
        }
        gemma8_status st = gemma8_grammar_from_json_schema(text, &g[n_g]);
        free(text);
        if (st) {
            fprintf(stderr, "gemma8 bench: %s: %s\n", schemas->v[i], gemma8_last_error());
            rc = 1;
            break;
        }
        n_g++;
    }
    if (!rc && json && gemma8_grammar_from_json_schema(NULL, &g[n_g++])) rc = cli_fail(GEMMA8_ERR_INVALID_ARG);
    /* the first matcher of a model indexes its vocabulary and summarizes the grammars' classes */
    for (int i = 0; i < n_g && !rc; i++) {
        gemma8_matcher *m = NULL;
        double a = gemma8_time();
        if (gemma8_matcher_new(model, g[i], &m)) rc = cli_fail(GEMMA8_ERR_INVALID_ARG);
        if (!rc) printf("grammar %d: first matcher in %.1f ms%s\n", i, (gemma8_time() - a) * 1e3,
                        i ? "" : " (with the vocabulary's index)");
        gemma8_matcher_free(m);
    }
    const char *prompt_text = "<start_of_turn>user\nReply in JSON.<end_of_turn>\n<start_of_turn>model\n";
    int32_t prompt[64], n_prompt = 0;
    if (!rc && gemma8_tokenize(model, prompt_text, strlen(prompt_text), true, true, prompt, 64, &n_prompt))
        rc = cli_fail(GEMMA8_ERR_INVALID_ARG);
    stream *s = calloc((size_t)n_streams, sizeof *s);
    double plain = 0, constrained = 0, mask_s = 0, ignore;
    int64_t produced = 0;
    for (int r = 0; r < reps && !rc && s; r++) {
        double a, b;
        if (run_streams(ctx, n_streams, prompt, n_prompt, n_gen, NULL, 0, 100u * r, s, &a, &ignore) ||
            run_streams(ctx, n_streams, prompt, n_prompt, n_gen, g, n_g, 100u * r, s, &b, &mask_s)) {
            rc = cli_fail(GEMMA8_ERR_INVALID_ARG);
            break;
        }
        plain += a / reps;
        constrained += b / reps;
        for (int q = 0; q < n_streams; q++) produced += s[q].n;
    }
    if (!rc && s) {
        printf("sampled decode, %d stream%s (%d grammar%s in turn), %d tokens at most: plain %.2f tok/s, "
               "constrained %.2f tok/s (%+.1f%%); %.1f tokens per constrained reply\n",
               n_streams, n_streams > 1 ? "s" : "", n_g, n_g > 1 ? "s" : "", n_gen, plain, constrained,
               (constrained / plain - 1) * 100, (double)produced / reps / n_streams);
        rc = replay(model, g, n_g, s, n_streams, n_gen);
    }
    for (int q = 0; s && q < n_streams; q++) free(s[q].tok);
    free(s);
    for (int i = 0; i < n_g; i++) gemma8_grammar_free(g[i]);
    return rc;
}
