/* generate.c - generation: prompt reuse, the sampling loop, streaming text,
 * stop strings, abort, the asynchronous run and chat turns. */
#include "context.h"

#include <pthread.h>
#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

gemma8_generate_params gemma8_generate_default_params(void) {
    gemma8_generate_params p = {0};
    p.max_new_tokens = 512;
    p.sampling = gemma8_sampler_default_params();
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Text waiting for release: a tail that may still become a stop string is held. */
typedef struct out_text {
    char *held;
    size_t n;
} out_text;

/* Length of the longest suffix of s that is a proper prefix of a stop string. */
static size_t stop_prefix_tail(const char *s, size_t n, const char *const *stop, int32_t n_stop) {
    size_t best = 0;
    for (int32_t k = 0; k < n_stop; k++) {
        size_t sl = strlen(stop[k]);
        for (size_t t = G8_MIN(n, sl ? sl - 1 : 0); t > best; t--)
            if (!memcmp(s + n - t, stop[k], t)) {
                best = t;
                break;
            }
    }
    return best;
}

static bool emit(const gemma8_generate_params *p, int32_t tok, const char *text, size_t len, gemma8_run_state st) {
    return p->on_token ? p->on_token(tok, text, len, st, p->user_data) : true;
}

static gemma8_status run(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt, const gemma8_generate_params *p,
                         gemma8_generate_result *res) {
    const gemma8_model *m = ctx->model;
    const int n_vocab = m->hp.n_vocab;
    memset(res, 0, sizeof *res);
    res->n_prompt = n_prompt;
    if (n_prompt <= 0) return g8_fail(GEMMA8_ERR_INVALID_ARG, "the prompt is empty");
    if (p->max_new_tokens < 0 || p->n_stop < 0 || (p->n_stop && !p->stop))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid generation parameters");
    for (int32_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= n_vocab)
            return g8_fail(GEMMA8_ERR_INVALID_ARG, "token id %d at index %d is outside the vocabulary", prompt[i], i);
    if (p->seq < 0 || p->seq >= ctx->kv.n_seq)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "sequence %d does not exist (the context has %d)", p->seq,
                       ctx->kv.n_seq);
    if (n_prompt >= ctx->n_ctx)
        return g8_fail(GEMMA8_ERR_CONTEXT_FULL, "the prompt of %d tokens does not fit in the context of %d (leave room "
                       "to generate)", n_prompt, ctx->n_ctx);
    gemma8_sampler *smp;
    gemma8_status st = gemma8_sampler_new(&p->sampling, &smp);
    if (st) return st;

    /* keep the longest common prefix; the last prompt token is always evaluated for its logits */
    const int s = p->seq;
    g8_kv_seq *seq = &ctx->kv.seq[s];
    int32_t keep = 0;
    while (keep < seq->n_past && keep < n_prompt - 1 && seq->tokens[keep] == prompt[keep]) keep++;
    g8_kv_truncate(&ctx->kv, s, keep);
    res->n_reused = seq->n_past;
    double t0 = now_s();
    st = g8_eval(ctx, s, prompt + seq->n_past, NULL, n_prompt - seq->n_past, NULL);
    res->prompt_seconds = now_s() - t0;
    for (int32_t i = G8_MAX(0, n_prompt - p->sampling.repeat_last_n); i < n_prompt; i++) gemma8_sampler_accept(smp, prompt[i]);

    g8_stream stream = {0};
    out_text out = {0};
    char *piece = NULL;
    size_t piece_len = 0;
    t0 = now_s();
    while (!st && !res->stop_reason) {
        if (res->n_generated >= p->max_new_tokens) {
            res->stop_reason = GEMMA8_STOP_LENGTH;
            break;
        }
        if (atomic_load(&ctx->abort)) {
            res->stop_reason = GEMMA8_STOP_ABORTED;
            st = g8_fail(GEMMA8_ERR_ABORTED, "generation aborted");
            break;
        }
        int32_t tok = gemma8_sampler_sample(smp, gemma8_get_logits(ctx), n_vocab);
        if (tok < 0) {
            st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory sampling");
            break;
        }
        if (!p->ignore_eos && gemma8_token_is_eog(m, tok)) {
            res->stop_reason = GEMMA8_STOP_EOG;
            break;
        }
        gemma8_sampler_accept(smp, tok);
        res->n_generated++;
        /* text: the stream releases whole characters; stop strings are cut out */
        piece_len = 0;
        bool ok = m->has_vocab ? g8_stream_feed(&m->vocab, &stream, tok, &piece, &piece_len) : true;
        if (ok && piece_len) {
            char *nh = realloc(out.held, out.n + piece_len + 1);
            ok = nh != NULL;
            if (ok) {
                memcpy(nh + out.n, piece, piece_len);
                out.held = nh;
                out.n += piece_len;
                out.held[out.n] = 0;
            }
        }
        if (!ok) {
            st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory decoding");
            break;
        }
        size_t release = out.n;
        for (int32_t k = 0; k < p->n_stop; k++) {
            const char *hit = strlen(p->stop[k]) ? strstr(out.held, p->stop[k]) : NULL;
            if (hit && (size_t)(hit - out.held) < release) {
                release = (size_t)(hit - out.held);
                res->stop_reason = GEMMA8_STOP_STRING;
            }
        }
        if (res->stop_reason != GEMMA8_STOP_STRING) release -= stop_prefix_tail(out.held, out.n, p->stop, p->n_stop);
        gemma8_run_state rs = stream.n && !release ? GEMMA8_RUN_WAITING : GEMMA8_RUN_NORMAL;
        bool more = emit(p, tok, out.held ? out.held : "", release, rs);
        if (out.held) memmove(out.held, out.held + release, out.n - release);
        out.n -= release;
        if (res->stop_reason == GEMMA8_STOP_STRING) out.n = 0; /* the stop string and what follows are dropped */
        if (out.held) out.held[out.n] = 0;
        if (!more && !res->stop_reason) res->stop_reason = GEMMA8_STOP_CALLBACK;
        if (res->stop_reason) break;
        if (seq->n_past >= ctx->n_ctx) {
            res->stop_reason = GEMMA8_STOP_CONTEXT;
            break;
        }
        if (res->n_generated < p->max_new_tokens) st = g8_eval(ctx, s, &tok, NULL, 1, NULL);
    }
    res->gen_seconds = now_s() - t0;
    if (st == GEMMA8_ERR_ABORTED) res->stop_reason = GEMMA8_STOP_ABORTED;
    /* what is still held: incomplete bytes as U+FFFD, a stop-string prefix that never completed */
    if (!st && res->stop_reason != GEMMA8_STOP_STRING) {
        piece_len = 0;
        if (g8_stream_flush(&stream, &piece, &piece_len) && (out.n || piece_len)) {
            char *nh = realloc(out.held, out.n + piece_len + 1);
            if (nh) {
                memcpy(nh + out.n, piece, piece_len);
                out.held = nh;
                out.n += piece_len;
                emit(p, -1, out.held, out.n, GEMMA8_RUN_NORMAL);
            }
        }
    }
    if (st && st != GEMMA8_ERR_ABORTED) emit(p, -1, "", 0, GEMMA8_RUN_ERROR);
    else emit(p, -1, "", 0, GEMMA8_RUN_FINISH);
    free(piece);
    free(out.held);
    gemma8_sampler_free(smp);
    return st;
}

