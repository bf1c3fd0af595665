/* model.c - loading a gemma2 or gemma3 GGUF file: hyper-parameters, shape checks, weights
 * in place (mapped), Q8_0 matrices packed for the GEMM. */
#include "model.h"
#include "tokmask.h"
#include "quant.h"
#include "threadpool.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

gemma8_model_params gemma8_model_default_params(void) {
    gemma8_model_params p = {0};
    return p;
}

static gemma8_status get_int(const gguf_file *f, const char *path, const char *key, int *out, int def, bool required) {
    gemma8_status st;
    uint32_t v;
    if (g8_gguf_get_u32(f, key, &v, &st)) {
        if (v > (1u << 30)) return g8_fail(GEMMA8_ERR_FORMAT, "'%s': %s = %u is out of range", path, key, v);
        *out = (int)v;
        return GEMMA8_OK;
    }
    if (st) return g8_fail(st, "'%s': %s", path, gemma8_last_error());
    if (required) return g8_fail(GEMMA8_ERR_FORMAT, "'%s': required metadata '%s' is missing", path, key);
    *out = def;
    return GEMMA8_OK;
}

static gemma8_status get_float(const gguf_file *f, const char *path, const char *key, float *out, float def) {
    gemma8_status st;
    if (g8_gguf_get_f32(f, key, out, &st)) {
        if (!isfinite(*out) || *out < 0)
            return g8_fail(GEMMA8_ERR_FORMAT, "'%s': %s = %g is not a valid value", path, key, *out);
        return GEMMA8_OK;
    }
    if (st) return g8_fail(st, "'%s': %s", path, gemma8_last_error());
    *out = def;
    return GEMMA8_OK;
}

static gemma8_status read_hparams(const gguf_file *f, const char *path, g8_hparams *hp) {
    gemma8_status st;
    gguf_str name;
    if (!g8_gguf_get_str(f, KEY_ARCH, &name, &st))
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': no '%s' in the file", path, KEY_ARCH);
    const g8_arch *a = g8_arch_find(name.p, name.len);
    if (!a)
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': architecture '%.*s' is not supported (gemma8 runs %s models)",
                       path, (int)G8_MIN(name.len, 64), name.p, g8_arch_names());
    hp->arch = a;
    char k[96];
