/* tokmask.c - the vocabulary's trie and the grammar matcher over it. */
#include "tokmask.h"

#include "model.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- the vocabulary's trie ------------------------------------------------- */

/* For one character class: per trie node, the most characters the rest of any
 * token below takes, if all of them are whole characters of the class; 255 if
 * some token below leaves the class (or splits a character). */
typedef struct g8_vsummary {
    uint64_t hash;
    uint32_t *r, n;
    uint8_t *val;
} g8_vsummary;

#define IMPURE 255

static pthread_mutex_t vindex_lock = PTHREAD_MUTEX_INITIALIZER;

void g8_vindex_free(g8_vindex *vx) {
    if (!vx) return;
    for (int i = 0; i < vx->n_sum; i++) {
        free(vx->sum[i].r);
        free(vx->sum[i].val);
    }
    free(vx->sum);
    free(vx->byte);
    free(vx->skip);
    free(vx->tok);
    free(vx->own);
    free(vx->order);
    free(vx->text_off);
    free(vx->text);
    free(vx);
}

/* Tokens a reply may contain: text, bytes and user-defined pieces such as
 * newline runs; never control, unknown or unused ones. */
static bool token_allowed(const g8_vocab *v, int32_t id) {
    int32_t t = v->type[id];
    return t == G8_TOKEN_NORMAL || t == G8_TOKEN_BYTE || (t == G8_TOKEN_USER_DEFINED && !v->special[id]);
}

static const g8_vindex *sort_ctx;

static int by_text(const void *a, const void *b) {
    const g8_vindex *vx = sort_ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = vx->text_off[x + 1] - vx->text_off[x], ly = vx->text_off[y + 1] - vx->text_off[y];
    int c = memcmp(vx->text + vx->text_off[x], vx->text + vx->text_off[y], lx < ly ? lx : ly);
    if (c) return c;
    if (lx != ly) return lx < ly ? -1 : 1;
    return (x > y) - (x < y);
}

static bool grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * size);
    if (!np) return false;
    *p = np;
    *cap = c;
    return true;
}

/* Texts of every token (empty for those never allowed). */
static bool collect_texts(g8_vindex *vx, const g8_vocab *v) {
    size_t cap = 0, n = 0;
    vx->text_off = malloc(((size_t)v->n + 1) * sizeof *vx->text_off);
    if (!vx->text_off) return false;
    for (int32_t id = 0; id < v->n; id++) {
        vx->text_off[id] = (uint32_t)n;
        if (!token_allowed(v, id)) continue;
        char tmp[G8_MAX_TOKEN_TEXT];
        int raw;
        size_t len = g8_token_text(v, id, false, tmp, sizeof tmp, &raw);
        if (raw >= 0) tmp[0] = (char)raw, len = 1;
        if (len > sizeof tmp) continue; /* no such token in a real vocabulary; never allowed */
        if (!grow((void **)&vx->text, &cap, n + len, 1)) return false;
        memcpy(vx->text + n, tmp, len);
        n += len;
        if (len > vx->max_len) vx->max_len = (uint32_t)len;
    }
    vx->text_off[v->n] = (uint32_t)n;
    return true;
}

