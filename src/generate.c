/* generate.c - generation: prompt reuse, the sampling loop, streaming text,
 * stop strings, abort, chat turns, and embeddings as generations that only
 * prefill. Every forward pass goes through g8_decode (decode.c). */
#include "context.h"
#include "sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

gemma8_generate_params gemma8_generate_default_params(void) {
    gemma8_generate_params p = {0};
    p.max_new_tokens = 512;
    p.sampling = gemma8_sampler_default_params();
    return p;
}

/* Text waiting for release: a tail that may still become a stop string is held. */
typedef struct out_text {
    char *held;
    size_t n;
} out_text;

/* Appends n bytes to what is held (kept NUL-terminated); false if out of memory. */
static bool held_append(out_text *out, const char *p, size_t n) {
    char *nh = realloc(out->held, out->n + n + 1);
    if (!nh) return false;
    memcpy(nh + out->n, p, n);
    out->held = nh;
    out->n += n;
    out->held[out->n] = 0;
    return true;
}

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

/* A generation in progress: prefill in chunks, then one token a step. */
struct gemma8_gen {
    gemma8_context *ctx;
    int seq;
    gemma8_generate_params p;
    gemma8_generate_result res;
    gemma8_sampler *smp;
    const int32_t *prompt;   /* the caller's, alive until the prefill is done */
    int32_t n_prompt;
    int32_t pending;         /* sampled, emitted, to be evaluated by the next step; -1: none */
    bool prefilled;
    bool done;
    const float *logits;     /* what the last token was drawn from */
    gemma8_status status;
    double t_start;          /* of the current phase */
    g8_stream stream;        /* bytes of a character not yet complete */
    out_text out;            /* text held back: it may still become a stop string */
    char *piece;
    int32_t max_chunk;       /* prompt tokens a step of gemma8_gen_step_many takes at most; 0: no limit */
    double *embd_sum;        /* embeddings: the pooled sum of the prompt's hidden states (n_embd) */
    float *embd;             /* embeddings: the result, once done (n_embd) */
};

static gemma8_status check_generation(const gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                                      const gemma8_generate_params *p) {
    if (n_prompt <= 0) return g8_fail(GEMMA8_ERR_INVALID_ARG, "the prompt is empty");
    if (p->max_new_tokens < 0 || p->n_stop < 0 || (p->n_stop && !p->stop))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid generation parameters");
    gemma8_status st = g8_check_tokens(ctx, p->seq, prompt, n_prompt);
    if (st) return st;
    if (n_prompt >= ctx->n_ctx + p->embed)
        return g8_fail(GEMMA8_ERR_CONTEXT_FULL, "the prompt of %d tokens does not fit in the context of %d (leave room "
                       "to generate)", n_prompt, ctx->n_ctx);
    return GEMMA8_OK;
}

/* clear_abort: false for the asynchronous run, whose flag was cleared before its thread started */
static gemma8_status begin(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                           const gemma8_generate_params *params, bool clear_abort, gemma8_gen **out) {
    *out = NULL;
    if (!ctx || !params || (!prompt && n_prompt)) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to generate");
    gemma8_status st = check_generation(ctx, prompt, n_prompt, params);
    if (st) return st;
    gemma8_gen *g = g8_calloc(1, sizeof *g, "a generation");
    if (!g) return GEMMA8_ERR_NOMEM;
    if ((st = gemma8_sampler_new(&params->sampling, &g->smp))) {
        free(g);
        return st;
    }
    if (clear_abort) atomic_store(&ctx->abort, false);
    g->ctx = ctx;
    g->seq = params->seq;
    g->p = *params;
    g->prompt = prompt;
    g->n_prompt = n_prompt;
    g->pending = -1;
    g->res.n_prompt = n_prompt;
    /* keep the longest common prefix; the last prompt token is always evaluated for its logits */
    g8_kv_seq *seq = &ctx->kv.seq[g->seq];
    int32_t keep = 0;
    while (!params->embed && keep < seq->n_past && keep < n_prompt - 1 && seq->tokens[keep] == prompt[keep])
        keep++;
    g8_kv_truncate(&ctx->kv, g->seq, keep);
    g->res.n_reused = seq->n_past;
    for (int32_t i = G8_MAX(0, n_prompt - params->sampling.repeat_last_n); i < n_prompt; i++)
        gemma8_sampler_accept(g->smp, prompt[i]);
    /* after the prompt: the grammar follows only what is generated */
    if (params->grammar && (st = gemma8_sampler_set_grammar(g->smp, ctx->model, params->grammar))) {
        gemma8_sampler_free(g->smp);
        free(g);
        return st;
    }
    if (params->embed) {
        const size_t E = (size_t)ctx->model->hp.n_embd;
        g->embd_sum = g8_calloc(E, sizeof(double), "an embedding");
        g->embd = g8_calloc(E, sizeof(float), "an embedding");
        if (!g->embd_sum || !g->embd) {
            gemma8_gen_end(g, NULL);
            return GEMMA8_ERR_NOMEM;
        }
    }
    g->t_start = gemma8_time();
    *out = g;
    return GEMMA8_OK;
}

