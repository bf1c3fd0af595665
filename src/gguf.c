/* gguf.c - GGUF v3 reader (mmap, bounds-checked, zero copy) and writer. */
#include "gguf.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

/* ---- types -------------------------------------------------------------- */

int g8_gguf_block_size(uint32_t type) {
    switch (type) {
    case GEMMA8_TYPE_F32: case GEMMA8_TYPE_F16: case GEMMA8_TYPE_BF16: return 1;
    case GEMMA8_TYPE_Q8_0: case GEMMA8_TYPE_Q4_0: return 32;
    case GEMMA8_TYPE_Q6_K: return 256;
    default: return 0;
    }
}

size_t g8_gguf_row_size(uint32_t type, int64_t n) {
    if (n < 0) return 0;
    switch (type) {
    case GEMMA8_TYPE_F32: return (size_t)n * 4;
    case GEMMA8_TYPE_F16: case GEMMA8_TYPE_BF16: return (size_t)n * 2;
    case GEMMA8_TYPE_Q8_0: return n % 32 ? 0 : (size_t)(n / 32) * 34;
    case GEMMA8_TYPE_Q4_0: return n % 32 ? 0 : (size_t)(n / 32) * 18;
    case GEMMA8_TYPE_Q6_K: return n % 256 ? 0 : (size_t)(n / 256) * 210;
    default: return 0;
    }
}

static size_t vtype_size(uint32_t t) {
    switch (t) {
    case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: return 1;
    case GGUF_UINT16: case GGUF_INT16: return 2;
    case GGUF_UINT32: case GGUF_INT32: case GGUF_FLOAT32: return 4;
    case GGUF_UINT64: case GGUF_INT64: case GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

/* ---- reader ------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *base, *p, *end;
    const char *path;
} cursor;

static gemma8_status truncated(const cursor *c, const char *what) {
    return g8_fail(GEMMA8_ERR_FORMAT, "'%s': file truncated or corrupt reading %s at offset %zu (file is %zu bytes)",
                   c->path, what, (size_t)(c->p - c->base), (size_t)(c->end - c->base));
}

static gemma8_status rd(cursor *c, void *dst, size_t n, const char *what) {
    if ((size_t)(c->end - c->p) < n) return truncated(c, what);
    memcpy(dst, c->p, n);
    c->p += n;
    return GEMMA8_OK;
}

static gemma8_status skip(cursor *c, uint64_t n, const char *what) {
    if ((uint64_t)(c->end - c->p) < n) return truncated(c, what);
    c->p += n;
    return GEMMA8_OK;
}

static gemma8_status rd_str(cursor *c, gguf_str *s, const char *what) {
    gemma8_status st = rd(c, &s->len, 8, what);
    if (st) return st;
    s->p = (const char *)c->p;
    return skip(c, s->len, what);
}

static char *str_dup(gguf_str s) {
    char *r = g8_malloc(s.len + 1, "a GGUF name");
    if (!r) return NULL;
    memcpy(r, s.p, s.len);
    r[s.len] = 0;
    return r;
}

static gemma8_status read_kv(cursor *c, gguf_kv *kv) {
    gguf_str key;
    gemma8_status st = rd_str(c, &key, "a metadata key");
    if (st) return st;
    if (key.len == 0 || key.len > 65535)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': metadata key of length %llu at offset %zu", c->path,
                       (unsigned long long)key.len, (size_t)((const uint8_t *)key.p - c->base));
    if (!(kv->key = str_dup(key))) return GEMMA8_ERR_NOMEM;
    if ((st = rd(c, &kv->type, 4, kv->key))) return st;
    kv->data = c->p;
    if (kv->type == GGUF_STRING) {
        kv->n = 1;
        if (!(kv->strs = g8_malloc(sizeof(gguf_str), kv->key))) return GEMMA8_ERR_NOMEM;
        return rd_str(c, &kv->strs[0], kv->key);
    }
    if (kv->type == GGUF_ARRAY) {
        if ((st = rd(c, &kv->arr_type, 4, kv->key))) return st;
        if ((st = rd(c, &kv->n, 8, kv->key))) return st;
        kv->data = c->p;
        if (kv->arr_type == GGUF_STRING) {
            /* every string needs at least 8 bytes: bound the count before allocating */
            if (kv->n > (uint64_t)(c->end - c->p) / 8) return truncated(c, kv->key);
            if (!(kv->strs = g8_calloc(kv->n, sizeof(gguf_str), kv->key))) return GEMMA8_ERR_NOMEM;
            for (uint64_t i = 0; i < kv->n; i++)
                if ((st = rd_str(c, &kv->strs[i], kv->key))) return st;
            return GEMMA8_OK;
        }
        size_t es = vtype_size(kv->arr_type);
        if (!es)
            return g8_fail(GEMMA8_ERR_FORMAT, "'%s': metadata '%s' is an array of unknown type %u", c->path,
                           kv->key, kv->arr_type);
        if (kv->n > (uint64_t)(c->end - c->p) / es) return truncated(c, kv->key);
        return skip(c, kv->n * es, kv->key);
    }
    size_t es = vtype_size(kv->type);
    if (!es)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': metadata '%s' has unknown type %u", c->path, kv->key, kv->type);
    kv->n = 1;
    return skip(c, es, kv->key);
}