static g8_vindex *build(const gemma8_model *m) {
    const g8_vocab *v = &m->vocab;
    g8_vindex *vx = g8_calloc(1, sizeof *vx, "the vocabulary's index");
    if (!vx) return NULL;
    vx->n_vocab = v->n;
    bool ok = collect_texts(vx, v);
    /* at most one node per byte of text, and the root */
    size_t most = ok ? (size_t)vx->text_off[v->n] + 1 : 0;
    ok = ok && (vx->order = malloc(((size_t)v->n + 1) * sizeof *vx->order)) && (vx->byte = malloc(most)) &&
         (vx->skip = malloc(most * 4)) && (vx->tok = malloc((most + 1) * 4)) && (vx->own = malloc(most * 2));
    uint32_t n_ids = 0;
    for (int32_t id = 0; ok && id < v->n; id++)
        if (vx->text_off[id + 1] > vx->text_off[id]) vx->order[n_ids++] = id;
    if (ok) {
        sort_ctx = vx;
        qsort(vx->order, n_ids, sizeof *vx->order, by_text);
        /* preorder from the sorted texts, with a path of open nodes */
        uint32_t path[G8_MAX_TOKEN_TEXT + 2], depth = 0, prev_len = 0;
        const uint8_t *prev = NULL;
        vx->byte[0] = 0;
        vx->tok[0] = 0;
        vx->own[0] = 0;
        vx->n_nodes = 1;
        path[0] = 0;
        for (uint32_t k = 0; k < n_ids; k++) {
            int32_t id = vx->order[k];
            const uint8_t *t = vx->text + vx->text_off[id];
            uint32_t len = vx->text_off[id + 1] - vx->text_off[id], lcp = 0;
            while (prev && lcp < len && lcp < prev_len && t[lcp] == prev[lcp]) lcp++;
            while (depth > lcp) vx->skip[path[depth--]] = vx->n_nodes;
            for (; depth < len; depth++) {
                uint32_t node = vx->n_nodes++;
                vx->byte[node] = t[depth];
                vx->tok[node] = k;
                vx->own[node] = 0;
                path[depth + 1] = node;
            }
            vx->own[path[depth]]++;
            prev = t;
            prev_len = len;
        }
        while (depth > 0) vx->skip[path[depth--]] = vx->n_nodes;
        vx->skip[0] = vx->n_nodes;
        vx->tok[vx->n_nodes] = n_ids;
        vx->n_tokens = n_ids;
    }
    int32_t eog[2] = {v->eos, v->end_of_turn};
    for (int i = 0; i < 2; i++)
        if (eog[i] >= 0 && eog[i] < v->n && (i == 0 || eog[1] != eog[0])) vx->eog[vx->n_eog++] = eog[i];
    if (!ok) {
        g8_vindex_free(vx);
        g8_fail(GEMMA8_ERR_NOMEM, "out of memory indexing the vocabulary");
        return NULL;
    }
    return vx;
}

const g8_vindex *g8_vindex_get(const gemma8_model *m) {
    if (!m->has_vocab) {
        g8_fail(GEMMA8_ERR_INVALID_ARG, "the model has no vocabulary: a grammar needs one");
        return NULL;
    }
    pthread_mutex_lock(&vindex_lock);
    gemma8_model *mm = (gemma8_model *)m; /* built once, read-only after */
    if (!mm->vindex) mm->vindex = build(m);
    const g8_vindex *vx = mm->vindex;
    pthread_mutex_unlock(&vindex_lock);
    return vx;
}

/* What a token's text, from byte `from` on, is for a class: the number of its
 * characters if whole and all in the class, else IMPURE. */
static void summarize_token(const g8_gclass *c, const uint8_t *t, uint32_t len, uint8_t *val_at) {
    /* decode; an invalid text is IMPURE everywhere */
    uint32_t starts[G8_MAX_TOKEN_TEXT];
    bool in[G8_MAX_TOKEN_TEXT];
    uint32_t n = 0, i = 0;
    for (uint32_t k = 0; k <= len; k++) val_at[k] = IMPURE;
    while (i < len) {
        uint8_t b = t[i];
        uint32_t cl = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0, cp;
        if (!cl || i + cl > len) return;
        cp = cl == 1 ? b : b & (0x7F >> cl);
        for (uint32_t j = 1; j < cl; j++) {
            if ((t[i + j] & 0xC0) != 0x80) return;
            cp = cp << 6 | (t[i + j] & 0x3F);
        }
        starts[n] = i;
        in[n] = g8_gclass_has(c, cp);
        n++;
        i += cl;
    }
    val_at[len] = 0;
    uint32_t count = 0;
    for (uint32_t k = n; k-- > 0;) {
        if (!in[k] || ++count > 254) break;
        val_at[starts[k]] = (uint8_t)count;
    }
}

