/* forward.c - the forward pass of Gemma 2 and Gemma 3, after transformers' Gemma2ForCausalLM and
 * Gemma3ForCausalLM. What differs between them is data (model.h, arch.h): each layer's window and
 * RoPE table, the q/k norms where a model has them, the soft-caps where set. */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int seq_of(const g8_batch *b, int t) { return b->seqs[t]; }

/* the end of the run of entries of one sequence that starts at t0 */
static int run_end(const g8_batch *b, int t0) {
    int t1 = t0 + 1;
    while (t1 < b->T && seq_of(b, t1) == seq_of(b, t0)) t1++;
    return t1;
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
    for (int r = 0; r < 2; r++) { /* the sliding layers' angles, the global ones', once for all layers */
        float *cs = ctx->rope_cs + (size_t)r * ctx->n_batch * hd;
        g8_rope_angles(cs, T, hd / 2, ctx->pos, ctx->inv_freq + r * (hd / 2));
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
        g8_rmsnorm(ops, xn, x, L->attn_norm, T, E, hp->rms_eps);
        const g8_matrix *qkv[3] = {&L->wq, &L->wk, &L->wv};
        float *const qkv_out[3] = {ctx->q, ctx->k, ctx->v};
        g8_matmul_n(ops, qkv, qkv_out, 3, xn, T);
        LORA(LORA_Q, xn, E, ctx->q, (int)Q);
        LORA(LORA_K, xn, E, ctx->k, (int)KV);
        LORA(LORA_V, xn, E, ctx->v, (int)KV);
        if (L->q_norm) { /* q/k norms (gemma3): each head's row normed on its own */
            g8_rmsnorm(ops, ctx->q, ctx->q, L->q_norm, T * hp->n_head, hd, hp->rms_eps);
            g8_rmsnorm(ops, ctx->k, ctx->k, L->k_norm, T * hp->n_head_kv, hd, hp->rms_eps);
        }
        const float *cs = ctx->rope_cs + (size_t)g8_layer_rope(hp, il) * ctx->n_batch * hd;
        g8_rope(ctx->q, T, hp->n_head, hd, cs);
        g8_rope(ctx->k, T, hp->n_head_kv, hd, cs);
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
                .window = g8_layer_is_sliding(hp, il) ? hp->sliding_window : 0,
                .scale = hp->query_scale, .softcap = hp->attn_softcap, .out = ctx->att + (size_t)t0 * Q,
                .scratch = ctx->attn_scratch,
                .scratch_len = g8_attention_scratch(hp->n_head, hp->n_head_kv, hp->head_dim, ctx->n_ctx),
            };
            g8_attention(ops, &aa);
        }
        g8_matmul(ops, &L->wo, ctx->att, T, ctx->proj);
        LORA(LORA_O, ctx->att, (int)Q, ctx->proj, E);

        /* post-attention norm, residual */
        g8_rmsnorm(ops, ctx->proj, ctx->proj, L->post_attn_norm, T, E, hp->rms_eps);
        g8_add(ops, x, ctx->proj, (size_t)T * E);

        /* feed-forward block: pre-norm, GeGLU (tanh GELU), down projection, post-norm, residual */
        g8_rmsnorm(ops, xn, x, L->ffn_norm, T, E, hp->rms_eps);
        const g8_matrix *gate_up[2] = {&L->w_gate, &L->w_up};
        float *const gate_up_out[2] = {ctx->gate, ctx->up};
        g8_matmul_n(ops, gate_up, gate_up_out, 2, xn, T);
        LORA(LORA_GATE, xn, E, ctx->gate, (int)F);
        LORA(LORA_UP, xn, E, ctx->up, (int)F);
        g8_geglu(ops, ctx->gate, ctx->up, T, F);
        g8_matmul(ops, &L->w_down, ctx->gate, T, ctx->proj);
        LORA(LORA_DOWN, ctx->gate, (int)F, ctx->proj, E);
        g8_rmsnorm(ops, ctx->proj, ctx->proj, L->post_ffw_norm, T, E, hp->rms_eps);
        g8_add(ops, x, ctx->proj, (size_t)T * E);
    }

#undef LORA

    /* final norm; the hidden states asked for; tied output embedding and final soft-cap for the
     * entries whose logits are asked for (their rows moved to the front, in order) */
    g8_rmsnorm(ops, xn, x, m->output_norm, T, E, hp->rms_eps);
    int n_hidden = 0;
    int n_logits = 0;
    for (int t = 0; t < T; t++) {
        if (b->output[t] & GEMMA8_OUTPUT_HIDDEN)
            memcpy(b->hidden + (size_t)n_hidden++ * E, xn + (size_t)t * E, (size_t)E * sizeof(float));
        if (!(b->output[t] & GEMMA8_OUTPUT_LOGITS)) continue;
        if (n_logits != t) memmove(xn + (size_t)n_logits * E, xn + (size_t)t * E, (size_t)E * sizeof(float));
        n_logits++;
    }
    if (n_logits) {
        g8_matmul(ops, &m->output, xn, n_logits, b->logits);
        g8_softcap(ops, b->logits, n_logits, V, hp->final_softcap);
    }
    for (int t0 = 0, t1; t0 < T; t0 = t1) {
        t1 = run_end(b, t0);
        g8_kv_seq *seq = &ctx->kv.seq[seq_of(b, t0)];
        for (int t = t0; t < t1; t++) seq->tokens[seq->n_past + (t - t0)] = b->tokens ? b->tokens[t] : -1;
        seq->n_past += t1 - t0;
    }
    return GEMMA8_OK;
}