#define KEY(suffix) g8_arch_key(a, suffix, k)
    if ((st = get_int(f, path, KEY(KEY_EMBD), &hp->n_embd, 0, true)) ||
        (st = get_int(f, path, KEY(KEY_BLOCKS), &hp->n_layer, 0, true)) ||
        (st = get_int(f, path, KEY(KEY_FF), &hp->n_ff, 0, true)) ||
        (st = get_int(f, path, KEY(KEY_HEADS), &hp->n_head, 0, true)) ||
        (st = get_int(f, path, KEY(KEY_HEADS_KV), &hp->n_head_kv, hp->n_head, false)) ||
        (st = get_int(f, path, KEY(KEY_CTX), &hp->n_ctx_train, a->hf_ctx, false)) ||
        (st = get_int(f, path, KEY(KEY_WINDOW), &hp->sliding_window, a->window_required ? 0 : a->hf_window, false)))
        return st;
    if (hp->n_layer > 0 && (uint64_t)hp->n_layer > f->n_tensors) /* before sizing anything by it */
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': %d layers, but the file has %llu tensors", path, hp->n_layer,
                       (unsigned long long)f->n_tensors);
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_layer > G8_MAX_LAYER || hp->n_ff <= 0 || hp->n_head <= 0 ||
        hp->n_head_kv <= 0 || hp->n_head % hp->n_head_kv || hp->n_head / hp->n_head_kv > 64 || hp->n_ctx_train <= 0 ||
        hp->sliding_window < 0 || (!a->window_required && hp->sliding_window == 0))
        return g8_fail(GEMMA8_ERR_FORMAT,
                       "'%s': inconsistent hyper-parameters (embd %d, layers %d, ff %d, heads %d/%d, ctx %d, window %d)",
                       path, hp->n_embd, hp->n_layer, hp->n_ff, hp->n_head, hp->n_head_kv, hp->n_ctx_train,
                       hp->sliding_window);
    int vlen;
    if ((st = get_int(f, path, KEY(KEY_KEY_LEN), &hp->head_dim, hp->n_embd / hp->n_head, false)) ||
        (st = get_int(f, path, KEY(KEY_VAL_LEN), &vlen, hp->head_dim, false)))
        return st;
    if (hp->head_dim <= 0 || hp->head_dim % 2 || vlen != hp->head_dim)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': key length %d / value length %d not supported (equal and even)", path,
                       hp->head_dim, vlen);
    /* llama.cpp's rules when the file does not say (see arch.h) */
    const float qpas_default =
        hp->n_layer == a->qpas_hidden_layers ? (float)(hp->n_embd / hp->n_head) : (float)hp->head_dim;
    float scale_factor = 0;
    if ((st = get_float(f, path, KEY(KEY_RMS_EPS), &hp->rms_eps, G8_DEFAULT_RMS_EPS)) ||
        (st = get_float(f, path, KEY(KEY_ATTN_SOFTCAP), &hp->attn_softcap, a->attn_softcap)) ||
        (st = get_float(f, path, KEY(KEY_FINAL_SOFTCAP), &hp->final_softcap, a->final_softcap)) ||
        (st = get_float(f, path, KEY(KEY_ROPE_BASE), &hp->rope_base, G8_DEFAULT_ROPE_BASE)) ||
        (st = get_float(f, path, KEY(KEY_ROPE_BASE_SWA), &hp->rope_base_local,
                        a->local_rope_own_base ? G8_DEFAULT_ROPE_BASE : hp->rope_base)) ||
        (st = get_float(f, path, KEY(KEY_ROPE_SCALE_LINEAR), &scale_factor, 0)) ||
        (st = get_float(f, path, KEY(KEY_ROPE_SCALING_FACTOR), &scale_factor, scale_factor)) ||
        (st = get_float(f, path, KEY(KEY_QUERY_SCALAR), &hp->query_pre_attn_scalar, qpas_default)))
        return st;
    if (hp->query_pre_attn_scalar <= 0 || hp->rope_base <= 0 || hp->rope_base_local <= 0)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': query_pre_attn_scalar and the RoPE bases must be positive", path);
    gguf_str type;
    if (g8_gguf_get_str(f, KEY(KEY_ROPE_SCALING_TYPE), &type, &st) && !(type.len == 6 && !memcmp(type.p, "linear", 6)) &&
        !(type.len == 4 && !memcmp(type.p, "none", 4)))
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': RoPE scaling '%.*s' is not supported (linear)", path,
                       (int)G8_MIN(type.len, 32), type.p);
    hp->rope_scale = scale_factor > 0 ? scale_factor : 1.0f;
    hp->rope_scale_local = a->local_rope_scaled ? hp->rope_scale : 1.0f;
    hp->query_scale = (float)pow(hp->query_pre_attn_scalar, -0.5);
    /* the sliding layers: llama.cpp's period (the pattern key when the file has one), none without a window */
    uint32_t period = (uint32_t)a->swa_period;
    if (g8_gguf_get_u32(f, KEY(KEY_PATTERN), &period, &st) && period > (uint32_t)hp->n_layer + 1)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': %s = %u is out of range", path, KEY(KEY_PATTERN), period);
    if (st) return g8_fail(st, "'%s': %s", path, gemma8_last_error());
#undef KEY
    for (int il = 0; il < hp->n_layer && hp->sliding_window > 0; il++)
        if (period == 0 || (uint32_t)il % period < period - 1) hp->sliding[il / 64] |= 1ull << (il % 64);
    return GEMMA8_OK;
}