/* The summary of class c, computed once per vocabulary. */
static const uint8_t *class_summary(const g8_vindex *cvx, const g8_gclass *c) {
    g8_vindex *vx = (g8_vindex *)cvx;
    pthread_mutex_lock(&vindex_lock);
    for (int i = 0; i < vx->n_sum; i++)
        if (vx->sum[i].hash == c->hash && vx->sum[i].n == c->n && !memcmp(vx->sum[i].r, c->r, 8 * (size_t)c->n)) {
            pthread_mutex_unlock(&vindex_lock);
            return vx->sum[i].val;
        }
    uint8_t *val = calloc(vx->n_nodes, 1), *val_at = malloc(vx->max_len + 1);
    uint32_t *r = malloc(8 * (size_t)c->n + 8), *path = malloc((vx->max_len + 2) * sizeof *path);
    size_t cap = (size_t)vx->cap_sum;
    if (!val || !val_at || !r || !path || !grow((void **)&vx->sum, &cap, (size_t)vx->n_sum + 1, sizeof *vx->sum)) {
        free(val), free(val_at), free(r), free(path);
        pthread_mutex_unlock(&vindex_lock);
        g8_fail(GEMMA8_ERR_NOMEM, "out of memory summarizing the vocabulary");
        return NULL;
    }
    vx->cap_sum = (int)cap;
    uint32_t depth = 0;
    path[0] = 0;
    for (uint32_t node = 1; node < vx->n_nodes; node++) {
        while (vx->skip[path[depth]] <= node) depth--;
        path[++depth] = node;
        for (uint32_t k = 0; k < vx->own[node]; k++) {
            int32_t id = vx->order[vx->tok[node] + k];
            const uint8_t *t = vx->text + vx->text_off[id];
            summarize_token(c, t, depth, val_at);
            for (uint32_t d = 0; d <= depth; d++)
                if (val_at[d] > val[path[d]]) val[path[d]] = val_at[d];
        }
    }
    free(val_at);
    free(path);
    memcpy(r, c->r, 8 * (size_t)c->n);
    vx->sum[vx->n_sum++] = (g8_vsummary){c->hash, r, c->n, val};
    pthread_mutex_unlock(&vindex_lock);
    return val;
}

/* ---- the matcher ----------------------------------------------------------- */

#define MEMO 16

typedef struct memo_entry {
    uint32_t *key;        /* the state, serialized */
    size_t key_n;
    uint8_t *mask;
    uint64_t used;
    uint32_t budget;      /* what it was found with */
    bool clean;           /* the budget left nothing out: good for any larger budget too */
} memo_entry;

struct gemma8_matcher {
    const gemma8_grammar *g;
    const g8_vindex *vx;
    const uint8_t **sum;  /* (n_cls) for classes that repeat, else NULL */
    g8_garena a;
    g8_gstate st;
    g8_gstate *walk;      /* (max_len + 1) states along a walk */
    uint8_t *mask;        /* the walk's output (the caller's) */
    bool ended;           /* the end token was accepted */
    uint32_t budget;      /* tokens left, counting the next; UINT32_MAX: no limit */
    bool cut;             /* the walk left something out for the budget */
    memo_entry memo[MEMO];
    uint64_t clock;
    uint32_t *key;
    size_t key_cap;
};

void gemma8_matcher_free(gemma8_matcher *m) {
    if (!m) return;
    g8_garena_free(&m->a);
    for (int i = 0; i < MEMO; i++) {
        free(m->memo[i].key);
        free(m->memo[i].mask);
    }
    free(m->key);
    free(m->sum);
    free(m->walk);
    free(m);
}

