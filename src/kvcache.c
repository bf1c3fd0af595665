/* kvcache.c - the KV cache of a context: allocation, rows, truncation, and
 * prompt-cache files (layout in kvcache.h).
 *
 * Prompt-cache layout (little-endian), in a file or a buffer:
 *   char[4] "G8KV", u32 version (2), u64 model fingerprint, u32 type (the cache's: f32, f16, q8_0),
 *   u32 n_layer, n_head_kv, head_dim, n_past, i32 tokens[n_past],
 *   then per layer: u32 first (first position stored), the keys then the values
 *   of positions first..n_past-1, rows of n_head_kv heads in that type.
 * Version 1 (gemma8 0.6 and before) has no type field: its rows are f32.
 * Sliding-window layers store only the positions the next token can see. */
#include "kvcache.h"
#include "fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KV_MAGIC "G8KV"
#define KV_VERSION 2u

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

uint64_t g8_kv_bytes_unified(const g8_hparams *hp, uint32_t type, int n_seq, int n_ctx, int n_batch) {
    const uint64_t row = (uint64_t)hp->n_head_kv * g8_kv_head_bytes(type, hp->head_dim);
    uint64_t slots = 0;
    for (int il = 0; il < hp->n_layer; il++) {
        const uint64_t ring = (uint64_t)g8_kv_slots(hp, il, n_ctx, n_batch);
        slots += G8_MIN((uint64_t)n_ctx, ring * (uint64_t)n_seq);
    }
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    const uint64_t partial = 2 * (uint64_t)hp->n_layer * (uint64_t)hp->n_head_kv * page * (uint64_t)n_seq;
    return 2 * slots * row + partial;
}

static void *alloc_bytes(size_t a, size_t b) {
    size_t n;
    return g8_mul_ok(a, b, &n) ? g8_alloc_huge(n) : NULL;
}

/* A layer buffer of a unified pool: address space whose pages the system gives on first write. */
static void *reserve_bytes(size_t a, size_t b) {
    size_t n;
    if (!g8_mul_ok(a, b, &n)) return NULL;
    void *p =
        mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Gives the pages of positions [from, to) of every head of a unified pool's layer back to the system
 * (those wholly inside the range; they read as zeros if written again). */
static void release(const g8_kvcache *c, const g8_kv_layer *L, int32_t from, int32_t to) {
    if (from >= to) return;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t hb = g8_kv_head_bytes(c->type, c->head_dim);
    for (int kv = 0; kv < 2; kv++) {
        uint8_t *base = kv ? L->v : L->k;
        for (int g = 0; g < c->n_head_kv; g++) {
            const size_t head = (size_t)g * (size_t)L->slots * hb;
            const size_t a = (head + (size_t)from * hb + page - 1) / page * page;
            const size_t b = (head + (size_t)to * hb) / page * page;
            if (a < b) madvise(base + a, b - a, MADV_DONTNEED);
        }
    }
}

int32_t g8_kv_held(const g8_kvcache *c) {
    int64_t n = 0;
    for (int s = 0; s < c->n_seq; s++) n += c->seq[s].n_past;
    return (int32_t)G8_MIN(n, INT32_MAX);
}

gemma8_status g8_kv_init(g8_kvcache *c, const g8_hparams *hp, const g8_kernels *k, uint32_t type, int n_seq,
                         int n_ctx, int n_batch, bool unified) {
    memset(c, 0, sizeof *c);
    c->type = type;
    c->n_layer = hp->n_layer;
    c->n_head_kv = hp->n_head_kv;
    c->head_dim = hp->head_dim;
    c->window = hp->sliding_window;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->k = k;
    c->unified = unified;
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
            L->k = unified ? reserve_bytes((size_t)L->slots, row) : alloc_bytes((size_t)L->slots, row);
            L->v = unified ? reserve_bytes((size_t)L->slots, row) : alloc_bytes((size_t)L->slots, row);
            ok = L->k && L->v;
        }
    }
    if (ok) return GEMMA8_OK;
    g8_kv_free(c);
    const double G = 1073741824.0;
    if (unified)
        return g8_fail(
            GEMMA8_ERR_NOMEM,
            "cannot reserve the address space of a unified KV pool of %d positions for %d sequences "
            "(%.2f GiB each; the memory it holds is at most %.2f GiB)",
            n_ctx, n_seq, g8_kv_bytes(hp, type, 1, n_ctx, n_batch, true) / G,
            g8_kv_bytes_unified(hp, type, n_seq, n_ctx, n_batch) / G);
    return g8_fail(GEMMA8_ERR_NOMEM, "out of memory allocating a KV cache of %.2f GiB (%d sequences of %d positions)",
                   g8_kv_bytes(hp, type, n_seq, n_ctx, n_batch, true) / G, n_seq, n_ctx);
}

