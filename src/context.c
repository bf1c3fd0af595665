/* context.c - contexts: parameters, the memory check, allocation, and the
 * accessors of their sequences. The forward pass is forward.c's. */
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
    int n_ctx; /* per sequence (unified: the pool's, which each sequence may fill) */
    int n_batch;
    int n_threads;
} ctx_sizes;

static ctx_sizes resolve(const gemma8_model *m, const gemma8_context_params *p) {
    ctx_sizes z;
    z.n_seq = p->n_seq > 0 ? p->n_seq : 1;
    const int total = p->n_ctx ? p->n_ctx : m->hp.n_ctx_train * (p->kv_unified ? 1 : z.n_seq);
    z.n_ctx = G8_MAX(1, p->kv_unified ? total : total / z.n_seq);
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

/* Every scratch buffer of a context, in one table: gemma8_context_new allocates
 * exactly these sizes and gemma8_estimate_memory adds them up. */
enum {
    BUF_QBUF, BUF_QSUM, BUF_INV_FREQ, BUF_ROPE, BUF_POS, BUF_X, BUF_XN, BUF_Q, BUF_K, BUF_V, BUF_ATT, BUF_PROJ,
    BUF_GATE, BUF_UP, BUF_ATTN, BUF_LOGITS, BUF_HIDDEN, BUF_OUT_ROW, BUF_SEQS, BUF_OUT, BUF_TOKENS, BUF_TAKE,
    BUF_LORA, BUF_LORA_OF, BUF_LORA_U, N_BUF
};

/* The LoRA scratch is sized at first for adapters up to this rank; a larger rank grows it. */
#define LORA_RANK_RESERVE 64

static void layout(const gemma8_model *m, const ctx_sizes *z, size_t bytes[N_BUF]) {
    const g8_hparams *hp = &m->hp;
    const size_t B = (size_t)z->n_batch;
    const size_t E = (size_t)hp->n_embd;
    const size_t Q = (size_t)hp->n_head * hp->head_dim;
    const size_t KV = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t F = (size_t)hp->n_ff;
    const size_t S = (size_t)z->n_seq;
    const size_t f = sizeof(float);
    const size_t qblocks = B * (G8_MAX(G8_MAX(E, Q), F) / QK8_0 + 1);
    bytes[BUF_QBUF] = qblocks * sizeof(block_q8_0);
    bytes[BUF_QSUM] = 3 * qblocks * sizeof(int32_t); /* and the halves' sums (ops.h) */
    bytes[BUF_INV_FREQ] = 2 * ((size_t)hp->head_dim / 2) * f; /* the sliding layers' table, the global ones' */
    bytes[BUF_ROPE] = 2 * B * (size_t)hp->head_dim * f; /* cos, sin of each entry's angles, both tables */
    bytes[BUF_POS] = B * sizeof(int32_t);
    bytes[BUF_X] = B * E * f;
    bytes[BUF_XN] = B * E * f;
    bytes[BUF_Q] = B * Q * f;
    bytes[BUF_K] = B * KV * f;
    bytes[BUF_V] = B * KV * f;
    bytes[BUF_ATT] = B * Q * f;
    bytes[BUF_PROJ] = B * E * f;
    bytes[BUF_GATE] = B * F * f;
    bytes[BUF_UP] = B * F * f;
    const size_t attn = g8_attention_scratch(hp->n_head, hp->n_head_kv, hp->head_dim, z->n_ctx);
    bytes[BUF_ATTN] = (size_t)z->n_threads * attn * f;
    bytes[BUF_LOGITS] = S * (size_t)hp->n_vocab * f; /* a row per sequence; more grow on demand */
    bytes[BUF_HIDDEN] = B * E * f;                   /* a step's; more grow on demand */
    bytes[BUF_OUT_ROW] = 2 * B * sizeof(int32_t);
    bytes[BUF_SEQS] = B * sizeof(int32_t);
    bytes[BUF_OUT] = B;
    bytes[BUF_TOKENS] = B * sizeof(int32_t);
    bytes[BUF_TAKE] = S * sizeof(int32_t);
    bytes[BUF_LORA] = S * sizeof(g8_lora_set);
    bytes[BUF_LORA_OF] = B * sizeof(g8_lora_set *);
    bytes[BUF_LORA_U] = B * GEMMA8_MAX_LORA * LORA_RANK_RESERVE * f;
}

gemma8_memory_estimate gemma8_estimate_memory(const gemma8_model *m, const gemma8_context_params *p) {
    gemma8_memory_estimate e = {0};
    const g8_hparams *hp = &m->hp;
    const ctx_sizes z = resolve(m, p);
    const uint32_t type = kv_type_of(m, p);
    e.weights = g8_model_resident_bytes(m);
    e.kv_cache = g8_kv_bytes(hp, type, z.n_seq, z.n_ctx, z.n_batch, true);
    e.kv_cache_full = g8_kv_bytes(hp, type, z.n_seq, z.n_ctx, z.n_batch, false);
    if (p->kv_unified) { /* one pool: at most n_ctx positions in all */
        e.kv_cache = g8_kv_bytes_unified(hp, type, z.n_seq, z.n_ctx, z.n_batch);
        e.kv_cache_full = g8_kv_bytes(hp, type, 1, z.n_ctx, z.n_batch, false);
    }
    size_t bytes[N_BUF];
    layout(m, &z, bytes);
    for (int i = 0; i < N_BUF; i++) e.scratch += bytes[i];
    e.total = e.weights + e.kv_cache + e.scratch;
    e.available = mem_available();
    e.loaded = m->packed_bytes;
    return e;
}

/* Whether what a context still needs (all but the weights the model holds already) fits. */
static bool fits(const gemma8_memory_estimate *e) { return !e->available || e->total - e->loaded <= e->available; }

/* The error for a context that does not fit, with the largest one that does. */
static gemma8_status not_enough_memory(const gemma8_model *model, const gemma8_context_params *params,
                                       const gemma8_memory_estimate *need) {
    gemma8_context_params p = *params;
    const ctx_sizes z = resolve(model, params);
    const int asked = params->kv_unified ? z.n_ctx : z.n_ctx * z.n_seq;
    int n = asked;
    gemma8_memory_estimate e = *need;
    while (n > 16 && !fits(&e)) {
        p.n_ctx = n /= 2;
        e = gemma8_estimate_memory(model, &p);
    }
    const double G = 1073741824.0;
    char hint[96] = "; the weights alone do not fit";
    if (fits(&e)) snprintf(hint, sizeof hint, "; a context of %d tokens would fit (-c %d)", n, n);
    return g8_fail(GEMMA8_ERR_NOMEM,
                   "not enough memory: the model with a context of %d tokens needs %.2f GiB (weights %.2f, %.2f of "
                   "them loaded already, + KV cache %.2f + scratch %.2f) and %.2f GiB more are available%s",
                   asked, need->total / G, need->weights / G, need->loaded / G, need->kv_cache / G,
                   need->scratch / G, need->available / G, hint);
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
    if (!fits(&need)) return not_enough_memory(model, params, &need);
    gemma8_context *ctx = g8_calloc(1, sizeof *ctx, "the context");
    if (!ctx) return GEMMA8_ERR_NOMEM;
    const ctx_sizes z = resolve(model, params);
    ctx->model = model;
    ctx->n_ctx = z.n_ctx;
    ctx->n_batch = z.n_batch;
    ctx->n_threads = z.n_threads;
    ctx->ops.k = g8_kernels_best();
    st = g8_kv_init(&ctx->kv, hp, ctx->ops.k, kv_type_of(model, params), z.n_seq, z.n_ctx, z.n_batch,
                    params->kv_unified);
    if (st) {
        free(ctx);
        return st;
    }
    size_t bytes[N_BUF];
    void *buf[N_BUF];
    layout(model, &z, bytes);
    bool ok = true;
    for (int i = 0; i < N_BUF; i++) {
        buf[i] = calloc(1, bytes[i] ? bytes[i] : 1);
        ok = ok && buf[i];
    }
    ctx->ops.qbuf = buf[BUF_QBUF];
    ctx->ops.qbuf_blocks = bytes[BUF_QBUF] / sizeof(block_q8_0);
    ctx->ops.qsum = buf[BUF_QSUM];
    ctx->inv_freq = buf[BUF_INV_FREQ];
    ctx->rope_cs = buf[BUF_ROPE];
    ctx->pos = buf[BUF_POS];
    ctx->x = buf[BUF_X];
    ctx->xn = buf[BUF_XN];
    ctx->q = buf[BUF_Q];
    ctx->k = buf[BUF_K];
    ctx->v = buf[BUF_V];
    ctx->att = buf[BUF_ATT];
    ctx->proj = buf[BUF_PROJ];
    ctx->gate = buf[BUF_GATE];
    ctx->up = buf[BUF_UP];
    ctx->attn_scratch = buf[BUF_ATTN];
    ctx->out_logits = buf[BUF_LOGITS];
    ctx->out_logits_cap = z.n_seq;
    ctx->out_hidden = buf[BUF_HIDDEN];
    ctx->out_hidden_cap = z.n_batch;
    ctx->out_row = buf[BUF_OUT_ROW];
    ctx->out_entries_cap = z.n_batch;
    ctx->batch_seqs = buf[BUF_SEQS];
    ctx->batch_out = buf[BUF_OUT];
    ctx->batch_tokens = buf[BUF_TOKENS];
    ctx->batch_take = buf[BUF_TAKE];
    ctx->lora = buf[BUF_LORA];
    ctx->lora_of = buf[BUF_LORA_OF];
    ctx->lora_u = buf[BUF_LORA_U];
    ctx->lora_u_cap = LORA_RANK_RESERVE;
    if (!ok) {
        gemma8_context_free(ctx);
        return g8_fail(GEMMA8_ERR_NOMEM,
                       "out of memory creating a context of %d tokens (try a smaller context)",
                       params->kv_unified ? z.n_ctx : z.n_ctx * z.n_seq);
    }
    if (!(ctx->ops.pool = g8_pool_new(ctx->n_threads))) {
        gemma8_context_free(ctx);
        return GEMMA8_ERR_NOMEM;
    }
    /* as transformers: inv_freq = 1 / base^(2i/d), in float32; linear scaling divides it */
    const int half = hp->head_dim / 2;
    for (int i = 0; i < half; i++) {
        const float e = (float)(2 * i) / (float)hp->head_dim;
        ctx->inv_freq[i] = 1.0f / powf(hp->rope_base_local, e);
        ctx->inv_freq[half + i] = 1.0f / powf(hp->rope_base, e);
        if (hp->rope_scale_local != 1.0f) ctx->inv_freq[i] /= hp->rope_scale_local;
        if (hp->rope_scale != 1.0f) ctx->inv_freq[half + i] /= hp->rope_scale;
    }
    *out = ctx;
    return GEMMA8_OK;
}

void gemma8_context_free(gemma8_context *ctx) {
    if (!ctx) return;
    g8_kv_free(&ctx->kv);
    if (ctx->ops.pool) g8_pool_free(ctx->ops.pool);
    void *bufs[] = {ctx->ops.qbuf, ctx->ops.qsum, ctx->inv_freq, ctx->rope_cs, ctx->pos, ctx->x, ctx->xn, ctx->q,
                    ctx->k, ctx->v, ctx->att, ctx->proj, ctx->gate, ctx->up, ctx->attn_scratch, ctx->out_logits,
                    ctx->out_hidden, ctx->out_row, ctx->batch_seqs, ctx->batch_out, ctx->batch_tokens,
                    ctx->batch_take, ctx->lora, ctx->lora_of, ctx->lora_u};
    _Static_assert(sizeof bufs / sizeof bufs[0] == N_BUF, "every buffer of the layout is freed");
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(ctx);
}

/* ---- sequences --------------------------------------------------------------- */

static bool seq_ok(const gemma8_context *ctx, int32_t s) { return ctx && s >= 0 && s < ctx->kv.n_seq; }

const gemma8_model *gemma8_context_model(const gemma8_context *ctx) { return ctx->model; }

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
    if (n > GEMMA8_MAX_LORA) return g8_fail(GEMMA8_ERR_INVALID_ARG, "%d adapters; at most %d", n, GEMMA8_MAX_LORA);
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
        float *u = realloc(ctx->lora_u, (size_t)ctx->n_batch * GEMMA8_MAX_LORA * (size_t)max_r * sizeof(float));
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

void gemma8_abort(gemma8_context *ctx) { atomic_store(&ctx->abort, true); }

gemma8_status gemma8_cache_save(const gemma8_context *ctx, int32_t s, const char *path) {
    if (!seq_ok(ctx, s) || !path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to cache_save");
    const uint64_t key = g8_model_fingerprint(ctx->model) ^ g8_lora_set_fingerprint(&ctx->lora[s]);
    return g8_kv_save(&ctx->kv, s, key, path);
}

gemma8_status gemma8_cache_load(gemma8_context *ctx, int32_t s, const char *path) {
    if (!seq_ok(ctx, s) || !path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to cache_load");
    const uint64_t key = g8_model_fingerprint(ctx->model) ^ g8_lora_set_fingerprint(&ctx->lora[s]);
    return g8_kv_load(&ctx->kv, s, key, ctx->model->hp.n_vocab, path);
}

gemma8_status gemma8_cache_save_buffer(const gemma8_context *ctx, int32_t s, void *buf, size_t cap,
                                       size_t *size) {
    if (!seq_ok(ctx, s) || !size)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to cache_save_buffer");
    const uint64_t key = g8_model_fingerprint(ctx->model) ^ g8_lora_set_fingerprint(&ctx->lora[s]);
    return g8_kv_save_buffer(&ctx->kv, s, key, buf, cap, size);
}

gemma8_status gemma8_cache_load_buffer(gemma8_context *ctx, int32_t s, const void *buf, size_t size) {
    if (!seq_ok(ctx, s) || (!buf && size))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to cache_load_buffer");
    const uint64_t key = g8_model_fingerprint(ctx->model) ^ g8_lora_set_fingerprint(&ctx->lora[s]);
    return g8_kv_load_buffer(&ctx->kv, s, key, ctx->model->hp.n_vocab, buf, size);
}