gemma8_status gemma8_matcher_set_budget(gemma8_matcher *m, int32_t tokens) {
    if (!m || tokens < 0) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid budget for a grammar");
    m->budget = tokens ? (uint32_t)tokens : UINT32_MAX;
    return GEMMA8_OK;
}

void gemma8_matcher_reset(gemma8_matcher *m) {
    m->a.n = 0;
    m->a.nt = 0;
    m->ended = false;
    g8_gstate_start(m->g, &m->a, &m->st);
}

/* What went wrong following the grammar, if anything (the arena's flags, cleared). */
static gemma8_status arena_error(gemma8_matcher *m) {
    gemma8_status st = GEMMA8_OK;
    if (m->a.oom)
        st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory following a grammar");
    else if (m->a.too_many)
        st = g8_fail(GEMMA8_ERR_INVALID_ARG,
                     "the grammar is too ambiguous: more than %d parses are alive at once "
                     "(rewrite it so that fewer ways of matching the same text are open together)",
                     G8_G_MAX_STACKS);
    m->a.oom = m->a.too_many = false;
    return st;
}

gemma8_status gemma8_matcher_new(const gemma8_model *model, const gemma8_grammar *g, gemma8_matcher **out) {
    if (!out) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no place for the matcher");
    *out = NULL;
    if (!model || !g) return g8_fail(GEMMA8_ERR_INVALID_ARG, "a matcher needs a model and a grammar");
    const g8_vindex *vx = g8_vindex_get(model);
    if (!vx) return GEMMA8_ERR_NOMEM;
    gemma8_matcher *m = g8_calloc(1, sizeof *m, "a grammar matcher");
    if (!m) return GEMMA8_ERR_NOMEM;
    m->g = g;
    m->vx = vx;
    m->budget = UINT32_MAX;
    m->sum = calloc(g->n_cls ? g->n_cls : 1, sizeof *m->sum);
    m->walk = malloc((vx->max_len + 2) * sizeof *m->walk);
    if (!m->sum || !m->walk) {
        gemma8_matcher_free(m);
        return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for a grammar matcher");
    }
    /* summaries for the classes that repeat: counted ones, and those alone in
       an alternative of a repeated rule */
    bool *want = calloc(g->n_cls ? g->n_cls : 1, 1);
    for (size_t i = 0; want && i < g->n_e; i++) {
        const g8_gelem *e = &g->e[i];
        if (e->type == G8_G_CLASS && e->max > 1) want[e->v] = true;
        if (e->type != G8_G_RULE || e->max <= 1) continue;
        for (uint32_t k = g->rule[e->v]; g->e[k].type != G8_G_END; k++)
            if (g->e[k].type == G8_G_CLASS && g->e[k].solo) want[g->e[k].v] = true;
    }
    gemma8_status st = want ? GEMMA8_OK : g8_fail(GEMMA8_ERR_NOMEM, "out of memory for a grammar matcher");
    for (uint32_t c = 0; !st && c < g->n_cls; c++)
        if (want[c] && !(m->sum[c] = class_summary(vx, &g->cls[c]))) st = GEMMA8_ERR_NOMEM;
    free(want);
    if (!st && !g8_gstate_start(g, &m->a, &m->st)) st = arena_error(m);
    if (st) {
        gemma8_matcher_free(m);
        return st;
    }
    *out = m;
    return GEMMA8_OK;
}

static inline void set_bit(uint8_t *mask, int32_t id) { mask[id >> 3] |= (uint8_t)(1u << (id & 7)); }

/* Can the grammar still complete in the tokens left after this one? */
static bool in_budget(gemma8_matcher *m, uint32_t distance) {
    if (m->budget == UINT32_MAX || distance + 1 <= m->budget) return true;
    m->cut = true;
    return false;
}