gemma8_status gemma8_gen_begin(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                               const gemma8_generate_params *params, gemma8_gen **out) {
    return begin(ctx, prompt, n_prompt, params, true, out);
}

static void prefill_done(gemma8_gen *g) {
    g->prefilled = true;
    g->prompt = NULL;
    g->res.prompt_seconds = gemma8_time() - g->t_start;
    g->t_start = gemma8_time();
}

/* The hidden states of an embedding's prompt entries, pooled; at the prompt's end, the vector. */
static void embd_take(gemma8_gen *g, int32_t first_entry, int32_t n) {
    const gemma8_context *ctx = g->ctx;
    const int E = ctx->model->hp.n_embd;
    for (int32_t i = 0; i < n; i++) gemma8_pool_add(g->embd_sum, gemma8_get_hidden(ctx, first_entry + i), E);
    if (ctx->kv.seq[g->seq].n_past == g->n_prompt) gemma8_pool_finish(g->embd_sum, g->n_prompt, E, g->embd);
}

/* One chunk of the prompt; the prompt is done when the sequence holds all of it. */
static gemma8_status prefill_chunk(gemma8_gen *g) {
    gemma8_context *ctx = g->ctx;
    const int32_t at = ctx->kv.seq[g->seq].n_past;
    const int32_t n = G8_MIN(ctx->n_batch, g->n_prompt - at);
    gemma8_batch b = gemma8_batch_tokens(g->seq, g->prompt + at, n);
    if (g->p.embed) {
        memset(ctx->batch_out, GEMMA8_OUTPUT_HIDDEN, (size_t)n);
        b.output = ctx->batch_out;
    }
    gemma8_status st = g8_decode(ctx, &b);
    if (st) return st;
    if (g->p.embed) embd_take(g, 0, n);
    if (at + n == g->n_prompt) prefill_done(g);
    return st;
}

/* Adds a token's text to what is held, releases what cannot be part of a stop
 * string, and calls the callback; sets the stop reason. */
static gemma8_status emit_token(gemma8_gen *g, int32_t tok) {
    const gemma8_model *m = g->ctx->model;
    const gemma8_generate_params *p = &g->p;
    gemma8_generate_result *res = &g->res;
    out_text *out = &g->out;
    size_t piece_len = 0;
    bool ok = m->has_vocab ? g8_stream_feed(&m->vocab, &g->stream, tok, &g->piece, &piece_len) : true;
    if (ok && piece_len) ok = held_append(out, g->piece, piece_len);
    if (!ok) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory decoding");
    size_t release = out->n;
    for (int32_t k = 0; k < p->n_stop; k++) {
        const char *hit = strlen(p->stop[k]) ? strstr(out->held, p->stop[k]) : NULL;
        if (hit && (size_t)(hit - out->held) < release) { /* the earliest in the text wins */
            release = (size_t)(hit - out->held);
            res->stop_reason = GEMMA8_STOP_STRING;
            res->stop_index = k;
        }
    }
    if (res->stop_reason != GEMMA8_STOP_STRING) release -= stop_prefix_tail(out->held, out->n, p->stop, p->n_stop);
    gemma8_run_state rs = g->stream.n && !release ? GEMMA8_RUN_WAITING : GEMMA8_RUN_NORMAL;
    bool more = emit(p, tok, out->held ? out->held : "", release, rs);
    if (out->held) memmove(out->held, out->held + release, out->n - release);
    out->n -= release;
    if (res->stop_reason == GEMMA8_STOP_STRING) out->n = 0; /* the stop string and what follows are dropped */
    if (out->held) out->held[out->n] = 0;
    if (!more && !res->stop_reason) res->stop_reason = GEMMA8_STOP_CALLBACK;
    return GEMMA8_OK;
}

