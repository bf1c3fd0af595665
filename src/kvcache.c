/* kvcache.c - the KV cache of a context: allocation, rows, truncation, and
 * prompt-cache files (layout in kvcache.h).
 *
 * Prompt-cache file layout (little-endian):
 *   char[4] "G8KV", u32 version (1), u64 model fingerprint,
 *   u32 n_layer, n_head_kv, head_dim, n_past, i32 tokens[n_past],
 *   then per layer: u32 first (first position stored), the keys then the values
 *   of positions first..n_past-1 as f32 rows of n_head_kv * head_dim.
 * Sliding-window layers store only the positions the next token can see. */
#include "kvcache.h"
#include "fileio.h"

#include <stdlib.h>
#include <string.h>

#define KV_MAGIC "G8KV"
#define KV_VERSION 1u

bool g8_kv_type_known(int32_t t) {
    return t == GEMMA8_TYPE_F16 || t == GEMMA8_TYPE_F32 || t == GEMMA8_TYPE_Q8_0;
}

size_t g8_kv_head_bytes(uint32_t type, int head_dim) {
    if (type == GEMMA8_TYPE_Q8_0) return (size_t)(head_dim / QK8_0) * sizeof(block_q8_0);
    return (size_t)head_dim * (type == GEMMA8_TYPE_F16 ? 2 : 4);
}

size_t g8_kv_offset(uint32_t type, int head_dim, int slots, int g, int slot) {
    return ((size_t)g * (size_t)slots + (size_t)slot) * g8_kv_head_bytes(type, head_dim);
}

int g8_kv_slots(const g8_hparams *hp, int il, int n_ctx, int n_batch) {
    if (!g8_layer_is_sliding(hp, il)) return n_ctx;
    return G8_MIN(n_ctx, hp->sliding_window + n_batch);
}

uint64_t g8_kv_bytes(const g8_hparams *hp, uint32_t type, int n_seq, int n_ctx, int n_batch, bool rings) {
    const uint64_t row = (uint64_t)hp->n_head_kv * g8_kv_head_bytes(type, hp->head_dim);
    uint64_t slots = 0;
    for (int il = 0; il < hp->n_layer; il++) slots += rings ? (uint64_t)g8_kv_slots(hp, il, n_ctx, n_batch) : (uint64_t)n_ctx;
    return 2 * slots * row * (uint64_t)n_seq;
}

static void *alloc_bytes(size_t a, size_t b) {
    size_t n;
    return g8_mul_ok(a, b, &n) ? malloc(n ? n : 1) : NULL;
}

gemma8_status g8_kv_init(g8_kvcache *c, const g8_hparams *hp, const g8_kernels *k, uint32_t type, int n_seq,
                         int n_ctx, int n_batch) {
    memset(c, 0, sizeof *c);
    c->type = type;
    c->n_layer = hp->n_layer;
    c->n_head_kv = hp->n_head_kv;
    c->head_dim = hp->head_dim;
    c->window = hp->sliding_window;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->k = k;
    c->seq = calloc((size_t)n_seq, sizeof *c->seq);
    bool ok = c->seq != NULL;
    if (ok) c->n_seq = n_seq;
    const size_t row = (size_t)hp->n_head_kv * g8_kv_head_bytes(type, hp->head_dim);
    for (int s = 0; ok && s < n_seq; s++) {
        g8_kv_seq *q = &c->seq[s];
        q->tokens = alloc_bytes((size_t)n_ctx, sizeof(int32_t));
        q->layers = calloc((size_t)hp->n_layer, sizeof *q->layers);
        ok = q->tokens && q->layers;
        for (int il = 0; ok && il < hp->n_layer; il++) {
            g8_kv_layer *L = &q->layers[il];
            L->slots = g8_kv_slots(hp, il, n_ctx, n_batch);
            L->k = alloc_bytes((size_t)L->slots, row);
            L->v = alloc_bytes((size_t)L->slots, row);
            ok = L->k && L->v;
        }
    }
    if (ok) return GEMMA8_OK;
    g8_kv_free(c);
    const double G = 1073741824.0;
    return g8_fail(GEMMA8_ERR_NOMEM, "out of memory allocating a KV cache of %.2f GiB (%d sequences of %d positions)",
                   g8_kv_bytes(hp, type, n_seq, n_ctx, n_batch, true) / G, n_seq, n_ctx);
}

void g8_kv_free(g8_kvcache *c) {
    for (int s = 0; c->seq && s < c->n_seq; s++) {
        g8_kv_seq *q = &c->seq[s];
        for (int il = 0; q->layers && il < c->n_layer; il++) {
            free(q->layers[il].k);
            free(q->layers[il].v);
        }
        free(q->layers);
        free(q->tokens);
    }
    free(c->seq);
    c->seq = NULL;
    c->n_seq = 0;
}

