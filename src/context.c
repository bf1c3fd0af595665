/* context.c - contexts: parameters, the memory check, allocation, and the
 * accessors of their sequences. The forward pass is gemma2.c's. */
#include "context.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gemma8_context_params gemma8_context_default_params(void) {
    gemma8_context_params p = {0};
    p.n_batch = G8_DEFAULT_BATCH;
    p.kv_type = GEMMA8_KV_AUTO;
    p.n_seq = 1;
    return p;
}

static uint32_t kv_type_of(const gemma8_model *m, const gemma8_context_params *p) {
    if (g8_kv_type_known(p->kv_type)) return (uint32_t)p->kv_type;
    return m->layers[0].wq.packed ? GEMMA8_TYPE_F16 : GEMMA8_TYPE_F32; /* quantized models: f16 */
}

/* The resolved sizes of a context, as gemma8_context_new will use them. */
typedef struct ctx_sizes {
    int n_seq;
    int n_ctx;       /* per sequence */
    int n_batch;
    int n_threads;
} ctx_sizes;

static ctx_sizes resolve(const gemma8_model *m, const gemma8_context_params *p) {
    ctx_sizes z;
    z.n_seq = p->n_seq > 0 ? p->n_seq : 1;
    const int total = p->n_ctx ? p->n_ctx : m->hp.n_ctx_train * z.n_seq;
    z.n_ctx = G8_MAX(1, total / z.n_seq);
    z.n_batch = G8_MIN(p->n_batch ? p->n_batch : G8_DEFAULT_BATCH, z.n_ctx);
    z.n_threads = p->n_threads ? p->n_threads : g8_physical_cores();
    return z;
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

gemma8_memory_estimate gemma8_estimate_memory(const gemma8_model *m, const gemma8_context_params *p) {
    gemma8_memory_estimate e = {0};
    const g8_hparams *hp = &m->hp;
    const ctx_sizes z = resolve(m, p);
    const uint64_t B = (uint64_t)z.n_batch;
    const uint64_t KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    const uint64_t E = (uint64_t)hp->n_embd;
    const uint64_t Q = (uint64_t)hp->n_head * hp->head_dim;
    const uint64_t F = (uint64_t)hp->n_ff;
    const uint32_t type = kv_type_of(m, p);
    e.weights = g8_model_resident_bytes(m);
    e.kv_cache = g8_kv_bytes(hp, type, z.n_seq, z.n_ctx, z.n_batch, true);
    e.kv_cache_full = g8_kv_bytes(hp, type, z.n_seq, z.n_ctx, z.n_batch, false);
    const size_t attn = g8_attention_scratch(hp->n_head, hp->n_head_kv, hp->head_dim, z.n_ctx);
    e.scratch = B * (3 * E + 2 * Q + 2 * KV + 2 * F) * sizeof(float);
    e.scratch += B * (G8_MAX(G8_MAX(E, Q), F) / QK8_0 + 1) * sizeof(block_q8_0);
    e.scratch += (uint64_t)z.n_threads * attn * sizeof(float);
    e.scratch += (2 + (uint64_t)(z.n_seq > 1 ? z.n_seq : 0)) * (uint64_t)hp->n_vocab * sizeof(float);
    e.scratch += (uint64_t)z.n_seq * (uint64_t)z.n_ctx * sizeof(int32_t);
    e.total = e.weights + e.kv_cache + e.scratch;
    e.available = mem_available();
    return e;
}

/* The error for a context that does not fit, with the largest one that does. */
static gemma8_status not_enough_memory(const gemma8_model *model, const gemma8_context_params *params,
                                       const gemma8_memory_estimate *need) {
    gemma8_context_params p = *params;
    const ctx_sizes z = resolve(model, params);
    const int asked = z.n_ctx * z.n_seq;
    int n = asked;
    gemma8_memory_estimate e = *need;
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
                   asked, need->total / G, need->weights / G, need->kv_cache / G, need->scratch / G,
                   need->available / G, hint);
}

static float *alloc_f32(size_t a, size_t b, bool *ok) {
    size_t n;
    float *p = NULL;
    if (g8_mul_ok(a, b, &n) && g8_mul_ok(n, sizeof(float), &n)) p = malloc(n ? n : 1);
    if (!p) *ok = false;
    return p;
}