static gemma8_status read_tensor_info(cursor *c, gguf_tensor *t) {
    gguf_str name;
    gemma8_status st = rd_str(c, &name, "a tensor name");
    if (st) return st;
    if (name.len == 0 || name.len > 4096)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor name of length %llu", c->path, (unsigned long long)name.len);
    if (!(t->name = str_dup(name))) return GEMMA8_ERR_NOMEM;
    if ((st = rd(c, &t->n_dims, 4, t->name))) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' has %u dimensions", c->path, t->name, t->n_dims);
    for (int i = 0; i < GGUF_MAX_DIMS; i++) t->ne[i] = 1;
    uint64_t nel = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        uint64_t d;
        if ((st = rd(c, &d, 8, t->name))) return st;
        if (d == 0 || d > ((uint64_t)1 << 40) || __builtin_mul_overflow(nel, d, &nel) || nel > ((uint64_t)1 << 40))
            return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' has an invalid dimension %llu", c->path, t->name,
                           (unsigned long long)d);
        t->ne[i] = (int64_t)d;
    }
    if ((st = rd(c, &t->type, 4, t->name))) return st;
    if ((st = rd(c, &t->offset, 8, t->name))) return st;
    size_t row = g8_gguf_row_size(t->type, t->ne[0]);
    if (!row) {
        if (!g8_gguf_block_size(t->type))
            return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': tensor '%s' has ggml type %u, which gemma8 does not support "
                           "(supported: f32, f16, bf16, q8_0)", c->path, t->name, t->type);
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' row of %lld elements is not a whole number of blocks",
                       c->path, t->name, (long long)t->ne[0]);
    }
    t->nbytes = row * (uint64_t)(nel / (uint64_t)t->ne[0]);
    return GEMMA8_OK;
}

void g8_gguf_close(gguf_file *f) {
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) {
            free(f->kv[i].key);
            free(f->kv[i].strs);
        }
    if (f->tensors)
        for (uint64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->kv);
    free(f->tensors);
    g8_unmap(&f->map);
    memset(f, 0, sizeof *f);
}

