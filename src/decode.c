/* decode.c - the one door into the forward pass: a batch of entries (sequence,
 * token or embedding, what to output) is checked once, whole, then run n_batch
 * entries at a time; the outputs stay in the context until the next decode.
 * Generation, embeddings, the asynchronous run and every front end come in here. */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

gemma8_batch gemma8_batch_tokens(int32_t seq, const int32_t *tokens, int32_t n) {
    gemma8_batch b = {0};
    b.n = n;
    b.token = tokens;
    b.seq_id = seq;
    return b;
}

gemma8_status g8_check_tokens(const gemma8_context *ctx, int32_t s, const int32_t *tokens, int32_t n) {
    if (s < 0 || s >= ctx->kv.n_seq)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "sequence %d does not exist (the context has %d)", s,
                       ctx->kv.n_seq);
    const int n_vocab = ctx->model->hp.n_vocab;
    for (int32_t i = 0; i < n; i++) {
        if (tokens[i] >= 0 && tokens[i] < n_vocab) continue;
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "token id %d at index %d is outside the vocabulary (0..%d)",
                       tokens[i], i, n_vocab - 1);
    }
    return GEMMA8_OK;
}

static int32_t seq_at(const gemma8_batch *b, int32_t i) { return b->seq ? b->seq[i] : b->seq_id; }

/* What entry i outputs: as asked, or by default the logits of each sequence's last entry. */
static uint8_t output_at(const gemma8_batch *b, int32_t i) {
    if (b->output) return b->output[i];
    const bool last_of_run = i == b->n - 1 || seq_at(b, i + 1) != seq_at(b, i);
    return last_of_run ? GEMMA8_OUTPUT_LOGITS : GEMMA8_OUTPUT_NONE;
}

/* Every check, before anything runs. */
static gemma8_status check_batch(const gemma8_context *ctx, const gemma8_batch *b) {
    if (b->n <= 0) return g8_fail(GEMMA8_ERR_INVALID_ARG, "a batch of %d entries", b->n);
    if (!b->token == !b->embd)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "a batch takes either token ids or embeddings (one of the two)");
    const size_t E = (size_t)ctx->model->hp.n_embd;
    for (int32_t i = 0, end; i < b->n; i = end) {
        const int32_t s = seq_at(b, i);
        for (end = i + 1; end < b->n && seq_at(b, end) == s;) end++;
        const int32_t *ids = b->token ? b->token + i : NULL;
        gemma8_status st = g8_check_tokens(ctx, s, ids, ids ? end - i : 0);
        if (st) return st;
        for (int32_t j = 0; j < i; j++) {
            if (seq_at(b, j) != s) continue;
            return g8_fail(GEMMA8_ERR_INVALID_ARG,
                           "sequence %d appears in two places of the batch (its entries must be together)", s);
        }
        const int32_t n_past = ctx->kv.seq[s].n_past;
        if ((int64_t)n_past + (end - i) > ctx->n_ctx)
            return g8_fail(GEMMA8_ERR_CONTEXT_FULL,
                           "sequence %d has %d of its %d positions used; %d more do not fit", s, n_past, ctx->n_ctx,
                           end - i);
    }
    const int32_t held = g8_kv_held(&ctx->kv);
    if (ctx->kv.unified && (int64_t)held + b->n > ctx->n_ctx)
        return g8_fail(GEMMA8_ERR_CONTEXT_FULL,
                       "the KV pool of %d positions is full: the sequences hold %d, the batch adds %d",
                       ctx->n_ctx, held, b->n);
    for (int32_t i = 0; b->output && i < b->n; i++) {
        if (b->output[i] <= (GEMMA8_OUTPUT_LOGITS | GEMMA8_OUTPUT_HIDDEN)) continue;
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "entry %d asks for output %d (not a GEMMA8_OUTPUT_* flag)", i,
                       b->output[i]);
    }
    for (size_t i = 0; b->embd && i < (size_t)b->n * E; i++) {
        if (isfinite(b->embd[i])) continue;
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "embedding value %zu (entry %zu) is not finite", i, i / E);
    }
    return GEMMA8_OK;
}

