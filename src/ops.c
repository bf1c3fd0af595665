/* ops.c - the operations of the forward pass. */
#include "ops.h"

#include <limits.h>
#include <math.h>
#include <string.h>

void g8_matrix_row(const g8_matrix *W, int64_t r, float *out) {
    if (!W->packed) {
        g8_to_f32(W->type, (const uint8_t *)W->data + (size_t)r * W->row_bytes, out, W->cols);
        return;
    }
    const int64_t nb = W->cols / QK8_0, i = r % G8_PACK_ROWS;
    const size_t gbytes = g8_packed_bytes(W->type, G8_PACK_ROWS, W->cols);
    const uint8_t *group = (const uint8_t *)W->packed + (size_t)(r / G8_PACK_ROWS) * gbytes;
    for (int64_t b = 0; b < nb; b++) {
        float *o = out + b * QK8_0;
        if (W->type == GEMMA8_TYPE_Q4_0) {
            const float scale = g8_f16_to_f32(g8_pack4_scales(group, b)[i]);
            for (int j = 0; j < QK4_0; j++)
                o[j] = (g8_pack4_quant(g8_pack4_quants(group, b), (int)i, j) - 8) * scale;
        } else if (W->type == GEMMA8_TYPE_Q6_K) {
            const float d = g8_f16_to_f32(g8_pack6_d(group, b)[i]);
            const int8_t *sc = g8_pack6_sc(group, b);
            const uint8_t *q = g8_pack6_quants(group, b);
            for (int j = 0; j < QK8_0; j++)
                o[j] = d * sc[(j / 16) * G8_PACK_ROWS + i] * (q[g8_pack_at((int)i, j)] - 32);
        } else {
            const float scale = g8_f16_to_f32(g8_pack_scales(group, b)[i]);
            const int8_t *q = g8_pack_quants(group, b);
            for (int j = 0; j < QK8_0; j++) o[j] = scale * q[g8_pack_at((int)i, j)];
        }
    }
}

typedef struct matmul_task {
    const g8_ops *ops;
    const g8_matrix *const *W; /* n matrices of the same input width */
    float *const *y;
    int n;
    const float *x;
    int T;
    int64_t unit;       /* rows per unit of work shared out (g8_pool_share): a group, or a row */
    int64_t step;       /* units a thread takes at a time */
    int streams;        /* shares a thread owns (g8_pool_share) */
} matmul_task;

/* The next rows [r0, r1) of matrix *i this thread takes (the matrices' units laid end to end; a
 * piece stops at the end of a matrix, the rest of its units come back in the next call). */
static bool next_rows(matmul_task *mt, int ith, int stream, int *i, int64_t *r0, int64_t *r1, int64_t *u0,
                      int64_t *u1) {
    if (*u0 >= *u1 && !g8_pool_take(mt->ops->pool, ith, stream, mt->step, u0, u1)) return false;
    int64_t base = 0;
    for (*i = 0; *i < mt->n; (*i)++) {
        const int64_t rows = mt->W[*i]->rows, units = (rows + mt->unit - 1) / mt->unit;
        if (*u0 < base + units) {
            const int64_t end = G8_MIN(*u1, base + units);
            *r0 = (*u0 - base) * mt->unit;
            *r1 = G8_MIN(rows, (end - base) * mt->unit);
            *u0 = end;
            return true;
        }
        base += units;
    }
    return false;
}

static void matmul_float_task(void *arg, int ith, int nth) {
    matmul_task *mt = arg;
    const g8_kernels *k = mt->ops->k;
    int64_t r0, r1, u0 = 0, u1 = 0;
    int m;
    (void)nth;
    while (next_rows(mt, ith, 0, &m, &r0, &r1, &u0, &u1))
    for (int64_t r = r0; r < r1; r++) {
        const g8_matrix *W = mt->W[m];
        const int n = (int)W->cols;
        const void *row = (const uint8_t *)W->data + (size_t)r * W->row_bytes;
        for (int t = 0; t < mt->T; t++) {
            const float *x = mt->x + (size_t)t * n;
            float s;
            switch (W->type) {
            case GEMMA8_TYPE_F32: s = k->dot_f32(n, row, x); break;
            case GEMMA8_TYPE_F16: s = k->dot_f16(n, row, x); break;
            default: s = k->dot_bf16(n, row, x); break;
            }
            mt->y[m][(size_t)t * W->rows + r] = s;
        }
    }
}

/* the activations as Q8_0, and -128 times each block's sum of quants (for
 * Q6_K, -32 times the sums of its halves, after the first qbuf_blocks) */
