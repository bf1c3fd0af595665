/* vocab_convert.c - tokenizer metadata for the converter: tokenizer.json (and
 * tokenizer_config.json) or a SentencePiece tokenizer.model, written with
 * llama.cpp's keys and conventions for Gemma:
 *   types: CONTROL for special added tokens and those llama.cpp's converter
 *          deems special-looking, USER_DEFINED for other added tokens (their
 *          U+2581 written as spaces), BYTE for <0xNN>, NORMAL otherwise;
 *   scores: -1000 for added tokens; for normal pieces minus the rank of the
 *          first merge that makes them (pieces no merge makes: -(merges + 1)),
 *          or the SentencePiece scores. vocab.c rebuilds the merges from these. */
#include "fileio.h"
#include "arch.h"
#include "vocab.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vocab_out {
    int n;
    char **tokens;
    float *scores;
    int32_t *types;
    bool add_bos, add_eos;
    char *chat_template;
    int32_t bos, eos, unk, pad;
} vocab_out;

static void vocab_out_free(vocab_out *vo) {
    if (vo->tokens)
        for (int i = 0; i < vo->n; i++) free(vo->tokens[i]);
    free(vo->tokens);
    free(vo->scores);
    free(vo->types);
    free(vo->chat_template);
}

static gemma8_status vocab_out_alloc(vocab_out *vo, int n) {
    vo->n = n;
    vo->tokens = calloc((size_t)n, sizeof(char *));
    vo->scores = calloc((size_t)n, sizeof(float));
    vo->types = calloc((size_t)n, sizeof(int32_t));
    vo->bos = 2, vo->eos = 1, vo->unk = 3, vo->pad = 0;
    vo->add_bos = true;
    if (!vo->tokens || !vo->scores || !vo->types) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for the vocabulary");
    return GEMMA8_OK;
}

