/* context.h - a context: the KV cache of its sequences, the scratch of the
 * forward pass, the kernels and threads it runs on. */
#ifndef G8_CONTEXT_H
#define G8_CONTEXT_H

#include "kvcache.h"
#include "lora.h"
#include "model.h"
#include "ops.h"

#include <stdatomic.h>

struct gemma8_context {
    const gemma8_model *model;
    int n_ctx;                  /* positions per sequence (a unified pool's: all sequences together) */
    int n_batch;                /* most tokens in one forward pass */
    int n_threads;
    g8_ops ops;
    g8_kvcache kv;              /* n_seq sequences of n_ctx positions, or sharing a pool of n_ctx */
    float *inv_freq;            /* (2, head_dim / 2) RoPE frequencies: the sliding layers', the global ones' */
    float *rope_cs;             /* (2, n_batch, 2, head_dim / 2) a pass's cos, sin of each entry's angles */
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
    /* the outputs of the last gemma8_decode */
    float *out_logits;          /* (out_logits_cap, n_vocab) rows in entry order */
    float *out_hidden;          /* (out_hidden_cap, n_embd) */
    int32_t out_logits_cap, out_hidden_cap;
    int32_t *out_row;           /* (2, out_entries_cap): entry i's logits row, then its hidden row (-1: none) */
    int32_t out_entries;        /* entries of the last decode */
    int32_t out_entries_cap;
    int32_t *batch_seqs;        /* (n_batch) one step's entries */
    uint8_t *batch_out;         /* (n_batch) */
    int32_t *batch_tokens;      /* (n_batch) */
    int32_t *batch_take;        /* (n_seq) entries of each generation in a step */
    g8_lora_set *lora;          /* (n_seq) the adapters each sequence applies */
    const g8_lora_set **lora_of; /* (n_batch) a batch entry's set, NULL: none */
    float *lora_u;              /* (n_batch, GEMMA8_MAX_LORA, lora_u_cap) A x of one adapted matrix */
    int lora_u_cap;             /* the largest rank any sequence's set has had */
    atomic_bool abort;          /* gemma8_abort; cleared when a decode or a generation starts */
    atomic_bool async_running;  /* a gemma8_generate_async run holds the context */
};

/* One step of the forward pass: T <= n_batch entries, token ids or (tokens
 * NULL) embeddings of n_embd floats; entry t belongs to sequence seqs[t], and
 * a sequence's entries are together: its next inputs in order (a run). Inputs
 * are valid (decode.c checked them). */
typedef struct g8_batch {
    int T;
    const int32_t *seqs;       /* (T) */
    const int32_t *tokens;     /* (T), or NULL */
    const float *embd;         /* (T, n_embd) when tokens is NULL */
    const uint8_t *output;     /* (T) GEMMA8_OUTPUT_* */
    float *logits;             /* (entries with logits, n_vocab), in entry order */
    float *hidden;             /* (entries with a hidden state, n_embd), in entry order */
} g8_batch;

/* The forward pass (forward.c). Returns GEMMA8_ERR_ABORTED (between layers) when
 * ctx->abort is set; the sequences are then as before. */
gemma8_status g8_forward(gemma8_context *ctx, const g8_batch *b);

/* The one door into the forward pass (decode.c): checks the whole batch, then
 * runs it n_batch entries at a time; gemma8_decode is this after clearing the
 * abort flag (generation's inner steps keep it). */
gemma8_status g8_decode(gemma8_context *ctx, const gemma8_batch *b);

/* The checks of every entry point that takes tokens: sequence s exists and
 * each of the n ids is in the vocabulary. */
gemma8_status g8_check_tokens(const gemma8_context *ctx, int32_t s, const int32_t *tokens, int32_t n);

/* gemma8_generate; clear_abort false for the asynchronous run, whose flag was cleared before its
 * thread started (generate.c). */
gemma8_status g8_generate(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                          const gemma8_generate_params *p, bool clear_abort, gemma8_generate_result *res);

#endif