/* May every token below node be taken by one stack of s staying inside a repeated class? */
static bool whole_subtree(gemma8_matcher *m, const g8_gstate *s, uint32_t node) {
    if (s->need) return false;
    const gemma8_grammar *g = m->g;
    for (int i = 0; i < s->n; i++) {
        const g8_gframe *f = &m->a.f[g8_gstate_top(&m->a, s, i)];
        const g8_gelem *e = &g->e[f->pos];
        const uint8_t *sum = m->sum[e->v];
        if (!sum || sum[node] == IMPURE) continue;
        bool fits = e->max > 1 && (e->max == G8_G_INF || sum[node] <= e->max - f->count);
        if (!fits && e->solo && e->max == 1 && !f->count && f->parent >= 0) {
            const g8_gframe *p = &m->a.f[f->parent];
            const g8_gelem *loop = &g->e[p->pos];
            fits = loop->max > 1 && (loop->max == G8_G_INF || sum[node] <= loop->max - p->count);
        }
        /* staying in the class brings the end no further away: the stack's distance now bounds it */
        if (fits && (m->budget == UINT32_MAX ||
                     in_budget(m, g8_gstack_distance(g, &m->a, g8_gstate_top(&m->a, s, i)))))
            return true;
    }
    return false;
}

static void mark_range(const g8_vindex *vx, uint8_t *mask, uint32_t from, uint32_t to) {
    for (uint32_t k = from; k < to; k++) set_bit(mask, vx->order[k]);
}

/* s: the state after node's bytes (live) */
static void walk(gemma8_matcher *m, uint32_t node, uint32_t depth, const g8_gstate *s) {
    const g8_vindex *vx = m->vx;
    if (whole_subtree(m, s, node)) {
        mark_range(vx, m->mask, vx->tok[node], vx->tok[vx->skip[node]]);
        return;
    }
    if (depth && vx->own[node] && (m->budget == UINT32_MAX || in_budget(m, g8_gstate_distance(m->g, &m->a, s))))
        mark_range(vx, m->mask, vx->tok[node], vx->tok[node] + vx->own[node]);
    g8_gstate *next = &m->walk[depth + 1];
    for (uint32_t c = node + 1; c < vx->skip[node]; c = vx->skip[c]) {
        g8_gmark mark = g8_garena_mark(&m->a);
        if (g8_gstate_byte(m->g, &m->a, s, vx->byte[c], next)) walk(m, c, depth + 1, next);
        g8_garena_reset(&m->a, mark);
    }
}

/* The state as words, for the memo: equal states, equal keys. */
static bool serialize(gemma8_matcher *m, size_t *n) {
    const g8_gstate *s = &m->st;
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++) {
        k = 0;
        uint32_t head[4] = {(uint32_t)s->n, s->accept, (uint32_t)s->need << 8 | s->len, s->cp};
        if (pass) memcpy(m->key, head, sizeof head);
        k = 4;
        for (int i = 0; i < s->n; i++) {
            for (int32_t f = g8_gstate_top(&m->a, s, i); f >= 0; f = m->a.f[f].parent) {
                if (pass) m->key[k] = m->a.f[f].pos, m->key[k + 1] = m->a.f[f].count;
                k += 2;
            }
            if (pass) m->key[k] = UINT32_MAX;
            k++;
        }
        if (!pass && !grow((void **)&m->key, &m->key_cap, k, sizeof *m->key)) return false;
    }
    *n = k;
    return true;
}

