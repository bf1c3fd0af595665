/* lora.h - LoRA adapters: loaded from a llama.cpp LoRA GGUF file or a PEFT
 * folder, applied at run time per sequence (the base weights never change):
 * y = W x + sum over the sequence's adapters of scale * s_m * B (A x), with s_m
 * the module's alpha / r (alpha / sqrt(r) with rsLoRA). */
#ifndef G8_LORA_H
#define G8_LORA_H

#include "kernels.h"
#include "threadpool.h"
#include "model.h"

/* the adapted matrices of a layer, in this order */
enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_MATS };

/* One adapted matrix: A (r, in) row-major, B transposed (r, out) row-major. */
typedef struct g8_lora_mat {
    int r;              /* 0: not adapted */
    float s;            /* the module's factor (alpha / r, ...) */
    float *a;
    float *bt;
} g8_lora_mat;

struct gemma8_lora {
    const gemma8_model *model; /* NULL for an adapter read for a conversion */
    int n_layer;
    int64_t rows[LORA_MATS], cols[LORA_MATS]; /* each matrix's shape (the same in every layer) */
    g8_lora_mat *mats;  /* (n_layer, LORA_MATS) */
    int max_r;
    float alpha;        /* as a llama.cpp file holds it (0: none, factor 1) */
    char name[64];      /* the file or folder name, for messages and `info` */
};

/* A PEFT folder or llama.cpp file read for a model of n_layer layers whose
 * matrices have these shapes (a conversion's merge: no model loaded). */
gemma8_status g8_lora_load_shaped(const char *path, const char *arch, int n_layer, const int64_t rows[LORA_MATS],
                                  const int64_t cols[LORA_MATS], gemma8_lora **out);

/* Adds scale * s * B A's row o of matrix `which` of layer il to row (cols floats). */
void g8_lora_merge_row(const gemma8_lora *l, int il, int which, int64_t o, float scale, float *row);

/* The layer-tensor (arch.h LT_*) of each adapted matrix. */
extern const int g8_lora_layer_tensor[LORA_MATS];

/* The adapters a sequence applies. */
typedef struct g8_lora_set {
    int n;
    const gemma8_lora *a[GEMMA8_MAX_LORA];
    float scale[GEMMA8_MAX_LORA];
} g8_lora_set;

/* What a set of adapters and scales computes (a prompt cache made under one set
 * is never loaded under another). */
uint64_t g8_lora_set_fingerprint(const g8_lora_set *set);

/* y[t] += the deltas of the adapters of token t's set for matrix `which` of
 * layer il; x (T, in), y (T, out); sets[t] NULL: none; u: T * GEMMA8_MAX_LORA * max_r
 * floats (max_r: the largest rank of the sets). Each token's result is the same
 * whatever the batch and the thread count. */
void g8_lora_apply(g8_pool *pool, const g8_kernels *k, const g8_lora_set *const *sets, int il, int which,
                   const float *x, int in, float *y, int out, int T, float *u, int max_r);

#endif
