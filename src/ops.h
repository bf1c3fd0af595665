/* ops.h - the operations of the forward pass, over rows of f32 activations.
 * They call kernels through the table and split work over the thread pool. */
#ifndef G8_OPS_H
#define G8_OPS_H

#include "kernels.h"
#include "kvcache.h"
#include "model.h"
#include "threadpool.h"

typedef struct g8_ops {
    const g8_kernels *k;
    g8_pool *pool;
    block_q8_0 *qbuf;      /* activations quantized for Q8_0 matrices */
    int32_t *qsum;         /* -128 * the sum of each block's quants (kernels.h); after qbuf_blocks
                              of them, for Q6_K, -32 * the sums of each block's halves */
    size_t qbuf_blocks;
} g8_ops;

/* y[t][r] = sum_c W[r][c] * x[t][c] for t < T (x rows W->cols apart, y rows W->rows apart).
 * Every y[t] is bit-identical to a call with token t alone (kernels.h), so
 * tokens of different sequences can share a call. */
void g8_matmul(g8_ops *ops, const g8_matrix *W, const float *x, int T, float *y);

/* The same for n matrices of one input (q, k, v; gate, up): y[i] = W[i] x, the
 * activations quantized once and the rows of all n shared out in one run of the
 * threads. Each y[i] is bit-identical to g8_matmul(W[i]). */
void g8_matmul_n(g8_ops *ops, const g8_matrix *const *W, float *const *y, int n, const float *x, int T);

/* Row r of W (any type) as f32. */
void g8_matrix_row(const g8_matrix *W, int64_t r, float *out);

/* out[t] = x[t] / rms(x[t]) * w, for T rows of n. out may equal x. */
void g8_rmsnorm(g8_ops *ops, float *out, const float *x, const float *w, int T, int n, float eps);

/* Rotary embedding, rotate-half convention, on T rows of n_head heads. */
void g8_rope(float *x, int T, int n_head, int head_dim, const float *cs);

/* cs[t] = the cos, then the sin, of pos[t] * inv_freq[i] for i < half: the angles g8_rope turns T
 * rows by, made once a forward pass for the layers that share the frequencies (sincosf a layer cost
 * a decode step of four sequences of Gemma 2 2B 0.6 ms: ~22 ns a pair, so ~35 ms a 256-token chunk) */
void g8_rope_angles(float *cs, int T, int half, const int32_t *pos, const float *inv_freq);

/* g[i] = gelu_tanh(g[i]) * u[i] on T rows of n; each row's bits its own (not the batch's) */
void g8_geglu(g8_ops *ops, float *g, const float *u, int T, size_t n);

/* x[i] = cap * tanh(x[i] / cap) on T rows of n, each row's bits its own; nothing if cap == 0 */
void g8_softcap(g8_ops *ops, float *x, int T, size_t n, float cap);

/* x[i] += y[i] */
void g8_add(g8_ops *ops, float *x, const float *y, size_t n);

/* Causal attention of T queries over a KV cache kept as a ring of `slots`
 * positions (position j lives in slot j % slots). */
typedef struct g8_attn_args {
    const float *q;        /* (T, n_head * head_dim), RoPE applied */
    const void *k_cache;   /* (n_head_kv, slots, head_dim) of kv_type */
    const void *v_cache;   /* (n_head_kv, slots, head_dim) of kv_type */
    uint32_t kv_type;      /* a KV cache type (kvcache.h) */
    int slots;
    const int32_t *pos;    /* (T) position of each query */
    int T, n_head, n_head_kv, head_dim;
    int window;            /* keys with pos - j < window; 0: all */
    float scale;           /* applied to q.k */
    float softcap;         /* 0: off */
    float *out;            /* (T, n_head * head_dim) */
    float *scratch;        /* (n_threads, scratch_len) */
    size_t scratch_len;    /* g8_attention_scratch(n_head, n_head_kv, head_dim, the most keys one query sees) */
} g8_attn_args;

void g8_attention(g8_ops *ops, const g8_attn_args *a);
/* floats of scratch one thread needs */
size_t g8_attention_scratch(int n_head, int n_head_kv, int head_dim, int max_keys);

#endif
