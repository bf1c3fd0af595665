/* test-generate.c - the generation API: greedy and seeded sampling, samplers on
 * hand-made logits, abort, kept cache across turns, prompt cache, overflow,
 * streaming text, stop strings, embeddings in and hidden states out. */
#include "context.h"
#include "ops.h"
#include "sampling.h"
#include "testutil.h"
#include "vocab.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct collect {
    int32_t tok[4096];
    int n;
    char text[65536];
    size_t tn;
    int finished, waiting;
    atomic_int count;
} collect;

static bool on_token(int32_t token, const char *text, size_t len, gemma8_run_state st, void *user) {
    collect *c = user;
    if (st == GEMMA8_RUN_FINISH) c->finished++;
    if (st == GEMMA8_RUN_WAITING) c->waiting++;
    if (token >= 0 && c->n < 4096) c->tok[c->n++] = token;
    if (len && c->tn + len < sizeof c->text) memcpy(c->text + c->tn, text, len), c->tn += len, c->text[c->tn] = 0;
    atomic_fetch_add(&c->count, 1);
    return true;
}

static gemma8_model *load_fixture(const char *name, gemma8_type type) {
    const char *path = convert_fixture(name, type);
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    if (path) CHECKF(gemma8_model_load(path, &mp, &m) == GEMMA8_OK, "%s", gemma8_last_error());
    return m;
}

/* A context of n_seq sequences of n_ctx positions each, n_batch entries a step (0: the default). */
static gemma8_context *new_ctx_seqs(gemma8_model *m, int n_ctx, int n_seq, int n_batch) {
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = n_ctx * n_seq;
    cp.n_seq = n_seq;
    if (n_batch) cp.n_batch = n_batch;
    gemma8_context *ctx = NULL;
    CHECKF(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK, "%s", gemma8_last_error());
    return ctx;
}

static gemma8_context *new_ctx(gemma8_model *m, int n_ctx) { return new_ctx_seqs(m, n_ctx, 1, 0); }

static gemma8_generate_params greedy(int n, collect *c) {
    gemma8_generate_params p = gemma8_generate_default_params();
    p.max_new_tokens = n;
    p.sampling.temperature = 0;
    p.sampling.repeat_penalty = 1;
    p.ignore_eos = true;
    p.on_token = on_token;
    p.user_data = c;
    return p;
}

TEST(generate_greedy_equals_gen0) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_BF16);
    if (!m) return;
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path("tiny-a"));
    size_t np, no;
    int32_t *prompt = ref_load(ref, "gen0.prompt", &np), *want = ref_load(ref, "gen0.output", &no);
    gemma8_context *ctx = new_ctx(m, 256);
    collect *c = calloc(1, sizeof *c);
    gemma8_generate_params p = greedy((int)no, c);
    gemma8_generate_result r;
    if (ctx && prompt && want && CHECK(gemma8_generate(ctx, prompt, (int)np, &p, &r) == GEMMA8_OK)) {
        CHECK(c->n == (int)no && !memcmp(c->tok, want, no * sizeof(int32_t)));
        CHECK(r.n_generated == (int)no && r.stop_reason == GEMMA8_STOP_LENGTH && c->finished == 1);
    }
    free(c);
    free(prompt);
    free(want);
    gemma8_context_free(ctx);
    gemma8_model_free(m);
}

static void sample_run(gemma8_model *m, uint32_t seed, collect *c) {
    gemma8_context *ctx = new_ctx(m, 256);
    gemma8_generate_params p = gemma8_generate_default_params();
    p.max_new_tokens = 30;
    p.sampling.seed = seed;
    p.sampling.temperature = 1.5f;
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.ignore_eos = true;
    p.on_token = on_token;
    p.user_data = c;
    int32_t prompt[] = {2, 10, 20, 30};
    if (ctx) CHECK(gemma8_generate(ctx, prompt, 4, &p, NULL) == GEMMA8_OK);
    gemma8_context_free(ctx);
}

TEST(generate_seed_reproducible) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_BF16);
    if (!m) return;
    collect *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *d = calloc(1, sizeof *d);
    sample_run(m, 7, a);
    sample_run(m, 7, b);
    sample_run(m, 8, d);
    CHECK(a->n == 30 && b->n == 30 && d->n == 30);
    CHECK(!memcmp(a->tok, b->tok, sizeof a->tok));
    CHECK(memcmp(a->tok, d->tok, 30 * sizeof(int32_t)) != 0);
    free(a);
    free(b);
    free(d);
    gemma8_model_free(m);
}

/* ---- samplers on hand-made logits ---------------------------------------- */

static g8_cands make(float *logits, int n, g8_cand *buf) {
    for (int i = 0; i < n; i++) buf[i] = (g8_cand){i, logits[i], 0};
    return (g8_cands){buf, (size_t)n, false};
}

static bool has(const g8_cands *cs, int32_t id) {
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].id == id) return true;
    return false;
}

TEST(sampling_steps_on_handmade_logits) {
    float lg[6] = {1.0f, 3.0f, 2.0f, 0.5f, -1.0f, 2.5f};
    g8_cand buf[6];
    g8_cands cs = make(lg, 6, buf);
    g8_top_k(&cs, 3);
    CHECK(cs.n == 3 && has(&cs, 1) && has(&cs, 5) && has(&cs, 2));
    /* top-p: probabilities of logits {2,1,0,-inf..}: p = .665 .245 .090 -> 0.8 keeps two */
    float lp[4] = {2.0f, 1.0f, 0.0f, -30.0f};
    g8_cand b2[4];
    cs = make(lp, 4, b2);
    g8_top_p(&cs, 0.8f, 1);
    CHECK(cs.n == 2 && has(&cs, 0) && has(&cs, 1));
    cs = make(lp, 4, b2);
    g8_top_p(&cs, 0.6f, 1);
    CHECK(cs.n == 1);
    cs = make(lp, 4, b2);
    g8_top_p(&cs, 0.95f, 1);
    CHECK(cs.n == 3);
    /* min-p 0.2: keeps p >= 0.2 * 0.665 */
    cs = make(lp, 4, b2);
    g8_min_p(&cs, 0.2f, 1);
    CHECK(cs.n == 2);
    /* penalties touch only the tokens in the history */
    float pl[4] = {2.0f, -2.0f, 1.0f, 1.0f};
    cs = make(pl, 4, b2);
    int32_t hist[] = {0, 1, 0};
    g8_apply_penalties(&cs, hist, 3, 2.0f, 0.5f, 0.25f);
    float got[4];
    for (size_t i = 0; i < cs.n; i++) got[cs.c[i].id] = cs.c[i].logit;
    CHECKF(fabsf(got[0] - (2.0f / 2 - 2 * 0.5f - 0.25f)) < 1e-6f, "token 0: %g", got[0]);
    CHECKF(fabsf(got[1] - (-2.0f * 2 - 0.5f - 0.25f)) < 1e-6f, "token 1: %g", got[1]);
    CHECK(got[2] == 1.0f && got[3] == 1.0f);
    /* temperature scales, the draw follows the probabilities */
    cs = make(lp, 4, b2);
    g8_temperature(&cs, 2.0f);
    CHECK(cs.c[0].logit == 1.0f);
    cs = make(lp, 4, b2);
    CHECK(g8_draw(&cs, 0.0f) == 0 && g8_draw(&cs, 0.7f) == 1 && g8_draw(&cs, 0.95f) == 2);
}

TEST(sampling_greedy_and_distribution) {
    gemma8_sampler_params p = gemma8_sampler_default_params();
    p.temperature = 0;
    gemma8_sampler *s;
    CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_OK);
    float lg[5] = {0.1f, 0.2f, 5.0f, 0.3f, 0.0f};
    int32_t tok = -1;
    CHECK(gemma8_sampler_sample(s, lg, 5, &tok) == GEMMA8_OK && tok == 2);
    CHECK(gemma8_sampler_sample(s, lg, 0, &tok) == GEMMA8_ERR_INVALID_ARG && tok == -1);
    CHECK(strstr(gemma8_last_error(), "no logits") != NULL);
    gemma8_sampler_free(s);
    /* top-k 2 at temperature 1: only the two best ever come out, in proportion */
    p = gemma8_sampler_default_params();
    p.top_k = 2;
    p.top_p = 1.0f;
    p.temperature = 1.0f;
    p.repeat_penalty = 1.0f;
    CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_OK);
    float l2[4] = {1.0f, 0.0f, 1.0f + logf(3.0f), -1.0f};
    int counts[4] = {0};
    for (int i = 0; i < 4000; i++) {
        CHECK(gemma8_sampler_sample(s, l2, 4, &tok) == GEMMA8_OK);
        counts[tok]++;
    }
    CHECK(counts[1] == 0 && counts[3] == 0);
    CHECKF(counts[2] > 2700 && counts[2] < 3300, "token 2 drawn %d of 4000 (want ~3000)", counts[2]);
    gemma8_sampler_free(s);
    /* mirostat v2 runs and stays inside the vocabulary */
    p = gemma8_sampler_default_params();
    p.mirostat = 2;
    CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_OK);
    for (int i = 0; i < 100; i++) {
        int32_t t = -1;
        CHECK(gemma8_sampler_sample(s, l2, 4, &t) == GEMMA8_OK && t >= 0 && t < 4);
    }
    gemma8_sampler_free(s);
    p.top_p = 0; /* invalid */
    CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_ERR_INVALID_ARG);
}