static void free_buffer(const g8_kvcache *c, void *p, int slots) {
    if (!c->unified) {
        free(p);
        return;
    }
    if (p) munmap(p, (size_t)slots * (size_t)c->n_head_kv * g8_kv_head_bytes(c->type, c->head_dim));
}

void g8_kv_free(g8_kvcache *c) {
    for (int s = 0; c->seq && s < c->n_seq; s++) {
        g8_kv_seq *q = &c->seq[s];
        for (int il = 0; q->layers && il < c->n_layer; il++) {
            free_buffer(c, q->layers[il].k, q->layers[il].slots);
            free_buffer(c, q->layers[il].v, q->layers[il].slots);
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

/* A unified pool's sequence s keeps its first n positions: the pages past them go back (a ring's
 * only when it is emptied: what it keeps is bounded). */
static void release_past(g8_kvcache *c, int s, int32_t n) {
    const g8_kv_seq *q = &c->seq[s];
    const int32_t end = G8_MAX(q->n_past, q->pos_end);
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t row = (size_t)c->n_head_kv * g8_kv_head_bytes(c->type, c->head_dim);
    for (int il = 0; c->unified && il < c->n_layer; il++) {
        const g8_kv_layer *L = &q->layers[il];
        if (n == 0) { /* emptied: the whole buffers, the pages heads share too */
            const size_t bytes = ((size_t)L->slots * row + page - 1) / page * page;
            madvise(L->k, bytes, MADV_DONTNEED);
            madvise(L->v, bytes, MADV_DONTNEED);
        } else if (L->slots >= c->n_ctx) {
            release(c, L, n, G8_MIN(end, L->slots));
        }
    }
}

void g8_kv_truncate(g8_kvcache *c, int s, int32_t n) {
    g8_kv_seq *q = &c->seq[s];
    if (n < 0) n = 0;
    if (n >= q->n_past) return;
    if (!g8_kv_can_truncate(c, s, n)) n = 0;
    release_past(c, s, n);
    q->n_past = n;
    if (q->n_past == 0) q->pos_end = 0;
}

void g8_kv_clear(g8_kvcache *c, int s) {
    release_past(c, s, 0);
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

/* Where a cache is written: a file, or a buffer of cap bytes (NULL: only counted). */
typedef struct kv_sink {
    g8_atomic_file *af;
    uint8_t *buf;
    size_t cap, n;
} kv_sink;

static gemma8_status sink_write(kv_sink *k, const void *p, size_t n) {
    if (k->af) return g8_atomic_write(k->af, p, n);
    if (k->buf && k->n + n <= k->cap) memcpy(k->buf + k->n, p, n);
    k->n += n;
    return GEMMA8_OK;
}

static gemma8_status kv_write(const g8_kvcache *c, int s, uint64_t fingerprint, kv_sink *k) {
    const g8_kv_seq *q = &c->seq[s];
    for (int32_t i = 0; i < q->n_past; i++)
        if (q->tokens[i] < 0)
            return g8_fail(GEMMA8_ERR_UNSUPPORTED, "a cache holding embedding inputs cannot be saved");
    const uint32_t head[6] = {
        KV_VERSION,         c->type, (uint32_t)c->n_layer, (uint32_t)c->n_head_kv, (uint32_t)c->head_dim,
        (uint32_t)q->n_past};
    const size_t hb = g8_kv_head_bytes(c->type, c->head_dim);
    gemma8_status st = sink_write(k, KV_MAGIC, 4);
    if (!st) st = sink_write(k, &head[0], 4);
    if (!st) st = sink_write(k, &fingerprint, 8);
    if (!st) st = sink_write(k, head + 1, 5 * sizeof *head);
    if (!st) st = sink_write(k, q->tokens, (size_t)q->n_past * sizeof(int32_t));
    for (int il = 0; !st && il < c->n_layer; il++) {
        const uint32_t first = (uint32_t)first_kept(c, s, il);
        st = sink_write(k, &first, 4);
        for (int kv = 0; kv < 2; kv++)
            for (int32_t p = (int32_t)first; !st && p < q->n_past; p++)
                for (int g = 0; !st && g < c->n_head_kv; g++)
                    st = sink_write(k, head_at(c, &q->layers[il], kv, g, p), hb);
    }
    return st;
}

gemma8_status g8_kv_save(const g8_kvcache *c, int s, uint64_t fingerprint, const char *path) {
    g8_atomic_file af;
    gemma8_status st = g8_atomic_open(path, &af);
    if (st) return st;
    kv_sink k = {.af = &af};
    st = kv_write(c, s, fingerprint, &k);
    if (st) {
        g8_atomic_abort(&af);
        return st;
    }
    return g8_atomic_commit(&af);
}

gemma8_status g8_kv_save_buffer(const g8_kvcache *c, int s, uint64_t fingerprint, void *buf, size_t cap,
                                size_t *size) {
    kv_sink k = {.buf = buf, .cap = cap};
    gemma8_status st = kv_write(c, s, fingerprint, &k);
    *size = k.n;
    if (!st && (!buf || k.n > cap))
        st = g8_fail(GEMMA8_ERR_BUFFER_TOO_SMALL, "the cache of sequence %d takes %zu bytes (%zu given)", s,
                     k.n, buf ? cap : 0);
    return st;
}

/* Reads the rows of every layer from p (after the token list), in the type they were saved in
 * (version 1: f32); the sequence is left empty (n_past 0) on failure. */
static gemma8_status load_rows(g8_kvcache *c, int s, uint32_t n_past, uint32_t type, const uint8_t **pp,
                               const uint8_t *end, const char *name) {
    const size_t KV = (size_t)c->n_head_kv * c->head_dim;
    const size_t hb = g8_kv_head_bytes(type, c->head_dim);
    const size_t rb = hb * (size_t)c->n_head_kv;
    const uint8_t *p = *pp;
    float *row = g8_malloc(KV * sizeof(float), "a cache row");
    if (!row) return GEMMA8_ERR_NOMEM;
    gemma8_status st = GEMMA8_OK;
    for (int il = 0; !st && il < c->n_layer; il++) {
        const g8_kv_layer *L = &c->seq[s].layers[il];
        uint32_t first;
        if (end - p < 4) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "%s: the prompt cache is truncated", name);
            break;
        }
        memcpy(&first, p, 4);
        p += 4;
        if (first > n_past || n_past - first > (uint32_t)L->slots) {
            st = g8_fail(GEMMA8_ERR_FORMAT,
                         "%s: layer %d stores positions from %u, which this context cannot hold", name, il,
                         first);
            break;
        }
        const size_t rows = n_past - first;
        if ((size_t)(end - p) / (2 * rb) < rows) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "%s: the prompt cache is truncated", name);
            break;
        }
        for (int kv = 0; kv < 2; kv++)
            for (uint32_t pos = first; pos < n_past; pos++, p += rb) {
                if (type == c->type) {
                    for (int g = 0; g < c->n_head_kv; g++)
                        memcpy(head_at(c, L, kv, g, (int32_t)pos), p + g * hb, hb);
                    c->seq[s].pos_end = G8_MAX(c->seq[s].pos_end, (int32_t)pos + 1);
                    continue;
                }
                for (int g = 0; g < c->n_head_kv; g++)
                    g8_to_f32(type, p + g * hb, row + (size_t)g * c->head_dim, c->head_dim);
                g8_kv_set_row(c, s, il, kv, (int32_t)pos, row);
            }
    }
    free(row);
    *pp = p;
    return st;
}

