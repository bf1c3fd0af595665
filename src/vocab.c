/* vocab.c - the Gemma tokenizer: Hugging Face's BPE (merges by rank, byte
 * fallback, no pre-tokenizer, spaces as U+2581, added tokens split first),
 * computed from llama.cpp's GGUF tokenizer metadata.
 *
 * GGUF files carry tokens, scores and types but no merge list. Hugging Face's
 * Gemma merges are exactly the splits of every mergeable vocabulary piece into
 * two pieces, ordered by the key (see rank_pieces):
 *   user-defined pieces first, by id; then normal pieces by score, highest first;
 *   then, for one piece, by (id of left part, id of right part).
 * (Checked against all 580604 merges of the real tokenizer.json.) */
#include "arch.h"
#include "vocab.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

#define SPACE_MARK "\xe2\x96\x81" /* U+2581 */

static bool is_mark(const char *p) { return !memcmp(p, SPACE_MARK, 3); }

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

bool g8_byte_piece(const char *s, size_t len, unsigned *b) {
    if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return false;
    int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
    if (hi < 0 || lo < 0) return false;
    *b = (unsigned)(hi * 16 + lo);
    return true;
}

bool g8_ids_push(g8_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *nv = realloc(ids->v, cap * sizeof *nv);
        if (!nv) return false;
        ids->v = nv;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return true;
}

/* ---- hash of token texts --------------------------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

int32_t g8_vocab_find(const g8_vocab *v, const char *s, size_t len) {
    for (uint32_t i = hash_bytes(s, len) & v->hash_mask;; i = (i + 1) & v->hash_mask) {
        int32_t id = v->hash[i];
        if (id < 0) return -1;
        if (v->len[id] == len && !memcmp(v->text[id], s, len)) return id;
    }
}

/* ---- trie of added tokens ------------------------------------------------- */

typedef struct trie_node {
    int32_t child, sibling;   /* indices, 0: none (node 0 is the root) */
    int32_t token;            /* token ending here, -1 if none */
    uint8_t byte;
} trie_node;

struct g8_trie {
    trie_node *nodes;
    int32_t n, cap;
};

static int32_t trie_step(const g8_trie *t, int32_t node, uint8_t b) {
    for (int32_t c = t->nodes[node].child; c; c = t->nodes[c].sibling)
        if (t->nodes[c].byte == b) return c;
    return 0;
}

static bool trie_add(g8_trie *t, const char *s, size_t n, int32_t token) {
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t next = trie_step(t, node, (uint8_t)s[i]);
        if (!next) {
            if (t->n == t->cap) {
                int32_t cap = t->cap * 2;
                trie_node *nn = realloc(t->nodes, (size_t)cap * sizeof *nn);
                if (!nn) return false;
                t->nodes = nn;
                t->cap = cap;
            }
            next = t->n++;
            t->nodes[next] = (trie_node){0, t->nodes[node].child, -1, (uint8_t)s[i]};
            t->nodes[node].child = next;
        }
        node = next;
    }
    if (t->nodes[node].token < 0) t->nodes[node].token = token;
    return true;
}

/* Longest added token starting at s (control ones only if parse_special):
 * returns its length and sets *id, or 0. */
static size_t trie_match(const g8_vocab *v, const char *s, size_t n, bool parse_special, int32_t *id) {
    const g8_trie *t = v->added;
    size_t best = 0;
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        node = trie_step(t, node, (uint8_t)s[i]);
        if (!node) break;
        int32_t tok = t->nodes[node].token;
        if (tok >= 0 && (parse_special || !v->special[tok])) {
            best = i + 1;
            *id = tok;
        }
    }
    return best;
}

/* ---- loading ------------------------------------------------------------- */

void g8_vocab_free(g8_vocab *v) {
    if (v->added) free(v->added->nodes);
    free(v->added);
    free(v->text);
    free(v->len);
    free(v->type);
    free(v->special);
    free(v->rank);
    free(v->hash);
    free(v->storage);
    free(v->chat_template);
    memset(v, 0, sizeof *v);
}

static const float *g_sort_scores;
static int by_score_desc(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float sx = g_sort_scores[x], sy = g_sort_scores[y];
    if (sx != sy) return sx > sy ? -1 : 1;
    return (x > y) - (x < y);
}