/* logit_bias: added before everything, a token listed twice gets both, -inf never drawn, copied at creation
 */
TEST(sampling_logit_bias) {
    gemma8_logit_bias b[3] = {{3, 4.0f}, {2, -INFINITY}, {3, 1.5f}};
    gemma8_sampler_params p = gemma8_sampler_default_params();
    p.temperature = 0;
    p.logit_bias = b;
    p.n_logit_bias = 3;
    gemma8_sampler *s;
    CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_OK);
    b[0].bias = -100.0f; /* the sampler kept its own copy */
    float lg[5] = {0.1f, 0.2f, 5.0f, 0.3f, 0.0f};
    int32_t tok = -1;
    CHECK(gemma8_sampler_sample(s, lg, 5, &tok) == GEMMA8_OK &&
          tok == 3); /* 0.3 + 5.5 beats the banned 5.0 */
    gemma8_sampler_free(s);
    /* at temperature 1 a banned token never comes out */
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    b[0] = (gemma8_logit_bias){0, -INFINITY};
    p.n_logit_bias = 2;
    CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_OK);
    for (int i = 0; i < 500; i++) {
        CHECK(gemma8_sampler_sample(s, lg, 5, &tok) == GEMMA8_OK);
        CHECKF(tok != 0 && tok != 2, "drew banned token %d", tok);
    }
    gemma8_sampler_free(s);
    /* every token banned: an error that says so; a bad entry: refused at creation */
    gemma8_logit_bias all[2] = {{0, -INFINITY}, {1, -INFINITY}};
    p.logit_bias = all;
    p.n_logit_bias = 2;
    CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_OK);
    CHECK(gemma8_sampler_sample(s, lg, 2, &tok) == GEMMA8_ERR_INVALID_ARG);
    CHECK(strstr(gemma8_last_error(), "logit_bias") != NULL);
    gemma8_sampler_free(s);
    all[0].bias = NAN;
    CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_ERR_INVALID_ARG);
    all[0] = (gemma8_logit_bias){-1, 1.0f};
    CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_ERR_INVALID_ARG);
}

/* ---- abort ---------------------------------------------------------------- */

TEST(generate_abort_from_another_thread) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_F32);
    if (!m) return;
    gemma8_context *ctx = new_ctx(m, 4096);
    collect *c = calloc(1, sizeof *c);
    gemma8_generate_params p = greedy(3000, c);
    int32_t prompt[] = {2, 5, 6};
    gemma8_async *run = NULL;
    if (ctx && CHECK(gemma8_generate_async(ctx, prompt, 3, &p, &run) == GEMMA8_OK)) {
        for (int waited = 0; atomic_load(&c->count) < 5 && waited < 100000; waited++) usleep(100); /* <= 10 s */
        CHECKF(atomic_load(&c->count) >= 5, "no 5 tokens within 10 s");
        gemma8_abort(ctx);
        int at = atomic_load(&c->count);
        gemma8_generate_result r;
        CHECK(gemma8_wait(run, &r) == GEMMA8_ERR_ABORTED);
        CHECK(r.stop_reason == GEMMA8_STOP_ABORTED);
        CHECKF(r.n_generated <= at + 1, "generated %d after abort at %d", r.n_generated, at);
        harness_note("abort seen after %d callbacks, %d tokens generated", at, r.n_generated);
        /* the context works afterwards */
        memset(c, 0, sizeof *c);
        p.max_new_tokens = 3;
        CHECK(gemma8_generate(ctx, prompt, 3, &p, NULL) == GEMMA8_OK && c->n == 3);
    }
    free(c);
    gemma8_context_free(ctx);
    gemma8_model_free(m);
}

typedef struct aborter {
    gemma8_context *ctx;
    useconds_t after;
} aborter;

static void *abort_later(void *arg) {
    aborter *a = arg;
    usleep(a->after);
    gemma8_abort(a->ctx);
    return NULL;
}

/* gemma8_abort means the same for eval as for generate: the flag is cleared
 * when a call starts, an abort during one makes it return GEMMA8_ERR_ABORTED
 * and leaves the sequence as it was, so the context goes on exactly. */
TEST(eval_abort_rule) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_F32);
    if (!m) return;
    const int N = 8000;
    gemma8_context *ctx = new_ctx(m, 8192);
    int32_t *tokens = malloc((size_t)N * sizeof *tokens);
    for (int i = 0; i < N; i++) tokens[i] = 3 + (i * 7) % 250;
    if (ctx) {
        /* an abort before the call is forgotten by it */
        gemma8_abort(ctx);
        CHECK(t_eval(ctx, 0, tokens, 4, NULL) == GEMMA8_OK && gemma8_seq_n_past(ctx, 0) == 4);
        /* an abort during a long prefill stops it; the 4 tokens stay */
        aborter a = {ctx, 20000};
        pthread_t th;
        pthread_create(&th, NULL, abort_later, &a);
        gemma8_status st = t_eval(ctx, 0, tokens + 4, N - 4, NULL);
        pthread_join(th, NULL);
        CHECKF(st == GEMMA8_ERR_ABORTED, "eval of %d tokens returned %d, not aborted", N - 4, st);
        CHECKF(gemma8_seq_n_past(ctx, 0) < N, "n_past %d after the aborted eval", gemma8_seq_n_past(ctx, 0));
        /* the flag does not stick: the next eval runs, and after the chunks that were
         * complete (n_past) it gives the logits of an uninterrupted run */
        const int kept = gemma8_seq_n_past(ctx, 0);
        CHECKF(kept >= 4 && (kept - 4) % 256 == 0, "kept %d positions", kept);
        CHECK(t_eval(ctx, 0, tokens + kept, 8, NULL) == GEMMA8_OK);
        float *want = eval_all(m, tokens, kept + 8, 256, 0);
        const float *got = gemma8_get_logits(ctx, -1);
        const int V = gemma8_model_get_info(m).n_vocab;
        CHECK(want && max_abs_diff(got, want + (size_t)(kept + 7) * V, (size_t)V) == 0.0f);
        harness_note("aborted after %d of %d positions; the next eval matches an uninterrupted run", kept, N);
        free(want);
    }
    free(tokens);
    gemma8_context_free(ctx);
    gemma8_model_free(m);
}

/* ---- conversation state ------------------------------------------------------- */

TEST(generate_followup_reuses_cache_with_same_logits) {
    gemma8_model *m = load_fixture("tiny-b", GEMMA8_TYPE_F32);
    if (!m) return;
    gemma8_context *a = new_ctx(m, 512), *b = new_ctx(m, 512);
    collect *c = calloc(1, sizeof *c);
    int32_t conv[200];
    int n = 0;
    for (int i = 0; i < 40; i++) conv[n++] = (i * 37 + 11) % 384;
    gemma8_generate_params p = greedy(15, c);
    gemma8_generate_result r;
    if (a && b && CHECK(gemma8_generate(a, conv, n, &p, &r) == GEMMA8_OK)) {
        /* the next turn: the reply, then new user tokens (longer than the 16-token window) */
        for (int i = 0; i < c->n; i++) conv[n++] = c->tok[i];
        for (int i = 0; i < 30; i++) conv[n++] = (i * 53 + 7) % 384;
        gemma8_generate_params p0 = greedy(0, NULL);
        p0.on_token = NULL;
        CHECK(gemma8_generate(a, conv, n, &p0, &r) == GEMMA8_OK);
        CHECKF(r.n_reused >= 40 + c->n - 1, "reused %d tokens", r.n_reused);
        CHECK(t_eval(b, 0, conv, n, NULL) == GEMMA8_OK);
        float d = max_abs_diff(gemma8_get_logits(a, -1), gemma8_get_logits(b, -1), 384);
        CHECKF(d <= 1e-4f, "kept cache vs full prefill: %g", d);
        harness_note("follow-up turn: %d of %d tokens reused, logits max |diff| %.3g", r.n_reused, n, d);
    }
    free(c);
    gemma8_context_free(a);
    gemma8_context_free(b);
    gemma8_model_free(m);
}

/* A prompt cache of fixture (512 tokens) saved and loaded: the same continuation; a context of
 * other refuses it. */