static void quantize_task(void *arg, int ith, int nth) {
    const matmul_task *mt = arg;
    int64_t t0, t1;
    g8_split(mt->T, ith, nth, 1, &t0, &t1);
    const int64_t n = mt->W[0]->cols, nb = n / QK8_0;
    bool q6 = false;
    for (int i = 0; i < mt->n; i++) q6 |= mt->W[i]->type == GEMMA8_TYPE_Q6_K;
    int32_t *halves = mt->ops->qsum + mt->ops->qbuf_blocks;
    for (int64_t t = t0; t < t1; t++) {
        block_q8_0 *q = mt->ops->qbuf + t * nb;
        mt->ops->k->quantize_q8_0(mt->x + t * n, q, (int)n);
        for (int64_t b = 0; b < nb; b++) {
            int32_t lo = 0, hi = 0;
            for (int j = 0; j < QK8_0 / 2; j++) lo += q[b].qs[j], hi += q[b].qs[j + QK8_0 / 2];
            mt->ops->qsum[t * nb + b] = -128 * (lo + hi);
            if (!q6) continue;
            halves[2 * (t * nb + b)] = -32 * lo;
            halves[2 * (t * nb + b) + 1] = -32 * hi;
        }
    }
}

/* Groups of rows per block sized so that a block's packed weights stay in L2
 * (about 96 KiB) while every G8_GEMM_T tokens go over them: the weights come
 * from memory once per block, the activations from L2/L3 once per block. */
enum { MATMUL_BLOCK_BYTES = 96 * 1024 };

/* Rows [r0, r1) of matrix W (packed) for every token. */
static void matmul_quant_rows(const matmul_task *mt, const g8_matrix *W, float *y, int64_t r0, int64_t r1) {
    const g8_kernels *k = mt->ops->k;
    const int nb = (int)(W->cols / QK8_0), T = mt->T;
    const size_t gbytes = g8_packed_bytes(W->type, G8_PACK_ROWS, W->cols), ldy = (size_t)W->rows;
    const uint8_t *packed = W->packed;
    const block_q8_0 *x = mt->ops->qbuf;
    const bool q6 = W->type == GEMMA8_TYPE_Q6_K;
    const int32_t *xsum = q6 ? mt->ops->qsum + mt->ops->qbuf_blocks : mt->ops->qsum;
    const int per = q6 ? 2 : 1; /* xsum entries per block */
    const g8_gemm_q8_0_fn gemm = q6 ? k->gemm_q6_k : W->type == GEMMA8_TYPE_Q4_0 ? k->gemm_q4_0 : k->gemm_q8_0;
    const int64_t blk = G8_MAX(1, (int64_t)(MATMUL_BLOCK_BYTES / gbytes)) * G8_PACK_ROWS;
    float last[G8_GEMM_T * G8_PACK_ROWS]; /* the results of a group that passes the last row */
    for (int64_t rb = r0; rb < r1; rb += blk) {
        const int64_t re = G8_MIN(r1, rb + blk);
        for (int t = 0; t < T; t += G8_GEMM_T) {
            const int tn = G8_MIN(G8_GEMM_T, T - t);
            const block_q8_0 *xt = x + (size_t)t * nb;
            const int32_t *st = xsum + (size_t)t * nb * per;
            for (int64_t r = rb; r < re; r += G8_PACK_ROWS) {
                const void *group = packed + (size_t)(r / G8_PACK_ROWS) * gbytes;
                if (r + G8_PACK_ROWS <= W->rows) {
                    gemm(nb, group, xt, st, tn, y + (size_t)t * ldy + r, ldy);
                    continue;
                }
                gemm(nb, group, xt, st, tn, last, G8_PACK_ROWS);
                for (int i = 0; i < tn; i++)
                    memcpy(y + (size_t)(t + i) * ldy + r, last + i * G8_PACK_ROWS,
                           (size_t)(W->rows - r) * sizeof(float));
            }
        }
    }
}

static void matmul_quant_task(void *arg, int ith, int nth) {
    matmul_task *mt = arg;
    int64_t r0, r1, u0 = 0, u1 = 0;
    int m;
    (void)nth;
    while (next_rows(mt, ith, 0, &m, &r0, &r1, &u0, &u1)) matmul_quant_rows(mt, mt->W[m], mt->y[m], r0, r1);
}

/* Where a stream of the work is: rows [r0, r1) of matrix m, then its units [u0, u1) */
typedef struct stream {
    int m;
    int64_t r0, r1, u0, u1;
    bool live;
} stream;