static gemma8_status bind_matrix(const gguf_file *f, const char *path, const char *name, int64_t rows, int64_t cols,
                                 g8_matrix *m) {
    const gguf_tensor *t = g8_gguf_find_tensor(f, name);
    if (!t) return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' is missing", path, name);
    if (t->n_dims != 2 || t->ne[0] != cols || (rows >= 0 && t->ne[1] != rows))
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' has shape [%lld, %lld] (%u dims), expected [%lld, %lld]",
                       path, name, (long long)t->ne[0], (long long)t->ne[1], t->n_dims, (long long)cols,
                       (long long)rows);
    m->type = t->type;
    m->cols = t->ne[0];
    m->rows = t->ne[1];
    m->row_bytes = g8_gguf_row_size(t->type, t->ne[0]);
    m->data = t->data;
    return GEMMA8_OK;
}

static gemma8_status bind_norm(const gguf_file *f, const char *path, const char *name, int64_t n, float *dst) {
    const gguf_tensor *t = g8_gguf_find_tensor(f, name);
    if (!t) return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' is missing", path, name);
    if (t->n_dims != 1 || t->ne[0] != n || t->type == GEMMA8_TYPE_Q8_0)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' has shape [%lld] of type %s, expected a float vector of %lld",
                       path, name, (long long)t->ne[0], gemma8_type_name(t->type), (long long)n);
    g8_to_f32(t->type, t->data, dst, n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' holds NaN or infinity", path, name);
    return GEMMA8_OK;
}

enum { LAYER_MATRICES = 7 };

/* The matrices of a layer. */
static void layer_matrices(g8_layer *L, g8_matrix *out[LAYER_MATRICES]) {
    g8_matrix *mats[LAYER_MATRICES] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    memcpy(out, mats, sizeof mats);
}

/* Packing: the quantized matrices (Q8_0, Q4_0, Q6_K) the forward pass multiplies, each into memory of
 * its own, in units of PACK_UNIT groups handed to the threads as they come.
 * The rows are read with pread into a buffer of the thread's rather than
 * through the mapping: the kernel copies from the page cache much faster than
 * a process touches it 4 KiB page by page (5-10x on a VM seen here), and the
 * mapping's pages never join the process. */
enum { PACK_UNIT = 64 };

typedef struct pack_job {
    g8_matrix **mats;
    int n;
    int fd;                /* the file, or -1: read through the mapping */
    const uint8_t *base;   /* the mapping's start (file offset 0) */
    size_t max_group;      /* bytes of the largest group's rows */
    atomic_long next;      /* next unit */
} pack_job;

static int64_t pack_groups(const g8_matrix *w) { return (w->rows + G8_PACK_ROWS - 1) / G8_PACK_ROWS; }

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Maps the pages of [p, p + n) for writing (an error only means faults later). */
static void populate(void *p, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = (uintptr_t)p & ~(page - 1), hi = ((uintptr_t)p + n + page - 1) & ~(page - 1);
    madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
}

/* rows [r0, r1) of w at buf, read from the file; false on a short read */
static bool read_rows(const pack_job *pj, const g8_matrix *w, int64_t r0, int64_t r1, uint8_t *buf) {
    const size_t n = (size_t)(r1 - r0) * w->row_bytes;
    off_t off = (off_t)((const uint8_t *)w->data - pj->base) + (off_t)((size_t)r0 * w->row_bytes);
    for (size_t got = 0; got < n;) {
        ssize_t k = pread(pj->fd, buf + got, n - got, off + (off_t)got);
        if (k <= 0 && errno != EINTR) return false;
        if (k > 0) got += (size_t)k;
    }
    return true;
}

/* Group g of rows [0, rows) at src (w's type), into its place from dst. */
static void pack_group(const g8_matrix *w, const void *src, int64_t rows, int64_t g, void *dst) {
    switch (w->type) {
    case GEMMA8_TYPE_Q8_0: g8_pack_q8_0(src, rows, w->cols / QK8_0, g, g + 1, dst); break;
    case GEMMA8_TYPE_Q4_0: g8_pack_q4_0(src, rows, w->cols / QK4_0, g, g + 1, dst); break;
    default: g8_pack_q6_K(src, rows, w->cols / QK8_0, g, g + 1, dst); break;
    }
}