static void check_prompt_cache(const char *fixture, const char *other_fixture) {
    gemma8_model *m = load_fixture(fixture, GEMMA8_TYPE_F32), *other = load_fixture(other_fixture, GEMMA8_TYPE_F32);
    if (!m || !other) {
        gemma8_model_free(m);
        gemma8_model_free(other);
        return;
    }
    int32_t prompt[60];
    for (int i = 0; i < 60; i++) prompt[i] = (i * 29 + 3) % 512;
    collect *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
    gemma8_context *a = new_ctx(m, 256), *b = new_ctx(m, 256), *c = new_ctx(m, 256), *o = new_ctx(other, 256);
    gemma8_generate_params p = greedy(12, x);
    CHECK(gemma8_generate(a, prompt, 60, &p, NULL) == GEMMA8_OK);
    const char *file = tmp_path("prompt.g8kv");
    CHECK(t_eval(b, 0, prompt, 60, NULL) == GEMMA8_OK);
    CHECK(gemma8_cache_save(b, 0, file) == GEMMA8_OK);
    CHECK(gemma8_cache_load(c, 0, file) == GEMMA8_OK && gemma8_seq_n_past(c, 0) == 60);
    gemma8_generate_params q = greedy(12, y);
    gemma8_generate_result r;
    CHECK(gemma8_generate(c, prompt, 60, &q, &r) == GEMMA8_OK);
    CHECK(r.n_reused == 59);
    CHECK(x->n == 12 && y->n == 12 && !memcmp(x->tok, y->tok, 12 * sizeof(int32_t)));
    /* in memory: the same bytes as the file, loaded the same; a version 1 cache (gemma8 0.6: no type,
     * f32 rows) still loads */
    size_t size = 0, fsize = 0;
    CHECK(gemma8_cache_save_buffer(b, 0, NULL, 0, &size) == GEMMA8_ERR_BUFFER_TOO_SMALL && size > 36);
    uint8_t *buf = malloc(size), *disk = malloc(size + 1);
    FILE *f = fopen(file, "rb");
    if (f && disk) fsize = fread(disk, 1, size + 1, f);
    if (f) fclose(f);
    CHECK(gemma8_cache_save_buffer(b, 0, buf, size - 1, &size) == GEMMA8_ERR_BUFFER_TOO_SMALL);
    CHECK(gemma8_cache_save_buffer(b, 0, buf, size, &size) == GEMMA8_OK);
    CHECK(disk && fsize == size && !memcmp(disk, buf, size));
    gemma8_seq_clear(c, 0);
    CHECK(gemma8_cache_load_buffer(c, 0, buf, size) == GEMMA8_OK && gemma8_seq_n_past(c, 0) == 60);
    memset(y, 0, sizeof *y);
    CHECK(gemma8_generate(c, prompt, 60, &q, &r) == GEMMA8_OK && r.n_reused == 59);
    CHECK(y->n == 12 && !memcmp(x->tok, y->tok, 12 * sizeof(int32_t)));
    uint32_t v1 = 1, type;
    memcpy(&type, buf + 16, 4);
    CHECK(type == GEMMA8_TYPE_F32);
    memcpy(buf + 4, &v1, 4);
    memmove(buf + 16, buf + 20, size - 20);
    gemma8_seq_clear(c, 0);
    CHECK(gemma8_cache_load_buffer(c, 0, buf, size - 4) == GEMMA8_OK && gemma8_seq_n_past(c, 0) == 60);
    memset(y, 0, sizeof *y);
    CHECK(gemma8_generate(c, prompt, 60, &q, &r) == GEMMA8_OK && r.n_reused == 59);
    CHECK(y->n == 12 && !memcmp(x->tok, y->tok, 12 * sizeof(int32_t)));
    const int32_t kept = gemma8_seq_n_past(c, 0);
    CHECK(gemma8_cache_load_buffer(c, 0, buf, 40) == GEMMA8_ERR_FORMAT && gemma8_seq_n_past(c, 0) == kept);
    free(buf);
    free(disk);
    /* another model's context refuses it; so does a truncated file */
    CHECK(gemma8_cache_load(o, 0, file) == GEMMA8_ERR_FORMAT);
    CHECK(strstr(gemma8_last_error(), "another model") != NULL);
    CHECK(truncate(file, 1000) == 0);
    CHECK(gemma8_cache_load(c, 0, file) == GEMMA8_ERR_FORMAT && gemma8_seq_n_past(c, 0) == 0);
    free(x);
    free(y);
    gemma8_context_free(a);
    gemma8_context_free(b);
    gemma8_context_free(c);
    gemma8_context_free(o);
    gemma8_model_free(m);
    gemma8_model_free(other);
}

TEST(generate_prompt_cache_save_load) { check_prompt_cache("tiny-a", "tiny-b"); }
/* gemma3 (60 tokens through window-8 rings); a gemma2 cache never loads into a gemma3 model, nor back */
TEST(generate_prompt_cache_gemma3) {
    check_prompt_cache("gemma3/tiny-a", "tiny-a");
    check_prompt_cache("tiny-a", "gemma3/tiny-a");
}

/* A q8_0 KV cache survives save and load (its blocks as they are), and the continuation is the same. */
TEST(generate_prompt_cache_q8_0_kv) {
    gemma8_model *m = load_fixture("tiny-b", GEMMA8_TYPE_Q8_0);
    if (!m) return;
    int32_t prompt[50];
    for (int i = 0; i < 50; i++) prompt[i] = (i * 31 + 7) % 384; /* tiny-b has 384 tokens */
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 128;
    cp.kv_type = GEMMA8_TYPE_Q8_0;
    gemma8_context *a = NULL, *b = NULL;
    if (!CHECK(gemma8_context_new(m, &cp, &a) == GEMMA8_OK && gemma8_context_new(m, &cp, &b) == GEMMA8_OK)) return;
    collect *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
    const char *file = tmp_path("prompt-q8.g8kv");
    CHECK(t_eval(a, 0, prompt, 50, NULL) == GEMMA8_OK && gemma8_cache_save(a, 0, file) == GEMMA8_OK);
    gemma8_generate_params p = greedy(10, x), q = greedy(10, y);
    CHECK(gemma8_generate(a, prompt, 50, &p, NULL) == GEMMA8_OK);
    gemma8_generate_result r;
    CHECK(gemma8_cache_load(b, 0, file) == GEMMA8_OK);
    CHECK(gemma8_generate(b, prompt, 50, &q, &r) == GEMMA8_OK && r.n_reused == 49);
    CHECK(x->n == 10 && y->n == 10 && !memcmp(x->tok, y->tok, 10 * sizeof(int32_t)));
    free(x);
    free(y);
    gemma8_context_free(a);
    gemma8_context_free(b);
    gemma8_model_free(m);
}

static gemma8_model *load_path(const char *path) {
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    CHECKF(gemma8_model_load(path, &mp, &m) == GEMMA8_OK, "%s", gemma8_last_error());
    return m;
}

TEST(generate_context_overflow) {
    gemma8_model *m = load_path(data_path("llamacpp-gguf/fullvocab-f16.gguf"));
    if (!m) return;
    gemma8_context *ctx = new_ctx(m, 64);
    gemma8_chat_message msgs[7] = {
        {.role = "system", .content = "You are terse."},
        {.role = "user", .content = "Tell me about the history of the city of Rome in some detail please."},
        {.role = "assistant", .content = "Rome was founded, grew into an empire, and endured."},
        {.role = "user", .content = "And what about Carthage and the Punic wars?"},
        {.role = "assistant", .content = "Three wars; Carthage fell."},
        {.role = "user", .content = "Thanks!"},
    };
    gemma8_generate_params p = gemma8_generate_default_params();
    p.max_new_tokens = 8;
    gemma8_generate_result r;
    CHECK(gemma8_chat(ctx, msgs, 6, &p, &r) == GEMMA8_ERR_CONTEXT_FULL);
    CHECK(strstr(gemma8_last_error(), "does not fit") != NULL);
    p.drop_oldest_turns = true;
    CHECK(gemma8_chat(ctx, msgs, 6, &p, &r) == GEMMA8_OK);
    CHECKF(r.n_dropped_messages >= 2 && r.n_prompt + 8 <= 64, "dropped %d, prompt %d", r.n_dropped_messages, r.n_prompt);
    /* raw generation stops at the end of the context with its reason */
    int32_t prompt[60];
    for (int i = 0; i < 60; i++) prompt[i] = 1000 + i;
    gemma8_generate_params g = greedy(100, NULL);
    g.on_token = NULL;
    CHECK(gemma8_generate(ctx, prompt, 60, &g, &r) == GEMMA8_OK && r.stop_reason == GEMMA8_STOP_CONTEXT && r.n_generated == 5);
    CHECK(gemma8_generate(ctx, prompt, 60, &g, &r) == GEMMA8_OK && r.n_reused == 59 && r.n_generated == 5);
    int32_t big[64] = {0};
    CHECK(gemma8_generate(ctx, big, 64, &g, &r) == GEMMA8_ERR_CONTEXT_FULL);
    gemma8_context_free(ctx);
    gemma8_model_free(m);
}

/* ---- text out -------------------------------------------------------------- */

