/* model.h - the loaded model (gemma2 or gemma3): hyper-parameters and weights. */
#ifndef G8_MODEL_H
#define G8_MODEL_H

#include "arch.h"
#include "common.h"
#include "gguf.h"
#include "vocab.h"

typedef struct g8_hparams {
    const g8_arch *arch;   /* what the architecture adds (q/k norms) and its defaults */
    int n_vocab;           /* vocabulary size */
    int n_embd;            /* hidden size */
    int n_layer;           /* transformer blocks */
    int n_head;            /* query heads */
    int n_head_kv;         /* key/value heads (GQA groups) */
    int head_dim;          /* size of one head */
    int n_ff;              /* GeGLU intermediate size */
    int n_ctx_train;       /* trained context length */
    int sliding_window;    /* window of the sliding layers (a query at i sees keys j with i - j < window) */
    uint64_t sliding[G8_MAX_LAYER / 64]; /* bit il: layer il attends over the window, else over all */
    float query_scale;     /* query_pre_attn_scalar^-1/2 */
    float query_pre_attn_scalar;
    float attn_softcap;    /* 0: off */
    float final_softcap;   /* 0: off */
    float rms_eps;
    float rope_base;       /* RoPE base of the global layers */
    float rope_base_local; /* RoPE base of the sliding layers */
    float rope_scale;      /* linear RoPE scaling of the global layers (positions / scale); 1: none */
    float rope_scale_local; /* that of the sliding layers */
} g8_hparams;

/* A weight matrix of `rows` rows of `cols` elements, stored row after row;
 * a Q8_0 matrix that is multiplied is also packed for the GEMM (quant.h). */
typedef struct g8_matrix {
    uint32_t type;         /* gemma8_type */
    int64_t rows, cols;
    size_t row_bytes;
    const void *data;      /* in the mapped file */
    void *packed;          /* Q8_0: (rows + 15) / 16 groups of g8_pack_group_bytes(cols / 32) */
} g8_matrix;

typedef struct g8_layer {
    float *attn_norm;          /* (n_embd) 1 + w */
    g8_matrix wq;              /* (n_head * head_dim, n_embd) */
    g8_matrix wk;              /* (n_head_kv * head_dim, n_embd) */
    g8_matrix wv;              /* (n_head_kv * head_dim, n_embd) */
    g8_matrix wo;              /* (n_embd, n_head * head_dim) */
    float *post_attn_norm;     /* (n_embd) */
    float *ffn_norm;           /* (n_embd) */
    g8_matrix w_gate;          /* (n_ff, n_embd) */
    g8_matrix w_up;            /* (n_ff, n_embd) */
    g8_matrix w_down;          /* (n_embd, n_ff) */
    float *post_ffw_norm;      /* (n_embd) */
    float *q_norm;             /* (head_dim) each query head's RMSNorm, or NULL (no q/k norms) */
    float *k_norm;             /* (head_dim) each key head's */
} g8_layer;

struct gemma8_model {
    gguf_file file;
    g8_hparams hp;
    g8_matrix tok_embd;        /* (n_vocab, n_embd), also the tied output (sharing its packing) */
    g8_matrix output;          /* = tok_embd unless the file has output.weight */
    float *output_norm;        /* (n_embd) */
    g8_layer *layers;          /* (n_layer) */
    float *norm_data;          /* one allocation behind all norm vectors */
    void *packed;              /* one allocation behind all packed matrices */
    uint64_t packed_bytes;     /* its size: memory the loaded model holds already (not page cache) */
    g8_vocab vocab;            /* the tokenizer */
    bool has_vocab;            /* false for a file without tokenizer metadata */
    struct g8_vindex *vindex;  /* the vocabulary's trie for grammars, built on first use */
};

/* Bytes the weights take in memory: quantized matrices as packed, the rest as in the file. */
uint64_t g8_model_resident_bytes(const gemma8_model *m);

/* Whether layer il attends over the sliding window (else over every position). */
static inline bool g8_layer_is_sliding(const g8_hparams *hp, int il) { return hp->sliding[il / 64] >> (il % 64) & 1; }

/* The RoPE table of layer il (0: the sliding layers', 1: the global layers'). */
static inline int g8_layer_rope(const g8_hparams *hp, int il) { return g8_layer_is_sliding(hp, il) ? 0 : 1; }

/* Identifies a model: its metadata and tensor table, and a sample of each tensor (the key
 * of prompt-cache files). */
uint64_t g8_model_fingerprint(const gemma8_model *m);

#endif