gemma8_status gemma8_generate(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                              const gemma8_generate_params *params, gemma8_generate_result *result) {
    gemma8_generate_result local;
    if (!ctx || !params || (!prompt && n_prompt)) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to generate");
    atomic_store(&ctx->abort, false);
    return run(ctx, prompt, n_prompt, params, result ? result : &local);
}

gemma8_status gemma8_chat(gemma8_context *ctx, const gemma8_chat_message *msgs, int32_t n_msgs,
                          const gemma8_generate_params *params, gemma8_generate_result *result) {
    if (!ctx || !params) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to chat");
    const gemma8_model *m = ctx->model;
    int32_t cap = ctx->n_ctx + 1, n;
    int32_t *ids = g8_malloc((size_t)cap * sizeof *ids, "the chat prompt");
    if (!ids) return GEMMA8_ERR_NOMEM;
    int32_t first = n_msgs > 0 && msgs[0].role && !strcmp(msgs[0].role, "system") ? 1 : 0, dropped = 0;
    gemma8_chat_message *work = g8_malloc(((size_t)n_msgs + 1) * sizeof *work, "the chat prompt");
    if (!work) {
        free(ids);
        return GEMMA8_ERR_NOMEM;
    }
    memcpy(work, msgs, (size_t)n_msgs * sizeof *work);
    int32_t nw = n_msgs;
    gemma8_status st;
    for (;;) {
        st = gemma8_chat_tokenize(m, work, nw, true, ids, cap, &n);
        bool too_long = st == GEMMA8_ERR_BUFFER_TOO_SMALL || (!st && n + params->max_new_tokens > ctx->n_ctx);
        if (st && st != GEMMA8_ERR_BUFFER_TOO_SMALL) break;
        if (!too_long) break;
        /* drop the oldest user/assistant pair after the system message, keep the last turn */
        if (!params->drop_oldest_turns || nw - first <= 1) {
            st = g8_fail(GEMMA8_ERR_CONTEXT_FULL,
                         "the conversation (%d tokens) plus %d new tokens does not fit in the context of %d%s", n,
                         params->max_new_tokens, ctx->n_ctx,
                         params->drop_oldest_turns ? "" : " (drop_oldest_turns would drop the oldest turns)");
            break;
        }
        int32_t k = nw - first >= 3 ? 2 : 1;
        memmove(work + first, work + first + k, (size_t)(nw - first - k) * sizeof *work);
        nw -= k;
        dropped += k;
    }
    gemma8_generate_result local;
    if (!result) result = &local;
    if (!st) st = gemma8_generate(ctx, ids, n, params, result);
    result->n_dropped_messages = dropped;
    free(work);
    free(ids);
    return st;
}

