/* gemma2.c - the Gemma 2 forward pass and the context that holds its state
 * (KV cache and scratch), after transformers' Gemma2ForCausalLM. */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

gemma8_context_params gemma8_context_default_params(void) {
    gemma8_context_params p = {0, 256, 0, GEMMA8_KV_AUTO};
    return p;
}

static bool kv_type_known(int32_t t) {
    return t == GEMMA8_TYPE_F16 || t == GEMMA8_TYPE_F32 || t == GEMMA8_TYPE_Q8_0;
}

static uint32_t kv_type_of(const gemma8_model *m, const gemma8_context_params *p) {
    if (kv_type_known(p->kv_type)) return (uint32_t)p->kv_type;
    return m->layers[0].wq.type == GEMMA8_TYPE_Q8_0 ? GEMMA8_TYPE_F16 : GEMMA8_TYPE_F32;
}

/* The cache of a layer is head-major (g8_kv_offset), so that attention reads
 * each head's keys and values as one stream. */
static size_t kv_at(const gemma8_context *ctx, const g8_kv_layer *L, int g, int32_t pos) {
    return g8_kv_offset(ctx->kv_type, ctx->model->hp.head_dim, L->slots, g, pos % L->slots);
}

void g8_kv_get_row(const gemma8_context *ctx, int il, int kv, int32_t pos, float *out) {
    const g8_kv_layer *L = &ctx->kv[il];
    const int hd = ctx->model->hp.head_dim;
    for (int g = 0; g < ctx->model->hp.n_head_kv; g++)
        g8_to_f32(ctx->kv_type, (const uint8_t *)(kv ? L->v : L->k) + kv_at(ctx, L, g, pos), out + (size_t)g * hd, hd);
}

void g8_kv_set_row(gemma8_context *ctx, int il, int kv, int32_t pos, const float *in) {
    g8_kv_layer *L = &ctx->kv[il];
    const int hd = ctx->model->hp.head_dim;
    for (int g = 0; g < ctx->model->hp.n_head_kv; g++) {
        uint8_t *row = (uint8_t *)(kv ? L->v : L->k) + kv_at(ctx, L, g, pos);
        const float *x = in + (size_t)g * hd;
        if (ctx->kv_type == GEMMA8_TYPE_F32) {
            memcpy(row, x, (size_t)hd * sizeof(float));
            continue;
        }
        if (ctx->kv_type == GEMMA8_TYPE_Q8_0) {
            ctx->ops.k->quantize_q8_0(x, (block_q8_0 *)row, hd);
            continue;
        }
        uint16_t *h = (uint16_t *)row;
        for (int i = 0; i < hd; i++) h[i] = g8_f32_to_f16(x[i]);
    }
}

void gemma8_context_free(gemma8_context *ctx) {
    if (!ctx) return;
    if (ctx->async_running) {
        gemma8_abort(ctx);
        gemma8_wait(ctx, NULL);
    }
    if (ctx->kv)
        for (int il = 0; il < ctx->model->hp.n_layer; il++) {
            free(ctx->kv[il].k);
            free(ctx->kv[il].v);
        }
    free(ctx->kv);
    if (ctx->ops.pool) g8_pool_free(ctx->ops.pool);
    void *bufs[] = {ctx->ops.qbuf, ctx->inv_freq, ctx->pos, ctx->x, ctx->xn, ctx->q, ctx->k, ctx->v, ctx->att,
                    ctx->proj, ctx->gate, ctx->up, ctx->attn_scratch, ctx->last_logits, ctx->last_hidden, ctx->history};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(ctx);
}

static float *alloc_f32(size_t a, size_t b, bool *ok) {
    size_t n;
    float *p = NULL;
    if (g8_mul_ok(a, b, &n) && g8_mul_ok(n, sizeof(float), &n)) p = malloc(n ? n : 1);
    if (!p) *ok = false;
    return p;
}

static uint64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return (uint64_t)kb * 1024;
}