static size_t feed(const g8_vocab *v, g8_stream *st, int32_t id, char **out, size_t *len) {
    size_t before = *len;
    CHECK(g8_stream_feed(v, st, id, out, len));
    return *len - before;
}

TEST(stream_detokenizer_whole_characters) {
    gemma8_model *m = load_path(data_path("llamacpp-gguf/fullvocab-f16.gguf"));
    if (!m) return;
    const g8_vocab *v = &m->vocab;
    g8_stream st = {0};
    char *out = NULL;
    size_t len = 0;
    /* U+4F60 as three byte pieces: nothing until the last one */
    CHECK(feed(v, &st, v->byte_id[0xE4], &out, &len) == 0);
    CHECK(feed(v, &st, v->byte_id[0xBD], &out, &len) == 0);
    CHECK(feed(v, &st, v->byte_id[0xA0], &out, &len) == 3 && !strcmp(out, "\xe4\xbd\xa0"));
    /* a byte that cannot start a character */
    len = 0;
    CHECK(feed(v, &st, v->byte_id[0xFF], &out, &len) == 3 && !memcmp(out, "\xef\xbf\xbd", 3));
    /* an incomplete character interrupted by a piece, or by an ASCII byte */
    len = 0;
    feed(v, &st, v->byte_id[0xE4], &out, &len);
    feed(v, &st, 4521, &out, &len); /* "Hello" */
    CHECK(len == 8 && !memcmp(out, "\xef\xbf\xbdHello", 8));
    len = 0;
    feed(v, &st, v->byte_id[0xF0], &out, &len);
    feed(v, &st, v->byte_id[0x9F], &out, &len);
    feed(v, &st, v->byte_id[0x41], &out, &len);
    CHECKF(len == 7 && !memcmp(out, "\xef\xbf\xbd\xef\xbf\xbd" "A", 7), "got %zu bytes", len);
    /* surrogates and overlong forms are invalid too; flush releases what is held */
    len = 0;
    feed(v, &st, v->byte_id[0xED], &out, &len);
    feed(v, &st, v->byte_id[0xA0], &out, &len);
    feed(v, &st, v->byte_id[0x80], &out, &len);
    CHECK(len == 9);
    len = 0;
    feed(v, &st, v->byte_id[0xE4], &out, &len);
    CHECK(len == 0 && g8_stream_flush(&st, &out, &len) && len == 3 && st.n == 0);
    free(out);
    gemma8_model_free(m);
}

TEST(generate_stop_strings) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_F32);
    if (!m) return;
    gemma8_context *ctx = new_ctx(m, 256);
    collect *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    int32_t prompt[] = {2, 100, 200, 300};
    gemma8_generate_params p = greedy(20, a);
    gemma8_generate_result r;
    CHECK(gemma8_generate(ctx, prompt, 4, &p, &r) == GEMMA8_OK);
    if (CHECK(a->tn > 20)) {
        char stop[8];
        memcpy(stop, a->text + a->tn / 2, 5);
        stop[5] = 0;
        const char *stops[] = {"never-appears-xyz", stop};
        gemma8_generate_params q = greedy(20, b);
        q.stop = stops;
        q.n_stop = 2;
        CHECK(gemma8_generate(ctx, prompt, 4, &q, &r) == GEMMA8_OK && r.stop_reason == GEMMA8_STOP_STRING);
        CHECK(r.stop_index == 1); /* which one ended it */
        const char *at = strstr(a->text, stop);
        CHECKF(b->tn == (size_t)(at - a->text) && !memcmp(a->text, b->text, b->tn), "stopped text '%s'", b->text);
    }
    free(a);
    free(b);
    gemma8_context_free(ctx);
    gemma8_model_free(m);
}

/* ---- embeddings in, hidden state out ---------------------------------------- */

/* tiny-a's seq0: its tokens and transformers' hidden states [layers + 1, T, hidden] */
static void load_seq0_hidden_of(const char *fixture, int32_t **tok, size_t *T, float **hs, size_t *nh) {
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path(fixture));
    *tok = ref_load(ref, "seq0.tokens", T);
    *hs = ref_load(ref, "seq0.hidden_states", nh);
}

static void load_seq0_hidden(int32_t **tok, size_t *T, float **hs, size_t *nh) {
    load_seq0_hidden_of("tiny-a", tok, T, hs, nh);
}

TEST(generate_embeddings_and_hidden_state) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_F32);
    if (!m) return;
    size_t T, nh;
    int32_t *tok;
    float *hs;
    load_seq0_hidden(&tok, &T, &hs, &nh);
    gemma8_context *a = new_ctx(m, 64), *b = new_ctx(m, 64);
    const int E = 64;
    float *embd = malloc(T * E * sizeof(float));
    for (size_t t = 0; t < T; t++) {
        g8_matrix_row(&m->tok_embd, tok[t], embd + t * E);
        for (int i = 0; i < E; i++) embd[t * E + i] *= 8.0f; /* sqrt(64) */
    }
    uint8_t *outs = calloc(T, 1);
    if (tok && hs && a && b && outs) {
        outs[T - 1] = GEMMA8_OUTPUT_LOGITS | GEMMA8_OUTPUT_HIDDEN;
        gemma8_batch by_id = gemma8_batch_tokens(0, tok, (int32_t)T);
        by_id.output = outs;
        CHECK(gemma8_decode(a, &by_id) == GEMMA8_OK);
        const gemma8_batch by_embd = {.n = (int32_t)T, .embd = embd};
        CHECK(gemma8_decode(b, &by_embd) == GEMMA8_OK);
        CHECK(max_abs_diff(gemma8_get_logits(a, -1), gemma8_get_logits(b, -1), 512) <= 1e-5f);
        CHECK(gemma8_get_hidden(b, -1) == NULL); /* not asked for */
        /* the last hidden layer: transformers' last hidden state (after the final norm) */
        const float *want = hs + (4 * T + (T - 1)) * E;
        float d = max_abs_diff(gemma8_get_hidden(a, (int32_t)T - 1), want, E);
        CHECKF(d <= 1e-4f, "hidden state differs by %g", d);
        int32_t n;
        const int32_t *h = gemma8_seq_history(b, 0, &n);
        CHECK(n == (int)T && h[0] == -1);
        CHECK(gemma8_cache_save(b, 0, tmp_path("embd.g8kv")) == GEMMA8_ERR_UNSUPPORTED);
        embd[3] = NAN;
        const gemma8_batch one = {.n = 1, .embd = embd};
        CHECK(gemma8_decode(b, &one) == GEMMA8_ERR_INVALID_ARG);
        const gemma8_batch both = {.n = 1, .embd = embd, .token = tok};
        CHECK(gemma8_decode(b, &both) == GEMMA8_ERR_INVALID_ARG);
    }
    free(outs);
    free(embd);
    free(tok);
    free(hs);
    gemma8_context_free(a);
    gemma8_context_free(b);
    gemma8_model_free(m);
}

/* A context that cannot fit is refused up front with both figures and a hint. */
TEST(context_memory_check) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_F32);
    if (!m) return;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 1 << 30;
    gemma8_memory_estimate e = gemma8_estimate_memory(m, &cp);
    CHECK(e.kv_cache == 4ull * 2 * (1ull << 30) * 32 * 4 - 2ull * 2 * ((1ull << 30) - (8 + 256)) * 32 * 4);
    CHECK(e.kv_cache_full == 4ull * 2 * (1ull << 30) * 32 * 4);
    gemma8_context *ctx = NULL;
    CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_ERR_NOMEM && ctx == NULL);
    CHECKF(strstr(gemma8_last_error(), "not enough memory") && strstr(gemma8_last_error(), "would fit (-c "), "%s",
           gemma8_last_error());
    /* the weights a loaded model holds (its packed quantized matrices; none for f32, used in place
     * from the mapping) are not asked of the memory a second time */
    CHECK(e.loaded == 0);
    gemma8_model *q = load_fixture("tiny-b", GEMMA8_TYPE_Q8_0);
    cp.n_ctx = 64;
    gemma8_memory_estimate eq = q ? gemma8_estimate_memory(q, &cp) : e;
    CHECKF(q && eq.loaded > 0 && eq.loaded <= eq.weights && eq.weights - eq.loaded < eq.weights / 20,
           "loaded %llu of %llu", (unsigned long long)eq.loaded, (unsigned long long)eq.weights);
    gemma8_model_free(q);
    gemma8_model_free(m);
}