/* rank[id]: user-defined pieces by id, then normal pieces by score (highest
 * first); other types are never the product of a merge. */
static gemma8_status rank_pieces(g8_vocab *v, const float *scores) {
    int32_t *order = g8_malloc((size_t)v->n * sizeof *order, "tokenizer ranks");
    if (!order) return GEMMA8_ERR_NOMEM;
    uint32_t r = 0;
    for (int32_t i = 0; i < v->n; i++) v->rank[i] = UINT32_MAX;
    for (int32_t i = 0; i < v->n; i++)
        if (v->type[i] == G8_TOKEN_USER_DEFINED) v->rank[i] = r++;
    int32_t nn = 0;
    for (int32_t i = 0; i < v->n; i++)
        if (v->type[i] == G8_TOKEN_NORMAL) order[nn++] = i;
    g_sort_scores = scores; /* qsort has no context argument in C11; loading is not concurrent here */
    qsort(order, (size_t)nn, sizeof *order, by_score_desc);
    for (int32_t k = 0; k < nn; k++) v->rank[order[k]] = r++;
    free(order);
    return GEMMA8_OK;
}

static int32_t id_of(const g8_vocab *v, const char *s) { return g8_vocab_find(v, s, strlen(s)); }

/* llama.cpp's converter also types as CONTROL some added tokens that Hugging
 * Face does not call special (its does_token_look_special: <mask>, <2mass>,
 * [@BOS@], <unusedN>, <|...|>). Those stay ordinary added tokens here. */
