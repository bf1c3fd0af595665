/* context.h - the state of one conversation: KV cache, token history, scratch. */
#ifndef G8_CONTEXT_H
#define G8_CONTEXT_H

#include "model.h"
#include "ops.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct g8_kv_layer {
    void *k;           /* (slots, n_head_kv * head_dim) of the context's kv_type */
    void *v;           /* (slots, n_head_kv * head_dim) */
    int slots;         /* ring length: n_ctx, or window + n_batch on sliding layers */
} g8_kv_layer;

struct gemma8_context {
    const gemma8_model *model;
    int n_ctx, n_batch, n_threads;
    int n_past;                 /* tokens in the cache */
    uint32_t kv_type;           /* GEMMA8_TYPE_F32 or GEMMA8_TYPE_F16 */
    g8_ops ops;
    g8_kv_layer *kv;            /* (n_layer) */
    float *inv_freq;            /* (head_dim / 2) RoPE frequencies */
    /* scratch for one chunk of up to n_batch tokens */
    int32_t *pos;               /* (n_batch) */
    float *x;                   /* (n_batch, n_embd) residual stream */
    float *xn;                  /* (n_batch, n_embd) normed input of a block */
    float *q, *k, *v, *att;     /* (n_batch, n_head[_kv] * head_dim) */
    float *proj;                /* (n_batch, n_embd) output of attention / FFN */
    float *gate, *up;           /* (n_batch, n_ff) */
    float *attn_scratch;        /* (n_threads, n_ctx) */
    float *last_logits;         /* (n_vocab) */
    float *last_hidden;         /* (n_embd) final-normed hidden state of the last position */
    int32_t *history;           /* (n_ctx) the tokens in the cache, in order (-1: an embedding) */
    atomic_bool abort;          /* set by gemma8_abort from any thread */
    /* the asynchronous run */
    pthread_t async_thread;
    bool async_running;
    void *async_job;
};

/* The forward pass over T <= n_batch inputs at positions n_past..: token ids,
 * or (tokens NULL) embeddings of n_embd floats each. */
void g8_forward(gemma8_context *ctx, const int32_t *tokens, const float *embd, int T, float *logits_all);

/* Row `pos` of a layer's keys (kv 0) or values (kv 1), as f32 / from f32. */
void g8_kv_get_row(const gemma8_context *ctx, int il, int kv, int32_t pos, float *out);
void g8_kv_set_row(gemma8_context *ctx, int il, int kv, int32_t pos, const float *in);

/* Whether the cache can be cut back to n tokens (sliding-window rings keep
 * only the last positions, so a long cut back needs a new prefill). */
bool g8_kv_can_truncate(const gemma8_context *ctx, int32_t n);


#endif