/* Parses a JSON file; NULL with *st = OK if it does not exist. */
static cJSON *read_json(const char *dir, const char *name, gemma8_status *st) {
    *st = GEMMA8_OK;
    char *p = g8_path_join(dir, name);
    if (!p) {
        *st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
        return NULL;
    }
    g8_map m;
    if (g8_map_file(p, &m)) {
        free(p);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength((const char *)m.data, m.size);
    g8_unmap(&m);
    if (!j) *st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not valid JSON", p);
    free(p);
    return j;
}

/* llama.cpp's does_token_look_special */
static bool looks_special(const char *t) {
    size_t n = strlen(t);
    if (!strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") || !strcmp(t, "[@BOS@]")) return true;
    if (n >= 4 && !strncmp(t, "<|", 2) && !strcmp(t + n - 2, "|>")) return true;
    return n >= 8 && !strncmp(t, "<unused", 7) && t[n - 1] == '>';
}

static bool is_byte_piece(const char *t) {
    unsigned b;
    return g8_byte_piece(t, strlen(t), &b);
}

/* U+2581 -> ' ' (llama.cpp writes user-defined pieces with spaces) */
static void unmark_spaces(char *s) {
    char *w = s;
    for (char *r = s; *r;) {
        if (!strncmp(r, "\xe2\x96\x81", 3)) *w++ = ' ', r += 3;
        else *w++ = *r++;
    }
    *w = 0;
}

static const char *json_token_text(const cJSON *j) {
    if (cJSON_IsString(j)) return j->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

/* add_bos/eos, the chat template and special token ids from tokenizer_config.json */
static gemma8_status read_tokenizer_config(const char *dir, vocab_out *vo, const cJSON *vocab_map) {
    gemma8_status st;
    cJSON *cfg = read_json(dir, "tokenizer_config.json", &st);
    if (!cfg) return st;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    if (cJSON_IsBool(b)) vo->add_bos = cJSON_IsTrue(b);
    b = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if (cJSON_IsBool(b)) vo->add_eos = cJSON_IsTrue(b);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsArray(t)) { /* [{name, template}]: the default one */
        const cJSON *pick = NULL;
        for (const cJSON *e = t->child; e; e = e->next) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (!pick || (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default"))) pick = e;
        }
        t = pick ? cJSON_GetObjectItemCaseSensitive(pick, "template") : NULL;
    }
    if (cJSON_IsString(t) && !(vo->chat_template = strdup(t->valuestring))) st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    const char *names[4] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int32_t *ids[4] = {&vo->bos, &vo->eos, &vo->unk, &vo->pad};
    for (int k = 0; k < 4 && vocab_map; k++) {
        const char *txt = json_token_text(cJSON_GetObjectItemCaseSensitive(cfg, names[k]));
        const cJSON *id = txt ? cJSON_GetObjectItemCaseSensitive(vocab_map, txt) : NULL;
        if (cJSON_IsNumber(id)) *ids[k] = (int32_t)id->valuedouble;
    }
    cJSON_Delete(cfg);
    return st;
}

/* token text -> id, for the merges of a 256000-piece vocabulary (cJSON's object
 * lookup is linear) */
typedef struct str_index {
    char **keys;      /* borrowed */
    int32_t *slot;    /* ids, -1 empty */
    uint32_t mask;
} str_index;

static uint32_t fnv(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int32_t index_find(const str_index *ix, const char *s) {
    for (uint32_t i = fnv(s) & ix->mask;; i = (i + 1) & ix->mask) {
        int32_t id = ix->slot[i];
        if (id < 0 || !strcmp(ix->keys[id], s)) return id;
    }
}

static gemma8_status index_build(str_index *ix, char **keys, int n) {
    uint32_t size = 1;
    while (size < (uint32_t)n * 2) size <<= 1;
    ix->keys = keys;
    ix->mask = size - 1;
    ix->slot = malloc(size * sizeof(int32_t));
    if (!ix->slot) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    memset(ix->slot, 0xff, size * sizeof(int32_t));
    for (int32_t i = 0; i < n; i++) {
        if (!keys[i] || index_find(ix, keys[i]) >= 0) continue;
        uint32_t h = fnv(keys[i]) & ix->mask;
        while (ix->slot[h] >= 0) h = (h + 1) & ix->mask;
        ix->slot[h] = i;
    }
    return GEMMA8_OK;
}

/* n_vocab < 0: the vocabulary is the tokenizer's own (its model's ids; added tokens past them are
 * dropped), else at least n_vocab ids (the ids past the tokenizer's padded). */
static gemma8_status from_tokenizer_json(cJSON *tj, const char *dir, int n_vocab, vocab_out *vo) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tj, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tj, "added_tokens");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") || !cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s/tokenizer.json' is not a BPE tokenizer with a vocab and merges "
                       "(Gemma's is)", dir);
    int n = G8_MAX(n_vocab, 0);
    for (const cJSON *e = vocab->child; e; e = e->next)
        if (cJSON_IsNumber(e) && e->valuedouble >= n) n = (int)e->valuedouble + 1;
    if (n > (1 << 20)) return g8_fail(GEMMA8_ERR_FORMAT, "tokenizer.json has an implausible vocabulary of %d", n);
    gemma8_status st = vocab_out_alloc(vo, n);
    if (st) return st;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int id = (int)e->valuedouble;
        if (!cJSON_IsNumber(e) || id < 0 || vo->tokens[id]) continue;
        if (!(vo->tokens[id] = strdup(e->string))) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
        vo->types[id] = is_byte_piece(e->string) ? G8_TOKEN_BYTE : G8_TOKEN_NORMAL;
    }
    /* scores: minus the rank of the first merge making each piece */
    str_index ix;
    if ((st = index_build(&ix, vo->tokens, n))) return st;
    int n_merges = cJSON_GetArraySize(merges);
    for (int i = 0; i < n; i++) vo->scores[i] = -(float)(n_merges + 1);
    int r = 0;
    for (const cJSON *m = merges->child; m; m = m->next, r++) {
        char buf[1024];
        if (cJSON_IsString(m)) {
            snprintf(buf, sizeof buf, "%s", m->valuestring);
            char *sp = strchr(buf, ' ');
            if (!sp) continue;
            memmove(sp, sp + 1, strlen(sp));
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2) {
            snprintf(buf, sizeof buf, "%s%s", cJSON_GetArrayItem(m, 0)->valuestring ? cJSON_GetArrayItem(m, 0)->valuestring : "",
                     cJSON_GetArrayItem(m, 1)->valuestring ? cJSON_GetArrayItem(m, 1)->valuestring : "");
        } else {
            continue;
        }
        int32_t id = index_find(&ix, buf);
        if (id >= 0 && vo->scores[id] == -(float)(n_merges + 1)) vo->scores[id] = -(float)r;
    }
    free(ix.slot);
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || id->valuedouble < 0 || id->valuedouble >= n) continue;
        int i = (int)id->valuedouble;
        free(vo->tokens[i]);
        if (!(vo->tokens[i] = strdup(content->valuestring))) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
        vo->scores[i] = -1000.0f;
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special")) || looks_special(content->valuestring)) {
            vo->types[i] = G8_TOKEN_CONTROL;
        } else {
            vo->types[i] = G8_TOKEN_USER_DEFINED;
            unmark_spaces(vo->tokens[i]);
        }
    }
    for (int i = 0; i < n; i++)
        if (!vo->tokens[i]) { /* ids the tokenizer does not use */
            char buf[32];
            snprintf(buf, sizeof buf, "[PAD%d]", i);
            if (!(vo->tokens[i] = strdup(buf))) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
            vo->types[i] = G8_TOKEN_UNUSED;
        }
    return read_tokenizer_config(dir, vo, vocab);
}