static void pack_task(void *arg, int ith, int nth) {
    pack_job *pj = arg;
    (void)ith, (void)nth;
    uint8_t *buf = pj->fd >= 0 ? malloc(pj->max_group) : NULL;
    for (;;) {
        long u = atomic_fetch_add(&pj->next, 1);
        int i = 0;
        for (; i < pj->n; i++) { /* the matrix unit u falls in */
            const long units = (long)((pack_groups(pj->mats[i]) + PACK_UNIT - 1) / PACK_UNIT);
            if (u < units) break;
            u -= units;
        }
        if (i == pj->n) break;
        const g8_matrix *w = pj->mats[i];
        const int64_t g0 = (int64_t)u * PACK_UNIT, g1 = G8_MIN(pack_groups(w), g0 + PACK_UNIT);
        const size_t gbytes = g8_packed_bytes(w->type, G8_PACK_ROWS, w->cols);
        for (int64_t g = g0; g < g1; g++) { /* a group at a time: the buffer stays in L2 */
            const int64_t r0 = g * G8_PACK_ROWS, r1 = G8_MIN(w->rows, r0 + G8_PACK_ROWS);
            if (buf && read_rows(pj, w, r0, r1, buf))
                pack_group(w, buf, r1 - r0, 0, (uint8_t *)w->packed + (size_t)g * gbytes);
            else
                pack_group(w, w->data, w->rows, g, w->packed);
        }
    }
    free(buf);
}

/* A matrix's place in the packed weights' allocation: its packed bytes, to a 64-byte boundary (0: not
 * packed). */
static size_t arena_bytes(const g8_matrix *w) {
    return (g8_packed_bytes(w->type, w->rows, w->cols) + 63) / 64 * 64;
}

/* Packs every quantized matrix of mats on the machine's cores, into one allocation (*arena_out); pages of
 * the mapping that were read are given back (they stay in the page cache). */