static gemma8_status check_params(const gemma8_model *model, const gemma8_context_params *p) {
    const int hd = model->hp.head_dim;
    if (p->kv_type != GEMMA8_KV_AUTO && !g8_kv_type_known(p->kv_type))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "the KV cache type must be f32, f16 or q8_0");
    if (p->kv_type == GEMMA8_TYPE_Q8_0 && hd % QK8_0)
        return g8_fail(GEMMA8_ERR_INVALID_ARG,
                       "a q8_0 KV cache needs a head size that is a multiple of 32 (this model's: %d)", hd);
    if (p->n_ctx < 0 || p->n_batch < 0 || p->n_threads < 0 || p->n_threads > 1024 || p->n_seq < 0 ||
        p->n_seq > 1024)
        return g8_fail(GEMMA8_ERR_INVALID_ARG,
                       "negative or absurd context parameters (n_ctx %d, n_batch %d, n_threads %d, n_seq %d)",
                       p->n_ctx, p->n_batch, p->n_threads, p->n_seq);
    if (p->n_ctx && p->n_seq > p->n_ctx)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "%d sequences do not fit in a context of %d tokens", p->n_seq,
                       p->n_ctx);
    return GEMMA8_OK;
}

gemma8_status gemma8_context_new(gemma8_model *model, const gemma8_context_params *params, gemma8_context **out) {
    *out = NULL;
    if (!model || !params) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no model or parameters given");
    gemma8_status st = check_params(model, params);
    if (st) return st;
    const g8_hparams *hp = &model->hp;
    gemma8_memory_estimate need = gemma8_estimate_memory(model, params);
    if (need.available && need.total > need.available) return not_enough_memory(model, params, &need);
    gemma8_context *ctx = g8_calloc(1, sizeof *ctx, "the context");
    if (!ctx) return GEMMA8_ERR_NOMEM;
    const ctx_sizes z = resolve(model, params);
    ctx->model = model;
    ctx->n_ctx = z.n_ctx;
    ctx->n_batch = z.n_batch;
    ctx->n_threads = z.n_threads;
    ctx->ops.k = g8_kernels_best();
    st = g8_kv_init(&ctx->kv, hp, ctx->ops.k, kv_type_of(model, params), z.n_seq, z.n_ctx, z.n_batch);
    if (st) {
        free(ctx);
        return st;
    }
    const size_t B = (size_t)ctx->n_batch;
    const size_t E = (size_t)hp->n_embd;
    const size_t Q = (size_t)hp->n_head * hp->head_dim;
    const size_t KV = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t F = (size_t)hp->n_ff;
    const size_t attn = g8_attention_scratch(hp->n_head, hp->n_head_kv, hp->head_dim, ctx->n_ctx);
    bool ok = true;
    ctx->ops.qbuf_blocks = B * (G8_MAX(G8_MAX(E, Q), F) / QK8_0 + 1);
    ctx->ops.qbuf = malloc(ctx->ops.qbuf_blocks * sizeof(block_q8_0));
    ctx->ops.qsum = malloc(3 * ctx->ops.qbuf_blocks * sizeof(int32_t)); /* and the halves' sums (ops.h) */
    ok = ctx->ops.qbuf != NULL && ctx->ops.qsum != NULL;
    ctx->inv_freq = alloc_f32((size_t)hp->head_dim / 2, 1, &ok);
    ctx->pos = malloc(B * sizeof(int32_t));
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
    ctx->attn_scratch = alloc_f32((size_t)ctx->n_threads, attn, &ok);
    ctx->last_logits = alloc_f32(1, (size_t)hp->n_vocab, &ok);
    ctx->last_hidden = alloc_f32(1, E, &ok);
    ctx->batch_logits = alloc_f32((size_t)z.n_seq, (size_t)hp->n_vocab, &ok);
    ctx->batch_seqs = calloc(B, sizeof(int32_t));
    ctx->batch_tokens = calloc(B, sizeof(int32_t));
    ctx->batch_take = calloc((size_t)z.n_seq, sizeof(int32_t));
    ctx->lora = calloc((size_t)z.n_seq, sizeof(g8_lora_set));
    ctx->lora_of = calloc(B, sizeof(g8_lora_set *));
    ok = ok && ctx->lora && ctx->lora_of;
    ok = ok && ctx->batch_seqs && ctx->batch_tokens && ctx->batch_take;
    if (!ok) {
        gemma8_context_free(ctx);
        return g8_fail(GEMMA8_ERR_NOMEM, "out of memory creating a context of %d tokens (try a smaller context)",
                       z.n_ctx * z.n_seq);
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

void gemma8_context_free(gemma8_context *ctx) {
    if (!ctx) return;
    g8_async_finish(ctx);
    g8_kv_free(&ctx->kv);
    if (ctx->ops.pool) g8_pool_free(ctx->ops.pool);
    void *bufs[] = {ctx->ops.qbuf, ctx->ops.qsum, ctx->inv_freq, ctx->pos, ctx->x, ctx->xn, ctx->q, ctx->k, ctx->v, ctx->att,
                    ctx->proj, ctx->gate, ctx->up, ctx->attn_scratch, ctx->last_logits, ctx->last_hidden,
                    ctx->batch_logits, ctx->batch_seqs, ctx->batch_tokens, ctx->batch_take, ctx->lora, ctx->lora_of,
                    ctx->lora_u};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(ctx);
}

/* ---- sequences --------------------------------------------------------------- */

static bool seq_ok(const gemma8_context *ctx, int32_t s) { return ctx && s >= 0 && s < ctx->kv.n_seq; }

int32_t gemma8_n_ctx(const gemma8_context *ctx) { return ctx->n_ctx; }

int32_t gemma8_n_seq(const gemma8_context *ctx) { return ctx->kv.n_seq; }

int32_t gemma8_seq_n_past(const gemma8_context *ctx, int32_t s) {
    return seq_ok(ctx, s) ? ctx->kv.seq[s].n_past : 0;
}

void gemma8_seq_clear(gemma8_context *ctx, int32_t s) {
    if (seq_ok(ctx, s)) g8_kv_clear(&ctx->kv, s);
}

void gemma8_seq_truncate(gemma8_context *ctx, int32_t s, int32_t n) {
    if (seq_ok(ctx, s)) g8_kv_truncate(&ctx->kv, s, n);
}

gemma8_status gemma8_seq_set_lora(gemma8_context *ctx, int32_t s, const gemma8_lora *const *adapters,
                                  const float *scales, int32_t n) {
    if (!seq_ok(ctx, s) || n < 0 || (n > 0 && (!adapters || !scales)))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_seq_set_lora");
    if (n > G8_MAX_LORA) return g8_fail(GEMMA8_ERR_INVALID_ARG, "%d adapters; at most %d", n, G8_MAX_LORA);
    g8_lora_set set = {.n = n};
    int max_r = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!adapters[i] || adapters[i]->model != ctx->model)
            return g8_fail(GEMMA8_ERR_INVALID_ARG, "adapter %d was not loaded for this context's model", i);
        if (!isfinite(scales[i])) return g8_fail(GEMMA8_ERR_INVALID_ARG, "the scale of adapter %d is not finite", i);
        set.a[i] = adapters[i];
        set.scale[i] = scales[i];
        max_r = G8_MAX(max_r, adapters[i]->max_r);
    }
    if (max_r > ctx->lora_u_cap) {
        float *u = realloc(ctx->lora_u, (size_t)ctx->n_batch * G8_MAX_LORA * (size_t)max_r * sizeof(float));
        if (!u) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
        ctx->lora_u = u;
        ctx->lora_u_cap = max_r;
    }
    /* what the sequence holds was computed under the old set: it is kept only if the set is the same */
    bool same = set.n == ctx->lora[s].n;
    for (int32_t i = 0; same && i < n; i++) same = set.a[i] == ctx->lora[s].a[i] && set.scale[i] == ctx->lora[s].scale[i];
    if (!same) g8_kv_clear(&ctx->kv, s);
    ctx->lora[s] = set;
    return GEMMA8_OK;
}

