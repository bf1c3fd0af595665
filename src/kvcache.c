/* kvcache.c - saving and loading the KV cache of a context (a prompt cache).
 *
 * File layout (little-endian):
 *   char[4] "G8KV", u32 version (1), u64 model fingerprint,
 *   u32 n_layer, n_head_kv, head_dim, n_past, i32 tokens[n_past],
 *   then per layer: u32 first (first position stored), the keys then the values
 *   of positions first..n_past-1 as f32 rows of n_head_kv * head_dim.
 * Sliding-window layers store only the positions the next token can see. */
#include "context.h"
#include "fileio.h"

#include <stdlib.h>
#include <string.h>

#define KV_MAGIC "G8KV"
#define KV_VERSION 1u

static uint64_t fnv64(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Identifies a model: its metadata and tensor table, and a sample of each tensor. */
static uint64_t fingerprint(const gemma8_model *m) {
    uint64_t h = fnv64(0xcbf29ce484222325ull, m->file.map.data, (size_t)m->file.data_offset);
    for (uint64_t i = 0; i < m->file.n_tensors; i++) {
        const gguf_tensor *t = &m->file.tensors[i];
        h = fnv64(h, t->data, (size_t)G8_MIN(t->nbytes, (uint64_t)256));
    }
    return h;
}

static int32_t first_kept(const gemma8_context *ctx, int il) {
    const g8_kv_layer *L = &ctx->kv[il];
    if (L->slots >= ctx->n_ctx) return 0;
    return G8_MAX(0, ctx->n_past - ctx->model->hp.sliding_window);
}

gemma8_status gemma8_cache_save(const gemma8_context *ctx, const char *path) {
    if (!ctx || !path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to cache_save");
    for (int32_t i = 0; i < ctx->n_past; i++)
        if (ctx->history[i] < 0)
            return g8_fail(GEMMA8_ERR_UNSUPPORTED, "a cache holding embedding inputs cannot be saved");
    const g8_hparams *hp = &ctx->model->hp;
    const size_t KV = (size_t)hp->n_head_kv * hp->head_dim;
    float *row = g8_malloc(KV * sizeof(float), "a cache row");
    if (!row) return GEMMA8_ERR_NOMEM;
    g8_atomic_file af;
    gemma8_status st = g8_atomic_open(path, &af);
    if (st) {
        free(row);
        return st;
    }
    uint32_t head[4] = {(uint32_t)hp->n_layer, (uint32_t)hp->n_head_kv, (uint32_t)hp->head_dim, (uint32_t)ctx->n_past};
    uint32_t version = KV_VERSION;
    uint64_t fp = fingerprint(ctx->model);
    if ((st = g8_atomic_write(&af, KV_MAGIC, 4)) || (st = g8_atomic_write(&af, &version, 4)) ||
        (st = g8_atomic_write(&af, &fp, 8)) || (st = g8_atomic_write(&af, head, sizeof head)) ||
        (st = g8_atomic_write(&af, ctx->history, (size_t)ctx->n_past * sizeof(int32_t))))
        goto fail;
    for (int il = 0; il < hp->n_layer; il++) {
        uint32_t first = (uint32_t)first_kept(ctx, il);
        if ((st = g8_atomic_write(&af, &first, 4))) goto fail;
        for (int kv = 0; kv < 2; kv++)
            for (int32_t p = (int32_t)first; p < ctx->n_past; p++) {
                g8_kv_get_row(ctx, il, kv, p, row);
                if ((st = g8_atomic_write(&af, row, KV * sizeof(float)))) goto fail;
            }
    }
    free(row);
    return g8_atomic_commit(&af);
fail:
    free(row);
    g8_atomic_abort(&af);
    return st;
}

gemma8_status gemma8_cache_load(gemma8_context *ctx, const char *path) {
    if (!ctx || !path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to cache_load");
    const g8_hparams *hp = &ctx->model->hp;
    const size_t KV = (size_t)hp->n_head_kv * hp->head_dim;
    g8_map m;
    gemma8_status st = g8_map_file(path, &m);
    if (st) return st;
    if (m.size < 32 || memcmp(m.data, KV_MAGIC, 4)) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a gemma8 prompt cache", path);
        goto done;
    }
    const uint8_t *p = m.data, *end = m.data + m.size;
    uint32_t version, head[4];
    uint64_t fp;
    memcpy(&version, p + 4, 4);
    memcpy(&fp, p + 8, 8);
    memcpy(head, p + 16, 16);
    p += 32;
    if (version != KV_VERSION) {
        st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': prompt cache version %u (this build reads %u)", path, version, KV_VERSION);
        goto done;
    }
    if (fp != fingerprint(ctx->model) || head[0] != (uint32_t)hp->n_layer || head[1] != (uint32_t)hp->n_head_kv ||
        head[2] != (uint32_t)hp->head_dim) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' was saved with another model: it does not belong to the loaded one", path);
        goto done;
    }
    const uint32_t n_past = head[3];
    if (n_past > (uint32_t)ctx->n_ctx) {
        st = g8_fail(GEMMA8_ERR_CONTEXT_FULL, "'%s' holds %u tokens, more than this context's %d", path, n_past,
                     ctx->n_ctx);
        goto done;
    }
    if ((size_t)(end - p) < (size_t)n_past * 4) goto truncated;
    int32_t *hist = g8_malloc((size_t)n_past * 4 + 4, "prompt cache");
    if (!hist) {
        st = GEMMA8_ERR_NOMEM;
        goto done;
    }
    memcpy(hist, p, (size_t)n_past * 4);
    p += (size_t)n_past * 4;
    for (uint32_t i = 0; i < n_past; i++)
        if (hist[i] < 0 || hist[i] >= hp->n_vocab) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': token %d at %u is outside the vocabulary", path, hist[i], i);
            free(hist);
            goto done;
        }
    ctx->n_past = 0; /* the cache is invalid until fully read */
    for (int il = 0; il < hp->n_layer; il++) {
        g8_kv_layer *L = &ctx->kv[il];
        uint32_t first;
        if (end - p < 4) {
            free(hist);
            goto truncated;
        }
        memcpy(&first, p, 4);
        p += 4;
        if (first > n_past || n_past - first > (uint32_t)L->slots) {
            free(hist);
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': layer %d stores positions from %u, which this context cannot hold",
                         path, il, first);
            goto done;
        }
        size_t rows = n_past - first;
        if ((size_t)(end - p) / (2 * KV * sizeof(float)) < rows) {
            free(hist);
            goto truncated;
        }
        float *row = g8_malloc(KV * sizeof(float), "a cache row");
        if (!row) {
            free(hist);
            st = GEMMA8_ERR_NOMEM;
            goto done;
        }
        for (int kv = 0; kv < 2; kv++)
            for (uint32_t q = first; q < n_past; q++) {
                memcpy(row, p, KV * sizeof(float));
                g8_kv_set_row(ctx, il, kv, (int32_t)q, row);
                p += KV * sizeof(float);
            }
        free(row);
    }
    if (p != end) {
        free(hist);
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': %zu unexpected bytes at the end", path, (size_t)(end - p));
        goto done;
    }
    memcpy(ctx->history, hist, (size_t)n_past * 4);
    free(hist);
    ctx->n_past = (int32_t)n_past;
    /* the logits of the last token are not stored: generation re-evaluates it */
    goto done;
truncated:
    st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': the prompt cache is truncated", path);
done:
    g8_unmap(&m);
    return st;
}