/* The KV cache type follows the weights unless chosen; f16 stays close to f32. */
TEST(context_kv_cache_types) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_F32), *q = load_fixture("tiny-a", GEMMA8_TYPE_Q8_0);
    if (!m || !q) return;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 4096;
    gemma8_memory_estimate ef = gemma8_estimate_memory(m, &cp), eq = gemma8_estimate_memory(q, &cp);
    CHECKF(ef.kv_cache == 2 * eq.kv_cache, "f32 model %llu vs q8_0 model %llu bytes of KV",
           (unsigned long long)ef.kv_cache, (unsigned long long)eq.kv_cache);
    cp.kv_type = GEMMA8_TYPE_F16;
    CHECK(gemma8_estimate_memory(m, &cp).kv_cache == eq.kv_cache);
    int32_t tok[24];
    for (int i = 0; i < 24; i++) tok[i] = (i * 13 + 2) % 512;
    gemma8_context *a, *b;
    CHECK(gemma8_context_new(m, &cp, &b) == GEMMA8_OK);
    cp.kv_type = GEMMA8_TYPE_F32;
    CHECK(gemma8_context_new(m, &cp, &a) == GEMMA8_OK);
    CHECK(t_eval(a, 0, tok, 24, NULL) == GEMMA8_OK && t_eval(b, 0, tok, 24, NULL) == GEMMA8_OK);
    float d = max_abs_diff(gemma8_get_logits(a, -1), gemma8_get_logits(b, -1), 512);
    CHECKF(d < 2e-2f, "f16 vs f32 KV: %g", d);
    harness_note("f16 KV cache vs f32: max |logit diff| %.3g", d);
    cp.kv_type = GEMMA8_TYPE_Q8_0;
    gemma8_context *c = NULL;
    CHECK(gemma8_context_new(m, &cp, &c) == GEMMA8_ERR_INVALID_ARG);
    gemma8_context_free(a);
    gemma8_context_free(b);
    gemma8_model_free(m);
    gemma8_model_free(q);
}

/* ---- sequences ------------------------------------------------------------------ */

/* Three sequences of one context, stepped in turn (one past its sliding window,
 * one short, one through gemma8_generate), give exactly the logits each gives
 * alone in a context of its own; clearing one leaves the others. */
TEST(context_sequences_are_independent) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_Q8_0);
    if (!m) return;
    const int V = gemma8_model_get_info(m).n_vocab;
    const int L = 64; /* positions per sequence; tiny-a's window is 8 */
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 3 * L;
    cp.n_seq = 3;
    cp.n_batch = 16;
    gemma8_context *ctx = NULL, *solo[2] = {NULL, NULL};
    CHECKF(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK, "%s", gemma8_last_error());
    gemma8_context_params one = cp;
    one.n_ctx = L;
    one.n_seq = 1;
    for (int s = 0; s < 2; s++) CHECK(gemma8_context_new(m, &one, &solo[s]) == GEMMA8_OK);
    if (!ctx || !solo[0] || !solo[1]) goto done;
    CHECK(gemma8_n_seq(ctx) == 3 && gemma8_n_ctx(ctx) == L);
    int32_t tok[2][64];
    for (int i = 0; i < 64; i++) {
        tok[0][i] = (i * 37 + 5) % V;
        tok[1][i] = (i * 11 + 3) % V;
    }
    /* seq 0: 40 tokens (past the window) in steps of 5; seq 1: 12 tokens one at a time */
    int diffs = 0;
    for (int step = 0; step < 12; step++) {
        if (step < 8) {
            CHECK(t_eval(ctx, 0, tok[0] + step * 5, 5, NULL) == GEMMA8_OK);
            CHECK(t_eval(solo[0], 0, tok[0] + step * 5, 5, NULL) == GEMMA8_OK);
            diffs += memcmp(gemma8_get_logits(ctx, -1), gemma8_get_logits(solo[0], -1), (size_t)V * sizeof(float)) != 0;
        }
        CHECK(t_eval(ctx, 1, tok[1] + step, 1, NULL) == GEMMA8_OK);
        CHECK(t_eval(solo[1], 0, tok[1] + step, 1, NULL) == GEMMA8_OK);
        diffs += memcmp(gemma8_get_logits(ctx, -1), gemma8_get_logits(solo[1], -1), (size_t)V * sizeof(float)) != 0;
    }
    CHECKF(diffs == 0, "%d steps differ from the sequence alone", diffs);
    CHECK(gemma8_seq_n_past(ctx, 0) == 40 && gemma8_seq_n_past(ctx, 1) == 12 && gemma8_seq_n_past(ctx, 2) == 0);
    /* seq 2 generates; seq 0 and 1 keep their tokens */
    collect *c = calloc(1, sizeof *c);
    gemma8_generate_params p = greedy(6, c);
    p.seq = 2;
    CHECK(gemma8_generate(ctx, tok[0], 20, &p, NULL) == GEMMA8_OK && c->n == 6);
    int32_t got[6];
    memcpy(got, c->tok, sizeof got);
    memset(c, 0, sizeof *c);
    p.seq = 0;
    gemma8_seq_clear(solo[0], 0);
    CHECK(gemma8_generate(solo[0], tok[0], 20, &p, NULL) == GEMMA8_OK && c->n == 6);
    CHECK(!memcmp(got, c->tok, sizeof got));
    CHECK(gemma8_seq_n_past(ctx, 0) == 40 && gemma8_seq_n_past(ctx, 1) == 12);
    int32_t n;
    const int32_t *h = gemma8_seq_history(ctx, 1, &n);
    CHECK(n == 12 && !memcmp(h, tok[1], 12 * sizeof(int32_t)));
    gemma8_seq_clear(ctx, 0);
    CHECK(gemma8_seq_n_past(ctx, 0) == 0 && gemma8_seq_n_past(ctx, 1) == 12);
    /* a sequence that does not exist */
    CHECK(t_eval(ctx, 3, tok[0], 1, NULL) == GEMMA8_ERR_INVALID_ARG);
    p.seq = -1;
    CHECK(gemma8_generate(ctx, tok[0], 2, &p, NULL) == GEMMA8_ERR_INVALID_ARG);
    /* the memory estimate counts each sequence's cache */
    gemma8_memory_estimate e3 = gemma8_estimate_memory(m, &cp), e1 = gemma8_estimate_memory(m, &one);
    CHECK(e3.kv_cache == 3 * e1.kv_cache);
    free(c);
done:
    gemma8_context_free(ctx);
    gemma8_context_free(solo[0]);
    gemma8_context_free(solo[1]);
    gemma8_model_free(m);
}

/* Pages of a unified pool's layer buffers that hold memory (mincore), over every sequence and layer. */
static size_t pool_pages(const gemma8_context *ctx) {
    const g8_kvcache *c = &ctx->kv;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t resident = 0;
    for (int s = 0; s < c->n_seq; s++)
        for (int il = 0; il < c->n_layer; il++)
            for (int kv = 0; kv < 2; kv++) {
                const g8_kv_layer *L = &c->seq[s].layers[il];
                const size_t bytes = (size_t)L->slots * c->n_head_kv * g8_kv_head_bytes(c->type, c->head_dim);
                const size_t n = (bytes + page - 1) / page;
                unsigned char *vec = malloc(n);
                if (vec && !mincore(kv ? L->v : L->k, bytes, vec))
                    for (size_t i = 0; i < n; i++) resident += vec[i] & 1;
                free(vec);
            }
    return resident;
}

/* A unified pool (kv_unified): each sequence may fill it, all of them together not; a batch past it is
 * refused whole with the pool named; a sequence cut back or cleared gives its room (and its memory)
 * back; what each sequence computes is bit for bit what it computes in a context of its own. */