/* head g of position pos in a layer's key or value buffer */
static uint8_t *head_at(const g8_kvcache *c, const g8_kv_layer *L, int kv, int g, int32_t pos) {
    uint8_t *base = kv ? L->v : L->k;
    return base + g8_kv_offset(c->type, c->head_dim, L->slots, g, pos % L->slots);
}

void g8_kv_get_row(const g8_kvcache *c, int s, int il, int kv, int32_t pos, float *out) {
    const g8_kv_layer *L = &c->seq[s].layers[il];
    const int hd = c->head_dim;
    for (int g = 0; g < c->n_head_kv; g++) g8_to_f32(c->type, head_at(c, L, kv, g, pos), out + (size_t)g * hd, hd);
}

void g8_kv_set_row(g8_kvcache *c, int s, int il, int kv, int32_t pos, const float *in) {
    const g8_kv_layer *L = &c->seq[s].layers[il];
    c->seq[s].pos_end = G8_MAX(c->seq[s].pos_end, pos + 1);
    const int hd = c->head_dim;
    for (int g = 0; g < c->n_head_kv; g++) {
        uint8_t *head = head_at(c, L, kv, g, pos);
        const float *x = in + (size_t)g * hd;
        if (c->type == GEMMA8_TYPE_F32) {
            memcpy(head, x, (size_t)hd * sizeof(float));
        } else if (c->type == GEMMA8_TYPE_Q8_0) {
            c->k->quantize_q8_0(x, (block_q8_0 *)head, hd);
        } else {
            c->k->to_f16(hd, x, (uint16_t *)head);
        }
    }
}

bool g8_kv_can_truncate(const g8_kvcache *c, int s, int32_t n) {
    const g8_kv_seq *q = &c->seq[s];
    if (n >= q->n_past) return true;
    for (int il = 0; il < c->n_layer; il++) {
        const g8_kv_layer *L = &q->layers[il];
        if (L->slots >= c->n_ctx) continue;
        /* positions n - window + 1 .. n - 1 must not have been overwritten by n .. n_past - 1 */
        if (G8_MAX(q->n_past, q->pos_end) - 1 - L->slots >= n - c->window) return false;
    }
    return true;
}

void g8_kv_truncate(g8_kvcache *c, int s, int32_t n) {
    g8_kv_seq *q = &c->seq[s];
    if (n < 0) n = 0;
    if (n >= q->n_past) return;
    q->n_past = g8_kv_can_truncate(c, s, n) ? n : 0;
    if (q->n_past == 0) q->pos_end = 0;
}

void g8_kv_clear(g8_kvcache *c, int s) {
    c->seq[s].n_past = 0;
    c->seq[s].pos_end = 0;
}

/* ---- prompt-cache files ------------------------------------------------------ */

/* the first position of layer il the next token can see */
static int32_t first_kept(const g8_kvcache *c, int s, int il) {
    const g8_kv_seq *q = &c->seq[s];
    if (q->layers[il].slots >= c->n_ctx) return 0;
    return G8_MAX(0, q->n_past - c->window);
}

gemma8_status g8_kv_save(const g8_kvcache *c, int s, uint64_t fingerprint, const char *path) {
    const g8_kv_seq *q = &c->seq[s];
    for (int32_t i = 0; i < q->n_past; i++)
        if (q->tokens[i] < 0)
            return g8_fail(GEMMA8_ERR_UNSUPPORTED, "a cache holding embedding inputs cannot be saved");
    const size_t KV = (size_t)c->n_head_kv * c->head_dim;
    float *row = g8_malloc(KV * sizeof(float), "a cache row");
    if (!row) return GEMMA8_ERR_NOMEM;
    g8_atomic_file af;
    gemma8_status st = g8_atomic_open(path, &af);
    if (st) {
        free(row);
        return st;
    }
    uint32_t head[4] = {(uint32_t)c->n_layer, (uint32_t)c->n_head_kv, (uint32_t)c->head_dim, (uint32_t)q->n_past};
    uint32_t version = KV_VERSION;
    st = g8_atomic_write(&af, KV_MAGIC, 4);
    if (!st) st = g8_atomic_write(&af, &version, 4);
    if (!st) st = g8_atomic_write(&af, &fingerprint, 8);
    if (!st) st = g8_atomic_write(&af, head, sizeof head);
    if (!st) st = g8_atomic_write(&af, q->tokens, (size_t)q->n_past * sizeof(int32_t));
    for (int il = 0; !st && il < c->n_layer; il++) {
        uint32_t first = (uint32_t)first_kept(c, s, il);
        st = g8_atomic_write(&af, &first, 4);
        for (int kv = 0; kv < 2; kv++)
            for (int32_t p = (int32_t)first; !st && p < q->n_past; p++) {
                g8_kv_get_row(c, s, il, kv, p, row);
                st = g8_atomic_write(&af, row, KV * sizeof(float));
            }
    }
    free(row);
    if (st) {
        g8_atomic_abort(&af);
        return st;
    }
    return g8_atomic_commit(&af);
}