static bool looks_special_only(const char *t, size_t n) {
    if (!strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") || !strcmp(t, "[@BOS@]")) return true;
    if (n >= 4 && !strncmp(t, "<|", 2) && !strcmp(t + n - 2, "|>")) return true;
    return n >= 8 && !strncmp(t, "<unused", 7) && t[n - 1] == '>';
}

static void mark_special(g8_vocab *v) {
    for (int32_t i = 0; i < v->n; i++)
        v->special[i] = v->type[i] == G8_TOKEN_CONTROL && !looks_special_only(v->text[i], v->len[i]);
    const int32_t known[] = {v->bos, v->eos, v->unk, v->pad, v->start_of_turn, v->end_of_turn};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (known[k] >= 0) v->special[known[k]] = true;
}

gemma8_status g8_vocab_load(g8_vocab *v, const gguf_file *f, const char *path) {
    memset(v, 0, sizeof *v);
    gemma8_status st;
    gguf_str model;
    if (!g8_gguf_get_str(f, KEY_TOK_MODEL, &model, &st))
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s' has no tokenizer (%s missing)", path, KEY_TOK_MODEL);
    if (model.len != 5 || memcmp(model.p, "llama", 5))
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': tokenizer model '%.*s' is not supported (Gemma's is 'llama')",
                       path, (int)G8_MIN(model.len, 32), model.p);
    const gguf_kv *tk = g8_gguf_find_kv(f, KEY_TOK_TOKENS);
    const gguf_kv *sk = g8_gguf_find_kv(f, KEY_TOK_SCORES);
    const gguf_kv *yk = g8_gguf_find_kv(f, KEY_TOK_TYPES);
    if (!tk || tk->type != GGUF_ARRAY || tk->arr_type != GGUF_STRING || tk->n == 0 || tk->n > (1u << 20))
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': %s is missing or not a string array", path, KEY_TOK_TOKENS);
    v->n = (int)tk->n;
    if ((sk && (sk->type != GGUF_ARRAY || sk->arr_type != GGUF_FLOAT32 || sk->n != tk->n)) ||
        (yk && (yk->type != GGUF_ARRAY || yk->arr_type != GGUF_INT32 || yk->n != tk->n)))
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tokenizer scores or types do not match the %d tokens", path, v->n);

    /* texts, with spaces normalised to U+2581 (llama.cpp stores user-defined pieces with spaces) */
    size_t total = 0;
    for (int i = 0; i < v->n; i++) total += tk->strs[i].len * 3 + 1;
    v->storage = g8_malloc(total, "token texts");
    v->text = g8_calloc((size_t)v->n, sizeof(char *), "tokens");
    v->len = g8_calloc((size_t)v->n, sizeof(uint32_t), "tokens");
    v->type = g8_calloc((size_t)v->n, sizeof(int32_t), "tokens");
    v->rank = g8_calloc((size_t)v->n, sizeof(uint32_t), "tokens");
    v->special = g8_calloc((size_t)v->n, sizeof(bool), "tokens");
    uint32_t hsize = 1;
    while (hsize < (uint32_t)v->n * 2) hsize <<= 1;
    v->hash = g8_malloc(hsize * sizeof(int32_t), "token hash");
    v->hash_mask = hsize - 1;
    float *scores = g8_calloc((size_t)v->n, sizeof(float), "token scores");
    v->added = g8_calloc(1, sizeof(g8_trie), "added tokens");
    if (!v->storage || !v->text || !v->len || !v->type || !v->rank || !v->special || !v->hash || !scores || !v->added) {
        free(scores);
        g8_vocab_free(v);
        return GEMMA8_ERR_NOMEM;
    }
    v->added->cap = 1024;
    v->added->n = 1;
    v->added->nodes = g8_malloc(1024 * sizeof(trie_node), "added tokens");
    if (!v->added->nodes) {
        free(scores);
        g8_vocab_free(v);
        return GEMMA8_ERR_NOMEM;
    }
    v->added->nodes[0] = (trie_node){0, 0, -1, 0};
    memset(v->hash, 0xff, hsize * sizeof(int32_t));
    for (int i = 0; i < 256; i++) v->byte_id[i] = -1;
    char *p = v->storage;
    st = GEMMA8_OK;
    for (int i = 0; i < v->n && !st; i++) {
        v->text[i] = p;
        const gguf_str s = tk->strs[i];
        for (uint64_t k = 0; k < s.len; k++) {
            if (s.p[k] == ' ') {
                memcpy(p, SPACE_MARK, 3);
                p += 3;
            } else {
                *p++ = s.p[k];
            }
        }
        *p++ = 0;
        v->len[i] = (uint32_t)(p - 1 - v->text[i]);
        if (sk) memcpy(&scores[i], sk->data + 4 * (size_t)i, 4);
        if (yk) memcpy(&v->type[i], yk->data + 4 * (size_t)i, 4);
        else v->type[i] = G8_TOKEN_NORMAL;
        if (v->type[i] == G8_TOKEN_BYTE) {
            unsigned b;
            if (g8_byte_piece(v->text[i], v->len[i], &b)) v->byte_id[b] = i;
            else st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': byte token %d is '%s', not <0xNN>", path, i, v->text[i]);
        }
        if (v->type[i] == G8_TOKEN_CONTROL || v->type[i] == G8_TOKEN_USER_DEFINED)
            if (v->len[i] && !trie_add(v->added, v->text[i], v->len[i], i)) st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
        /* first id wins for duplicate texts */
        if (g8_vocab_find(v, v->text[i], v->len[i]) < 0) {
            uint32_t h = hash_bytes(v->text[i], v->len[i]) & v->hash_mask;
            while (v->hash[h] >= 0) h = (h + 1) & v->hash_mask;
            v->hash[h] = i;
        }
    }
    if (!st) st = rank_pieces(v, scores);
    /* can words be merged separately? only if no mergeable piece has the mark after another character */
    v->split_words = true;
    for (int i = 0; i < v->n && v->split_words; i++) {
        if (v->rank[i] == UINT32_MAX) continue;
        for (uint32_t k = 1; k + 3 <= v->len[i] && v->split_words; k++)
            if (is_mark(v->text[i] + k) && !(k >= 3 && is_mark(v->text[i] + k - 3))) v->split_words = false;
    }
    free(scores);
    if (st) {
        g8_vocab_free(v);
        return st;
    }
    uint32_t u;
    gemma8_status s2;
    v->bos = g8_gguf_get_u32(f, KEY_TOK_BOS, &u, &s2) && u < (uint32_t)v->n ? (int32_t)u : id_of(v, "<bos>");
    v->eos = g8_gguf_get_u32(f, KEY_TOK_EOS, &u, &s2) && u < (uint32_t)v->n ? (int32_t)u : id_of(v, "<eos>");
    v->unk = g8_gguf_get_u32(f, KEY_TOK_UNK, &u, &s2) && u < (uint32_t)v->n ? (int32_t)u : id_of(v, "<unk>");
    v->pad = g8_gguf_get_u32(f, KEY_TOK_PAD, &u, &s2) && u < (uint32_t)v->n ? (int32_t)u : id_of(v, "<pad>");
    v->start_of_turn = id_of(v, "<start_of_turn>");
    v->end_of_turn = id_of(v, "<end_of_turn>");
    mark_special(v);
    bool b;
    v->add_bos = g8_gguf_get_bool(f, KEY_TOK_ADD_BOS, &b, &s2) ? b : true;
    gguf_str tmpl;
    if (g8_gguf_get_str(f, KEY_TOK_TEMPLATE, &tmpl, &s2)) {
        v->chat_template = g8_malloc(tmpl.len + 1, "chat template");
        if (!v->chat_template) {
            g8_vocab_free(v);
            return GEMMA8_ERR_NOMEM;
        }
        memcpy(v->chat_template, tmpl.p, tmpl.len);
        v->chat_template[tmpl.len] = 0;
    }
    return GEMMA8_OK;
}