/* The resolved sizes of a context (as gemma8_context_new will use them). */
static void resolve(const gemma8_model *m, const gemma8_context_params *p, int *n_ctx, int *n_batch, int *n_threads) {
    *n_ctx = p->n_ctx ? p->n_ctx : m->hp.n_ctx_train;
    *n_batch = G8_MIN(p->n_batch ? p->n_batch : 256, *n_ctx);
    *n_threads = p->n_threads ? p->n_threads : g8_physical_cores();
}

gemma8_memory_estimate gemma8_estimate_memory(const gemma8_model *m, const gemma8_context_params *p) {
    gemma8_memory_estimate e = {0};
    const g8_hparams *hp = &m->hp;
    int n_ctx, B, T;
    resolve(m, p, &n_ctx, &B, &T);
    const uint64_t KV = (uint64_t)hp->n_head_kv * hp->head_dim, E = (uint64_t)hp->n_embd,
                   Q = (uint64_t)hp->n_head * hp->head_dim, F = (uint64_t)hp->n_ff;
    for (uint64_t i = 0; i < m->file.n_tensors; i++) e.weights += m->file.tensors[i].nbytes;
    for (int il = 0; il < hp->n_layer; il++) {
        uint64_t slots = g8_layer_is_sliding(il) ? (uint64_t)G8_MIN(n_ctx, hp->sliding_window + B) : (uint64_t)n_ctx;
        const uint64_t row = (uint64_t)hp->n_head_kv * g8_kv_head_bytes(kv_type_of(m, p), hp->head_dim);
        e.kv_cache += 2 * slots * row;
        e.kv_cache_full += 2 * (uint64_t)n_ctx * row;
    }
    e.scratch = (uint64_t)B * (3 * E + 2 * Q + 2 * KV + 2 * F) * sizeof(float) +
                (uint64_t)B * (G8_MAX(G8_MAX(E, Q), F) / QK8_0 + 1) * sizeof(block_q8_0) +
                (uint64_t)T * g8_attention_scratch(hp->n_head, hp->n_head_kv, hp->head_dim, n_ctx) * sizeof(float) +
                2 * (uint64_t)hp->n_vocab * sizeof(float) +
                (uint64_t)n_ctx * sizeof(int32_t);
    e.total = e.weights + e.kv_cache + e.scratch;
    e.available = mem_available();
    return e;
}