/* Samples and emits the next token from logits (the last one's evaluated). */
static gemma8_status decode_sample(gemma8_gen *g, const float *logits) {
    gemma8_context *ctx = g->ctx;
    gemma8_generate_result *res = &g->res;
    g->logits = logits;
    if (res->n_generated >= g->p.max_new_tokens) {
        res->stop_reason = GEMMA8_STOP_LENGTH;
        return GEMMA8_OK;
    }
    if (atomic_load(&ctx->abort)) return g8_fail(GEMMA8_ERR_ABORTED, "generation aborted");
    int32_t left = G8_MIN(g->p.max_new_tokens - res->n_generated, ctx->n_ctx - ctx->kv.seq[g->seq].n_past);
    g8_sampler_set_budget(g->smp, left);
    int32_t tok;
    gemma8_status drawn = gemma8_sampler_sample(g->smp, logits, ctx->model->hp.n_vocab, &tok);
    res->mask_seconds = g8_sampler_mask_seconds(g->smp);
    if (drawn) return drawn;
    /* with a grammar the end token comes only where the reply is complete, and ends it */
    if ((!g->p.ignore_eos || g->p.grammar) && gemma8_token_is_eog(ctx->model, tok)) {
        res->stop_reason = GEMMA8_STOP_EOG;
        return GEMMA8_OK;
    }
    gemma8_sampler_accept(g->smp, tok);
    res->n_generated++;
    gemma8_status st = emit_token(g, tok);
    if (st || res->stop_reason) return st;
    if (res->n_generated >= g->p.max_new_tokens) res->stop_reason = GEMMA8_STOP_LENGTH;
    else if (g8_sampler_grammar_done(g->smp)) res->stop_reason = GEMMA8_STOP_EOG; /* nothing else could follow */
    else if (ctx->kv.seq[g->seq].n_past >= ctx->n_ctx) res->stop_reason = GEMMA8_STOP_CONTEXT;
    else g->pending = tok;
    return GEMMA8_OK;
}

/* Evaluates the token sampled last, then samples and emits the next one. */
static gemma8_status decode_step(gemma8_gen *g) {
    if (g->pending >= 0) {
        const gemma8_batch b = gemma8_batch_tokens(g->seq, &g->pending, 1);
        gemma8_status st = g8_decode(g->ctx, &b);
        g->pending = -1;
        if (st) return st;
    }
    return decode_sample(g, gemma8_get_logits(g->ctx, -1));
}

/* The end of a prefill: an embedding is done (its sequence cleared), a generation draws its first token. */
static gemma8_status after_prefill(gemma8_gen *g, const float *logits) {
    if (!g->p.embed) return decode_sample(g, logits);
    gemma8_seq_clear(g->ctx, g->seq);
    g->res.stop_reason = GEMMA8_STOP_EMBEDDED;
    return GEMMA8_OK;
}

gemma8_status gemma8_gen_step(gemma8_gen *g, bool *done) {
    if (!g->done) {
        g->status = g->prefilled ? decode_step(g) : prefill_chunk(g);
        if (!g->status && g->prefilled && g->p.embed) g->status = after_prefill(g, NULL);
        else if (!g->status && g->prefilled && !g->res.stop_reason && !g->res.n_generated && g->pending < 0)
            g->status = decode_step(g); /* the first token right after the prompt */
        g->done = g->status || g->res.stop_reason;
    }
    if (done) *done = g->done;
    return g->status;
}