gemma8_status g8_gguf_open(const char *path, gguf_file *f) {
    memset(f, 0, sizeof *f);
    gemma8_status st = g8_map_file(path, &f->map);
    if (st) return st;
    if (f->map.size < 24) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a GGUF file: only %zu bytes", path, f->map.size);
        goto fail;
    }
    cursor c = {f->map.data, f->map.data, f->map.data + f->map.size, path};
    char magic[4];
    rd(&c, magic, 4, "magic");
    if (memcmp(magic, "GGUF", 4) != 0) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a GGUF file (bad magic)", path);
        goto fail;
    }
    rd(&c, &f->version, 4, "version");
    if (f->version != 2 && f->version != 3) {
        st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': GGUF version %u is not supported (2 or 3)", path, f->version);
        goto fail;
    }
    uint64_t n_tensors, n_kv;
    rd(&c, &n_tensors, 8, "tensor count");
    rd(&c, &n_kv, 8, "metadata count");
    /* each kv needs >= 12 bytes and each tensor info >= 24: bound before allocating */
    if (n_kv > f->map.size / 12 || n_tensors > f->map.size / 24) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': implausible counts (%llu tensors, %llu metadata) for a %zu-byte file",
                     path, (unsigned long long)n_tensors, (unsigned long long)n_kv, f->map.size);
        goto fail;
    }
    if (!(f->kv = g8_calloc(n_kv, sizeof(gguf_kv), "GGUF metadata")) ||
        !(f->tensors = g8_calloc(n_tensors, sizeof(gguf_tensor), "GGUF tensor table"))) {
        st = GEMMA8_ERR_NOMEM;
        goto fail;
    }
    for (f->n_kv = 0; f->n_kv < n_kv;)
        if ((st = read_kv(&c, &f->kv[f->n_kv++]))) goto fail;
    for (f->n_tensors = 0; f->n_tensors < n_tensors;)
        if ((st = read_tensor_info(&c, &f->tensors[f->n_tensors++]))) goto fail;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    uint32_t al;
    if (g8_gguf_get_u32(f, "general.alignment", &al, &st)) {
        if (al == 0 || (al & (al - 1))) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': general.alignment %u is not a power of two", path, al);
            goto fail;
        }
        f->alignment = al;
    } else if (st) {
        goto fail;
    }
    uint64_t pos = (uint64_t)(c.p - c.base);
    f->data_offset = (pos + f->alignment - 1) / f->alignment * f->alignment;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' offset %llu is not aligned to %llu", path, t->name,
                         (unsigned long long)t->offset, (unsigned long long)f->alignment);
            goto fail;
        }
        uint64_t end;
        if (__builtin_add_overflow(f->data_offset, t->offset, &end) || __builtin_add_overflow(end, t->nbytes, &end) ||
            end > f->map.size) {
            st = g8_fail(GEMMA8_ERR_FORMAT,
                         "'%s': tensor '%s' data (offset %llu, %llu bytes) runs past the end of the file (%zu bytes): "
                         "the file is truncated", path, t->name, (unsigned long long)(f->data_offset + t->offset),
                         (unsigned long long)t->nbytes, f->map.size);
            goto fail;
        }
        t->data = f->map.data + f->data_offset + t->offset;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(f->tensors[j].name, t->name) == 0) {
                st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' appears twice", path, t->name);
                goto fail;
            }
    }
    return GEMMA8_OK;
fail:
    g8_gguf_close(f);
    return st;
}

const gguf_kv *g8_gguf_find_kv(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0) return &f->kv[i];
    return NULL;
}

const gguf_tensor *g8_gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

static const gguf_kv *typed_kv(const gguf_file *f, const char *key, gemma8_status *st) {
    *st = GEMMA8_OK;
    return g8_gguf_find_kv(f, key);
}

bool g8_gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, gemma8_status *st) {
    const gguf_kv *kv = typed_kv(f, key, st);
    if (!kv) return false;
    if (kv->type == GGUF_UINT32 || kv->type == GGUF_INT32) {
        int32_t v;
        memcpy(&v, kv->data, 4);
        if (kv->type == GGUF_INT32 && v < 0) goto bad;
        memcpy(out, kv->data, 4);
        return true;
    }
    if (kv->type == GGUF_UINT64 || kv->type == GGUF_INT64) {
        uint64_t v;
        memcpy(&v, kv->data, 8);
        if (v > UINT32_MAX) goto bad;
        *out = (uint32_t)v;
        return true;
    }
bad:
    *st = g8_fail(GEMMA8_ERR_FORMAT, "metadata '%s' is not a non-negative 32-bit integer", key);
    return false;
}