TEST(context_kv_unified_pool) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_F32);
    if (!m) return;
    const int V = gemma8_model_get_info(m).n_vocab;
    const int P = 256; /* the pool; tiny-a's window is 8 */
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = P;
    cp.n_seq = 3;
    cp.n_batch = 16;
    cp.kv_unified = true;
    gemma8_context *ctx = NULL, *solo = NULL;
    CHECKF(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK, "%s", gemma8_last_error());
    gemma8_context_params one = cp;
    one.n_seq = 1;
    one.kv_unified = false;
    CHECK(gemma8_context_new(m, &one, &solo) == GEMMA8_OK);
    int32_t *tok = malloc((size_t)P * sizeof *tok);
    float *want = malloc((size_t)V * sizeof *want);
    if (!ctx || !solo || !tok || !want) goto done;
    for (int i = 0; i < P; i++) tok[i] = (i * 37 + 5) % V;
    CHECK(gemma8_n_ctx(ctx) == P && gemma8_n_seq(ctx) == 3);
    CHECK(pool_pages(ctx) == 0);
    /* sequence 1 alone takes 240 of the 256 positions (a third would be 85) */
    int diffs = 0;
    for (int at = 0; at < 240; at += 16) {
        CHECK(t_eval(ctx, 1, tok + at, 16, NULL) == GEMMA8_OK);
        CHECK(t_eval(solo, 0, tok + at, 16, NULL) == GEMMA8_OK);
        diffs +=
            memcmp(gemma8_get_logits(ctx, -1), gemma8_get_logits(solo, -1), (size_t)V * sizeof(float)) != 0;
    }
    CHECKF(diffs == 0, "%d steps differ from the sequence in a context of its own", diffs);
    const size_t full = pool_pages(ctx);
    CHECK(full > 0);
    /* 17 more on sequence 0 pass the pool: refused whole, nothing kept */
    CHECK(t_eval(ctx, 0, tok, 17, NULL) == GEMMA8_ERR_CONTEXT_FULL);
    CHECKF(strstr(gemma8_last_error(), "KV pool of 256 positions is full") != NULL, "%s",
           gemma8_last_error());
    CHECK(gemma8_seq_n_past(ctx, 0) == 0 && gemma8_seq_n_past(ctx, 1) == 240);
    CHECK(t_eval(ctx, 0, tok, 16, NULL) == GEMMA8_OK);
    CHECK(t_eval(ctx, 2, tok, 1, NULL) == GEMMA8_ERR_CONTEXT_FULL);
    /* cut back to 225 (the sliding rings still hold what position 225 sees): room for 15 more */
    gemma8_seq_truncate(ctx, 1, 225);
    gemma8_seq_truncate(solo, 0, 225);
    CHECK(gemma8_seq_n_past(ctx, 1) == 225);
    CHECK(t_eval(ctx, 2, tok + 3, 15, NULL) == GEMMA8_OK);
    CHECK(t_eval(ctx, 1, tok, 1, NULL) == GEMMA8_ERR_CONTEXT_FULL);
    /* cleared, a sequence gives its room and its memory back */
    const size_t three = pool_pages(ctx);
    CHECK(three > full);
    gemma8_seq_clear(ctx, 2);
    gemma8_seq_clear(ctx, 0);
    const size_t cut = pool_pages(ctx);
    CHECKF(cut < three, "%zu pages held after two sequences were cleared, %zu before", cut, three);
    /* the cut-back sequence goes on as a context of its own does */
    CHECK(t_eval(ctx, 1, tok + 100, 15, NULL) == GEMMA8_OK);
    CHECK(t_eval(solo, 0, tok + 100, 15, NULL) == GEMMA8_OK);
    CHECK(!memcmp(gemma8_get_logits(ctx, -1), gemma8_get_logits(solo, -1), (size_t)V * sizeof(float)));
    gemma8_seq_truncate(ctx, 1, 120); /* too far back for the rings: emptied */
    CHECK(gemma8_seq_n_past(ctx, 1) == 0);
    gemma8_seq_clear(solo, 0);
    CHECK(t_eval(ctx, 1, tok, 120, NULL) == GEMMA8_OK && t_eval(solo, 0, tok, 120, NULL) == GEMMA8_OK);
    CHECK(t_eval(ctx, 2, tok, 100, NULL) == GEMMA8_OK);
    CHECK(t_eval(ctx, 0, tok, 37, NULL) == GEMMA8_ERR_CONTEXT_FULL); /* 120 + 100 + 37 > 256 */
    /* a prompt cache that does not fit the room left is refused; one that does loads */
    const char *path = tmp_path("unified-pool.g8kv");
    CHECK(gemma8_cache_save(ctx, 1, path) == GEMMA8_OK);
    CHECK(gemma8_cache_load(ctx, 0, path) == GEMMA8_ERR_CONTEXT_FULL);
    CHECKF(strstr(gemma8_last_error(), "KV pool") != NULL, "%s", gemma8_last_error());
    gemma8_seq_clear(ctx, 2);
    CHECK(gemma8_cache_load(ctx, 0, path) == GEMMA8_OK && gemma8_seq_n_past(ctx, 0) == 120);
    memcpy(want, gemma8_get_logits(solo, -1), (size_t)V * sizeof(float));
    CHECK(t_eval(ctx, 0, tok + 120, 1, NULL) == GEMMA8_OK &&
          t_eval(solo, 0, tok + 120, 1, NULL) == GEMMA8_OK);
    CHECK(!memcmp(gemma8_get_logits(ctx, -1), gemma8_get_logits(solo, -1), (size_t)V * sizeof(float)));
    /* cleared, every page goes back; written again, the same logits as the first time */
    for (int s = 0; s < 3; s++) gemma8_seq_clear(ctx, s);
    CHECKF(pool_pages(ctx) == 0, "%zu pages held by an empty pool", pool_pages(ctx));
    gemma8_seq_clear(solo, 0);
    CHECK(t_eval(ctx, 2, tok, 200, NULL) == GEMMA8_OK && t_eval(solo, 0, tok, 200, NULL) == GEMMA8_OK);
    CHECK(!memcmp(gemma8_get_logits(ctx, -1), gemma8_get_logits(solo, -1), (size_t)V * sizeof(float)));
    /* the estimate: no more than one sequence of the whole pool's positions, plus a page a buffer */
    const gemma8_memory_estimate eu = gemma8_estimate_memory(m, &cp), e1 = gemma8_estimate_memory(m, &one);
    CHECKF(eu.kv_cache >= (uint64_t)pool_pages(ctx) * (uint64_t)sysconf(_SC_PAGESIZE) &&
               eu.kv_cache_full == e1.kv_cache_full,
           "estimate %llu bytes", (unsigned long long)eu.kv_cache);
done:
    free(tok);
    free(want);
    gemma8_context_free(ctx);
    gemma8_context_free(solo);
    gemma8_model_free(m);
}

/* Generations stepped together on a unified pool: a prompt chunk takes only the room left; when a
 * step's tokens do not fit, the generations later in gens end with GEMMA8_ERR_CONTEXT_FULL and the
 * earlier ones go on (here once the caller clears the ended one, as a server does) with exactly the
 * tokens they give alone. */
TEST(generate_steps_unified_pool) {
    gemma8_model *m = load_fixture("tiny-b", GEMMA8_TYPE_F32);
    if (!m) return;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 47;
    cp.n_seq = 2;
    cp.n_batch = 8;
    cp.kv_unified = true;
    gemma8_context *ctx = NULL, *solo = NULL;
    CHECKF(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK, "%s", gemma8_last_error());
    cp.n_seq = 1;
    cp.kv_unified = false;
    CHECK(gemma8_context_new(m, &cp, &solo) == GEMMA8_OK);
    collect *c[2] = {calloc(1, sizeof(collect)), calloc(1, sizeof(collect))};
    collect *ref = calloc(1, sizeof(collect));
    int32_t prompts[2][7] = {{2, 9, 8, 7, 6, 5, 4}, {2, 40, 41, 42, 43, 44, 45}};
    const int n_prompt[2] = {6, 7};
    gemma8_gen *g[2] = {NULL, NULL};
    for (int s = 0; ctx && s < 2; s++) {
        gemma8_generate_params p = greedy(20, c[s]); /* 6 + 19 + 7 + 19 = 51 > 47 */
        p.seq = s;
        CHECK(gemma8_gen_begin(ctx, prompts[s], n_prompt[s], &p, &g[s]) == GEMMA8_OK);
    }
    gemma8_status status[2] = {GEMMA8_OK, GEMMA8_OK};
    int n_run = 2, steps = 0;
    while (g[1] && n_run > 0 && steps++ < 100) {
        bool done[2] = {false, false};
        CHECK(gemma8_gen_step_many(g, n_run, done) == GEMMA8_OK);
        CHECK(g8_kv_held(&ctx->kv) <= 47);
        for (int k = n_run - 1; k >= 0; k--) {
            if (!done[k]) continue;
            status[k] = gemma8_gen_end(g[k], NULL);
            if (status[k]) gemma8_seq_clear(ctx, k);
            CHECKF(k == n_run - 1, "generation %d ended before the one after it", k);
            n_run = k;
        }
    }
    CHECKF(status[0] == GEMMA8_OK && status[1] == GEMMA8_ERR_CONTEXT_FULL, "statuses %s, %s",
           gemma8_status_str(status[0]), gemma8_status_str(status[1]));
    CHECK(strstr(gemma8_last_error(), "KV pool of 47 positions is full") != NULL);
    gemma8_generate_params p = greedy(20, ref);
    CHECK(gemma8_generate(solo, prompts[0], 6, &p, NULL) == GEMMA8_OK);
    CHECKF(ref->n == 20 && c[0]->n == 20 && !memcmp(ref->tok, c[0]->tok, 20 * sizeof(int32_t)),
           "%d tokens stepped vs %d alone", c[0]->n, ref->n);
    free(c[0]);
    free(c[1]);
    free(ref);
    gemma8_context_free(ctx);
    gemma8_context_free(solo);
    gemma8_model_free(m);
}

/* Two generations stepped in turn on two sequences of one context (prefill in
 * chunks of 4) give what each gives alone through gemma8_generate; a
 * generation ended early reports GEMMA8_STOP_ABORTED and frees its slot. */
