/* gemma2.c - the Gemma 2 forward pass, after transformers' Gemma2ForCausalLM,
 * and evaluation of a sequence's tokens in chunks of n_batch. */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int seq_of(const g8_batch *b, int t) { return b->seqs ? b->seqs[t] : b->s; }

/* the end of the run of entries of one sequence that starts at t0 */
static int run_end(const g8_batch *b, int t0) {
    int t1 = t0 + 1;
    while (t1 < b->T && seq_of(b, t1) == seq_of(b, t0)) t1++;
    return t1;
}

/* Row-wise steps whose SIMD kernels round a vector's elements and a tail's
 * differently are applied to each token's row on its own: an element's result
 * then depends on its place in the row only, never on the batch. */
static void geglu_rows(g8_ops *ops, float *g, const float *u, int T, size_t n) {
    for (int t = 0; t < T; t++) g8_geglu(ops, g + (size_t)t * n, u + (size_t)t * n, n);
}

static void softcap_rows(g8_ops *ops, float *x, int T, size_t n, float cap) {
    for (int t = 0; t < T; t++) g8_softcap(ops, x + (size_t)t * n, n, cap);
}

/* The forward pass over a batch of b->T <= n_batch entries: runs of tokens (or
 * embeddings), each run the next tokens of one sequence, each sequence at its
 * own positions over its own cache. Matrices multiply all entries at once (the
 * GEMM gives each token what it gives it alone); attention runs per run;
 * everything else per token row. So each sequence's results are bit-identical
 * whatever else is in the batch, wherever it sits, however its prompt was cut
 * into chunks. */