/* ---- BPE ----------------------------------------------------------------- */

typedef struct sym {
    int32_t id;
    int32_t prev, next;   /* -1: none */
    uint32_t start, len;  /* bytes in the normalised segment; len 0: merged away */
    bool mergeable;       /* false for byte-fallback pieces */
} sym;

typedef struct cand {
    uint64_t key;         /* (rank of product, id left, id right): smaller merges first */
    int32_t left, right;  /* symbol indices */
    int32_t a, b, product;
} cand;

typedef struct heap {
    cand *c;
    size_t n, cap;
} heap;

/* ties on key go to the leftmost pair, as in Hugging Face */
static bool cand_less(const cand *x, const cand *y) { return x->key != y->key ? x->key < y->key : x->left < y->left; }

static bool heap_push(heap *h, cand c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        cand *nc = realloc(h->c, cap * sizeof *nc);
        if (!nc) return false;
        h->c = nc;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && cand_less(&c, &h->c[(i - 1) / 2])) {
        h->c[i] = h->c[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->c[i] = c;
    return true;
}

static cand heap_pop(heap *h) {
    cand top = h->c[0], last = h->c[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *cm = &last;
        if (l < h->n && cand_less(&h->c[l], cm)) m = l, cm = &h->c[l];
        if (r < h->n && cand_less(&h->c[r], cm)) m = r;
        if (m == i) break;
        h->c[i] = h->c[m];
        i = m;
    }
    if (h->n) h->c[i] = last;
    return top;
}

static bool try_pair(const g8_vocab *v, const char *buf, const sym *s, int32_t l, heap *h) {
    int32_t r = s[l].next;
    if (l < 0 || r < 0 || !s[l].mergeable || !s[r].mergeable) return true;
    int32_t p = g8_vocab_find(v, buf + s[l].start, s[l].len + s[r].len);
    if (p < 0 || v->rank[p] == UINT32_MAX) return true;
    cand c = {((uint64_t)v->rank[p] << 42) | ((uint64_t)s[l].id << 21) | (uint64_t)s[r].id, l, r, s[l].id, s[r].id, p};
    return heap_push(h, c);
}

static size_t utf8_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (k == 0 || k > n) return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return k;
}