TEST(generate_steps_interleaved) {
    gemma8_model *m = load_fixture("tiny-b", GEMMA8_TYPE_F32);
    if (!m) return;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 256;
    cp.n_seq = 2;
    cp.n_batch = 4;
    gemma8_context *ctx = NULL, *solo = NULL;
    CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK);
    cp.n_seq = 1;
    cp.n_ctx = 128;
    CHECK(gemma8_context_new(m, &cp, &solo) == GEMMA8_OK);
    collect *c[2] = {calloc(1, sizeof(collect)), calloc(1, sizeof(collect))};
    collect *ref = calloc(1, sizeof(collect));
    int32_t prompts[2][11] = {{2, 9, 8, 7, 6, 5, 4, 3, 10, 11, 12}, {2, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49}};
    gemma8_gen *g[2] = {NULL, NULL};
    for (int s = 0; ctx && s < 2; s++) {
        gemma8_generate_params p = greedy(12 + 3 * s, c[s]);
        p.seq = s;
        CHECK(gemma8_gen_begin(ctx, prompts[s], 11, &p, &g[s]) == GEMMA8_OK);
    }
    bool done[2] = {false, false};
    int steps = 0;
    /* in turn at first, then both together (a batched decode once both generate) */
    while (g[0] && g[1] && (!done[0] || !done[1]) && steps++ < 100) {
        if (steps > 5) {
            CHECK(gemma8_gen_step_many(g, 2, done) == GEMMA8_OK);
            continue;
        }
        for (int s = 0; s < 2; s++)
            if (!done[s]) CHECK(gemma8_gen_step(g[s], &done[s]) == GEMMA8_OK);
    }
    for (int s = 0; s < 2 && g[s]; s++) {
        gemma8_generate_result r;
        CHECK(gemma8_gen_end(g[s], &r) == GEMMA8_OK && r.stop_reason == GEMMA8_STOP_LENGTH);
        memset(ref, 0, sizeof *ref);
        gemma8_generate_params p = greedy(12 + 3 * s, ref);
        gemma8_seq_clear(solo, 0);
        CHECK(gemma8_generate(solo, prompts[s], 11, &p, NULL) == GEMMA8_OK);
        CHECKF(ref->n == c[s]->n && !memcmp(ref->tok, c[s]->tok, (size_t)ref->n * sizeof(int32_t)),
               "sequence %d: %d tokens stepped vs %d alone", s, c[s]->n, ref->n);
    }
    /* ended by the caller mid-way */
    gemma8_gen *h = NULL;
    memset(c[0], 0, sizeof(collect));
    gemma8_generate_params p = greedy(50, c[0]);
    gemma8_seq_clear(ctx, 0);
    /* 11 prompt tokens in chunks of 4: 3 steps, the third also gives the first token; 3 more */
    if (ctx && CHECK(gemma8_gen_begin(ctx, prompts[0], 11, &p, &h) == GEMMA8_OK)) {
        bool d = false;
        for (int i = 0; i < 6; i++) gemma8_gen_step(h, &d);
        gemma8_generate_result r;
        CHECK(gemma8_gen_end(h, &r) == GEMMA8_OK && r.stop_reason == GEMMA8_STOP_ABORTED && r.n_generated == 4);
        CHECK(c[0]->finished == 1);
    }
    free(c[0]);
    free(c[1]);
    free(ref);
    gemma8_context_free(ctx);
    gemma8_context_free(solo);
    gemma8_model_free(m);
}

/* The last hidden layer of every position (for mean-pooled embeddings) against
 * transformers' hidden states after the final norm, on a second sequence. */
TEST(eval_hidden_every_position) {
    gemma8_model *m = load_fixture("tiny-a", GEMMA8_TYPE_F32);
    if (!m) return;
    size_t T, nh;
    int32_t *tok;
    float *hs;
    load_seq0_hidden(&tok, &T, &hs, &nh);
    const size_t E = (size_t)gemma8_model_get_info(m).n_embd;
    const size_t layers = nh / (T * E); /* layers + 1 entries; the last is after the final norm */
    gemma8_context *ctx = new_ctx_seqs(m, 64, 2, 7); /* chunks of 7 */
    float *got = malloc(T * E * sizeof(float));
    if (ctx && tok && hs && got) {
        uint8_t *outs = malloc(T);
        memset(outs, GEMMA8_OUTPUT_HIDDEN, T);
        gemma8_batch b = gemma8_batch_tokens(1, tok, (int32_t)T);
        b.output = outs;
        CHECK(gemma8_decode(ctx, &b) == GEMMA8_OK);
        CHECK(gemma8_get_logits(ctx, -1) == NULL); /* hidden states only: no logits computed */
        for (size_t t = 0; t < T; t++) memcpy(got + t * E, gemma8_get_hidden(ctx, (int32_t)t), E * sizeof(float));
        float d = max_abs_diff(got, hs + (layers - 1) * T * E, T * E);
        CHECKF(d <= 1e-4f, "hidden states differ by %g", d);
        CHECK(gemma8_seq_n_past(ctx, 1) == (int32_t)T && gemma8_seq_n_past(ctx, 0) == 0);
        b = gemma8_batch_tokens(2, tok, 1);
        CHECK(gemma8_decode(ctx, &b) == GEMMA8_ERR_INVALID_ARG);
        outs[0] = 4;
        b = gemma8_batch_tokens(0, tok, 1);
        b.output = outs;
        CHECK(gemma8_decode(ctx, &b) == GEMMA8_ERR_INVALID_ARG);
        free(outs);
        harness_note("%zu positions in chunks of 7: max |diff| %g", T, d);
    }
    free(got);
    free(tok);
    free(hs);
    gemma8_context_free(ctx);
    gemma8_model_free(m);
}

/* ---- batched decode ------------------------------------------------------------------- */

/* Four sequences, each fed its prompt in chunks of 1 to 5 tokens inside
 * batches that also decode the others (one past its sliding window while
 * another is short), in a varying order, one joining late and one leaving
 * early: the logits of every run equal, bit for bit, those the sequence gives
 * alone in a context of its own with its own chunking (n_batch 3), for f32,
 * f16, q8_0 and q4_0 models (q4_0's one-token runs take several streams a thread,
 * ops.c) and f16 and q8_0 caches. */
static void check_batch_invariance(const char *fixture, gemma8_type type, int32_t kv_type) {
    gemma8_model *m = load_fixture(fixture, type);
    if (!m) return;
    const int V = gemma8_model_get_info(m).n_vocab;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 4 * 64; /* 64 positions each */
    cp.n_seq = 4;
    cp.n_batch = 16;
    cp.kv_type = kv_type;
    gemma8_context *ctx = NULL, *solo[4] = {NULL, NULL, NULL, NULL};
    CHECKF(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK, "%s", gemma8_last_error());
    cp.n_ctx = 64;
    cp.n_seq = 1;
    cp.n_batch = 3;
    for (int s = 0; s < 4; s++) CHECK(gemma8_context_new(m, &cp, &solo[s]) == GEMMA8_OK); /* each alone */
    float *batch = malloc((size_t)4 * V * sizeof(float));
    float *alone = malloc((size_t)5 * V * sizeof(float));
    int32_t tok[4][64];
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 64; i++) tok[s][i] = 1 + (i * (7 + 2 * s) + 3 * s) % (V - 1);
    const int plen[4] = {3, 17, 9, 30}; /* tiny models' windows are 8 or 16 */
    int at[4] = {0, 0, 0, 0}, diffs = 0, rows = 0, mixed = 0;
    for (int step = 0; ctx && solo[3] && step < 16; step++) {
        int32_t seqs[16], ids[16], runs[4], lens[4];
        int n = 0, nr = 0, prefill = 0;
        for (int k = 0; k < 4; k++) {
            const int s = (k + step) % 4; /* a different order each step */
            if ((s == 3 && step < 4) || (s == 1 && step >= 10)) continue; /* 3 joins late, 1 leaves early */
            const int len = at[s] < plen[s] ? (plen[s] - at[s] < 1 + (step + s) % 5 ? plen[s] - at[s] : 1 + (step + s) % 5) : 1;
            prefill += at[s] < plen[s];
            for (int i = 0; i < len; i++) {
                seqs[n] = s;
                ids[n++] = tok[s][at[s] + i];
            }
            runs[nr] = s;
            lens[nr++] = len;
        }
        mixed += prefill > 0 && prefill < nr;
        CHECKF(t_decode_runs(ctx, seqs, ids, n, batch) == GEMMA8_OK, "%s", gemma8_last_error());
        for (int r = 0; r < nr; r++) {
            const int s = runs[r];
            /* the same tokens alone, in a context of its own, evaluated 3 at a time */
            CHECK(t_eval(solo[s], 0, &tok[s][at[s]], lens[r], alone) == GEMMA8_OK);
            diffs += memcmp(alone + (size_t)(lens[r] - 1) * V, batch + (size_t)r * V, (size_t)V * sizeof(float)) != 0;
            at[s] += lens[r];
            rows++;
        }
    }
    CHECKF(diffs == 0 && rows > 40 && mixed > 4, "%s %s kv %d: %d of %d rows differ from the sequence alone", fixture,
           gemma8_type_name(type), kv_type, diffs, rows);
    /* a sequence in two places, one that does not exist, more than n_batch tokens */
    int32_t split[3] = {0, 1, 0}, ids[3] = {5, 6, 7};
    CHECK(!ctx || t_decode_runs(ctx, split, ids, 3, batch) == GEMMA8_ERR_INVALID_ARG);
    split[1] = 9;
    CHECK(!ctx || t_decode_runs(ctx, split + 1, ids, 1, batch) == GEMMA8_ERR_INVALID_ARG);
    /* more entries than n_batch run in steps; a bad entry in the last step stops the batch before
     * anything runs (the whole batch is checked first) */
    int32_t many[17] = {0}, many_ids[17] = {0};
    const int32_t before = ctx ? gemma8_seq_n_past(ctx, 0) : 0;
    many_ids[16] = V;
    CHECK(!ctx || t_decode_runs(ctx, many, many_ids, 17, batch) == GEMMA8_ERR_INVALID_ARG);
    CHECK(!ctx || gemma8_seq_n_past(ctx, 0) == before);
    many_ids[16] = 3;
    CHECK(!ctx || t_decode_runs(ctx, many, many_ids, 17, batch) == GEMMA8_OK);
    CHECK(!ctx || gemma8_seq_n_past(ctx, 0) == before + 17);
    free(batch);
    free(alone);
    gemma8_context_free(ctx);
    for (int s = 0; s < 4; s++) gemma8_context_free(solo[s]);
    gemma8_model_free(m);
}