static gemma8_status pack_matrices(const char *path, const gguf_file *f, g8_matrix **mats, int n, void **arena_out,
                                   uint64_t *arena_bytes_out) {
    pack_job pj = {.mats = mats, .n = 0, .fd = -1, .base = f->map.data};
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        g8_matrix *w = mats[i];
        if (!arena_bytes(w)) continue; /* float matrices are used in place */
        total += arena_bytes(w);
        pj.max_group = G8_MAX(pj.max_group, (size_t)G8_PACK_ROWS * w->row_bytes);
        mats[pj.n++] = w;
    }
    if (!pj.n) return GEMMA8_OK;
    uint8_t *arena = g8_alloc_huge(total);
    if (!arena)
        return g8_fail(GEMMA8_ERR_NOMEM, "'%s': out of memory for the packed weights (%zu bytes)", path, total);
    populate(arena, total); /* one call maps every page: far cheaper than a fault per page */
    *arena_out = arena;
    *arena_bytes_out = total;
    for (int i = 0; i < pj.n; i++) {
        mats[i]->packed = arena;
        arena += arena_bytes(mats[i]);
    }
    g8_pool *pool = g8_pool_new(g8_physical_cores());
    if (!pool) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for threads");
    pj.fd = open(path, O_RDONLY | O_CLOEXEC);
    g8_pool_run(pool, pack_task, &pj);
    g8_pool_free(pool);
    if (pj.fd >= 0) close(pj.fd);
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < pj.n; i++) {
        const g8_matrix *w = mats[i];
        const uintptr_t lo = ((uintptr_t)w->data + page - 1) & ~(page - 1);
        const uintptr_t hi = ((uintptr_t)w->data + (size_t)w->rows * w->row_bytes) & ~(page - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    return GEMMA8_OK;
}

gemma8_status gemma8_model_load(const char *path, const gemma8_model_params *params, gemma8_model **out) {
    (void)params;
    *out = NULL;
    if (!path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no model path given");
    gemma8_model *m = g8_calloc(1, sizeof *m, "the model");
    if (!m) return GEMMA8_ERR_NOMEM;
    gemma8_status st = g8_gguf_open(path, &m->file);
    if (st) {
        free(m);
        return st;
    }
    g8_hparams *hp = &m->hp;
    const gguf_file *f = &m->file;
    if ((st = read_hparams(f, path, hp))) goto fail;

    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    if ((st = bind_matrix(f, path, TN_TOKEN_EMBD, -1, E, &m->tok_embd))) goto fail;
    if (m->tok_embd.rows > (1 << 24)) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': vocabulary of %lld tokens is implausible", path, (long long)m->tok_embd.rows);
        goto fail;
    }
    hp->n_vocab = (int)m->tok_embd.rows;
    m->output = m->tok_embd;
    if (g8_gguf_find_tensor(f, TN_OUTPUT) && (st = bind_matrix(f, path, TN_OUTPUT, hp->n_vocab, E, &m->output))) goto fail;

    /* the norm vectors: four of n_embd a layer and the output's, then two of head_dim a layer (q/k norms) */
    const int n_tensors = g8_arch_layer_tensors(hp->arch);
    const size_t n_norms = (size_t)hp->n_layer * 4 + 1;
    const size_t n_head_norms = hp->arch->qk_norm ? (size_t)hp->n_layer * 2 : 0;
    m->norm_data = g8_malloc((n_norms * (size_t)E + n_head_norms * (size_t)hp->head_dim) * sizeof(float),
                             "norm weights");
    m->layers = g8_calloc((size_t)hp->n_layer, sizeof(g8_layer), "layers");
    if (!m->norm_data || !m->layers) {
        st = GEMMA8_ERR_NOMEM;
        goto fail;
    }
    m->output_norm = m->norm_data + (n_norms - 1) * (size_t)E;
    if ((st = bind_norm(f, path, TN_OUTPUT_NORM, E, m->output_norm))) goto fail;
    for (int il = 0; il < hp->n_layer; il++) {
        g8_layer *L = &m->layers[il];
        float **norms[4] = {&L->attn_norm, &L->post_attn_norm, &L->ffn_norm, &L->post_ffw_norm};
        for (int k = 0; k < 4; k++) *norms[k] = m->norm_data + ((size_t)il * 4 + (size_t)k) * (size_t)E;
        if (n_head_norms) {
            L->q_norm = m->norm_data + n_norms * (size_t)E + (size_t)il * 2 * (size_t)hp->head_dim;
            L->k_norm = L->q_norm + hp->head_dim;
        }
        struct { int which; float *norm; g8_matrix *mat; int64_t rows, cols; } spec[LT_COUNT] = {
            {LT_ATTN_NORM, L->attn_norm, NULL, 0, E},
            {LT_Q, NULL, &L->wq, Q, E},
            {LT_K, NULL, &L->wk, KV, E},
            {LT_V, NULL, &L->wv, KV, E},
            {LT_O, NULL, &L->wo, E, Q},
            {LT_POST_ATTN_NORM, L->post_attn_norm, NULL, 0, E},
            {LT_FFN_NORM, L->ffn_norm, NULL, 0, E},
            {LT_GATE, NULL, &L->w_gate, hp->n_ff, E},
            {LT_UP, NULL, &L->w_up, hp->n_ff, E},
            {LT_DOWN, NULL, &L->w_down, E, hp->n_ff},
            {LT_POST_FFW_NORM, L->post_ffw_norm, NULL, 0, E},
            {LT_Q_NORM, L->q_norm, NULL, 0, hp->head_dim},
            {LT_K_NORM, L->k_norm, NULL, 0, hp->head_dim},
        };
        for (int k = 0; k < n_tensors; k++) {
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", il, g8_layer_tensor_names[spec[k].which].gguf);
            st = spec[k].mat ? bind_matrix(f, path, name, spec[k].rows, spec[k].cols, spec[k].mat)
                             : bind_norm(f, path, name, spec[k].cols, spec[k].norm);
            if (st) goto fail;
        }
    }
    g8_matrix **mats = g8_malloc((size_t)(1 + LAYER_MATRICES * hp->n_layer) * sizeof *mats, "matrices");
    if (!mats) {
        st = GEMMA8_ERR_NOMEM;
        goto fail;
    }
    mats[0] = &m->output;
    for (int il = 0; il < hp->n_layer; il++) layer_matrices(&m->layers[il], mats + 1 + LAYER_MATRICES * il);
    st = pack_matrices(path, f, mats, 1 + LAYER_MATRICES * hp->n_layer, &m->packed, &m->packed_bytes);
    free(mats);
    if (st) goto fail;
    if (m->tok_embd.data == m->output.data) m->tok_embd.packed = m->output.packed; /* tied: rows from there */
    if (g8_gguf_find_kv(f, KEY_TOK_MODEL)) {
        if ((st = g8_vocab_load(&m->vocab, f, path))) goto fail;
        m->has_vocab = true;
        if (m->vocab.n < hp->n_vocab)
            g8_log(G8_LOG_WARN, "'%s': the tokenizer has %d tokens, the embedding %d rows", path, m->vocab.n,
                   hp->n_vocab);
    }
    *out = m;
    return GEMMA8_OK;
fail:
    gemma8_model_free(m);
    return st;
}

void gemma8_model_free(gemma8_model *m) {
    if (!m) return;
    if (m->has_vocab) g8_vocab_free(&m->vocab);
    g8_vindex_free(m->vindex);
    free(m->packed);
    g8_gguf_close(&m->file);
    free(m->layers);
    free(m->norm_data);
    free(m);
}

uint64_t g8_model_resident_bytes(const gemma8_model *m) {
    uint64_t n = 0;
    for (uint64_t i = 0; i < m->file.n_tensors; i++) {
        const gguf_tensor *t = &m->file.tensors[i];
        const size_t packed = t->n_dims == 2 ? g8_packed_bytes(t->type, t->ne[1], t->ne[0]) : 0;
        n += packed ? packed : t->nbytes;
    }
    return n;
}

gemma8_model_info gemma8_model_get_info(const gemma8_model *m) {
    gemma8_model_info info = {0};
    const g8_hparams *hp = &m->hp;
    info.n_vocab = hp->n_vocab;
    info.n_embd = hp->n_embd;
    info.n_layer = hp->n_layer;
    info.n_head = hp->n_head;
    info.n_head_kv = hp->n_head_kv;
    info.head_dim = hp->head_dim;
    info.n_ff = hp->n_ff;
    info.n_ctx_train = hp->n_ctx_train;
    info.sliding_window = hp->sliding_window;
    info.query_pre_attn_scalar = hp->query_pre_attn_scalar;
    info.attn_softcap = hp->attn_softcap;
    info.final_softcap = hp->final_softcap;
    info.rms_eps = hp->rms_eps;
    info.rope_base = hp->rope_base;
    info.rope_base_local = hp->rope_base_local;
    info.rope_scale = hp->rope_scale;
    info.qk_norm = hp->arch->qk_norm;
    snprintf(info.arch, sizeof info.arch, "%s", hp->arch->name);
    for (int il = 0; il < hp->n_layer; il++) info.n_layer_sliding += g8_layer_is_sliding(hp, il);
    info.matrix_type = m->layers[0].wq.type;
    for (uint64_t i = 0; i < m->file.n_tensors; i++) {
        const gguf_tensor *t = &m->file.tensors[i];
        info.n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        if (t->type < 32) {
            info.file_bytes_of_type[t->type] += t->nbytes;
            info.tensors_of_type[t->type]++;
        }
    }
    info.weight_bytes = g8_model_resident_bytes(m);
    gemma8_status st;
    gguf_str name;
    if (g8_gguf_get_str(&m->file, KEY_NAME, &name, &st))
        snprintf(info.name, sizeof info.name, "%.*s", (int)G8_MIN(name.len, sizeof info.name - 1), name.p);
    else
        snprintf(info.name, sizeof info.name, "%s", hp->arch->name);
    return info;
}

uint64_t g8_model_fingerprint(const gemma8_model *m) {
    uint64_t h = g8_fnv64(G8_FNV64_SEED, m->file.map.data, (size_t)m->file.data_offset);
    for (uint64_t i = 0; i < m->file.n_tensors; i++) {
        const gguf_tensor *t = &m->file.tensors[i];
        h = g8_fnv64(h, t->data, (size_t)G8_MIN(t->nbytes, (uint64_t)256));
    }
    return h;
}