/* A saved cache in memory (a mapped file or a caller's buffer) into sequence s; name: in messages. */
static gemma8_status kv_parse(g8_kvcache *c, int s, uint64_t fingerprint, int32_t n_vocab,
                              const uint8_t *data, size_t size, const char *name) {
    const uint8_t *p = data;
    const uint8_t *end = data ? data + size : NULL;
    uint32_t version = 0, head[4] = {0}, n_past = 0, type = GEMMA8_TYPE_F32;
    uint64_t fp = 0;
    gemma8_status st = GEMMA8_OK;
    if (size < 32 || memcmp(data, KV_MAGIC, 4)) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "%s is not a gemma8 prompt cache", name);
    } else {
        memcpy(&version, p + 4, 4);
        memcpy(&fp, p + 8, 8);
        p += 16;
        if (version == 2 && size < 36)
            st = g8_fail(GEMMA8_ERR_FORMAT, "%s: the prompt cache is truncated", name);
        if (version == 2 && size >= 36) {
            memcpy(&type, p, 4);
            p += 4;
        }
        memcpy(head, p, 16);
        n_past = head[3];
        p += 16;
    }
    if (!st && version != 1 && version != KV_VERSION)
        st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "%s: prompt cache version %u (this build reads 1 and %u)", name,
                     version, KV_VERSION);
    if (!st && !g8_kv_type_known((int32_t)type))
        st = g8_fail(GEMMA8_ERR_FORMAT, "%s: unknown KV cache type %u", name, type);
    if (!st && type == GEMMA8_TYPE_Q8_0 && c->head_dim % QK8_0)
        st = g8_fail(GEMMA8_ERR_FORMAT, "%s: q8_0 rows for a head size of %d", name, c->head_dim);
    if (!st && (fp != fingerprint || head[0] != (uint32_t)c->n_layer || head[1] != (uint32_t)c->n_head_kv ||
                head[2] != (uint32_t)c->head_dim))
        st = g8_fail(GEMMA8_ERR_FORMAT,
                     "%s was saved with another model: it does not belong to the loaded one", name);
    if (!st && n_past > (uint32_t)c->n_ctx)
        st = g8_fail(GEMMA8_ERR_CONTEXT_FULL, "%s holds %u tokens, more than this context's %d", name, n_past,
                     c->n_ctx);
    const int32_t others = g8_kv_held(c) - c->seq[s].n_past;
    if (!st && c->unified && (int64_t)others + n_past > c->n_ctx)
        st = g8_fail(
            GEMMA8_ERR_CONTEXT_FULL,
            "%s holds %u tokens; the KV pool of %d positions has %d free (the other sequences hold %d)", name,
            n_past, c->n_ctx, c->n_ctx - others, others);
    if (!st && (size_t)(end - p) < (size_t)n_past * 4)
        st = g8_fail(GEMMA8_ERR_FORMAT, "%s: the prompt cache is truncated", name);
    const uint8_t *tokens = p;
    for (uint32_t i = 0; !st && i < n_past; i++) {
        int32_t t;
        memcpy(&t, tokens + (size_t)i * 4, 4);
        if (t < 0 || t >= n_vocab)
            st = g8_fail(GEMMA8_ERR_FORMAT, "%s: token %d at %u is outside the vocabulary", name, t, i);
    }
    if (!st) {
        p += (size_t)n_past * 4;
        g8_kv_clear(c, s); /* the sequence is invalid until fully read */
        st = load_rows(c, s, n_past, type, &p, end, name);
    }
    if (!st && p != end)
        st = g8_fail(GEMMA8_ERR_FORMAT, "%s: %zu unexpected bytes at the end", name, (size_t)(end - p));
    if (!st) {
        memcpy(c->seq[s].tokens, tokens, (size_t)n_past * 4);
        c->seq[s].n_past = (int32_t)n_past;
        c->seq[s].pos_end = (int32_t)n_past;
    } else if (c->seq[s].n_past == 0) {
        g8_kv_clear(c, s); /* rows read before the failure: their memory goes back */
    }
    /* the logits of the last token are not stored: generation re-evaluates it */
    return st;
}

gemma8_status g8_kv_load(g8_kvcache *c, int s, uint64_t fingerprint, int32_t n_vocab, const char *path) {
    g8_map m;
    gemma8_status st = g8_map_file(path, &m);
    if (st) return st;
    char name[512];
    snprintf(name, sizeof name, "'%s'", path);
    st = kv_parse(c, s, fingerprint, n_vocab, m.data, m.size, name); /* an empty file maps to NULL */
    g8_unmap(&m);
    return st;
}

gemma8_status g8_kv_load_buffer(g8_kvcache *c, int s, uint64_t fingerprint, int32_t n_vocab, const void *buf,
                                size_t size) {
    return kv_parse(c, s, fingerprint, n_vocab, buf, size, "the buffer");
}