bool g8_gguf_get_f32(const gguf_file *f, const char *key, float *out, gemma8_status *st) {
    const gguf_kv *kv = typed_kv(f, key, st);
    if (!kv) return false;
    if (kv->type == GGUF_FLOAT32) {
        memcpy(out, kv->data, 4);
        return true;
    }
    if (kv->type == GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
        return true;
    }
    *st = g8_fail(GEMMA8_ERR_FORMAT, "metadata '%s' is not a float", key);
    return false;
}

bool g8_gguf_get_bool(const gguf_file *f, const char *key, bool *out, gemma8_status *st) {
    const gguf_kv *kv = typed_kv(f, key, st);
    if (!kv) return false;
    if (kv->type != GGUF_BOOL) {
        *st = g8_fail(GEMMA8_ERR_FORMAT, "metadata '%s' is not a bool", key);
        return false;
    }
    *out = kv->data[0] != 0;
    return true;
}

bool g8_gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, gemma8_status *st) {
    const gguf_kv *kv = typed_kv(f, key, st);
    if (!kv) return false;
    if (kv->type != GGUF_STRING) {
        *st = g8_fail(GEMMA8_ERR_FORMAT, "metadata '%s' is not a string", key);
        return false;
    }
    *out = kv->strs[0];
    return true;
}

/* ---- writer ------------------------------------------------------------- */

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
} wtensor;

struct gguf_writer {
    g8_sbuf kv;        /* serialized key/value pairs (bytes; the buffer's NUL is not written) */
    uint64_t n_kv;
    wtensor *t;
    size_t n_t, cap_t;
    bool oom;
};

gguf_writer *g8_gguf_writer_new(void) { return g8_calloc(1, sizeof(gguf_writer), "GGUF writer"); }

void g8_gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv.p);
    free(w);
}

static void put(gguf_writer *w, const void *p, size_t n) { g8_sb_put(&w->kv, p, n); }

static void put_str(gguf_writer *w, const char *s) {
    uint64_t n = strlen(s);
    put(w, &n, 8);
    put(w, s, n);
}

static void put_key(gguf_writer *w, const char *key, uint32_t type) {
    put_str(w, key);
    put(w, &type, 4);
    w->n_kv++;
}

void g8_gguf_set_str(gguf_writer *w, const char *key, const char *val) {
    put_key(w, key, GGUF_STRING);
    put_str(w, val);
}
void g8_gguf_set_u32(gguf_writer *w, const char *key, uint32_t val) {
    put_key(w, key, GGUF_UINT32);
    put(w, &val, 4);
}
void g8_gguf_set_f32(gguf_writer *w, const char *key, float val) {
    put_key(w, key, GGUF_FLOAT32);
    put(w, &val, 4);
}
void g8_gguf_set_bool(gguf_writer *w, const char *key, bool val) {
    uint8_t b = val;
    put_key(w, key, GGUF_BOOL);
    put(w, &b, 1);
}
void g8_gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *vals, uint64_t n) {
    uint32_t t = GGUF_STRING;
    put_key(w, key, GGUF_ARRAY);
    put(w, &t, 4);
    put(w, &n, 8);
    for (uint64_t i = 0; i < n; i++) put_str(w, vals[i]);
}
void g8_gguf_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *vals, uint64_t n) {
    put_key(w, key, GGUF_ARRAY);
    put(w, &elem_type, 4);
    put(w, &n, 8);
    put(w, vals, vtype_size(elem_type) * n);
}

void g8_gguf_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    put_key(w, kv->key, kv->type);
    if (kv->type == GGUF_STRING) {
        put(w, &kv->strs[0].len, 8);
        put(w, kv->strs[0].p, kv->strs[0].len);
    } else if (kv->type == GGUF_ARRAY) {
        put(w, &kv->arr_type, 4);
        put(w, &kv->n, 8);
        if (kv->arr_type == GGUF_STRING) {
            for (uint64_t i = 0; i < kv->n; i++) {
                put(w, &kv->strs[i].len, 8);
                put(w, kv->strs[i].p, kv->strs[i].len);
            }
        } else {
            put(w, kv->data, vtype_size(kv->arr_type) * kv->n);
        }
    } else {
        put(w, kv->data, vtype_size(kv->type));
    }
}