gemma8_status gemma8_context_new(gemma8_model *model, const gemma8_context_params *params, gemma8_context **out) {
    *out = NULL;
    if (!model || !params) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no model or parameters given");
    const g8_hparams *hp = &model->hp;
    if (params->kv_type != GEMMA8_KV_AUTO && !kv_type_known(params->kv_type))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "the KV cache type must be f32, f16 or q8_0");
    if (params->kv_type == GEMMA8_TYPE_Q8_0 && hp->head_dim % QK8_0)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "a q8_0 KV cache needs a head size that is a multiple of 32 (this model's: %d)",
                       hp->head_dim);
    if (params->n_ctx < 0 || params->n_batch < 0 || params->n_threads < 0 || params->n_threads > 1024)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "negative or absurd context parameters (n_ctx %d, n_batch %d, n_threads %d)",
                       params->n_ctx, params->n_batch, params->n_threads);
    gemma8_memory_estimate need = gemma8_estimate_memory(model, params);
    if (need.available && need.total > need.available) {
        /* the largest context that fits, by halving */
        gemma8_context_params p = *params;
        int n = p.n_ctx ? p.n_ctx : hp->n_ctx_train;
        gemma8_memory_estimate e = need;
        while (n > 16 && e.total > e.available) {
            p.n_ctx = n /= 2;
            e = gemma8_estimate_memory(model, &p);
        }
        const double G = 1073741824.0;
        char hint[96] = "; the weights alone do not fit";
        if (e.total <= e.available) snprintf(hint, sizeof hint, "; a context of %d tokens would fit (-c %d)", n, n);
        return g8_fail(GEMMA8_ERR_NOMEM,
                       "not enough memory: the model with a context of %d tokens needs %.2f GiB (weights %.2f + KV "
                       "cache %.2f + scratch %.2f) and %.2f GiB are available%s",
                       params->n_ctx ? params->n_ctx : hp->n_ctx_train, need.total / G, need.weights / G,
                       need.kv_cache / G, need.scratch / G, need.available / G, hint);
    }
    gemma8_context *ctx = g8_calloc(1, sizeof *ctx, "the context");
    if (!ctx) return GEMMA8_ERR_NOMEM;
    ctx->model = model;
    resolve(model, params, &ctx->n_ctx, &ctx->n_batch, &ctx->n_threads);
    ctx->kv_type = kv_type_of(model, params);
    ctx->ops.k = g8_kernels_best();

    const size_t B = (size_t)ctx->n_batch, E = (size_t)hp->n_embd, Q = (size_t)hp->n_head * hp->head_dim,
                 KV = (size_t)hp->n_head_kv * hp->head_dim, F = (size_t)hp->n_ff;
    bool ok = true;
    ctx->kv = g8_calloc((size_t)hp->n_layer, sizeof(g8_kv_layer), "KV cache");
    ok = ctx->kv != NULL;
    for (int il = 0; ok && il < hp->n_layer; il++) {
        g8_kv_layer *L = &ctx->kv[il];
        L->slots = ctx->n_ctx;
        if (g8_layer_is_sliding(il)) L->slots = G8_MIN(ctx->n_ctx, hp->sliding_window + ctx->n_batch);
        const size_t row = (size_t)hp->n_head_kv * g8_kv_head_bytes(ctx->kv_type, hp->head_dim); /* bytes a position */
        L->k = alloc_f32((size_t)L->slots, (row + sizeof(float) - 1) / sizeof(float), &ok);
        L->v = alloc_f32((size_t)L->slots, (row + sizeof(float) - 1) / sizeof(float), &ok);
    }
    size_t maxin = G8_MAX(G8_MAX(E, Q), F);
    ctx->ops.qbuf_blocks = B * (maxin / QK8_0 + 1);
    ctx->ops.qbuf = ok ? malloc(ctx->ops.qbuf_blocks * sizeof(block_q8_0)) : NULL;
    ok = ok && ctx->ops.qbuf;
    ctx->inv_freq = alloc_f32((size_t)hp->head_dim / 2, 1, &ok);
    ctx->pos = ok ? malloc(B * sizeof(int32_t)) : NULL;
    ok = ok && ctx->pos;
    ctx->x = alloc_f32(B, E, &ok);
    ctx->xn = alloc_f32(B, E, &ok);
    ctx->q = alloc_f32(B, Q, &ok);
    ctx->k = alloc_f32(B, KV, &ok);
    ctx->v = alloc_f32(B, KV, &ok);
    ctx->att = alloc_f32(B, Q, &ok);
    ctx->proj = alloc_f32(B, E, &ok);
    ctx->gate = alloc_f32(B, F, &ok);
    ctx->up = alloc_f32(B, F, &ok);
    ctx->attn_scratch = alloc_f32((size_t)ctx->n_threads, g8_attention_scratch(hp->n_head, hp->n_head_kv, hp->head_dim, ctx->n_ctx), &ok);
    ctx->last_logits = alloc_f32(1, (size_t)hp->n_vocab, &ok);
    ctx->last_hidden = alloc_f32(1, E, &ok);
    ctx->history = ok ? malloc((size_t)ctx->n_ctx * sizeof(int32_t)) : NULL;
    ok = ok && ctx->history;
    if (!ok) {
        gemma8_context_free(ctx);
        return g8_fail(GEMMA8_ERR_NOMEM, "out of memory creating a context of %d tokens (try a smaller context)",
                       params->n_ctx ? params->n_ctx : hp->n_ctx_train);
    }
    if (!(ctx->ops.pool = g8_pool_new(ctx->n_threads))) {
        gemma8_context_free(ctx);
        return GEMMA8_ERR_NOMEM;
    }
    /* as transformers: inv_freq = 1 / base^(2i/d), in float32 */
    for (int i = 0; i < hp->head_dim / 2; i++)
        ctx->inv_freq[i] = 1.0f / powf(hp->rope_base, (float)(2 * i) / (float)hp->head_dim);
    memset(ctx->last_logits, 0, (size_t)hp->n_vocab * sizeof(float));
    memset(ctx->last_hidden, 0, E * sizeof(float));
    *out = ctx;
    return GEMMA8_OK;
}