/* BPE of one word: buf[0..m) already normalised. s and h are scratch. */
static gemma8_status bpe_word(const g8_vocab *v, const char *buf, size_t m, sym *s, heap *h, g8_ids *out) {
    /* one symbol per character; characters outside the vocabulary become bytes */
    int32_t ns = 0;
    for (size_t i = 0; i < m;) {
        size_t k = utf8_len((const uint8_t *)buf + i, m - i);
        int32_t id = k ? g8_vocab_find(v, buf + i, k) : -1;
        if (id >= 0) {
            s[ns] = (sym){id, ns - 1, ns + 1, (uint32_t)i, (uint32_t)k, true};
            ns++;
            i += k;
            continue;
        }
        if (k == 0) k = 1; /* an invalid byte stands alone */
        for (size_t j = 0; j < k; j++) {
            int32_t bid = v->byte_id[(uint8_t)buf[i + j]];
            s[ns] = (sym){bid >= 0 ? bid : v->unk, ns - 1, ns + 1, (uint32_t)(i + j), 1, false};
            ns++;
        }
        i += k;
    }
    if (ns == 0) return GEMMA8_OK;
    s[ns - 1].next = -1;
    h->n = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        if (!try_pair(v, buf, s, i, h)) goto oom;
    while (h->n) {
        cand c = heap_pop(h);
        sym *l = &s[c.left], *r = &s[c.right];
        if (l->len == 0 || r->len == 0 || l->next != c.right || l->id != c.a || r->id != c.b) continue; /* stale */
        l->id = c.product;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = c.left;
        if ((l->prev >= 0 && !try_pair(v, buf, s, l->prev, h)) || !try_pair(v, buf, s, c.left, h)) goto oom;
    }
    for (int32_t i = 0; i >= 0; i = s[i].next)
        if (!g8_ids_push(out, s[i].id)) goto oom;
    return GEMMA8_OK;
oom:
    return g8_fail(GEMMA8_ERR_NOMEM, "out of memory tokenizing");
}

/* BPE of one segment that contains no added token. When no piece has U+2581
 * after another character (v->split_words), no merge can cross the start of a
 * "▁word", so each word is merged on its own: same result, small heaps. */
static gemma8_status bpe(const g8_vocab *v, const char *text, size_t n, g8_ids *out) {
    size_t spaces = 0;
    for (size_t i = 0; i < n; i++) spaces += text[i] == ' ';
    char *buf = malloc(n + 2 * spaces + 1);
    sym *s = malloc((n + 2 * spaces + 1) * sizeof *s);
    heap h = {0};
    gemma8_status st = GEMMA8_OK;
    if (!buf || !s) {
        st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory tokenizing %zu bytes", n);
        goto done;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == ' ') memcpy(buf + m, SPACE_MARK, 3), m += 3;
        else buf[m++] = text[i];
    }
    size_t start = 0;
    for (size_t i = 1; v->split_words && i + 3 <= m; i++) {
        if (!is_mark(buf + i)) continue;
        if (!(i >= 3 && is_mark(buf + i - 3))) { /* a mark after another character starts a word */
            if ((st = bpe_word(v, buf + start, i - start, s, &h, out))) goto done;
            start = i;
        }
        i += 2;
    }
    st = bpe_word(v, buf + start, m - start, s, &h, out);
done:
    free(buf);
    free(s);
    free(h.c);
    return st;
}

gemma8_status g8_tokenize(const g8_vocab *v, const char *text, size_t len, bool parse_special, g8_ids *out) {
    size_t seg = 0, i = 0;
    while (i < len) {
        int32_t id;
        size_t k = trie_match(v, text + i, len - i, parse_special, &id);
        if (!k) {
            i++;
            continue;
        }
        gemma8_status st = bpe(v, text + seg, i - seg, out);
        if (st) return st;
        if (!g8_ids_push(out, id)) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
        i += k;
        seg = i;
    }
    return bpe(v, text + seg, len - seg, out);
}

/* ---- decoding ------------------------------------------------------------ */

size_t g8_token_text(const g8_vocab *v, int32_t id, bool special, char *buf, size_t cap, int *raw_byte) {
    *raw_byte = -1;
    if (id < 0 || id >= v->n) return 0;
    if (v->type[id] == G8_TOKEN_BYTE) {
        unsigned b = 0;
        g8_byte_piece(v->text[id], v->len[id], &b); /* checked at load */
        *raw_byte = (int)b;
        return 0;
    }
    if (v->special[id] && !special) return 0;
    size_t n = 0;
    const char *t = v->text[id];
    for (uint32_t k = 0; k < v->len[id];) {
        const char *piece = t + k;
        size_t plen = 1;
        if (!memcmp(t + k, SPACE_MARK, 3) && k + 3 <= v->len[id]) piece = " ", k += 3;
        else k += 1;
        if (n + plen <= cap) memcpy(buf + n, piece, plen);
        n += plen;
    }
    return n;
}

/* true if the bytes are valid UTF-8 (shortest forms, no surrogates) */
static bool utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) k = 1, cp = c;
        else if ((c >> 5) == 6) k = 2, cp = c & 0x1f;
        else if ((c >> 4) == 14) k = 3, cp = c & 0x0f;
        else if ((c >> 3) == 30) k = 4, cp = c & 0x07;
        else return false;
        if (i + k > n) return false;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k;
    }
    return true;
}