/* ---- SentencePiece tokenizer.model (protobuf ModelProto) ----------------- */

static bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int s = 0; s < 64 && *p < end; s += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* Skips a field of wire type wt; false if malformed. */
static bool pb_skip(const uint8_t **p, const uint8_t *end, int wt) {
    uint64_t v;
    switch (wt) {
    case 0: return pb_varint(p, end, &v);
    case 1: if (end - *p < 8) return false; *p += 8; return true;
    case 5: if (end - *p < 4) return false; *p += 4; return true;
    case 2: if (!pb_varint(p, end, &v) || v > (uint64_t)(end - *p)) return false; *p += v; return true;
    default: return false;
    }
}

static gemma8_status from_sentencepiece(const char *path, const char *dir, int n_vocab, vocab_out *vo) {
    g8_map m;
    gemma8_status st = g8_map_file(path, &m);
    if (st) return st;
    const uint8_t *p = m.data, *end = m.data + m.size;
    /* count the pieces (field 1) first */
    int n = 0;
    while (p < end) {
        uint64_t key;
        if (!pb_varint(&p, end, &key) || !pb_skip(&p, end, (int)(key & 7))) goto bad;
        if (key >> 3 == 1 && (key & 7) == 2) n++;
    }
    if (n == 0 || n > (1 << 20)) goto bad;
    if ((st = vocab_out_alloc(vo, G8_MAX(n, n_vocab)))) goto done;
    int i = 0;
    for (p = m.data; p < end;) {
        uint64_t key, len;
        pb_varint(&p, end, &key);
        if (!(key >> 3 == 1 && (key & 7) == 2)) {
            pb_skip(&p, end, (int)(key & 7));
            continue;
        }
        pb_varint(&p, end, &len);
        const uint8_t *q = p, *qe = p + len;
        p = qe;
        vo->types[i] = G8_TOKEN_NORMAL;
        while (q < qe) {
            uint64_t k2, l2;
            if (!pb_varint(&q, qe, &k2)) goto bad;
            if (k2 == ((1 << 3) | 2)) { /* piece */
                if (!pb_varint(&q, qe, &l2) || l2 > (uint64_t)(qe - q)) goto bad;
                free(vo->tokens[i]);
                if (!(vo->tokens[i] = strndup((const char *)q, l2))) {
                    st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
                    goto done;
                }
                q += l2;
            } else if (k2 == ((2 << 3) | 5)) { /* score */
                if (qe - q < 4) goto bad;
                memcpy(&vo->scores[i], q, 4);
                q += 4;
            } else if (k2 == ((3 << 3) | 0)) { /* type */
                uint64_t t;
                if (!pb_varint(&q, qe, &t)) goto bad;
                vo->types[i] = t >= 1 && t <= 6 ? (int32_t)t : G8_TOKEN_NORMAL;
            } else if (!pb_skip(&q, qe, (int)(k2 & 7))) {
                goto bad;
            }
        }
        if (!vo->tokens[i]) goto bad;
        if (vo->types[i] == G8_TOKEN_USER_DEFINED) unmark_spaces(vo->tokens[i]);
        i++;
    }
    for (; i < vo->n; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "[PAD%d]", i);
        vo->tokens[i] = strdup(buf);
        vo->types[i] = G8_TOKEN_UNUSED;
    }
    st = read_tokenizer_config(dir, vo, NULL);
    goto done;
bad:
    st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a valid SentencePiece model", path);
done:
    g8_unmap(&m);
    return st;
}

/* ---- placeholder ----------------------------------------------------------- */