/* Room for n entries' output rows: n_logits rows of logits, n_hidden of hidden states. */
static gemma8_status reserve_outputs(gemma8_context *ctx, int32_t n, int32_t n_logits, int32_t n_hidden) {
    const size_t V = (size_t)ctx->model->hp.n_vocab;
    const size_t E = (size_t)ctx->model->hp.n_embd;
    if (n_logits > ctx->out_logits_cap) {
        float *p = realloc(ctx->out_logits, (size_t)n_logits * V * sizeof(float));
        if (!p) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for the logits of %d entries", n_logits);
        ctx->out_logits = p;
        ctx->out_logits_cap = n_logits;
    }
    if (n_hidden > ctx->out_hidden_cap) {
        float *p = realloc(ctx->out_hidden, (size_t)n_hidden * E * sizeof(float));
        if (!p) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for the hidden states of %d entries", n_hidden);
        ctx->out_hidden = p;
        ctx->out_hidden_cap = n_hidden;
    }
    if (n > ctx->out_entries_cap) {
        int32_t *p = realloc(ctx->out_row, 2 * (size_t)n * sizeof(int32_t));
        if (!p) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for a batch of %d entries", n);
        ctx->out_row = p;
        ctx->out_entries_cap = n;
    }
    return GEMMA8_OK;
}

gemma8_status g8_decode(gemma8_context *ctx, const gemma8_batch *b) {
    ctx->out_entries = 0;
    gemma8_status st = check_batch(ctx, b);
    if (st) return st;
    int32_t n_logits = 0;
    int32_t n_hidden = 0;
    for (int32_t i = 0; i < b->n; i++) {
        n_logits += (output_at(b, i) & GEMMA8_OUTPUT_LOGITS) != 0;
        n_hidden += (output_at(b, i) & GEMMA8_OUTPUT_HIDDEN) != 0;
    }
    if ((st = reserve_outputs(ctx, b->n, n_logits, n_hidden))) return st;
    int32_t *row_logits = ctx->out_row;
    int32_t *row_hidden = ctx->out_row + ctx->out_entries_cap;
    const size_t V = (size_t)ctx->model->hp.n_vocab;
    const size_t E = (size_t)ctx->model->hp.n_embd;
    int32_t done_logits = 0;
    int32_t done_hidden = 0;
    for (int32_t i0 = 0; i0 < b->n; i0 += ctx->n_batch) {
        const int T = G8_MIN(ctx->n_batch, b->n - i0);
        g8_batch step = {
            .T = T,
            .seqs = ctx->batch_seqs,
            .tokens = b->token ? b->token + i0 : NULL,
            .embd = b->embd ? b->embd + (size_t)i0 * E : NULL,
            .output = ctx->batch_out,
            .logits = ctx->out_logits + (size_t)done_logits * V,
            .hidden = ctx->out_hidden + (size_t)done_hidden * E,
        };
        /* generation passes the context's own batch_seqs/batch_out as b->seq/b->output (one step,
         * i0 = 0): each entry is then read and written at the same index, before it is used */
        for (int t = 0; t < T; t++) {
            const uint8_t out = output_at(b, i0 + t);
            ctx->batch_seqs[t] = seq_at(b, i0 + t);
            ctx->batch_out[t] = out;
            row_logits[i0 + t] = out & GEMMA8_OUTPUT_LOGITS ? done_logits++ : -1;
            row_hidden[i0 + t] = out & GEMMA8_OUTPUT_HIDDEN ? done_hidden++ : -1;
        }
        if ((st = g8_forward(ctx, &step))) return st;
        ctx->out_entries = i0 + T;
    }
    return GEMMA8_OK;
}

gemma8_status gemma8_decode(gemma8_context *ctx, const gemma8_batch *batch) {
    if (!ctx || !batch) return g8_fail(GEMMA8_ERR_INVALID_ARG, "gemma8_decode needs a context and a batch");
    atomic_store(&ctx->abort, false);
    return g8_decode(ctx, batch);
}

/* Entry i's row of one output (which: 0 logits, 1 hidden); i = -1: the last entry that has one. */
static int32_t output_row(const gemma8_context *ctx, int32_t i, int which) {
    if (!ctx) return -1;
    const int32_t *rows = ctx->out_row + (size_t)which * ctx->out_entries_cap;
    if (i < 0)
        for (i = ctx->out_entries - 1; i >= 0 && rows[i] < 0;) i--;
    return i >= 0 && i < ctx->out_entries ? rows[i] : -1;
}

const float *gemma8_get_logits(const gemma8_context *ctx, int32_t i) {
    const int32_t row = output_row(ctx, i, 0);
    return row < 0 ? NULL : ctx->out_logits + (size_t)row * ctx->model->hp.n_vocab;
}

const float *gemma8_get_hidden(const gemma8_context *ctx, int32_t i) {
    const int32_t row = output_row(ctx, i, 1);
    return row < 0 ? NULL : ctx->out_hidden + (size_t)row * ctx->model->hp.n_embd;
}