const int32_t *gemma8_seq_history(const gemma8_context *ctx, int32_t s, int32_t *n) {
    *n = seq_ok(ctx, s) ? ctx->kv.seq[s].n_past : 0;
    return seq_ok(ctx, s) ? ctx->kv.seq[s].tokens : NULL;
}

int32_t gemma8_n_past(const gemma8_context *ctx) { return gemma8_seq_n_past(ctx, 0); }

void gemma8_kv_clear(gemma8_context *ctx) { gemma8_seq_clear(ctx, 0); }

void gemma8_kv_truncate(gemma8_context *ctx, int32_t n) { gemma8_seq_truncate(ctx, 0, n); }

const int32_t *gemma8_history(const gemma8_context *ctx, int32_t *n) { return gemma8_seq_history(ctx, 0, n); }

const float *gemma8_get_logits(const gemma8_context *ctx) { return ctx->last_logits; }

const float *gemma8_get_hidden(const gemma8_context *ctx) { return ctx->last_hidden; }

void gemma8_abort(gemma8_context *ctx) { atomic_store(&ctx->abort, true); }

gemma8_status gemma8_cache_save(const gemma8_context *ctx, const char *path) {
    if (!ctx || !path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to cache_save");
    return g8_kv_save(&ctx->kv, 0, g8_model_fingerprint(ctx->model) ^ g8_lora_set_fingerprint(&ctx->lora[0]), path);
}

gemma8_status gemma8_cache_load(gemma8_context *ctx, const char *path) {
    if (!ctx || !path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to cache_load");
    return g8_kv_load(&ctx->kv, 0, g8_model_fingerprint(ctx->model) ^ g8_lora_set_fingerprint(&ctx->lora[0]),
                      ctx->model->hp.n_vocab, path);
}
