/* gemma2.c - the Gemma 2 forward pass, after transformers' Gemma2ForCausalLM,
 * and evaluation of a sequence's tokens in chunks of n_batch. */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The forward pass over T <= n_batch inputs. Either one sequence (seqs NULL):
 * the T tokens at positions n_past.. of sequence s, matrices by the GEMM tiles;
 * or T tokens of T different sequences (seqs[t]), each at its sequence's
 * n_past, every product by the single-token kernels and every element-wise step
 * per token, so that each token's results are bit-identical to its sequence
 * decoded alone. Writes the logits of every position to logits_all (T, n_vocab)
 * if given, and those of the last position to ctx->last_logits. */
gemma8_status g8_forward(gemma8_context *ctx, int s, const int32_t *seqs, const int32_t *tokens, const float *embd,
                         int T, float *logits_all, float *hidden_all) {
    const gemma8_model *m = ctx->model;
    const g8_hparams *hp = &m->hp;
    g8_ops *ops = &ctx->ops;
    const int E = hp->n_embd, hd = hp->head_dim;
    const size_t Q = (size_t)hp->n_head * hd, KV = (size_t)hp->n_head_kv * hd, F = (size_t)hp->n_ff;
    const size_t V = (size_t)hp->n_vocab;
    float *x = ctx->x, *xn = ctx->xn;
    void (*matmul)(g8_ops *, const g8_matrix *, const float *, int, float *) = g8_matmul;
    const int runs = seqs ? T : 1;             /* attention and element-wise steps, per token or at once */
    const int per_run = seqs ? 1 : T;

    for (int t = 0; t < T; t++) ctx->pos[t] = seqs ? ctx->kv.seq[seqs[t]].n_past : ctx->kv.seq[s].n_past + t;

    /* embedding, scaled by sqrt(hidden) (rounded to f32 as transformers does) */
    const float embd_scale = (float)sqrt((double)E);
    for (int t = 0; t < T; t++) {
        if (!tokens) {
            memcpy(x + (size_t)t * E, embd + (size_t)t * E, (size_t)E * sizeof(float));
            continue;
        }
        g8_matrix_row(&m->tok_embd, tokens[t], x + (size_t)t * E);
        for (int i = 0; i < E; i++) x[(size_t)t * E + i] *= embd_scale;
    }

    for (int il = 0; il < hp->n_layer; il++) {
        const g8_layer *L = &m->layers[il];
        if (atomic_load(&ctx->abort)) return g8_fail(GEMMA8_ERR_ABORTED, "aborted");

        /* attention block: norm, q/k/v projections, RoPE, cache, attention, output projection */
        g8_rmsnorm(xn, x, L->attn_norm, T, E, hp->rms_eps);
        matmul(ops, &L->wq, xn, T, ctx->q);
        matmul(ops, &L->wk, xn, T, ctx->k);
        matmul(ops, &L->wv, xn, T, ctx->v);
        g8_rope(ctx->q, T, hp->n_head, hd, ctx->pos, ctx->inv_freq);
        g8_rope(ctx->k, T, hp->n_head_kv, hd, ctx->pos, ctx->inv_freq);
        for (int t = 0; t < T; t++) {
            g8_kv_set_row(&ctx->kv, seqs ? seqs[t] : s, il, 0, ctx->pos[t], ctx->k + (size_t)t * KV);
            g8_kv_set_row(&ctx->kv, seqs ? seqs[t] : s, il, 1, ctx->pos[t], ctx->v + (size_t)t * KV);
        }
        for (int r = 0; r < runs; r++) { /* each sequence over its own cache */
            const g8_kv_layer *kv = &ctx->kv.seq[seqs ? seqs[r] : s].layers[il];
            const size_t t0 = (size_t)r * per_run;
            g8_attn_args aa = {
                .q = ctx->q + t0 * Q, .k_cache = kv->k, .v_cache = kv->v, .kv_type = ctx->kv.type,
                .slots = kv->slots, .pos = ctx->pos + t0, .T = per_run,
                .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hd,
                .window = g8_layer_is_sliding(il) ? hp->sliding_window : 0,
                .scale = hp->query_scale, .softcap = hp->attn_softcap, .out = ctx->att + t0 * Q,
                .scratch = ctx->attn_scratch,
                .scratch_len = g8_attention_scratch(hp->n_head, hp->n_head_kv, hp->head_dim, ctx->n_ctx),
            };
            g8_attention(ops, &aa);
        }
        matmul(ops, &L->wo, ctx->att, T, ctx->proj);

        /* post-attention norm, residual */
        g8_rmsnorm(ctx->proj, ctx->proj, L->post_attn_norm, T, E, hp->rms_eps);
        g8_add(x, ctx->proj, (size_t)T * E);

        /* feed-forward block: pre-norm, GeGLU (tanh GELU), down projection, post-norm, residual */
        g8_rmsnorm(xn, x, L->ffn_norm, T, E, hp->rms_eps);
        matmul(ops, &L->w_gate, xn, T, ctx->gate);
        matmul(ops, &L->w_up, xn, T, ctx->up);
        for (int r = 0; r < runs; r++)
            g8_geglu(ops, ctx->gate + (size_t)r * per_run * F, ctx->up + (size_t)r * per_run * F, (size_t)per_run * F);
        matmul(ops, &L->w_down, ctx->gate, T, ctx->proj);
        g8_rmsnorm(ctx->proj, ctx->proj, L->post_ffw_norm, T, E, hp->rms_eps);
        g8_add(x, ctx->proj, (size_t)T * E);
    }

    /* final norm, tied output embedding, final soft-cap */
    if (hidden_all) {
        g8_rmsnorm(xn, x, m->output_norm, T, E, hp->rms_eps);
        memcpy(hidden_all, xn, (size_t)T * E * sizeof(float));
    }
    if (logits_all) {
        if (!hidden_all) g8_rmsnorm(xn, x, m->output_norm, T, E, hp->rms_eps);
        matmul(ops, &m->output, xn, T, logits_all);
        for (int r = 0; r < runs; r++)
            g8_softcap(ops, logits_all + (size_t)r * per_run * V, (size_t)per_run * V, hp->final_softcap);
        memcpy(ctx->last_logits, logits_all + (size_t)(T - 1) * V, V * sizeof(float));
        memcpy(ctx->last_hidden, xn + (size_t)(T - 1) * E, (size_t)E * sizeof(float));
    } else {
        g8_rmsnorm(xn, x + (size_t)(T - 1) * E, m->output_norm, 1, E, hp->rms_eps);
        g8_matmul(ops, &m->output, xn, 1, ctx->last_logits);
        g8_softcap(ops, ctx->last_logits, V, hp->final_softcap);
        memcpy(ctx->last_hidden, xn, (size_t)E * sizeof(float));
    }
    for (int t = 0; t < T; t++) {
        g8_kv_seq *seq = &ctx->kv.seq[seqs ? seqs[t] : s];
        seq->tokens[seq->n_past + (seqs ? 0 : t)] = tokens ? tokens[t] : -1;
    }
    if (seqs)
        for (int t = 0; t < T; t++) ctx->kv.seq[seqs[t]].n_past++;
    else
        ctx->kv.seq[s].n_past += T;
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
        st = g8_forward(ctx, s, NULL, tok, in, T, logits, hidden);
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

gemma8_status g8_decode_batch(gemma8_context *ctx, const int32_t *seqs, const int32_t *tokens, int32_t n,
                              float *logits) {
    gemma8_status st = GEMMA8_OK;
    const size_t V = (size_t)ctx->model->hp.n_vocab;
    for (int32_t i = 0; !st && i < n; i += ctx->n_batch) {
        const int T = G8_MIN(ctx->n_batch, n - i);
        st = g8_forward(ctx, 0, seqs + i, tokens + i, NULL, T, logits + (size_t)i * V, NULL);
    }
    return st;
}

gemma8_status gemma8_decode_batch(gemma8_context *ctx, const int32_t *seqs, const int32_t *tokens, int32_t n,
                                  float *logits) {
    if (!ctx || !seqs || !tokens || !logits || n <= 0)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_decode_batch");
    atomic_store(&ctx->abort, false);
    for (int32_t i = 0; i < n; i++) {
        gemma8_status st = g8_check_input(ctx, seqs[i], tokens + i, 1);
        if (st) return st;
        for (int32_t j = 0; j < i; j++)
            if (seqs[j] == seqs[i])
                return g8_fail(GEMMA8_ERR_INVALID_ARG, "sequence %d appears twice in the batch", seqs[i]);
        if (ctx->kv.seq[seqs[i]].n_past >= ctx->n_ctx)
            return g8_fail(GEMMA8_ERR_CONTEXT_FULL, "sequence %d is full (%d tokens)", seqs[i], ctx->n_ctx);
    }
    return g8_decode_batch(ctx, seqs, tokens, n, logits);
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