bool gemma8_gen_prefilled(const gemma8_gen *g) { return g->prefilled; }

void gemma8_gen_set_max_chunk(gemma8_gen *g, int32_t n) { g->max_chunk = G8_MAX(n, 0); }

const float *gemma8_gen_logits(const gemma8_gen *g) { return g->logits; }

const float *gemma8_gen_embedding(const gemma8_gen *g) {
    return g->done && g->p.embed && !g->status ? g->embd : NULL;
}

/* One step of each generation in one forward pass: the pending token of each
 * that is decoding, and the next prompt chunk of those prefilling, as many
 * prompt tokens as n_batch leaves room for (the first prefilling ones first).
 * Every token's results are bit-identical to its generation stepped alone. */
/* A generation that a unified KV pool has no room for (not one more position) ends with this. */
static gemma8_status pool_full(const gemma8_context *ctx) {
    return g8_fail(GEMMA8_ERR_CONTEXT_FULL,
                   "the KV pool of %d positions is full: the sequences hold %d, 1 more needed", ctx->n_ctx,
                   g8_kv_held(&ctx->kv));
}

gemma8_status gemma8_gen_step_many(gemma8_gen **gens, int32_t n, bool *done) {
    if (n <= 0 || !gens) return GEMMA8_OK;
    gemma8_context *ctx = gens[0]->ctx;
    if (n > ctx->kv.n_seq)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "%d generations on a context of %d sequences", n, ctx->kv.n_seq);
    int32_t *seqs = ctx->batch_seqs;
    int32_t *toks = ctx->batch_tokens;
    uint8_t *outs = ctx->batch_out;
    int T = 0;
    int budget = ctx->n_batch;
    /* a unified pool: the positions left; the decoding generations first, then prompt chunks */
    int64_t room = ctx->kv.unified ? ctx->n_ctx - g8_kv_held(&ctx->kv) : INT32_MAX;
    for (int32_t i = 0; i < n; i++) {
        const gemma8_gen *g = gens[i];
        if (g->ctx != ctx) return g8_fail(GEMMA8_ERR_INVALID_ARG, "generations of different contexts");
        budget -= !g->done && g->prefilled && g->pending >= 0;
    }
    int64_t prompt_room = room - (ctx->n_batch - budget);
    int32_t *take = ctx->batch_take; /* entries each generation puts in the batch, from take_at */
    int32_t take_at[n];
    bool starved[n]; /* a prompt that the pool had no room for */
    for (int32_t i = 0; i < n; i++) {
        gemma8_gen *g = gens[i];
        take[i] = 0;
        take_at[i] = T;
        starved[i] = false;
        if (g->done || T >= ctx->n_batch) continue;
        if (g->prefilled && g->pending >= 0 && room < 1) {
            g->status = pool_full(ctx);
            g->done = true;
        } else if (g->prefilled && g->pending >= 0) {
            take[i] = 1;
            room--;
        } else if (!g->prefilled && budget > 0) {
            const int32_t at = ctx->kv.seq[g->seq].n_past;
            take[i] = G8_MIN(budget, g->n_prompt - at);
            if (g->max_chunk) take[i] = G8_MIN(take[i], g->max_chunk);
            take[i] = (int32_t)G8_MAX(0, G8_MIN(take[i], prompt_room));
            starved[i] = take[i] == 0;
            budget -= take[i];
            prompt_room -= take[i];
        }
        for (int32_t k = 0; k < take[i]; k++) {
            const bool last = k == take[i] - 1;
            seqs[T] = g->seq;
            outs[T] = g->p.embed ? GEMMA8_OUTPUT_HIDDEN : last ? GEMMA8_OUTPUT_LOGITS : GEMMA8_OUTPUT_NONE;
            toks[T++] = g->prefilled ? g->pending : g->prompt[ctx->kv.seq[g->seq].n_past + k];
        }
    }
    gemma8_status st = GEMMA8_OK;
    if (T > 0) {
        gemma8_batch b = {.n = T, .token = toks, .seq = seqs, .output = outs};
        st = g8_decode(ctx, &b);
    }
    for (int32_t i = 0; T == 0 && i < n; i++) { /* nothing can move: the prompts that wait end */
        if (!starved[i]) continue;
        gens[i]->status = pool_full(ctx);
        gens[i]->done = true;
    }
    for (int32_t i = 0; i < n; i++) {
        gemma8_gen *g = gens[i];
        if (take[i] > 0) {
            const float *logits = gemma8_get_logits(ctx, take_at[i] + take[i] - 1);
            if (st) {
                g->status = st;
            } else if (g->prefilled) {
                g->pending = -1;
                g->status = decode_sample(g, logits);
            } else {
                if (g->p.embed) embd_take(g, take_at[i], take[i]);
                if (ctx->kv.seq[g->seq].n_past == g->n_prompt) {
                    prefill_done(g);
                    g->status = after_prefill(g, logits); /* the first token right after the prompt */
                }
            }
            g->done = g->status || g->res.stop_reason;
        }
        if (done) done[i] = g->done;
    }
    return GEMMA8_OK;
}