static void stream_next(matmul_task *mt, int ith, int k, stream *s) {
    s->live = next_rows(mt, ith, k, &s->m, &s->r0, &s->r1, &s->u0, &s->u1);
}

/* How many groups at once the table's GEMV for T tokens over a type takes (1 if it has none of
 * several), and the GEMV: *one for one token, *few for a few */
static int gemv_of(const g8_kernels *k, uint32_t type, int T, g8_gemv_fn *one, g8_gemv_few_fn *few) {
    const bool q4 = type == GEMMA8_TYPE_Q4_0, q8 = type == GEMMA8_TYPE_Q8_0;
    *one = NULL;
    *few = NULL;
    if (T == 1) {
        *one = q4 ? k->gemv_q4_0 : q8 ? k->gemv_q8_0 : NULL;
        const int n = q4 ? k->q4_groups : q8 ? k->q8_groups : 1;
        return *one && n > 1 ? n : 1;
    }
    if (T > k->few_tokens) return 1;
    *few = q4 ? k->gemv_few_q4_0 : q8 ? k->gemv_few_q8_0 : NULL;
    return *few && k->few_groups > 1 ? k->few_groups : 1;
}

/* One token (or a few) over Q4_0 or Q8_0 matrices (all of one type), the thread's shares side by
 * side: a group of each at a time through the table's GEMV, so that streams far apart keep more of
 * memory busy than one (a thread reading one stream gets 60-85% of what the memory gives, four
 * 90-98%: docs/performance.md). Each broadcast of the activations serves every group. A partial
 * group (past the last row) goes by itself. */
static void matmul_streams_task(void *arg, int ith, int nth) {
    matmul_task *mt = arg;
    g8_gemv_fn one;
    g8_gemv_few_fn few;
    gemv_of(mt->ops->k, mt->W[0]->type, mt->T, &one, &few);
    const int nb = (int)(mt->W[0]->cols / QK8_0);
    const size_t gbytes = g8_packed_bytes(mt->W[0]->type, G8_PACK_ROWS, mt->W[0]->cols);
    stream s[G8_POOL_STREAMS];
    (void)nth;
    for (int i = 0; i < mt->streams; i++) {
        s[i] = (stream){0};
        stream_next(mt, ith, i, &s[i]);
    }
    for (;;) {
        const void *g[G8_POOL_STREAMS];
        float *y[G8_POOL_STREAMS];
        size_t ldy[G8_POOL_STREAMS];
        int n = 0, live = 0;
        for (int i = 0; i < mt->streams; i++) {
            if (!s[i].live) continue;
            live++;
            const int64_t end = G8_MIN(s[i].r1, s[i].r0 + G8_PACK_ROWS);
            if (end - s[i].r0 == G8_PACK_ROWS) {
                g[n] = (const uint8_t *)mt->W[s[i].m]->packed + (size_t)(s[i].r0 / G8_PACK_ROWS) * gbytes;
                ldy[n] = (size_t)mt->W[s[i].m]->rows;
                y[n++] = mt->y[s[i].m] + s[i].r0;
            } else {
                matmul_quant_rows(mt, mt->W[s[i].m], mt->y[s[i].m], s[i].r0, end);
            }
            s[i].r0 = end;
            if (s[i].r0 >= s[i].r1) stream_next(mt, ith, i, &s[i]);
        }
        if (!live) break;
        if (n && one) one(n, nb, g, mt->ops->qbuf, mt->ops->qsum, y);
        if (n && few) few(n, nb, g, mt->ops->qbuf, mt->ops->qsum, mt->T, y, ldy);
    }
}