/* ---- asynchronous run ---------------------------------------------------------- */

/* One gemma8_generate on a thread of its own; the context points to it while it runs. */
typedef struct g8_async {
    pthread_t thread;
    gemma8_context *ctx;
    int32_t *prompt;
    int32_t n_prompt;
    gemma8_generate_params params;
    gemma8_generate_result result;
    gemma8_status status;
    char error[1024];
} g8_async;

static void *async_main(void *arg) {
    g8_async *job = arg;
    /* the flag was cleared by gemma8_generate_async: an abort right after it returned is not lost */
    job->status = run(job->ctx, job->prompt, job->n_prompt, &job->params, &job->result);
    snprintf(job->error, sizeof job->error, "%s", gemma8_last_error());
    return NULL;
}

gemma8_status gemma8_generate_async(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                                    const gemma8_generate_params *params) {
    if (!ctx || !params || n_prompt <= 0 || !prompt) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments");
    if (ctx->async) return g8_fail(GEMMA8_ERR_INVALID_ARG, "a generation is already running on this context");
    g8_async *job = g8_calloc(1, sizeof *job, "an asynchronous run");
    if (!job) return GEMMA8_ERR_NOMEM;
    job->prompt = g8_malloc((size_t)n_prompt * sizeof(int32_t), "an asynchronous run");
    if (!job->prompt) {
        free(job);
        return GEMMA8_ERR_NOMEM;
    }
    memcpy(job->prompt, prompt, (size_t)n_prompt * sizeof(int32_t));
    job->ctx = ctx;
    job->n_prompt = n_prompt;
    job->params = *params;
    atomic_store(&ctx->abort, false);
    if (pthread_create(&job->thread, NULL, async_main, job) != 0) {
        free(job->prompt);
        free(job);
        return g8_fail(GEMMA8_ERR_NOMEM, "cannot start a thread");
    }
    ctx->async = job;
    return GEMMA8_OK;
}

gemma8_status gemma8_wait(gemma8_context *ctx, gemma8_generate_result *result) {
    if (!ctx || !ctx->async) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no asynchronous run to wait for");
    g8_async *job = ctx->async;
    pthread_join(job->thread, NULL);
    ctx->async = NULL;
    gemma8_status st = job->status;
    if (result) *result = job->result;
    if (st) g8_fail(st, "%s", job->error);
    free(job->prompt);
    free(job);
    return st;
}

void g8_async_finish(gemma8_context *ctx) {
    if (!ctx->async) return;
    gemma8_abort(ctx);
    gemma8_wait(ctx, NULL);
}