gemma8_status gemma8_gen_end(gemma8_gen *g, gemma8_generate_result *result) {
    if (!g) return GEMMA8_OK;
    gemma8_status st = g->status;
    gemma8_generate_result *res = &g->res;
    if (g->prefilled) res->gen_seconds = gemma8_time() - g->t_start;
    else res->prompt_seconds = gemma8_time() - g->t_start;
    if (st == GEMMA8_ERR_ABORTED) res->stop_reason = GEMMA8_STOP_ABORTED;
    if (!st && !res->stop_reason) res->stop_reason = GEMMA8_STOP_ABORTED; /* ended by the caller */
    /* what is still held: incomplete bytes as U+FFFD, a stop-string prefix that never completed */
    out_text *out = &g->out;
    size_t piece_len = 0;
    if (!st && res->stop_reason != GEMMA8_STOP_STRING && g8_stream_flush(&g->stream, &g->piece, &piece_len) &&
        (out->n || piece_len) && held_append(out, g->piece, piece_len))
        emit(&g->p, -1, out->held, out->n, GEMMA8_RUN_NORMAL);
    emit(&g->p, -1, "", 0, st && st != GEMMA8_ERR_ABORTED ? GEMMA8_RUN_ERROR : GEMMA8_RUN_FINISH);
    if (result) *result = *res;
    free(g->piece);
    free(g->embd_sum);
    free(g->embd);
    free(out->held);
    gemma8_sampler_free(g->smp);
    free(g);
    return st;
}

gemma8_status g8_generate(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                          const gemma8_generate_params *p, bool clear_abort, gemma8_generate_result *res) {
    memset(res, 0, sizeof *res);
    res->n_prompt = n_prompt;
    gemma8_gen *g;
    gemma8_status st = begin(ctx, prompt, n_prompt, p, clear_abort, &g);
    if (st) return st;
    bool done = false;
    while (!done) gemma8_gen_step(g, &done);
    return gemma8_gen_end(g, res);
}

gemma8_status gemma8_generate(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                              const gemma8_generate_params *params, gemma8_generate_result *result) {
    gemma8_generate_result local;
    if (!ctx || !params || (!prompt && n_prompt)) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to generate");
    return g8_generate(ctx, prompt, n_prompt, params, true, result ? result : &local);
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

gemma8_status gemma8_embed(gemma8_context *ctx, int32_t seq, const int32_t *tokens, int32_t n, float *out) {
    if (!ctx || !tokens || n <= 0 || !out)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "gemma8_embed needs a context, tokens and an output");
    gemma8_generate_params p = gemma8_generate_default_params();
    p.seq = seq;
    p.embed = true;
    gemma8_gen *g;
    gemma8_status st = gemma8_gen_begin(ctx, tokens, n, &p, &g);
    if (st) return st;
    bool done = false;
    while (!done) gemma8_gen_step(g, &done);
    const float *v = gemma8_gen_embedding(g);
    if (v) memcpy(out, v, (size_t)ctx->model->hp.n_embd * sizeof(float));
    st = gemma8_gen_end(g, NULL);
    gemma8_seq_clear(ctx, seq);
    return st;
}
