/* context.h - a context: the KV cache of its sequences, the scratch of the
 * forward pass, the kernels and threads it runs on. */
#ifndef G8_CONTEXT_H
#define G8_CONTEXT_H

#include "kvcache.h"
#include "lora.h"
#include "model.h"
#include "ops.h"

#include <stdatomic.h>

struct g8_async; /* generate.c: the asynchronous run of a context */

struct gemma8_context {
    const gemma8_model *model;
    int n_ctx;                  /* positions per sequence */
    int n_batch;                /* most tokens in one forward pass */
    int n_threads;
    g8_ops ops;
    g8_kvcache kv;              /* n_seq sequences of n_ctx positions */
    float *inv_freq;            /* (head_dim / 2) RoPE frequencies */
    /* scratch for one chunk of up to n_batch tokens */
    int32_t *pos;               /* (n_batch) */
    float *x;                   /* (n_batch, n_embd) residual stream */
    float *xn;                  /* (n_batch, n_embd) normed input of a block */
    float *q;                   /* (n_batch, n_head * head_dim) */
    float *k, *v;               /* (n_batch, n_head_kv * head_dim) */
    float *att;                 /* (n_batch, n_head * head_dim) */
    float *proj;                /* (n_batch, n_embd) output of attention / FFN */
    float *gate, *up;           /* (n_batch, n_ff) */
    float *attn_scratch;        /* (n_threads, g8_attention_scratch(.., n_ctx)) */
    float *last_logits;         /* (n_vocab) of the last evaluated position */
    float *last_hidden;         /* (n_embd) final-normed hidden state of the last position */
    float *batch_logits;        /* (n_seq, n_vocab) the logits of a batch's runs */
    int32_t *batch_seqs;        /* (n_batch) a batch's entries */
    int32_t *batch_tokens;      /* (n_batch) */
    int32_t *batch_take;        /* (n_seq) tokens of each generation in a batch */
    g8_lora_set *lora;          /* (n_seq) the adapters each sequence applies */
    const g8_lora_set **lora_of; /* (n_batch) a batch entry's set, NULL: none */
    float *lora_u;              /* (n_batch, G8_MAX_LORA, lora_u_cap) A x of one adapted matrix */
    int lora_u_cap;             /* the largest rank any sequence's set has had */
    atomic_bool abort;          /* gemma8_abort; cleared when an eval or a generation starts */
    struct g8_async *async;     /* the asynchronous run, NULL when none */
};

/* A batch for the forward pass: T <= n_batch entries, token ids or (tokens
 * NULL) embeddings of n_embd floats; entry t belongs to sequence seqs[t] (or s
 * for all when seqs is NULL) and a sequence's entries are together: its next
 * tokens in order (a run). */
typedef struct g8_batch {
    int T;
    int s;
    const int32_t *seqs;
    const int32_t *tokens;
    const float *embd;
    float *logits_all;         /* (T, n_vocab) every entry's logits, or NULL */
    float *logits_ends;        /* (runs, n_vocab) the last entry's of each run, or NULL */
    float *hidden_all;         /* (T, n_embd) every entry's final-normed hidden state, or NULL */
} g8_batch;

/* The forward pass (gemma2.c). Without logits_all, logits_ends or hidden_all
 * it computes the logits of the last entry (one run) into ctx->last_logits,
 * which always ends with the last entry's. Returns GEMMA8_ERR_ABORTED (between
 * layers) when ctx->abort is set; the sequences are then as before. */
gemma8_status g8_forward(gemma8_context *ctx, const g8_batch *b);

/* The checks of every public entry that takes tokens: sequence s exists and
 * each of the n ids is in the vocabulary. */
gemma8_status g8_check_input(const gemma8_context *ctx, int32_t s, const int32_t *tokens, int32_t n);

/* gemma8_eval without clearing the abort flag (generation's inner steps). */
gemma8_status g8_eval(gemma8_context *ctx, int s, const int32_t *tokens, const float *embd, int32_t n,
                      float *logits_all, float *hidden_all);

/* generate.c: stops and collects the asynchronous run, if any (gemma8_context_free). */
void g8_async_finish(gemma8_context *ctx);

#endif