TEST(decode_batch_invariant_f32) { check_batch_invariance("tiny-a", GEMMA8_TYPE_F32, GEMMA8_KV_AUTO); }
TEST(decode_batch_invariant_f16) { check_batch_invariance("tiny-c", GEMMA8_TYPE_F16, GEMMA8_TYPE_F16); }
TEST(decode_batch_invariant_q8_0) { check_batch_invariance("tiny-b", GEMMA8_TYPE_Q8_0, GEMMA8_TYPE_F16); }
TEST(decode_batch_invariant_q8_0_kv_q8_0) { check_batch_invariance("tiny-b", GEMMA8_TYPE_Q8_0, GEMMA8_TYPE_Q8_0); }
TEST(decode_batch_invariant_q4_0) { check_batch_invariance("tiny-b", GEMMA8_TYPE_Q4_0, GEMMA8_TYPE_F16); }
TEST(decode_batch_invariant_gemma3_f32) { check_batch_invariance("gemma3/tiny-a", GEMMA8_TYPE_F32, GEMMA8_KV_AUTO); }
TEST(decode_batch_invariant_gemma3_q8_0_kv_q8_0) {
    check_batch_invariance("gemma3/tiny-b", GEMMA8_TYPE_Q8_0, GEMMA8_TYPE_Q8_0);
}
TEST(decode_batch_invariant_gemma3_q4_0) { check_batch_invariance("gemma3/tiny-b", GEMMA8_TYPE_Q4_0, GEMMA8_TYPE_F16); }

/* What gemma8_estimate_memory says a context needs besides the weights is what creating it
 * allocates (measured by the allocator's own count), for a float and a quantized model, one and
 * several sequences, and an f16 cache. */
TEST(context_estimate_equals_allocation) {
    /* a sanitizer's allocator keeps no mallinfo2 count: then there is nothing to measure with */
    const struct mallinfo2 p0 = mallinfo2();
    char *volatile probe = malloc(1 << 20); /* volatile: the pair is not optimised away */
    const struct mallinfo2 p1 = mallinfo2();
    const bool counted = p1.uordblks + p1.hblkhd >= p0.uordblks + p0.hblkhd + (1 << 20);
    free(probe);
    if (!counted) {
        harness_skip("this allocator keeps no mallinfo2 count (a sanitizer's runtime)");
        return;
    }
    const gemma8_type types[2] = {GEMMA8_TYPE_F32, GEMMA8_TYPE_Q8_0};
    for (int ti = 0; ti < 2; ti++) {
        gemma8_model *m = load_fixture("tiny-a", types[ti]);
        if (!m) return;
        for (int k = 0; k < 3; k++) {
            gemma8_context_params cp = gemma8_context_default_params();
            cp.n_ctx = k == 2 ? 4096 : 1024;
            cp.n_seq = k == 0 ? 1 : 4;
            cp.n_batch = k == 1 ? 512 : 2048;
            cp.n_threads = 2;
            cp.kv_type = k == 2 && ti == 1 ? GEMMA8_TYPE_F16 : GEMMA8_KV_AUTO;
            const gemma8_memory_estimate e = gemma8_estimate_memory(m, &cp);
            const struct mallinfo2 a = mallinfo2();
            gemma8_context *ctx = NULL;
            CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK);
            const struct mallinfo2 b = mallinfo2();
            const double got = (double)(b.uordblks + b.hblkhd) - (double)(a.uordblks + a.hblkhd);
            const double want = (double)(e.kv_cache + e.scratch);
            /* malloc's own headers (16 bytes a block) and page rounding of the large blocks */
            CHECKF(fabs(got - want) <= 64.0 * 1024 && fabs(got - want) <= 0.01 * want,
                   "%s, case %d: estimate %.0f bytes, allocated %.0f", gemma8_type_name(types[ti]), k, want, got);
            harness_note("%s, case %d: estimated %.0f bytes, allocated %.0f", gemma8_type_name(types[ti]), k, want,
                         got);
            gemma8_context_free(ctx);
        }
        gemma8_model_free(m);
    }
}

/* An embedding is the same bits alone (gemma8_embed) and as an embedding generation stepped in one
 * batch beside generating sequences (the server's way), and matches transformers' mean of the
 * last hidden layer, L2-normalised. */
static void check_embeddings(const char *fixture) {
    gemma8_model *m = load_fixture(fixture, GEMMA8_TYPE_F32);
    if (!m) return;
    size_t T, nh;
    int32_t *tok;
    float *hs;
    load_seq0_hidden_of(fixture, &tok, &T, &hs, &nh);
    const int E = gemma8_model_get_info(m).n_embd;
    gemma8_context *alone = new_ctx_seqs(m, 128, 3, 7); /* the embedding runs in several chunks */
    gemma8_context *mixed = new_ctx_seqs(m, 128, 3, 7);
    float *a = calloc((size_t)E, sizeof(float));
    if (alone && mixed && tok && hs) {
        CHECK(gemma8_embed(alone, 1, tok, (int32_t)T, a) == GEMMA8_OK);
        CHECK(gemma8_seq_n_past(alone, 1) == 0); /* cleared after */
        /* the reference: transformers' hidden states after the final norm, pooled in double */
        const size_t layers = nh / (T * (size_t)E);
        double *sum = calloc((size_t)E, sizeof(double));
        float *want = calloc((size_t)E, sizeof(float));
        for (size_t t = 0; t < T; t++)
            for (int d = 0; d < E; d++) sum[d] += hs[(layers - 1) * T * E + t * E + d];
        double norm = 0;
        for (int d = 0; d < E; d++) norm += (sum[d] / T) * (sum[d] / T);
        for (int d = 0; d < E; d++) want[d] = (float)(sum[d] / T / sqrt(norm));
        const float dref = max_abs_diff(a, want, (size_t)E);
        CHECKF(dref <= 1e-5f, "embedding differs from transformers' by %g", dref);
        /* two generations decoding on sequences 0 and 2, the embedding on 1, stepped together */
        gemma8_generate_params gp = gemma8_generate_default_params();
        gp.sampling.temperature = 0;
        gp.max_new_tokens = 40;
        gemma8_gen *gens[3] = {NULL, NULL, NULL};
        gp.seq = 0;
        CHECK(gemma8_gen_begin(mixed, tok, 5, &gp, &gens[0]) == GEMMA8_OK);
        gp.seq = 2;
        CHECK(gemma8_gen_begin(mixed, tok + 3, 9, &gp, &gens[2]) == GEMMA8_OK);
        bool done[3] = {false, false, false};
        for (int i = 0; i < 3 && !done[0]; i++) CHECK(gemma8_gen_step_many(gens, 1, done) == GEMMA8_OK);
        gemma8_generate_params ep = gemma8_generate_default_params();
        ep.embed = true;
        ep.seq = 1;
        CHECK(gemma8_gen_begin(mixed, tok, (int32_t)T, &ep, &gens[1]) == GEMMA8_OK);
        for (int i = 0; i < 200 && !done[1]; i++) CHECK(gemma8_gen_step_many(gens, 3, done) == GEMMA8_OK);
        const float *b = gemma8_gen_embedding(gens[1]);
        CHECK(done[1] && b && !memcmp(a, b, (size_t)E * sizeof(float)));
        CHECK(gemma8_seq_n_past(mixed, 1) == 0);
        for (int i = 0; i < 3; i++) gemma8_gen_end(gens[i], NULL);
        free(sum);
        free(want);
    }
    free(a);
    free(tok);
    free(hs);
    gemma8_context_free(alone);
    gemma8_context_free(mixed);
    gemma8_model_free(m);
}

TEST(embeddings_alone_and_batched) { check_embeddings("tiny-a"); }
TEST(embeddings_gemma3_alone_and_batched) { check_embeddings("gemma3/tiny-a"); }