gemma8_status g8_forward(gemma8_context *ctx, const g8_batch *b) {
    const gemma8_model *m = ctx->model;
    const g8_hparams *hp = &m->hp;
    g8_ops *ops = &ctx->ops;
    const int E = hp->n_embd, hd = hp->head_dim, T = b->T;
    const size_t Q = (size_t)hp->n_head * hd, KV = (size_t)hp->n_head_kv * hd, F = (size_t)hp->n_ff;
    const size_t V = (size_t)hp->n_vocab;
    float *x = ctx->x, *xn = ctx->xn;

    bool adapted = false; /* any entry under LoRA adapters */
    for (int t0 = 0, t1; t0 < T; t0 = t1) {
        t1 = run_end(b, t0);
        const g8_lora_set *set = ctx->lora[seq_of(b, t0)].n ? &ctx->lora[seq_of(b, t0)] : NULL;
        adapted |= set != NULL;
        for (int t = t0; t < t1; t++) {
            ctx->pos[t] = ctx->kv.seq[seq_of(b, t0)].n_past + (t - t0);
            ctx->lora_of[t] = set;
        }
    }
#define LORA(which, x, in, y, out) /* each entry's adapters' deltas, added to the product */      \
    if (adapted) g8_lora_apply(ops->pool, ops->k, ctx->lora_of, il, which, x, in, y, out, T, ctx->lora_u, ctx->lora_u_cap)

    /* embedding, scaled by sqrt(hidden) (rounded to f32 as transformers does) */
    const float embd_scale = (float)sqrt((double)E);
    for (int t = 0; t < T; t++) {
        if (!b->tokens) {
            memcpy(x + (size_t)t * E, b->embd + (size_t)t * E, (size_t)E * sizeof(float));
            continue;
        }
        g8_matrix_row(&m->tok_embd, b->tokens[t], x + (size_t)t * E);
        for (int i = 0; i < E; i++) x[(size_t)t * E + i] *= embd_scale;
    }

    for (int il = 0; il < hp->n_layer; il++) {
        const g8_layer *L = &m->layers[il];
        if (atomic_load(&ctx->abort)) return g8_fail(GEMMA8_ERR_ABORTED, "aborted");

        /* attention block: norm, q/k/v projections, RoPE, cache, attention, output projection */
        g8_rmsnorm(xn, x, L->attn_norm, T, E, hp->rms_eps);
        const g8_matrix *qkv[3] = {&L->wq, &L->wk, &L->wv};
        float *const qkv_out[3] = {ctx->q, ctx->k, ctx->v};
        g8_matmul_n(ops, qkv, qkv_out, 3, xn, T);
        LORA(LORA_Q, xn, E, ctx->q, (int)Q);
        LORA(LORA_K, xn, E, ctx->k, (int)KV);
        LORA(LORA_V, xn, E, ctx->v, (int)KV);
        g8_rope(ctx->q, T, hp->n_head, hd, ctx->pos, ctx->inv_freq);
        g8_rope(ctx->k, T, hp->n_head_kv, hd, ctx->pos, ctx->inv_freq);
        for (int t = 0; t < T; t++) {
            g8_kv_set_row(&ctx->kv, seq_of(b, t), il, 0, ctx->pos[t], ctx->k + (size_t)t * KV);
            g8_kv_set_row(&ctx->kv, seq_of(b, t), il, 1, ctx->pos[t], ctx->v + (size_t)t * KV);
        }
        for (int t0 = 0, t1; t0 < T; t0 = t1) { /* each run over its sequence's cache, as stored */
            t1 = run_end(b, t0);
            const g8_kv_layer *kv = &ctx->kv.seq[seq_of(b, t0)].layers[il];
            g8_attn_args aa = {
                .q = ctx->q + (size_t)t0 * Q, .k_cache = kv->k, .v_cache = kv->v, .kv_type = ctx->kv.type,
                .slots = kv->slots, .pos = ctx->pos + t0, .T = t1 - t0,
                .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hd,
                .window = g8_layer_is_sliding(il) ? hp->sliding_window : 0,
                .scale = hp->query_scale, .softcap = hp->attn_softcap, .out = ctx->att + (size_t)t0 * Q,
                .scratch = ctx->attn_scratch,
                .scratch_len = g8_attention_scratch(hp->n_head, hp->n_head_kv, hp->head_dim, ctx->n_ctx),
            };
            g8_attention(ops, &aa);
        }
        g8_matmul(ops, &L->wo, ctx->att, T, ctx->proj);
        LORA(LORA_O, ctx->att, (int)Q, ctx->proj, E);

        /* post-attention norm, residual */
        g8_rmsnorm(ctx->proj, ctx->proj, L->post_attn_norm, T, E, hp->rms_eps);
        g8_add(x, ctx->proj, (size_t)T * E);

        /* feed-forward block: pre-norm, GeGLU (tanh GELU), down projection, post-norm, residual */
        g8_rmsnorm(xn, x, L->ffn_norm, T, E, hp->rms_eps);
        const g8_matrix *gate_up[2] = {&L->w_gate, &L->w_up};
        float *const gate_up_out[2] = {ctx->gate, ctx->up};
        g8_matmul_n(ops, gate_up, gate_up_out, 2, xn, T);
        LORA(LORA_GATE, xn, E, ctx->gate, (int)F);
        LORA(LORA_UP, xn, E, ctx->up, (int)F);
        geglu_rows(ops, ctx->gate, ctx->up, T, F);
        g8_matmul(ops, &L->w_down, ctx->gate, T, ctx->proj);
        LORA(LORA_DOWN, ctx->gate, (int)F, ctx->proj, E);
        g8_rmsnorm(ctx->proj, ctx->proj, L->post_ffw_norm, T, E, hp->rms_eps);
        g8_add(x, ctx->proj, (size_t)T * E);
    }

#undef LORA

    /* final norm, tied output embedding, final soft-cap: for every entry, or
     * for the last entry of each run */
    g8_rmsnorm(xn, x, m->output_norm, T, E, hp->rms_eps);
    if (b->hidden_all) memcpy(b->hidden_all, xn, (size_t)T * E * sizeof(float));
    memcpy(ctx->last_hidden, xn + (size_t)(T - 1) * E, (size_t)E * sizeof(float));
    if (b->logits_all) {
        g8_matmul(ops, &m->output, xn, T, b->logits_all);
        softcap_rows(ops, b->logits_all, T, V, hp->final_softcap);
        memcpy(ctx->last_logits, b->logits_all + (size_t)(T - 1) * V, V * sizeof(float));
    } else {
        float *ends = b->logits_ends ? b->logits_ends : ctx->last_logits;
        int R = 0;
        for (int t0 = 0, t1; t0 < T; t0 = t1, R++) {
            t1 = run_end(b, t0);
            memmove(xn + (size_t)R * E, xn + (size_t)(t1 - 1) * E, (size_t)E * sizeof(float));
        }
        g8_matmul(ops, &m->output, xn, R, ends);
        softcap_rows(ops, ends, R, V, hp->final_softcap);
        if (ends != ctx->last_logits) memcpy(ctx->last_logits, ends + (size_t)(R - 1) * V, V * sizeof(float));
    }
    for (int t0 = 0, t1; t0 < T; t0 = t1) {
        t1 = run_end(b, t0);
        g8_kv_seq *seq = &ctx->kv.seq[seq_of(b, t0)];
        for (int t = t0; t < t1; t++) seq->tokens[seq->n_past + (t - t0)] = b->tokens ? b->tokens[t] : -1;
        seq->n_past += t1 - t0;
    }
    return GEMMA8_OK;
}