size_t g8_gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne) {
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt) {
            w->oom = true;
            return 0;
        }
        w->t = nt;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) w->oom = true;
    t->type = type;
    t->n_dims = n_dims;
    uint64_t rows = 1;
    for (int i = 0; i < GGUF_MAX_DIMS; i++) t->ne[i] = i < (int)n_dims ? ne[i] : 1;
    for (int i = 1; i < GGUF_MAX_DIMS; i++) rows *= (uint64_t)t->ne[i];
    t->nbytes = g8_gguf_row_size(type, t->ne[0]) * rows;
    return w->n_t++;
}

static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT];

gemma8_status g8_gguf_write(gguf_writer *w, const char *path, gguf_fill_fn fill, void *user,
                         gemma8_progress_fn progress, void *progress_user) {
    if (w->oom || w->kv.oom) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory building the GGUF header of '%s'", path);
    uint64_t off = 0, max_bytes = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        if (!w->t[i].nbytes)
            return g8_fail(GEMMA8_ERR_INVALID_ARG, "tensor '%s': row of %lld is not valid for type %s", w->t[i].name,
                           (long long)w->t[i].ne[0], gemma8_type_name(w->t[i].type));
        w->t[i].offset = off;
        off += (w->t[i].nbytes + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT;
        if (w->t[i].nbytes > max_bytes) max_bytes = w->t[i].nbytes;
    }
    g8_atomic_file af;
    gemma8_status st = g8_atomic_open(path, &af);
    if (st) return st;
    uint8_t *buf = g8_malloc(max_bytes, "a tensor being written");
    if (!buf) {
        g8_atomic_abort(&af);
        return GEMMA8_ERR_NOMEM;
    }
    uint32_t version = 3;
    uint64_t nt = w->n_t;
    uint64_t pos = 0;
#define W(p, n) do { if ((st = g8_atomic_write(&af, (p), (n)))) goto fail; pos += (n); } while (0)
    W("GGUF", 4);
    W(&version, 4);
    W(&nt, 8);
    W(&w->n_kv, 8);
    W(w->kv.p, w->kv.n);
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t n = strlen(t->name), d;
        W(&n, 8);
        W(t->name, n);
        W(&t->n_dims, 4);
        for (uint32_t k = 0; k < t->n_dims; k++) {
            d = (uint64_t)t->ne[k];
            W(&d, 8);
        }
        W(&t->type, 4);
        W(&t->offset, 8);
    }
    W(zeros, (GGUF_DEFAULT_ALIGNMENT - pos % GGUF_DEFAULT_ALIGNMENT) % GGUF_DEFAULT_ALIGNMENT);
    const uint64_t total = pos + off;
    for (size_t i = 0; i < w->n_t; i++) {
        if ((st = fill(user, i, buf, w->t[i].nbytes))) goto fail;
        /* in chunks, so that progress (and a cancel) comes at least every 64 MiB */
        for (uint64_t done = 0; done < w->t[i].nbytes;) {
            const uint64_t n = G8_MIN(w->t[i].nbytes - done, (uint64_t)64 << 20);
            W(buf + done, n);
            done += n;
            if (progress && !progress(w->t[i].name, pos, total, progress_user)) {
                st = g8_fail(GEMMA8_ERR_ABORTED, "writing '%s' was cancelled", path);
                goto fail;
            }
        }
        W(zeros, (GGUF_DEFAULT_ALIGNMENT - pos % GGUF_DEFAULT_ALIGNMENT) % GGUF_DEFAULT_ALIGNMENT);
    }
#undef W
    free(buf);
    return g8_atomic_commit(&af);
fail:
    free(buf);
    g8_atomic_abort(&af);
    return st;
}
