/* ramcache.c - the prompt cache in RAM (llama-server's --cache-ram): the caches of slots whose
 * tokens would otherwise be lost (a slot taken by another conversation, a unified KV pool's room
 * given to the busy slots) kept as prompt-cache bytes, and put back into the slot of a later
 * request that shares more of its prompt with one of them than with the slot. A limit in bytes;
 * the least recently used go first. Only the scheduler thread uses it. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ram_entry {
    int32_t *tokens;
    int32_t n;
    void *bytes; /* gemma8_cache_save_buffer's */
    size_t size;
    uint64_t last_used;
} ram_entry;

struct srv_ram_cache {
    size_t limit; /* bytes */
    size_t used;
    ram_entry *e;
    int n, cap;
    uint64_t tick;
};

srv_ram_cache *srv_ram_new(size_t limit) {
    srv_ram_cache *r = calloc(1, sizeof *r);
    if (r) r->limit = limit;
    return r;
}

static void drop(srv_ram_cache *r, int k) {
    r->used -= r->e[k].size;
    free(r->e[k].tokens);
    free(r->e[k].bytes);
    r->e[k] = r->e[--r->n];
}

void srv_ram_clear(srv_ram_cache *r) {
    while (r && r->n) drop(r, 0);
}

void srv_ram_free(srv_ram_cache *r) {
    if (!r) return;
    srv_ram_clear(r);
    free(r->e);
    free(r);
}

static int32_t common(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

bool srv_ram_save(srv_ram_cache *r, gemma8_context *ctx, int seq) {
    int32_t n;
    const int32_t *h = gemma8_seq_history(ctx, seq, &n);
    if (!r || n == 0) return false;
    for (int k = 0; k < r->n; k++) { /* an entry holding all of it already: it stays */
        if (r->e[k].n >= n && common(r->e[k].tokens, r->e[k].n, h, n) == n) {
            r->e[k].last_used = ++r->tick;
            return true;
        }
    }
    size_t size = 0;
    gemma8_status st = gemma8_cache_save_buffer(ctx, seq, NULL, 0, &size);
    if (st != GEMMA8_ERR_BUFFER_TOO_SMALL || size > r->limit) return false;
    ram_entry e = {.n = n, .size = size, .last_used = ++r->tick};
    e.tokens = malloc((size_t)n * sizeof *e.tokens);
    e.bytes = malloc(size);
    if (r->n == r->cap) {
        const int cap = r->cap ? 2 * r->cap : 8;
        ram_entry *ne = realloc(r->e, (size_t)cap * sizeof *ne);
        if (ne) {
            r->e = ne;
            r->cap = cap;
        }
    }
    if (!e.tokens || !e.bytes || r->n == r->cap || gemma8_cache_save_buffer(ctx, seq, e.bytes, size, &size)) {
        free(e.tokens);
        free(e.bytes);
        return false;
    }
    memcpy(e.tokens, h, (size_t)n * sizeof *e.tokens);
    for (int k = r->n - 1; k >= 0; k--) /* entries it holds the whole of */
        if (r->e[k].n <= n && common(r->e[k].tokens, r->e[k].n, h, n) == r->e[k].n) drop(r, k);
    while (r->n && r->used + size > r->limit) {
        int lru = 0;
        for (int k = 1; k < r->n; k++)
            if (r->e[k].last_used < r->e[lru].last_used) lru = k;
        drop(r, lru);
    }
    r->e[r->n++] = e;
    r->used += size;
    fprintf(
        stderr,
        "gemma8 serve: slot %d: %d tokens saved to the RAM prompt cache (%.1f MiB; %d entries, %.1f MiB)\n",
        seq, n, size / 1048576.0, r->n, r->used / 1048576.0);
    return true;
}

int32_t srv_ram_restore(srv_ram_cache *r, gemma8_context *ctx, int seq, const int32_t *prompt, int32_t n,
                        int32_t than) {
    if (!r) return 0;
    int best = -1;
    int32_t best_k = than;
    for (int k = 0; k < r->n; k++) {
        const int32_t c = common(r->e[k].tokens, r->e[k].n, prompt, n);
        if (c > best_k) {
            best = k;
            best_k = c;
        }
    }
    if (best < 0) return 0;
    ram_entry *e = &r->e[best];
    if (gemma8_cache_load_buffer(ctx, seq, e->bytes, e->size)) {
        fprintf(stderr, "gemma8 serve: slot %d: the RAM prompt cache's entry does not load: %s\n", seq,
                gemma8_last_error());
        return 0;
    }
    e->last_used = ++r->tick;
    fprintf(stderr, "gemma8 serve: slot %d: %d tokens of the prompt restored from the RAM prompt cache\n",
            seq, best_k);
    return best_k;
}