static void flush_bytes(g8_sbuf *b, uint8_t *bytes, size_t *nb) {
    if (!*nb) return;
    if (utf8_valid(bytes, *nb)) {
        g8_sb_put(b, (const char *)bytes, *nb);
    } else {
        for (size_t i = 0; i < *nb; i++) g8_sb_put(b, "\xef\xbf\xbd", 3);
    }
    *nb = 0;
}

char *g8_detokenize(const g8_vocab *v, const int32_t *ids, size_t n, bool skip_special, size_t *out_len) {
    g8_sbuf b = {0};
    uint8_t *bytes = malloc(n + 1);
    size_t nb = 0;
    if (!bytes) return NULL;
    g8_sb_put(&b, "", 0);
    for (size_t i = 0; i < n; i++) {
        int raw;
        char tmp[256];
        size_t k = g8_token_text(v, ids[i], !skip_special, tmp, sizeof tmp, &raw);
        if (raw >= 0) {
            bytes[nb++] = (uint8_t)raw;
            continue;
        }
        flush_bytes(&b, bytes, &nb);
        if (k <= sizeof tmp) {
            g8_sb_put(&b, tmp, k);
        } else {
            char *big = malloc(k);
            if (!big) {
                b.oom = true;
                break;
            }
            g8_token_text(v, ids[i], !skip_special, big, k, &raw);
            g8_sb_put(&b, big, k);
            free(big);
        }
    }
    flush_bytes(&b, bytes, &nb);
    free(bytes);
    if (b.oom) {
        free(b.p);
        g8_fail(GEMMA8_ERR_NOMEM, "out of memory decoding %zu tokens", n);
        return NULL;
    }
    if (out_len) *out_len = b.n;
    return b.p;
}

/* ---- streaming ------------------------------------------------------------ */

static bool append(char **out, size_t *len, const char *s, size_t n) {
    char *p = realloc(*out, *len + n + 1);
    if (!p) return false;
    memcpy(p + *len, s, n);
    *len += n;
    p[*len] = 0;
    *out = p;
    return true;
}

/* Releases what the pending bytes allow: whole valid characters, U+FFFD for a
 * byte that cannot start or continue one; keeps a valid incomplete prefix. */
static bool stream_drain(g8_stream *s, char **out, size_t *len, bool final) {
    while (s->n > 0) {
        uint8_t c = s->pend[0];
        int need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = need > 0;
        for (int i = 1; ok && i < need && i < s->n; i++) ok = (s->pend[i] & 0xc0) == 0x80;
        if (ok && s->n >= need) ok = utf8_valid(s->pend, (size_t)need);
        if (ok && s->n < need && !final) return true; /* wait for more */
        ok = ok && s->n >= need;                      /* final: an incomplete character is invalid */
        int used = ok ? need : 1;
        if (!(ok ? append(out, len, (const char *)s->pend, (size_t)need) : append(out, len, "\xef\xbf\xbd", 3)))
            return false;
        memmove(s->pend, s->pend + used, (size_t)(s->n - used));
        s->n -= used;
    }
    return true;
}

bool g8_stream_feed(const g8_vocab *v, g8_stream *s, int32_t id, char **out, size_t *len) {
    int raw;
    char tmp[512];
    size_t k = g8_token_text(v, id, false, tmp, sizeof tmp, &raw);
    if (raw >= 0) {
        if (s->n == (int)sizeof s->pend && !stream_drain(s, out, len, true)) return false;
        s->pend[s->n++] = (uint8_t)raw;
        return stream_drain(s, out, len, false);
    }
    if (!stream_drain(s, out, len, true)) return false; /* a piece interrupts an incomplete character */
    if (k <= sizeof tmp) return append(out, len, tmp, k);
    char *big = malloc(k);
    if (!big) return false;
    g8_token_text(v, id, false, big, k, &raw);
    bool ok = append(out, len, big, k);
    free(big);
    return ok;
}

bool g8_stream_flush(g8_stream *s, char **out, size_t *len) { return stream_drain(s, out, len, true); }