/* Reads the rows of every layer from p (after the token list); the sequence is
 * left empty (n_past 0) on failure. */
static gemma8_status load_rows(g8_kvcache *c, int s, uint32_t n_past, const uint8_t **pp, const uint8_t *end,
                               const char *path) {
    const size_t KV = (size_t)c->n_head_kv * c->head_dim;
    const uint8_t *p = *pp;
    float *row = g8_malloc(KV * sizeof(float), "a cache row");
    if (!row) return GEMMA8_ERR_NOMEM;
    gemma8_status st = GEMMA8_OK;
    for (int il = 0; !st && il < c->n_layer; il++) {
        const g8_kv_layer *L = &c->seq[s].layers[il];
        uint32_t first;
        if (end - p < 4) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': the prompt cache is truncated", path);
            break;
        }
        memcpy(&first, p, 4);
        p += 4;
        if (first > n_past || n_past - first > (uint32_t)L->slots) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': layer %d stores positions from %u, which this context cannot hold",
                         path, il, first);
            break;
        }
        const size_t rows = n_past - first;
        if ((size_t)(end - p) / (2 * KV * sizeof(float)) < rows) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': the prompt cache is truncated", path);
            break;
        }
        for (int kv = 0; kv < 2; kv++)
            for (uint32_t pos = first; pos < n_past; pos++) {
                memcpy(row, p, KV * sizeof(float));
                g8_kv_set_row(c, s, il, kv, (int32_t)pos, row);
                p += KV * sizeof(float);
            }
    }
    free(row);
    *pp = p;
    return st;
}

gemma8_status g8_kv_load(g8_kvcache *c, int s, uint64_t fingerprint, int32_t n_vocab, const char *path) {
    g8_map m;
    gemma8_status st = g8_map_file(path, &m);
    if (st) return st;
    const uint8_t *p = m.data;
    const uint8_t *end = m.data ? m.data + m.size : NULL; /* an empty file maps to NULL */
    uint32_t version = 0, head[4] = {0}, n_past = 0;
    uint64_t fp = 0;
    if (m.size < 32 || memcmp(m.data, KV_MAGIC, 4)) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a gemma8 prompt cache", path);
    } else {
        memcpy(&version, p + 4, 4);
        memcpy(&fp, p + 8, 8);
        memcpy(head, p + 16, 16);
        n_past = head[3];
        p += 32;
    }
    if (!st && version != KV_VERSION)
        st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': prompt cache version %u (this build reads %u)", path, version,
                     KV_VERSION);
    if (!st && (fp != fingerprint || head[0] != (uint32_t)c->n_layer || head[1] != (uint32_t)c->n_head_kv ||
                head[2] != (uint32_t)c->head_dim))
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' was saved with another model: it does not belong to the loaded one",
                     path);
    if (!st && n_past > (uint32_t)c->n_ctx)
        st = g8_fail(GEMMA8_ERR_CONTEXT_FULL, "'%s' holds %u tokens, more than this context's %d", path, n_past,
                     c->n_ctx);
    if (!st && (size_t)(end - p) < (size_t)n_past * 4)
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': the prompt cache is truncated", path);
    const uint8_t *tokens = p;
    for (uint32_t i = 0; !st && i < n_past; i++) {
        int32_t t;
        memcpy(&t, tokens + (size_t)i * 4, 4);
        if (t < 0 || t >= n_vocab)
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': token %d at %u is outside the vocabulary", path, t, i);
    }
    if (!st) {
        p += (size_t)n_past * 4;
        g8_kv_clear(c, s); /* the sequence is invalid until fully read */
        st = load_rows(c, s, n_past, &p, end, path);
    }
    if (!st && p != end)
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': %zu unexpected bytes at the end", path, (size_t)(end - p));
    if (!st) {
        memcpy(c->seq[s].tokens, tokens, (size_t)n_past * 4);
        c->seq[s].n_past = (int32_t)n_past;
        c->seq[s].pos_end = (int32_t)n_past;
    }
    /* the logits of the last token are not stored: generation re-evaluates it */
    g8_unmap(&m);
    return st;
}