/* The forward pass over T <= n_batch tokens at positions n_past.. ; writes the
 * logits of every position to logits_all (T, n_vocab) if given, and those of
 * the last position to ctx->last_logits. */
void g8_forward(gemma8_context *ctx, const int32_t *tokens, const float *embd, int T, float *logits_all) {
    const gemma8_model *m = ctx->model;
    const g8_hparams *hp = &m->hp;
    g8_ops *ops = &ctx->ops;
    const int E = hp->n_embd, hd = hp->head_dim;
    const size_t KV = (size_t)hp->n_head_kv * hd, F = (size_t)hp->n_ff;
    float *x = ctx->x, *xn = ctx->xn;

    for (int t = 0; t < T; t++) ctx->pos[t] = ctx->n_past + t;

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
        g8_kv_layer *kv = &ctx->kv[il];

        /* attention block: norm, q/k/v projections, RoPE, cache, attention, output projection */
        g8_rmsnorm(xn, x, L->attn_norm, T, E, hp->rms_eps);
        g8_matmul(ops, &L->wq, xn, T, ctx->q);
        g8_matmul(ops, &L->wk, xn, T, ctx->k);
        g8_matmul(ops, &L->wv, xn, T, ctx->v);
        g8_rope(ctx->q, T, hp->n_head, hd, ctx->pos, ctx->inv_freq);
        g8_rope(ctx->k, T, hp->n_head_kv, hd, ctx->pos, ctx->inv_freq);
        for (int t = 0; t < T; t++) {
            g8_kv_set_row(ctx, il, 0, ctx->pos[t], ctx->k + (size_t)t * KV);
            g8_kv_set_row(ctx, il, 1, ctx->pos[t], ctx->v + (size_t)t * KV);
        }
        g8_attn_args aa = {
            .q = ctx->q, .k_cache = kv->k, .v_cache = kv->v, .kv_type = ctx->kv_type, .slots = kv->slots,
            .pos = ctx->pos, .T = T,
            .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hd,
            .window = g8_layer_is_sliding(il) ? hp->sliding_window : 0,
            .scale = hp->query_scale, .softcap = hp->attn_softcap, .out = ctx->att,
            .scratch = ctx->attn_scratch,
            .scratch_len = g8_attention_scratch(hp->n_head, hp->n_head_kv, hp->head_dim, ctx->n_ctx),
        };
        g8_attention(ops, &aa);
        g8_matmul(ops, &L->wo, ctx->att, T, ctx->proj);

        /* post-attention norm, residual */
        g8_rmsnorm(ctx->proj, ctx->proj, L->post_attn_norm, T, E, hp->rms_eps);
        g8_add(x, ctx->proj, (size_t)T * E);

        /* feed-forward block: pre-norm, GeGLU (tanh GELU), down projection, post-norm, residual */
        g8_rmsnorm(xn, x, L->ffn_norm, T, E, hp->rms_eps);
        g8_matmul(ops, &L->w_gate, xn, T, ctx->gate);
        g8_matmul(ops, &L->w_up, xn, T, ctx->up);
        g8_geglu(ops, ctx->gate, ctx->up, (size_t)T * F);
        g8_matmul(ops, &L->w_down, ctx->gate, T, ctx->proj);
        g8_rmsnorm(ctx->proj, ctx->proj, L->post_ffw_norm, T, E, hp->rms_eps);
        g8_add(x, ctx->proj, (size_t)T * E);
    }

    /* final norm, tied output embedding, final soft-cap */
    const size_t V = (size_t)hp->n_vocab;
    if (logits_all) {
        g8_rmsnorm(xn, x, m->output_norm, T, E, hp->rms_eps);
        g8_matmul(ops, &m->output, xn, T, logits_all);
        g8_softcap(ops, logits_all, (size_t)T * V, hp->final_softcap);
        memcpy(ctx->last_logits, logits_all + (size_t)(T - 1) * V, V * sizeof(float));
        memcpy(ctx->last_hidden, xn + (size_t)(T - 1) * E, (size_t)E * sizeof(float));
    } else {
        g8_rmsnorm(xn, x + (size_t)(T - 1) * E, m->output_norm, 1, E, hp->rms_eps);
        g8_matmul(ops, &m->output, xn, 1, ctx->last_logits);
        g8_softcap(ops, ctx->last_logits, V, hp->final_softcap);
        memcpy(ctx->last_hidden, xn, (size_t)E * sizeof(float));
    }
    for (int t = 0; t < T; t++) ctx->history[ctx->n_past + t] = tokens ? tokens[t] : -1;
    ctx->n_past += T;
}