void g8_matmul_n(g8_ops *ops, const g8_matrix *const *W, float *const *y, int n, const float *x, int T) {
    bool packed = W[0]->packed != NULL;
    for (int i = 1; i < n; i++)
        if ((W[i]->packed != NULL) != packed || W[i]->cols != W[0]->cols) { /* one at a time */
            for (int j = 0; j < n; j++) g8_matmul_n(ops, W + j, y + j, 1, x, T);
            return;
        }
    /* Each thread streams a contiguous share of the rows and then helps with the others' (threadpool.h):
     * a chunk handed out anywhere is a new stream for the hardware prefetcher to find, which cost
     * decode ~15% on the small matrices (q/k/v, o) with 16 chunks a thread. A step is 4 groups (a
     * few tokens, from memory) or the rows of one L2 block (prefill, see matmul_quant_rows). */
    const int64_t unit = packed ? G8_PACK_ROWS : 1;
    int64_t units = 0;
    for (int i = 0; i < n; i++) units += (W[i]->rows + unit - 1) / unit;
    const size_t gbytes = packed ? g8_packed_bytes(W[0]->type, G8_PACK_ROWS, W[0]->cols) : 0;
    const int64_t step = !packed ? 64 : T <= 4 ? 4 : G8_MAX(1, (int64_t)(MATMUL_BLOCK_BYTES / gbytes));
    matmul_task mt = {.ops = ops, .W = W, .y = y, .n = n, .x = x, .T = T, .unit = unit, .step = step};
    int groups = 1; /* one token (or a few) over matrices of one type that has a GEMV of several groups */
    if (packed) {
        g8_gemv_fn one;
        g8_gemv_few_fn few;
        groups = gemv_of(ops->k, W[0]->type, T, &one, &few);
        for (int i = 1; i < n; i++) groups = W[i]->type == W[0]->type ? groups : 1;
    }
    mt.streams = G8_MIN(groups, G8_POOL_STREAMS);
    g8_pool_share(ops->pool, units, mt.streams);
    if (packed) { /* Q8_0, Q4_0, Q6_K: int8 activations, quantized once for the n matrices */
        if (T == 1) /* one token's row: on the caller (rows are what the threads share) */
            quantize_task(&mt, 0, 1);
        else /* a round trip of the pool is ~0.4 us (workers spin between runs); a row ~0.8 us (2304) */
            g8_pool_run(ops->pool, quantize_task, &mt);
        g8_pool_run(ops->pool, mt.streams > 1 ? matmul_streams_task : matmul_quant_task, &mt);
    } else {
        g8_pool_run(ops->pool, matmul_float_task, &mt);
    }
}

void g8_matmul(g8_ops *ops, const g8_matrix *W, const float *x, int T, float *y) {
    g8_matmul_n(ops, &W, &y, 1, x, T);
}

/* Rows [t0, t1): each row's sum of squares in double, as four sums of every fourth element (each element
 * after element; the squares are exact in double, the sums are within ~1e-16 of exact, so the float scale
 * rounds as the reference's), added as (s0 + s1) + (s2 + s3): four chains of adds keep the unit busy
 * (one chain over 2304 elements took 14 us, these 1.7), and the bits of a row depend on its length only. */
static void rmsnorm_rows(float *out, const float *x, const float *w, int64_t t0, int64_t t1, int n, float eps) {
    for (int64_t t = t0; t < t1; t++) {
        const float *xt = x + (size_t)t * n;
        double s[4] = {0, 0, 0, 0};
        int i = 0;
        for (; i + 4 <= n; i += 4)
            for (int j = 0; j < 4; j++) s[j] += (double)xt[i + j] * xt[i + j];
        for (; i < n; i++) s[0] += (double)xt[i] * xt[i];
        const double ss = (s[0] + s[1]) + (s[2] + s[3]);
        const float scale = 1.0f / sqrtf((float)(ss / n) + eps);
        float *ot = out + (size_t)t * n;
        for (i = 0; i < n; i++) ot[i] = (xt[i] * scale) * w[i];
    }
}

typedef struct rmsnorm_task {
    float *out;
    const float *x, *w;
    int T, n;
    float eps;
} rmsnorm_task;

static void rmsnorm_task_fn(void *arg, int ith, int nth) {
    const rmsnorm_task *rt = arg;
    int64_t t0, t1;
    g8_split(rt->T, ith, nth, 1, &t0, &t1);
    rmsnorm_rows(rt->out, rt->x, rt->w, t0, t1, rt->n, rt->eps);
}

/* Rows shared out among the threads; one row, or a few short ones (a decoded token's heads, under
 * ~1.5 us: the pool's round trip is ~0.4), on the caller. */
void g8_rmsnorm(g8_ops *ops, float *out, const float *x, const float *w, int T, int n, float eps) {
    if (T == 1 || (int64_t)T * n < 4096) {
        rmsnorm_rows(out, x, w, 0, T, n, eps);
        return;
    }
    rmsnorm_task rt = {out, x, w, T, n, eps};
    g8_pool_run(ops->pool, rmsnorm_task_fn, &rt);
}

void g8_rope_angles(float *cs, int T, int half, const int32_t *pos, const float *inv_freq) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            const float angle = (float)pos[t] * inv_freq[i];
            cs[(size_t)t * 2 * half + i] = cosf(angle);
            cs[(size_t)t * 2 * half + half + i] = sinf(angle);
        }
}