gemma8_status gemma8_matcher_mask(gemma8_matcher *m, uint8_t *mask) {
    if (!m || !mask) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_matcher_mask");
    size_t bytes = ((size_t)m->vx->n_vocab + 7) / 8, kn = 0;
    memset(mask, 0, bytes);
    if (m->ended) return GEMMA8_OK;
    bool keyed = serialize(m, &kn);
    /* the budget binds only when the end is near: otherwise the same state gives the same mask */
    if (m->budget != UINT32_MAX && g8_gstate_distance(m->g, &m->a, &m->st) > m->budget)
        m->budget = UINT32_MAX; /* too late: it cannot fit for sure; let the reply run out instead */
    for (int i = 0; keyed && i < MEMO; i++)
        if (m->memo[i].mask && m->memo[i].key_n == kn && !memcmp(m->memo[i].key, m->key, kn * sizeof *m->key) &&
            (m->memo[i].clean ? m->budget >= m->memo[i].budget : m->budget == m->memo[i].budget)) {
            memcpy(mask, m->memo[i].mask, bytes);
            m->memo[i].used = ++m->clock;
            return GEMMA8_OK;
        }
    m->mask = mask;
    m->cut = false;
    g8_gmark mark = g8_garena_mark(&m->a);
    m->walk[0] = m->st;
    walk(m, 0, 0, &m->walk[0]);
    g8_garena_reset(&m->a, mark);
    gemma8_status st = arena_error(m);
    if (st) return st;
    if (m->st.accept && !m->st.need)
        for (int i = 0; i < m->vx->n_eog; i++) set_bit(mask, m->vx->eog[i]);
    if (!keyed) return GEMMA8_OK;
    memo_entry *slot = &m->memo[0];
    for (int i = 1; i < MEMO; i++)
        if (m->memo[i].used < slot->used) slot = &m->memo[i];
    uint32_t *key = malloc(kn * sizeof *key);
    uint8_t *copy = slot->mask ? slot->mask : malloc(bytes);
    if (!key || !copy) {
        free(key);
        if (copy != slot->mask) free(copy);
        return GEMMA8_OK; /* not remembered: still right */
    }
    memcpy(key, m->key, kn * sizeof *key);
    memcpy(copy, mask, bytes);
    free(slot->key);
    *slot = (memo_entry){key, kn, copy, ++m->clock, m->budget, !m->cut};
    return GEMMA8_OK;
}

static bool is_eog(const g8_vindex *vx, int32_t token) {
    for (int i = 0; i < vx->n_eog; i++)
        if (vx->eog[i] == token) return true;
    return false;
}

gemma8_status gemma8_matcher_accept(gemma8_matcher *m, int32_t token) {
    if (!m) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no matcher");
    const g8_vindex *vx = m->vx;
    if (token < 0 || token >= vx->n_vocab) return g8_fail(GEMMA8_ERR_INVALID_ARG, "token %d is out of range", token);
    if (m->ended) return g8_fail(GEMMA8_ERR_INVALID_ARG, "token %d follows the end of the grammar", token);
    if (is_eog(vx, token)) {
        if (!m->st.accept || m->st.need)
            return g8_fail(GEMMA8_ERR_INVALID_ARG, "the reply cannot end here: the grammar is not complete");
        m->ended = true;
        return GEMMA8_OK;
    }
    uint32_t len = vx->text_off[token + 1] - vx->text_off[token];
    if (!len) return g8_fail(GEMMA8_ERR_INVALID_ARG, "token %d (a control or unused token) is never allowed", token);
    const uint8_t *t = vx->text + vx->text_off[token];
    g8_gmark mark = g8_garena_mark(&m->a);
    g8_gstate cur = m->st, next;
    for (uint32_t i = 0; i < len; i++) {
        bool ok = g8_gstate_byte(m->g, &m->a, &cur, t[i], &next);
        gemma8_status st = arena_error(m);
        if (!ok || st) {
            g8_garena_reset(&m->a, mark);
            if (st) return st;
            return g8_fail(GEMMA8_ERR_INVALID_ARG, "token %d does not fit the grammar here", token);
        }
        cur = next;
    }
    if (!g8_gstate_compact(&m->a, &cur)) {
        g8_garena_reset(&m->a, mark);
        return g8_fail(GEMMA8_ERR_NOMEM, "out of memory following a grammar");
    }
    m->st = cur;
    return GEMMA8_OK;
}

bool gemma8_matcher_done(const gemma8_matcher *m) { return m && (m->ended || (m->st.n == 0 && m->st.accept)); }