static gemma8_status eval(gemma8_context *ctx, const int32_t *tokens, const float *embd, int32_t n, float *logits_all) {
    const int n_vocab = ctx->model->hp.n_vocab, E = ctx->model->hp.n_embd;
    if ((int64_t)ctx->n_past + n > ctx->n_ctx)
        return g8_fail(GEMMA8_ERR_CONTEXT_FULL, "%d tokens do not fit: %d of the context's %d are used", n, ctx->n_past,
                       ctx->n_ctx);
    for (int32_t i = 0; i < n; i += ctx->n_batch) {
        if (atomic_load(&ctx->abort)) return g8_fail(GEMMA8_ERR_ABORTED, "aborted");
        int T = G8_MIN(ctx->n_batch, n - i);
        g8_forward(ctx, tokens ? tokens + i : NULL, tokens ? NULL : embd + (size_t)i * E, T,
                   logits_all ? logits_all + (size_t)i * n_vocab : NULL);
    }
    return GEMMA8_OK;
}

gemma8_status gemma8_eval(gemma8_context *ctx, const int32_t *tokens, int32_t n, float *logits_all) {
    if (!ctx || (!tokens && n > 0) || n < 0) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_eval");
    const int n_vocab = ctx->model->hp.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return g8_fail(GEMMA8_ERR_INVALID_ARG, "token id %d at index %d is outside the vocabulary (0..%d)", tokens[i],
                           i, n_vocab - 1);
    return eval(ctx, tokens, NULL, n, logits_all);
}

gemma8_status gemma8_eval_embd(gemma8_context *ctx, const float *embd, int32_t n, float *logits_all) {
    if (!ctx || (!embd && n > 0) || n < 0) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_eval_embd");
    const size_t count = (size_t)n * (size_t)ctx->model->hp.n_embd;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(embd[i])) return g8_fail(GEMMA8_ERR_INVALID_ARG, "embedding value %zu is not finite", i);
    return eval(ctx, NULL, embd, n, logits_all);
}

const float *gemma8_get_hidden(const gemma8_context *ctx) { return ctx->last_hidden; }

bool g8_kv_can_truncate(const gemma8_context *ctx, int32_t n) {
    if (n >= ctx->n_past) return true;
    for (int il = 0; il < ctx->model->hp.n_layer; il++) {
        const g8_kv_layer *L = &ctx->kv[il];
        if (L->slots >= ctx->n_ctx) continue;
        /* positions n - window + 1 .. n - 1 must not have been overwritten by n .. n_past - 1 */
        if (ctx->n_past - 1 - L->slots >= n - ctx->model->hp.sliding_window) return false;
    }
    return true;
}

void gemma8_kv_truncate(gemma8_context *ctx, int32_t n) {
    if (n < 0) n = 0;
    if (n >= ctx->n_past) return;
    ctx->n_past = g8_kv_can_truncate(ctx, n) ? n : 0;
}

const float *gemma8_get_logits(const gemma8_context *ctx) { return ctx->last_logits; }

int32_t gemma8_n_past(const gemma8_context *ctx) { return ctx->n_past; }

void gemma8_kv_clear(gemma8_context *ctx) { ctx->n_past = 0; }

const int32_t *gemma8_history(const gemma8_context *ctx, int32_t *n) {
    *n = ctx->n_past;
    return ctx->history;
}