void g8_rope(float *x, int T, int n_head, int head_dim, const float *cs) {
    const int half = head_dim / 2;
    for (int t = 0; t < T; t++) {
        const float *c = cs + (size_t)t * 2 * half, *s = c + half;
        for (int h = 0; h < n_head; h++) {
            float *v = x + ((size_t)t * n_head + h) * head_dim;
            for (int i = 0; i < half; i++) {
                const float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    }
}

/* Row-wise steps over T rows of n elements: each thread takes the same share [i0, i1) of every row,
 * cut at multiples of 64, so that a vector kernel meets every element at the place in its row it meets
 * it in one call over the whole row (the tail past the last full vector stays the row's tail): the
 * bits of a row are its own, whatever T and the number of threads, in one round trip of the pool. */
typedef struct rows_task {
    float *x;
    const float *u;
    int T;
    size_t n;
    float cap;
    const g8_kernels *k;
} rows_task;

static void geglu_task_fn(void *arg, int ith, int nth) {
    const rows_task *rt = arg;
    int64_t i0, i1;
    g8_split((int64_t)rt->n, ith, nth, 64, &i0, &i1);
    for (int t = 0; t < rt->T && i1 > i0; t++)
        rt->k->geglu((int)(i1 - i0), rt->x + (size_t)t * rt->n + i0, rt->u + (size_t)t * rt->n + i0);
}

void g8_geglu(g8_ops *ops, float *g, const float *u, int T, size_t n) {
    rows_task rt = {.x = g, .u = u, .T = T, .n = n, .k = ops->k};
    g8_pool_run(ops->pool, geglu_task_fn, &rt);
}

static void softcap_task_fn(void *arg, int ith, int nth) {
    const rows_task *rt = arg;
    int64_t i0, i1;
    g8_split((int64_t)rt->n, ith, nth, 64, &i0, &i1);
    for (int t = 0; t < rt->T; t++)
        for (int64_t i = i0; i < i1; i += 1 << 30) /* the kernel counts in int; 2^30 is a multiple of 64 */
            rt->k->softcap((int)G8_MIN(i1 - i, 1 << 30), rt->x + (size_t)t * rt->n + i, 1.0f, rt->cap);
}

void g8_softcap(g8_ops *ops, float *x, int T, size_t n, float cap) {
    if (cap == 0) return;
    rows_task rt = {.x = x, .T = T, .n = n, .cap = cap, .k = ops->k};
    g8_pool_run(ops->pool, softcap_task_fn, &rt);
}

/* the table's axpy with a = 1: fma(1, y, x) rounds x + y once, as the add does, in vectors */
void g8_add(g8_ops *ops, float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i += 1u << 30)
        ops->k->axpy((int)G8_MIN(n - i, (size_t)1 << 30), 1.0f, y + i, x + i);
}

typedef struct attn_task {
    const g8_attn_args *a;
    const g8_kernels *k;
} attn_task;

/* Queries are taken ATTN_QTILE at a time, keys and values ATTN_KBLOCK at a
 * time: a block of one head's keys (128 KiB at head_dim 256, f16) stays in L2
 * while every query of the tile uses it, so a long prompt reads the cache once
 * per tile rather than once per query. */
enum { ATTN_QTILE = 8, ATTN_KBLOCK = 256 };

/* floats of a tile's queries as Q8_0 blocks (for a Q8_0 cache) */
static size_t qq_floats(int group, int head_dim) {
    return ((size_t)ATTN_QTILE * (size_t)group * (size_t)(head_dim / QK8_0) * sizeof(block_q8_0) + sizeof(float) - 1) /
           sizeof(float);
}

size_t g8_attention_scratch(int n_head, int n_head_kv, int head_dim, int max_keys) {
    const int group = n_head / n_head_kv;
    return qq_floats(group, head_dim) + (size_t)ATTN_QTILE * (size_t)group * (size_t)max_keys;
}

/* the rows of head g from ring slot `slot` on, in the cache k_cache or v_cache */
static const void *kv_rows(const g8_attn_args *a, const void *cache, int g, int slot) {
    return (const uint8_t *)cache + g8_kv_offset(a->kv_type, a->head_dim, a->slots, g, slot);
}

/* scores s[h * ls + (j - j0)] of the group's heads against keys j0..j1 of head g
 * (q: the group's queries, qq: the same as Q8_0 blocks for a Q8_0 cache) */
static void scores(const g8_attn_args *a, const g8_kernels *k, int g, int j0, int j1, const float *q,
                   const block_q8_0 *qq, float *s, size_t ls) {
    const int hd = a->head_dim, group = a->n_head / a->n_head_kv;
    for (int j = j0; j <= j1;) { /* the ring holds consecutive positions in at most two runs of slots */
        const int slot = j % a->slots, run = G8_MIN(j1 - j + 1, a->slots - slot);
        const void *rows = kv_rows(a, a->k_cache, g, slot);
        if (a->kv_type == GEMMA8_TYPE_Q8_0) {
            k->qk_q8_0(run, rows, hd / QK8_0, qq, group, s + (j - j0), ls);
        } else if (a->kv_type == GEMMA8_TYPE_F16) {
            k->qk_f16(run, rows, hd, q, group, s + (j - j0), ls);
        } else {
            const float *kr = rows;
            for (int i = 0; i < run; i++)
                for (int h = 0; h < group; h++) s[h * ls + (size_t)(j - j0 + i)] = k->dot_f32(hd, kr + (size_t)i * hd, q + (size_t)h * hd);
        }
        j += run;
    }
}

/* o[h * head_dim ..] += sum over values j0..j1 of head g weighted by w[h * lw + (j - j0)], for the
 * `group` query heads from w and o on (a group's, or one of them: the same sums) */
static void values(const g8_attn_args *a, const g8_kernels *k, int g, int group, int j0, int j1, const float *w,
                   size_t lw, float *o) {
    const int hd = a->head_dim;
    for (int j = j0; j <= j1;) {
        const int slot = j % a->slots, run = G8_MIN(j1 - j + 1, a->slots - slot);
        const void *rows = kv_rows(a, a->v_cache, g, slot);
        if (a->kv_type == GEMMA8_TYPE_Q8_0) {
            k->wsum_q8_0(run, w + (j - j0), lw, rows, hd, group, o);
        } else if (a->kv_type == GEMMA8_TYPE_F16) {
            k->wsum_f16(run, w + (j - j0), lw, rows, hd, group, o);
        } else {
            const float *vr = rows;
            for (int i = 0; i < run; i++)
                for (int h = 0; h < group; h++)
                    k->axpy(hd, w[h * lw + (size_t)(j - j0 + i)], vr + (size_t)i * hd, o + (size_t)h * hd);
        }
        j += run;
    }
}

/* A row of n scores: scaled, soft-capped, softmax (two passes, exact). */
static void softmax_row(const g8_attn_args *a, const g8_kernels *k, float *s, int n) {
    const float maxv = k->softcap(n, s, a->scale, a->softcap);
    const float inv = 1.0f / k->exp_sum(n, s, maxv);
    for (int j = 0; j < n; j++) s[j] *= inv;
}

/* One task is a tile of queries and one KV head with all the query heads that
 * share it (GQA): scores of every query, soft-cap and softmax per row (two
 * passes, exact), then the weighted sum of the values. */
static void attention_task(void *arg, int ith, int nth) {
    const g8_attn_args *a = ((const attn_task *)arg)->a;
    const g8_kernels *k = ((const attn_task *)arg)->k;
    const int hd = a->head_dim, group = a->n_head / a->n_head_kv;
    const size_t q_stride = (size_t)a->n_head * hd;
    block_q8_0 *qq = (block_q8_0 *)(a->scratch + (size_t)ith * a->scratch_len); /* (tile, group, hd / 32) */
    float *scratch = a->scratch + (size_t)ith * a->scratch_len + qq_floats(group, hd);
    const int nb = hd / QK8_0;
    const int n_tiles = (a->T + ATTN_QTILE - 1) / ATTN_QTILE;
    for (int task = ith; task < n_tiles * a->n_head_kv; task += nth) {
        const int t0 = task / a->n_head_kv * ATTN_QTILE, g = task % a->n_head_kv, nt = G8_MIN(ATTN_QTILE, a->T - t0);
        int lo[ATTN_QTILE], hi[ATTN_QTILE], first = INT_MAX, last = -1;
        float *sc[ATTN_QTILE]; /* (group, hi - lo + 1) scores of query i */
        size_t used = 0;
        for (int i = 0; i < nt; i++) {
            hi[i] = a->pos[t0 + i];
            lo[i] = a->window ? G8_MAX(0, hi[i] - a->window + 1) : 0;
            first = G8_MIN(first, lo[i]), last = G8_MAX(last, hi[i]);
            sc[i] = scratch + used;
            used += (size_t)group * (size_t)(hi[i] - lo[i] + 1);
            if (a->kv_type == GEMMA8_TYPE_Q8_0) /* q.k in int8, like the matrix products */
                k->quantize_q8_0(a->q + (size_t)(t0 + i) * q_stride + (size_t)g * group * hd, qq + (size_t)i * group * nb,
                                 group * hd);
        }
        for (int j0 = first; j0 <= last; j0 += ATTN_KBLOCK) {
            const int j1 = G8_MIN(j0 + ATTN_KBLOCK - 1, last);
            for (int i = 0; i < nt; i++) {
                const int a0 = G8_MAX(j0, lo[i]), a1 = G8_MIN(j1, hi[i]);
                if (a0 > a1) continue;
                const float *q = a->q + (size_t)(t0 + i) * q_stride + (size_t)g * group * hd;
                scores(a, k, g, a0, a1, q, qq + (size_t)i * group * nb, sc[i] + (a0 - lo[i]), (size_t)(hi[i] - lo[i] + 1));
            }
        }
        for (int i = 0; i < nt; i++) {
            const int n = hi[i] - lo[i] + 1;
            for (int h = 0; h < group; h++) softmax_row(a, k, sc[i] + (size_t)h * n, n);
            memset(a->out + (size_t)(t0 + i) * q_stride + (size_t)g * group * hd, 0, (size_t)group * hd * sizeof(float));
        }
        for (int j0 = first; j0 <= last; j0 += ATTN_KBLOCK) {
            const int j1 = G8_MIN(j0 + ATTN_KBLOCK - 1, last);
            for (int i = 0; i < nt; i++) {
                const int a0 = G8_MAX(j0, lo[i]), a1 = G8_MIN(j1, hi[i]);
                if (a0 > a1) continue;
                float *o = a->out + (size_t)(t0 + i) * q_stride + (size_t)g * group * hd;
                values(a, k, g, group, a0, a1, sc[i] + (a0 - lo[i]), (size_t)(hi[i] - lo[i] + 1), o);
            }
        }
    }
}

/* ---- decode over few KV heads: the work split finer ----
 * With fewer tasks (tiles x KV heads) than threads, e.g. a decoded token of a one-KV-head model,
 * attention_task would leave threads idle while one reads the whole cache. Then the same work runs
 * in three passes over the threads: scores by ranges of ATTN_KBLOCK keys, softmax by rows, weighted
 * sums by query head. Each score, row and output element is computed by the same kernels over the
 * same inputs in the same order as attention_task computes it, so the results are the same bits. */

typedef struct split_task {
    const g8_attn_args *a;
    const g8_kernels *k;
    int n_tasks, nth;        /* tiles x KV heads; the pool's threads */
} split_task;

/* task tk's tile and KV head, its queries' key ranges (and their union [*first, *last]) and score
 * rows (in the scratch of slot tk) */
static int task_rows(const split_task *st, int tk, int *t0, int *g, int lo[ATTN_QTILE], int hi[ATTN_QTILE],
                     float *sc[ATTN_QTILE], int *first, int *last) {
    const g8_attn_args *a = st->a;
    const int group = a->n_head / a->n_head_kv;
    *t0 = tk / a->n_head_kv * ATTN_QTILE;
    *g = tk % a->n_head_kv;
    const int nt = G8_MIN(ATTN_QTILE, a->T - *t0);
    float *scratch = a->scratch + (size_t)tk * a->scratch_len + qq_floats(group, a->head_dim);
    size_t used = 0;
    *first = INT_MAX;
    *last = -1;
    for (int i = 0; i < nt; i++) {
        hi[i] = a->pos[*t0 + i];
        lo[i] = a->window ? G8_MAX(0, hi[i] - a->window + 1) : 0;
        sc[i] = scratch + used;
        used += (size_t)group * (size_t)(hi[i] - lo[i] + 1);
        *first = G8_MIN(*first, lo[i]), *last = G8_MAX(*last, hi[i]);
    }
    return nt;
}

static void split_scores(void *arg, int ith, int nth) {
    const split_task *st = arg;
    const g8_attn_args *a = st->a;
    const int group = a->n_head / a->n_head_kv, hd = a->head_dim, nb = hd / QK8_0;
    block_q8_0 *qq = (block_q8_0 *)(a->scratch + (size_t)ith * a->scratch_len); /* this thread's */
    for (int tk = 0, unit = 0; tk < st->n_tasks; tk++) {
        int t0, g, lo[ATTN_QTILE], hi[ATTN_QTILE], first, last;
        float *sc[ATTN_QTILE];
        const int nt = task_rows(st, tk, &t0, &g, lo, hi, sc, &first, &last);
        bool quantized = false;
        for (int j0 = first; j0 <= last; j0 += ATTN_KBLOCK, unit++) {
            if (unit % nth != ith) continue;
            if (a->kv_type == GEMMA8_TYPE_Q8_0 && !quantized) { /* the tile's queries, once a task */
                for (int i = 0; i < nt; i++)
                    st->k->quantize_q8_0(a->q + (size_t)(t0 + i) * a->n_head * hd + (size_t)g * group * hd,
                                         qq + (size_t)i * group * nb, group * hd);
                quantized = true;
            }
            const int j1 = G8_MIN(j0 + ATTN_KBLOCK - 1, last);
            for (int i = 0; i < nt; i++) {
                const int a0 = G8_MAX(j0, lo[i]), a1 = G8_MIN(j1, hi[i]);
                if (a0 > a1) continue;
                const float *q = a->q + (size_t)(t0 + i) * a->n_head * hd + (size_t)g * group * hd;
                scores(a, st->k, g, a0, a1, q, qq + (size_t)i * group * nb, sc[i] + (a0 - lo[i]),
                       (size_t)(hi[i] - lo[i] + 1));
            }
        }
    }
}

static void split_softmax(void *arg, int ith, int nth) {
    const split_task *st = arg;
    const int group = st->a->n_head / st->a->n_head_kv;
    for (int tk = 0, unit = 0; tk < st->n_tasks; tk++) {
        int t0, g, lo[ATTN_QTILE], hi[ATTN_QTILE], first, last;
        float *sc[ATTN_QTILE];
        const int nt = task_rows(st, tk, &t0, &g, lo, hi, sc, &first, &last);
        for (int i = 0; i < nt; i++)
            for (int h = 0; h < group; h++, unit++)
                if (unit % nth == ith) softmax_row(st->a, st->k, sc[i] + (size_t)h * (hi[i] - lo[i] + 1), hi[i] - lo[i] + 1);
    }
}

/* Weighted sums by runs of query heads: as many heads a run as leave no thread idle (a one-KV-head
 * model's four heads on two threads: two a run), so that each thread reads the values once for its
 * heads, not once a head. A head's sums are the same bits alone or in a run (wsum's heads are apart). */
static void split_values(void *arg, int ith, int nth) {
    const split_task *st = arg;
    const g8_attn_args *a = st->a;
    const int group = a->n_head / a->n_head_kv, hd = a->head_dim;
    const int per = G8_MAX(1, group / nth); /* heads a run */
    for (int tk = 0, unit = 0; tk < st->n_tasks; tk++) {
        int t0, g, lo[ATTN_QTILE], hi[ATTN_QTILE], first, last;
        float *sc[ATTN_QTILE];
        const int nt = task_rows(st, tk, &t0, &g, lo, hi, sc, &first, &last);
        for (int h = 0; h < group; h += per, unit++) {
            if (unit % nth != ith) continue;
            const int nh = G8_MIN(per, group - h);
            for (int i = 0; i < nt; i++)
                memset(a->out + (size_t)(t0 + i) * a->n_head * hd + (size_t)(g * group + h) * hd, 0,
                       (size_t)nh * hd * sizeof(float));
            for (int j0 = first; j0 <= last; j0 += ATTN_KBLOCK) {
                const int j1 = G8_MIN(j0 + ATTN_KBLOCK - 1, last);
                for (int i = 0; i < nt; i++) {
                    const int a0 = G8_MAX(j0, lo[i]), a1 = G8_MIN(j1, hi[i]);
                    if (a0 > a1) continue;
                    const size_t n = (size_t)(hi[i] - lo[i] + 1);
                    float *o = a->out + (size_t)(t0 + i) * a->n_head * hd + (size_t)(g * group + h) * hd;
                    values(a, st->k, g, nh, a0, a1, sc[i] + (size_t)h * n + (a0 - lo[i]), n, o);
                }
            }
        }
    }
}

void g8_attention(g8_ops *ops, const g8_attn_args *a) {
    const int n_tasks = (a->T + ATTN_QTILE - 1) / ATTN_QTILE * a->n_head_kv, nth = g8_pool_size(ops->pool);
    const int keys = a->window ? G8_MIN(a->window, a->pos[a->T - 1] + 1) : a->pos[a->T - 1] + 1;
    if (n_tasks < nth && keys >= 2 * ATTN_KBLOCK) { /* threads would idle: the split passes */
        split_task st = {a, ops->k, n_tasks, nth};
        g8_pool_run(ops->pool, split_scores, &st);
        g8_pool_run(ops->pool, split_softmax, &st);
        g8_pool_run(ops->pool, split_values, &st);
        return;
    }
    attn_task at = {a, ops->k};
    g8_pool_run(ops->pool, attention_task, &at);
}