gemma8_status g8_eval(gemma8_context *ctx, int s, const int32_t *tokens, const float *embd, int32_t n,
                      float *logits_all, float *hidden_all) {
    const int n_vocab = ctx->model->hp.n_vocab;
    const int E = ctx->model->hp.n_embd;
    const g8_kv_seq *seq = &ctx->kv.seq[s];
    if ((int64_t)seq->n_past + n > ctx->n_ctx)
        return g8_fail(GEMMA8_ERR_CONTEXT_FULL, "%d tokens do not fit: %d of the context's %d are used", n,
                       seq->n_past, ctx->n_ctx);
    gemma8_status st = GEMMA8_OK;
    for (int32_t i = 0; !st && i < n; i += ctx->n_batch) {
        const int T = G8_MIN(ctx->n_batch, n - i);
        const int32_t *tok = tokens ? tokens + i : NULL;
        const float *in = tokens ? NULL : embd + (size_t)i * E;
        float *logits = logits_all ? logits_all + (size_t)i * n_vocab : NULL;
        float *hidden = hidden_all ? hidden_all + (size_t)i * E : NULL;
        const g8_batch b = {.T = T, .s = s, .tokens = tok, .embd = in, .logits_all = logits, .hidden_all = hidden};
        st = g8_forward(ctx, &b);
    }
    return st;
}

gemma8_status g8_check_input(const gemma8_context *ctx, int32_t s, const int32_t *tokens, int32_t n) {
    if (s < 0 || s >= ctx->kv.n_seq)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "sequence %d does not exist (the context has %d)", s, ctx->kv.n_seq);
    const int n_vocab = ctx->model->hp.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return g8_fail(GEMMA8_ERR_INVALID_ARG, "token id %d at index %d is outside the vocabulary (0..%d)",
                           tokens[i], i, n_vocab - 1);
    return GEMMA8_OK;
}

gemma8_status gemma8_eval_seq(gemma8_context *ctx, int32_t s, const int32_t *tokens, int32_t n, float *logits_all) {
    if (!ctx || (!tokens && n > 0) || n < 0) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_eval");
    atomic_store(&ctx->abort, false);
    gemma8_status st = g8_check_input(ctx, s, tokens, n);
    return st ? st : g8_eval(ctx, s, tokens, NULL, n, logits_all, NULL);
}

gemma8_status gemma8_eval_hidden(gemma8_context *ctx, int32_t s, const int32_t *tokens, int32_t n,
                                 float *hidden_all) {
    if (!ctx || !tokens || n <= 0 || !hidden_all)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_eval_hidden");
    atomic_store(&ctx->abort, false);
    gemma8_status st = g8_check_input(ctx, s, tokens, n);
    return st ? st : g8_eval(ctx, s, tokens, NULL, n, NULL, hidden_all);
}

gemma8_status gemma8_decode_batch(gemma8_context *ctx, const int32_t *seqs, const int32_t *tokens, int32_t n,
                                  float *logits) {
    if (!ctx || !seqs || !tokens || !logits || n <= 0)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_decode_batch");
    if (n > ctx->n_batch)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "a batch of %d tokens is more than the context's n_batch (%d)", n,
                       ctx->n_batch);
    atomic_store(&ctx->abort, false);
    for (int32_t i = 0, end; i < n; i = end) {
        for (end = i + 1; end < n && seqs[end] == seqs[i];) end++;
        gemma8_status st = g8_check_input(ctx, seqs[i], tokens + i, end - i);
        if (st) return st;
        for (int32_t j = 0; j < i; j++)
            if (seqs[j] == seqs[i])
                return g8_fail(GEMMA8_ERR_INVALID_ARG,
                               "sequence %d appears in two places of the batch (its tokens must be together)", seqs[i]);
        if (ctx->kv.seq[seqs[i]].n_past + (end - i) > ctx->n_ctx)
            return g8_fail(GEMMA8_ERR_CONTEXT_FULL, "sequence %d has %d of %d positions used; %d more do not fit",
                           seqs[i], ctx->kv.seq[seqs[i]].n_past, ctx->n_ctx, end - i);
    }
    const g8_batch b = {.T = n, .seqs = seqs, .tokens = tokens, .logits_ends = logits};
    return g8_forward(ctx, &b);
}

gemma8_status gemma8_eval(gemma8_context *ctx, const int32_t *tokens, int32_t n, float *logits_all) {
    return gemma8_eval_seq(ctx, 0, tokens, n, logits_all);
}

gemma8_status gemma8_eval_embd(gemma8_context *ctx, const float *embd, int32_t n, float *logits_all) {
    if (!ctx || (!embd && n > 0) || n < 0)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_eval_embd");
    atomic_store(&ctx->abort, false);
    const size_t count = (size_t)n * (size_t)ctx->model->hp.n_embd;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(embd[i])) return g8_fail(GEMMA8_ERR_INVALID_ARG, "embedding value %zu is not finite", i);
    return g8_eval(ctx, 0, NULL, embd, n, logits_all, NULL);
}