static gemma8_status placeholder(int n_vocab, vocab_out *vo) {
    gemma8_status st = vocab_out_alloc(vo, n_vocab);
    if (st) return st;
    static const char *const control[4] = {"<pad>", "<eos>", "<bos>", "<unk>"};
    for (int i = 0; i < n_vocab; i++) {
        char buf[32];
        if (i < 4) {
            snprintf(buf, sizeof buf, "%s", control[i]);
            vo->types[i] = G8_TOKEN_CONTROL;
        } else if (i < 4 + 256) {
            snprintf(buf, sizeof buf, "<0x%02X>", i - 4);
            vo->types[i] = G8_TOKEN_BYTE;
        } else {
            snprintf(buf, sizeof buf, "[filler%d]", i);
            vo->types[i] = G8_TOKEN_NORMAL;
        }
        if (!(vo->tokens[i] = strdup(buf))) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    }
    return GEMMA8_OK;
}

gemma8_status g8_vocab_convert(gguf_writer *w, const char *dir, int n_vocab, bool own_size, int *n_out) {
    vocab_out vo = {0};
    *n_out = n_vocab;
    gemma8_status st = GEMMA8_OK;
    cJSON *tj = dir ? read_json(dir, "tokenizer.json", &st) : NULL;
    char *spm = dir ? g8_path_join(dir, "tokenizer.model") : NULL;
    g8_map probe = {0};
    bool placeheld = false;
    if (st) goto done;
    if (tj) {
        st = from_tokenizer_json(tj, dir, own_size ? -1 : n_vocab, &vo);
    } else if (spm && g8_map_file(spm, &probe) == GEMMA8_OK) {
        g8_unmap(&probe);
        st = from_sentencepiece(spm, dir, own_size ? -1 : n_vocab, &vo);
    } else {
        g8_clear_error();
        g8_log(G8_LOG_WARN, "no tokenizer.json or tokenizer.model%s%s: writing a placeholder vocabulary (token ids only)",
               dir ? " in " : "", dir ? dir : "");
        st = placeholder(n_vocab, &vo);
        placeheld = true;
    }
    if (st) goto done;
    if (own_size && !placeheld && vo.n < n_vocab) { /* as llama.cpp's converter: the embedding's rows past it go */
        g8_log(G8_LOG_INFO, "the tokenizer has %d tokens: the embedding's %d rows past them are dropped", vo.n,
               n_vocab - vo.n);
        n_vocab = vo.n;
    }
    *n_out = n_vocab;
    if (vo.n < n_vocab) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "the tokenizer has %d tokens but the model's vocab_size is %d", vo.n, n_vocab);
        goto done;
    }
    if (vo.n > n_vocab)
        g8_log(G8_LOG_WARN, "the tokenizer has %d tokens, the model %d: ids past %d are never produced", vo.n, n_vocab,
               n_vocab - 1);
    g8_gguf_set_str(w, KEY_TOK_MODEL, "llama");
    g8_gguf_set_str(w, KEY_TOK_PRE, "default");
    g8_gguf_set_arr_str(w, KEY_TOK_TOKENS, (const char *const *)vo.tokens, (uint64_t)vo.n);
    g8_gguf_set_arr(w, KEY_TOK_SCORES, GGUF_FLOAT32, vo.scores, (uint64_t)vo.n);
    g8_gguf_set_arr(w, KEY_TOK_TYPES, GGUF_INT32, vo.types, (uint64_t)vo.n);
    g8_gguf_set_u32(w, KEY_TOK_BOS, (uint32_t)vo.bos);
    g8_gguf_set_u32(w, KEY_TOK_EOS, (uint32_t)vo.eos);
    g8_gguf_set_u32(w, KEY_TOK_UNK, (uint32_t)vo.unk);
    g8_gguf_set_u32(w, KEY_TOK_PAD, (uint32_t)vo.pad);
    g8_gguf_set_bool(w, KEY_TOK_ADD_BOS, vo.add_bos);
    g8_gguf_set_bool(w, KEY_TOK_ADD_EOS, vo.add_eos);
    if (vo.chat_template) g8_gguf_set_str(w, KEY_TOK_TEMPLATE, vo.chat_template);
    g8_gguf_set_bool(w, KEY_TOK_ADD_SPACE, false);
done:
    cJSON_Delete(tj);
    free(spm);
    vocab_out_free(&vo);
    return st;
}
