/*
 * gemma8.h - the public API of gemma8, a C engine for Gemma 2 and Gemma 3 (text) models.
 *
 * Usage:
 *
 *     gemma8_model *model;
 *     gemma8_model_params mp = gemma8_model_default_params();
 *     if (gemma8_model_load("gemma-2-9b-it.gguf", &mp, &model) != GEMMA8_OK) {
 *         fprintf(stderr, "%s\n", gemma8_last_error());
 *         return 1;
 *     }
 *     gemma8_context *ctx;
 *     gemma8_context_params cp = gemma8_context_default_params();
 *     gemma8_context_new(model, &cp, &ctx);
 *     int32_t prompt[] = {2, 651, 6037};
 *     gemma8_batch b = gemma8_batch_tokens(0, prompt, 3); // sequence 0, the last token's logits
 *     gemma8_decode(ctx, &b);                         // prefill, KV cache kept
 *     const float *logits = gemma8_get_logits(ctx, -1);
 *     ...
 *     gemma8_context_free(ctx);
 *     gemma8_model_free(model);
 *
 * Thread safety: a gemma8_model is immutable after loading and may be shared by
 * any number of threads, each with its own gemma8_context. A gemma8_context is
 * used by one thread at a time (gemma8_abort excepted). gemma8_last_error() is
 * per thread.
 *
 * Sequences: a context holds n_seq independent sequences (conversations), each
 * with its own KV cache of n_ctx / n_seq positions (or, with kv_unified, one pool
 * of n_ctx positions they share); every function that reads or changes one takes
 * its index. A server's slots are sequences of one context.
 *
 * Build against the installed library with pkg-config:
 *     cc app.c $(pkg-config --cflags --libs gemma8)
 *
 * The library never calls exit() and never prints to stdout.
 */
#ifndef GEMMA8_H
#define GEMMA8_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's exported functions: it is built with hidden visibility,
 * so these are the only symbols libgemma8.so exports. */
#ifndef GEMMA8_API
#if defined(__GNUC__) || defined(__clang__)
#define GEMMA8_API __attribute__((visibility("default")))
#else
#define GEMMA8_API
#endif
#endif

/* The library's version, "MAJOR.MINOR.PATCH". */
#define GEMMA8_VERSION "0.7.0"
GEMMA8_API const char *gemma8_version(void);

/* Status codes. Append only: never reorder or renumber. */
typedef enum gemma8_status {
    GEMMA8_OK = 0,
    GEMMA8_ERR_IO = 1,            /* a file could not be opened, read or written */
    GEMMA8_ERR_FORMAT = 2,        /* a file is corrupt, truncated or not what it claims */
    GEMMA8_ERR_UNSUPPORTED = 3,   /* valid input this build does not handle (arch, dtype) */
    GEMMA8_ERR_NOMEM = 4,         /* out of memory, or the model would not fit */
    GEMMA8_ERR_INVALID_ARG = 5,   /* a bad argument from the caller */
    GEMMA8_ERR_CONTEXT_FULL = 6,  /* the tokens would not fit in the context */
    GEMMA8_ERR_ABORTED = 7,       /* stopped by the caller */
    GEMMA8_ERR_BUFFER_TOO_SMALL = 8, /* the output did not fit; the size needed was reported */
} gemma8_status;

/* A short name for a status ("ok", "i/o error", ...). Never NULL. */
GEMMA8_API const char *gemma8_status_str(gemma8_status status);

/* The message of the last failure on the calling thread, naming the problem
 * (file, tensor, offset, ...). Empty string if none. */
GEMMA8_API const char *gemma8_last_error(void);

/* Seconds on a monotonic clock (the one the library's timings use). */
GEMMA8_API double gemma8_time(void);

/* Log callback, set once. level: 0 error, 1 warning, 2 info, 3 debug. */
typedef void (*gemma8_log_fn)(int level, const char *msg, void *user_data);
GEMMA8_API void gemma8_log_set(gemma8_log_fn fn, void *user_data);

/* ---- conversion ------------------------------------------------------- */

/* Tensor storage types of GGUF files (values are ggml's type ids). */
typedef enum gemma8_type {
    GEMMA8_TYPE_F32 = 0,
    GEMMA8_TYPE_F16 = 1,
    GEMMA8_TYPE_Q4_0 = 2,   /* w4a8: 4-bit weights, int8 activations */
    GEMMA8_TYPE_Q8_0 = 8,
    GEMMA8_TYPE_Q6_K = 14,  /* read (llama.cpp's Q4_0 files keep token_embd in it), not written */
    GEMMA8_TYPE_BF16 = 30,
} gemma8_type;

/* Name of a type ("f32", "f16", "q4_0", "q8_0", "q6_k", "bf16"); "?" if unknown. */
GEMMA8_API const char *gemma8_type_name(gemma8_type type);
/* Parses a type name; returns false if unknown. */
GEMMA8_API bool gemma8_type_parse(const char *name, gemma8_type *out);

/* Progress callback: `what` is being written, done of total bytes of the file.
 * Called at least every 64 MiB. Return false to cancel: the conversion then
 * stops, removes its temporary file and returns GEMMA8_ERR_ABORTED. */
typedef bool (*gemma8_progress_fn)(const char *what, uint64_t done, uint64_t total, void *user_data);

typedef struct gemma8_convert_params {
    gemma8_type type;              /* matrix storage type (f32, f16, bf16, q8_0, q4_0); default q8_0 */
    gemma8_progress_fn progress;   /* NULL: silent */
    void *progress_user_data;
    const char *lora;              /* a LoRA adapter (PEFT folder or LoRA GGUF) merged in float before
                                      the matrices are stored; NULL: none */
    float lora_scale;              /* its scale; default 1 */
    int32_t output_type;           /* type of token_embd (and output): it decides every logit; -1:
                                      q8_0 when type is q4_0, else type; default -1 */
} gemma8_convert_params;

GEMMA8_API gemma8_convert_params gemma8_convert_default_params(void);

/* Converts a Hugging Face Gemma 2 or Gemma 3 checkpoint directory (config.json and
 * model.safetensors or shards with model.safetensors.index.json; Gemma2ForCausalLM,
 * Gemma3ForCausalLM, or the text model of Gemma3ForConditionalGeneration) into one GGUF
 * file (llama.cpp's gemma2 / gemma3 layout). The file is written to a temporary name in the
 * same directory and renamed only when complete. Other Gemma families are refused by name. */
GEMMA8_API gemma8_status gemma8_convert_hf(const char *hf_dir, const char *out_path,
                                           const gemma8_convert_params *params);

/* Re-quantizes a GGUF gemma2 or gemma3 model (f32, f16, bf16, q8_0 or q4_0 matrices, as
 * llama.cpp's llama-quantize does) to params->type and output_type: the
 * matrices are widened to f32 and quantized again; everything else is copied. */
GEMMA8_API gemma8_status gemma8_quantize(const char *in_path, const char *out_path,
                                         const gemma8_convert_params *params);

/* Writes a random-weight model of the shape given by a Hugging Face config.json
 * (for benchmarks), with the tokenizer of tokenizer_dir (tokenizer.json) when
 * given, else a placeholder vocabulary. */
GEMMA8_API gemma8_status gemma8_convert_random(const char *config_path, const char *tokenizer_dir,
                                               const char *out_path, const gemma8_convert_params *params);

/* ---- model ------------------------------------------------------------ */

typedef struct gemma8_model gemma8_model;

typedef struct gemma8_model_params {
    int32_t reserved;              /* no options yet; keep for ABI growth */
} gemma8_model_params;

GEMMA8_API gemma8_model_params gemma8_model_default_params(void);

/* Loads a gemma2 GGUF file (written by gemma8 or by llama.cpp). The weights are
 * memory-mapped and used in place. */
GEMMA8_API gemma8_status gemma8_model_load(const char *path, const gemma8_model_params *params,
                                           gemma8_model **out);
GEMMA8_API void gemma8_model_free(gemma8_model *model);

/* Hyper-parameters of a loaded model. */
typedef struct gemma8_model_info {
    int32_t n_vocab;
    int32_t n_embd;            /* hidden size */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;              /* intermediate size */
    int32_t n_ctx_train;       /* context length the model was trained for */
    int32_t sliding_window;    /* window of the sliding layers (0: none, every layer global) */
    float query_pre_attn_scalar;
    float attn_softcap;        /* 0: off */
    float final_softcap;       /* 0: off */
    float rms_eps;
    float rope_base;
    gemma8_type matrix_type;   /* storage type of most matrices */
    uint64_t n_params;         /* number of weights */
    uint64_t weight_bytes;     /* bytes of tensor data in memory (quantized matrices as packed for
                                  the GEMM: what a decoded token reads) */
    char name[128];            /* general.name of the file (the architecture's if it has none) */
    uint64_t file_bytes_of_type[32]; /* bytes of tensor data in the file, by gemma8_type */
    int32_t tensors_of_type[32];
    char arch[16];             /* general.architecture: "gemma2" or "gemma3" */
    int32_t n_layer_sliding;   /* layers attending over the sliding window (the rest: every position) */
    float rope_base_local;     /* RoPE base of the sliding layers (rope_base: the global layers') */
    float rope_scale;          /* linear RoPE scaling factor of the global layers (1: none) */
    bool qk_norm;              /* queries and keys RMS-normed per head (gemma3) */
} gemma8_model_info;

GEMMA8_API gemma8_model_info gemma8_model_get_info(const gemma8_model *model);

/* ---- tokenizer and chat template -------------------------------------- */

/* Encodes UTF-8 text exactly as Hugging Face's Gemma tokenizer does. add_bos
 * puts <bos> first. parse_special recognises control-token text such as
 * "<start_of_turn>" (keep it off for untrusted text); user-defined pieces
 * (newline and space runs, HTML tags) are always recognised, as in Hugging Face.
 * Writes at most max ids to out and the count to *n_out; if they do not fit,
 * returns GEMMA8_ERR_BUFFER_TOO_SMALL with *n_out the count needed. */
GEMMA8_API gemma8_status gemma8_tokenize(const gemma8_model *model, const char *text, size_t len,
                                         bool add_bos, bool parse_special, int32_t *out, int32_t max,
                                         int32_t *n_out);

/* Decodes ids to UTF-8 text (byte pieces fused; invalid byte runs become
 * U+FFFD). skip_special leaves out control tokens. Writes at most cap bytes
 * plus a NUL; *n_out gets the length; GEMMA8_ERR_BUFFER_TOO_SMALL if it did not fit. */
GEMMA8_API gemma8_status gemma8_detokenize(const gemma8_model *model, const int32_t *ids, int32_t n,
                                           bool skip_special, char *buf, size_t cap, size_t *n_out);

/* Special token ids (-1 if the vocabulary has none). */
GEMMA8_API int32_t gemma8_token_bos(const gemma8_model *model);
GEMMA8_API int32_t gemma8_token_eos(const gemma8_model *model);
GEMMA8_API int32_t gemma8_token_end_of_turn(const gemma8_model *model);
/* True for tokens that end a chat reply (<eos>, <end_of_turn>). */
GEMMA8_API bool gemma8_token_is_eog(const gemma8_model *model, int32_t token);

typedef struct gemma8_chat_message {
    const char *role;      /* "user", "assistant" (or "model"), or "system" */
    const char *content;   /* UTF-8 */
    const char *const *parts; /* n_parts > 0: the content as text parts (OpenAI's content arrays), */
    int32_t n_parts;          /* used instead of content */
} gemma8_chat_message;

/* The token ids of a conversation in Gemma's chat template:
 *   <bos><start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n...
 * Content is trimmed and tokenized with parse_special off, so it cannot forge a
 * turn. A leading system message is folded into the first user turn (Gemma's
 * template has no system role): Gemma 3's template puts "{system}\n\n" as it is
 * before the trimmed user content and trims each text part on its own (of a system
 * message's parts it takes the first); with Gemma 2's, the folded content and the
 * joined parts are trimmed as a whole. Roles must alternate user/assistant. With
 * add_generation_prompt, "<start_of_turn>model\n" ends the prompt. Fails with
 * GEMMA8_ERR_UNSUPPORTED if the model's chat template is not Gemma's. Output
 * as gemma8_tokenize. */
GEMMA8_API gemma8_status gemma8_chat_tokenize(const gemma8_model *model, const gemma8_chat_message *msgs,
                                              int32_t n_msgs, bool add_generation_prompt, int32_t *out,
                                              int32_t max, int32_t *n_out);

/* ---- context ---------------------------------------------------------- */

typedef struct gemma8_context gemma8_context;

#define GEMMA8_KV_AUTO (-1)

typedef struct gemma8_context_params {
    int32_t n_ctx;        /* context length in tokens, shared by the sequences (each gets
                             n_ctx / n_seq, or with kv_unified up to all of it); 0: the model's
                             training context for each sequence (kv_unified: in all); default 0 */
    int32_t n_batch;      /* tokens per prefill chunk; default 256 */
    int32_t n_threads;    /* worker threads; 0: the physical cores this process may use
                             (hyper-threads counted once); default 0 */
    int32_t kv_type;      /* KV cache storage: GEMMA8_TYPE_F32, GEMMA8_TYPE_F16, GEMMA8_TYPE_Q8_0, or
                             GEMMA8_KV_AUTO (default): f32 for float models (exact), f16 for quantized ones
                             models (half the memory and bandwidth). Q8_0 (blocks of 32 along each
                             head, q.k in int8, as llama.cpp's -ctk/-ctv q8_0) halves it again:
                             for long contexts, where reading the cache dominates decoding. */
    int32_t n_seq;        /* independent sequences (conversations, server slots); default 1 */
    bool kv_unified;      /* one pool of n_ctx positions for all sequences, as llama.cpp's --kv-unified:
                             each sequence may hold up to n_ctx, all of them together n_ctx (a batch
                             that would pass it is GEMMA8_ERR_CONTEXT_FULL). Memory is taken as
                             positions are written and given back when a sequence is cleared or cut
                             back. Default false: each sequence owns n_ctx / n_seq. */
} gemma8_context_params;

GEMMA8_API gemma8_context_params gemma8_context_default_params(void);

/* Creates a context. Before allocating, the memory it needs (with the weights)
 * is compared with the memory available: GEMMA8_ERR_NOMEM with both figures
 * and the largest context that would fit, instead of failing half-way. */
GEMMA8_API gemma8_status gemma8_context_new(gemma8_model *model, const gemma8_context_params *params,
                                            gemma8_context **out);

/* What a model with a context of these parameters needs, in bytes. */
typedef struct gemma8_memory_estimate {
    uint64_t weights;            /* tensor data (memory-mapped) */
    uint64_t kv_cache;           /* KV cache, sliding-window layers as rings */
    uint64_t kv_cache_full;      /* the same without rings (every layer n_ctx positions) */
    uint64_t scratch;            /* activations, logits, per-thread buffers */
    uint64_t total;              /* weights + kv_cache + scratch */
    uint64_t available;          /* MemAvailable of this machine (0 if unknown) */
    uint64_t loaded;             /* of the weights, what the loaded model holds in memory already (its
                                    packed quantized matrices): not counted against `available` */
} gemma8_memory_estimate;

GEMMA8_API gemma8_memory_estimate gemma8_estimate_memory(const gemma8_model *model,
                                                         const gemma8_context_params *params);
GEMMA8_API void gemma8_context_free(gemma8_context *ctx);

/* ---- the forward pass: batches ------------------------------------------------------- */

/* What an entry of a batch outputs (flags; combine with |). */
enum {
    GEMMA8_OUTPUT_NONE = 0,
    GEMMA8_OUTPUT_LOGITS = 1,   /* n_vocab floats: the next token's logits (after the final soft-cap) */
    GEMMA8_OUTPUT_HIDDEN = 2,   /* n_embd floats: the last hidden layer, after the final norm (RKLLM's
                                   GET_LAST_HIDDEN_LAYER, what embeddings are made of) */
};

/* A batch: n entries, each the next input of a sequence, appended at its end.
 * The entries of a sequence are together and in order (a run): one token of
 * each decoding conversation, a chunk of a new prompt. */
typedef struct gemma8_batch {
    int32_t n;                /* entries */
    const int32_t *token;     /* (n) token ids; NULL when embd is given */
    const float *embd;        /* (n * n_embd) inputs that enter the residual stream directly (a token's
                                 own is its embedding row times sqrt(n_embd)); in the history they
                                 count as token -1. NULL when token is given */
    const int32_t *seq;       /* (n) each entry's sequence; NULL: every entry in seq_id */
    int32_t seq_id;           /* the sequence of every entry when seq is NULL */
    const uint8_t *output;    /* (n) GEMMA8_OUTPUT_* of each entry; NULL: the logits of the last
                                 entry of each sequence */
} gemma8_batch;

/* A batch of n tokens of sequence seq, the last one's logits out (the fields above). */
GEMMA8_API gemma8_batch gemma8_batch_tokens(int32_t seq, const int32_t *tokens, int32_t n);

/* The forward pass over a batch: every input is checked first (sequences,
 * runs, ids, finite embeddings, room in each sequence; nothing runs if one
 * fails); the entries then run n_batch at a time, every weight read once for
 * all the entries of a step (several conversations decode at the cost of
 * about one). The outputs asked for stay readable until the next decode on
 * the context (gemma8_get_logits, gemma8_get_hidden).
 * Batch invariance: each output is bit-identical to what the same sequence's
 * inputs give alone, whatever else is in the batch, in whatever order, and
 * however the sequence's earlier inputs were cut into batches.
 * Clears the abort flag when it starts; an abort returns GEMMA8_ERR_ABORTED
 * within one layer, the sequences keeping the steps that were complete. */
GEMMA8_API gemma8_status gemma8_decode(gemma8_context *ctx, const gemma8_batch *batch);

/* The logits (n_vocab floats) / hidden state (n_embd floats) of entry i of
 * the last gemma8_decode; i = -1: of the last entry that output them. NULL
 * when that entry did not output them. */
GEMMA8_API const float *gemma8_get_logits(const gemma8_context *ctx, int32_t i);
GEMMA8_API const float *gemma8_get_hidden(const gemma8_context *ctx, int32_t i);

/* ---- LoRA adapters ---------------------------------------------------------------- */

/* A LoRA adapter for a model: a llama.cpp LoRA GGUF file (general.type
 * "adapter", tensors blk.N.attn_q.weight.lora_a/.lora_b, scale alpha / r) or a
 * PEFT adapter folder (adapter_config.json + adapter_model.safetensors; alpha / r,
 * alpha / sqrt(r) with rsLoRA, rank_pattern / alpha_pattern per module). It
 * refers to the model and never changes its weights; free it before the model.
 * DoRA, modules_to_save, bias terms and adapters on the embedding are refused. */
typedef struct gemma8_lora gemma8_lora;
/* The most adapters one sequence applies at once. */
#define GEMMA8_MAX_LORA 8
GEMMA8_API gemma8_status gemma8_lora_load(const gemma8_model *model, const char *path, gemma8_lora **out);
GEMMA8_API void gemma8_lora_free(gemma8_lora *lora);
/* The file or folder name it was loaded from. */
GEMMA8_API const char *gemma8_lora_name(const gemma8_lora *lora);
typedef struct gemma8_lora_info {
    int32_t n_matrices;     /* adapted matrices (of n_layer * 7) */
    int32_t min_rank, max_rank;
    uint64_t n_params;      /* of A and B */
    float alpha;            /* as llama.cpp's file holds it (PEFT: lora_alpha, times sqrt(r) with rsLoRA) */
} gemma8_lora_info;
GEMMA8_API gemma8_lora_info gemma8_lora_get_info(const gemma8_lora *lora);
/* Sequence s applies these adapters (at most GEMMA8_MAX_LORA), each with its scale, from now
 * on: y = W x + sum scale_i * (alpha/r) * B_i (A_i x) for every adapted matrix
 * (n = 0: none). A change of set clears the sequence (its cache was computed
 * under the old one). Sequences of one context may use different sets, also in
 * one batch; scale 0 gives the base model bit for bit. */
GEMMA8_API gemma8_status gemma8_seq_set_lora(gemma8_context *ctx, int32_t s,
                                             const gemma8_lora *const *adapters, const float *scales,
                                             int32_t n);
/* Writes a PEFT adapter folder as a LoRA GGUF file in llama.cpp's layout (alpha
 * and per-module factors folded so that llama.cpp's alpha / r rule gives PEFT's
 * scaling): the file works in both engines. */
GEMMA8_API gemma8_status gemma8_lora_convert(const char *peft_dir, const char *out_path);

/* The model a context runs. */
GEMMA8_API const gemma8_model *gemma8_context_model(const gemma8_context *ctx);
/* Positions each sequence may hold (with kv_unified: the pool's, shared), and the number of sequences. */
GEMMA8_API int32_t gemma8_n_ctx(const gemma8_context *ctx);
GEMMA8_API int32_t gemma8_n_seq(const gemma8_context *ctx);

/* Tokens in the cache of sequence seq (0 if there is no such sequence). */
GEMMA8_API int32_t gemma8_seq_n_past(const gemma8_context *ctx, int32_t seq);
/* Forgets every token of sequence seq: it starts again at position 0. */
GEMMA8_API void gemma8_seq_clear(gemma8_context *ctx, int32_t seq);
/* Keeps the first n tokens of sequence seq (all of them if the sliding-window
 * rings no longer hold what n needs: then the sequence is cleared). */
GEMMA8_API void gemma8_seq_truncate(gemma8_context *ctx, int32_t seq, int32_t n);
/* The tokens in the cache of sequence seq, oldest first; *n gets their count. */
GEMMA8_API const int32_t *gemma8_seq_history(const gemma8_context *ctx, int32_t seq, int32_t *n);

/* ---- sampling ----------------------------------------------------------- */

/* A chain as llama.cpp's: penalties, then top-k, top-p, min-p, temperature and
 * a draw; or penalties, temperature and mirostat. Defaults are RKLLM's. */
/* A token's logit raised (lowered) by bias before sampling; -INFINITY: the token is never drawn. */
typedef struct gemma8_logit_bias {
    int32_t token;
    float bias;
} gemma8_logit_bias;

typedef struct gemma8_sampler_params {
    float temperature;        /* 0: greedy (argmax); default 0.8 */
    int32_t top_k;            /* keep the k most likely; 0: off; default 40 */
    float top_p;              /* keep the smallest set with probability >= p; 1: off; default 0.9 */
    float min_p;              /* drop tokens below min_p * p(max); 0: off; default 0 */
    float repeat_penalty;     /* divide (multiply if negative) logits of recent tokens; 1: off; default 1.1 */
    int32_t repeat_last_n;    /* window of recent tokens for the penalties; default 64 */
    float frequency_penalty;  /* subtract this times the token's count in the window; default 0 */
    float presence_penalty;   /* subtract this if the token is in the window; default 0 */
    int32_t mirostat;         /* 0 off, 1 or 2 (mirostat v1 / v2); default 0 */
    float mirostat_tau;       /* target surprise; default 5.0 */
    float mirostat_eta;       /* learning rate; default 0.1 */
    uint32_t seed;            /* the same seed gives the same draws; default 42 */
    const gemma8_logit_bias *logit_bias; /* added to the logits first (copied by gemma8_sampler_new); a
                                            token listed twice adds both; default none */
    int32_t n_logit_bias;
} gemma8_sampler_params;

GEMMA8_API gemma8_sampler_params gemma8_sampler_default_params(void);

typedef struct gemma8_sampler gemma8_sampler;

GEMMA8_API gemma8_status gemma8_sampler_new(const gemma8_sampler_params *params, gemma8_sampler **out);
GEMMA8_API void gemma8_sampler_free(gemma8_sampler *s);
/* Draws a token from n_vocab logits (not modified) into *token; a failure (no logits, out of
 * memory, a grammar that allows nothing) is a status with its message. */
GEMMA8_API gemma8_status gemma8_sampler_sample(gemma8_sampler *s, const float *logits, int32_t n_vocab,
                                               int32_t *token);
/* Records a token (of the prompt or generated) for the penalties. */
GEMMA8_API void gemma8_sampler_accept(gemma8_sampler *s, int32_t token);
/* Forgets the history and reseeds. */
GEMMA8_API void gemma8_sampler_reset(gemma8_sampler *s);

/* ---- constrained output -------------------------------------------------- */

/* A grammar the reply must follow: llama.cpp's GBNF, or a JSON Schema compiled
 * to it. Compiled once, read-only after: one grammar may serve any number of
 * generations at once (and several models). */
typedef struct gemma8_grammar gemma8_grammar;

/* GBNF text (start rule "root"); a bad grammar fails with the line or rule named. */
GEMMA8_API gemma8_status gemma8_grammar_from_gbnf(const char *gbnf, gemma8_grammar **out);
/* A JSON Schema (its JSON text): replies are JSON valid against it. NULL: any
 * JSON object (OpenAI's json_object, Ollama's "json"). Unsupported keywords
 * fail, naming the keyword; `format` values it cannot enforce are warnings. */
GEMMA8_API gemma8_status gemma8_grammar_from_json_schema(const char *schema, gemma8_grammar **out);
/* The grammar's GBNF (a schema's translation); its warnings (lines), or NULL. */
GEMMA8_API const char *gemma8_grammar_gbnf(const gemma8_grammar *g);
GEMMA8_API const char *gemma8_grammar_warnings(const gemma8_grammar *g);
GEMMA8_API void gemma8_grammar_free(gemma8_grammar *g);

/* A grammar followed over a model's vocabulary: which tokens may come next.
 * Control and unused tokens are never allowed; <eos>/<end_of_turn> only where
 * the grammar is complete. The first matcher of a model builds an index of its
 * vocabulary (a trie of token texts), which the model keeps. */
typedef struct gemma8_matcher gemma8_matcher;
GEMMA8_API gemma8_status gemma8_matcher_new(const gemma8_model *model, const gemma8_grammar *g,
                                            gemma8_matcher **out);
/* Sets bit (id % 8) of mask[id / 8] for each token allowed next ((n_vocab + 7) / 8 bytes). */
GEMMA8_API gemma8_status gemma8_matcher_mask(gemma8_matcher *m, uint8_t *mask);
/* Tokens the reply may still take, counting the next (0: no limit): the mask then
 * keeps only tokens after which the grammar can still be completed in time, so a
 * reply that reaches its length limit is complete. (gemma8_generate sets it.) */
GEMMA8_API gemma8_status gemma8_matcher_set_budget(gemma8_matcher *m, int32_t tokens);
/* Follows a token; GEMMA8_ERR_INVALID_ARG (state unchanged) if not allowed. */
GEMMA8_API gemma8_status gemma8_matcher_accept(gemma8_matcher *m, int32_t token);
/* True when the grammar is complete and nothing more can follow. */
GEMMA8_API bool gemma8_matcher_done(const gemma8_matcher *m);
GEMMA8_API void gemma8_matcher_reset(gemma8_matcher *m);
GEMMA8_API void gemma8_matcher_free(gemma8_matcher *m);

/* ---- tool calls ---------------------------------------------------------------------- */

/* How a model without tool tokens (Gemma 2 and 3) calls tools with gemma8. The instructions of
 * gemma8_tools_prompt go where a system message goes (before it), and a reply is either text or
 * only a block of calls, one JSON object a call, a line between two:
 *
 *     ```tool_call
 *     {"name": "get_weather", "arguments": {"city": "Paris"}}
 *     ```
 *
 * The instructions follow Gemma's function-calling guide (the functions as a JSON list, one
 * format for calls, no other text beside a call) with calls as JSON in a code block instead of
 * its Python-like calls, so that gemma8_grammar_from_tools can make every call's arguments follow
 * its tool's schema. In a conversation, an assistant's calls are that block (after its text, if any), and
 * each result goes back in the user's turn as a block of its own:
 *
 *     ```tool_output
 *     {"name": "get_weather", "content": "18 C, sunny"}
 *     ```
 */
#define GEMMA8_TOOL_CALL_OPEN "```tool_call\n"
#define GEMMA8_TOOL_OUTPUT_OPEN "```tool_output\n"
#define GEMMA8_TOOL_BLOCK_CLOSE "\n```"

typedef struct gemma8_tool {
    const char *name;        /* letters, digits, '_', '-', '.' and ':' (1 to 128) */
    const char *description; /* NULL: none */
    const char *parameters;  /* JSON Schema (text) of the arguments, an object; NULL: any object */
} gemma8_tool;

typedef enum gemma8_tool_choice {
    GEMMA8_TOOLS_AUTO = 0, /* text or calls */
    GEMMA8_TOOLS_NONE,     /* text only (the tools stay in the prompt) */
    GEMMA8_TOOLS_REQUIRED, /* calls only */
} gemma8_tool_choice;

/* The instructions that list the tools and the format, into out (cap bytes, NUL-terminated):
 * *len is their length; GEMMA8_ERR_BUFFER_TOO_SMALL when cap is not more (out NULL asks the
 * length). Bad names, a name twice or parameters that are not a JSON object: INVALID_ARG. */
GEMMA8_API gemma8_status gemma8_tools_prompt(const gemma8_tool *tools, int32_t n, char *out, size_t cap,
                                             size_t *len);
/* The grammar of a reply under the tools: text not starting the block (AUTO, NONE) or the block
 * (AUTO, REQUIRED) of calls to `only` if not NULL (a forced function), else to any of the tools;
 * parallel: one or more calls, else one. Each call's arguments follow its schema; a keyword the
 * engine cannot enforce is dropped from that tool's constraint, and a schema it cannot read at all
 * leaves that tool's arguments any object, each said in gemma8_grammar_warnings: a tool schema
 * never makes it fail. */
GEMMA8_API gemma8_status gemma8_grammar_from_tools(const gemma8_tool *tools, int32_t n, gemma8_tool_choice choice,
                                                   const char *only, bool parallel, gemma8_grammar **out);

/* The sampler draws only tokens the grammar allows, and follows each token it
 * is given (gemma8_sampler_accept) once the grammar is set; NULL removes it.
 * The grammar and model must outlive the sampler. */
GEMMA8_API gemma8_status gemma8_sampler_set_grammar(gemma8_sampler *s, const gemma8_model *model,
                                                    const gemma8_grammar *g);

/* ---- generation ------------------------------------------------------- */

/* What a token callback is told (RKLLM's LLMCallState). */
typedef enum gemma8_run_state {
    GEMMA8_RUN_NORMAL = 0,    /* text holds new, complete UTF-8 (may be empty) */
    GEMMA8_RUN_WAITING = 1,   /* the token ended inside a UTF-8 character: held back */
    GEMMA8_RUN_FINISH = 2,    /* generation ended; token -1, no text */
    GEMMA8_RUN_ERROR = 3,     /* generation failed; see gemma8_last_error() on that thread */
} gemma8_run_state;

/* Called for each generated token and once at the end. Return false to stop. */
typedef bool (*gemma8_token_fn)(int32_t token, const char *text, size_t len, gemma8_run_state state,
                                void *user_data);

/* Why generation stopped. Append only. */
typedef enum gemma8_stop_reason {
    GEMMA8_STOP_NONE = 0,
    GEMMA8_STOP_EOG = 1,          /* <eos> or <end_of_turn> */
    GEMMA8_STOP_LENGTH = 2,       /* max_new_tokens reached */
    GEMMA8_STOP_STRING = 3,       /* a stop string appeared (it is not part of the text) */
    GEMMA8_STOP_CALLBACK = 4,     /* the callback returned false */
    GEMMA8_STOP_CONTEXT = 5,      /* the context is full */
    GEMMA8_STOP_ABORTED = 6,      /* gemma8_abort */
    GEMMA8_STOP_EMBEDDED = 7,     /* an embedding generation (params.embed) is complete */
} gemma8_stop_reason;

typedef struct gemma8_generate_params {
    int32_t max_new_tokens;         /* default 512 */
    gemma8_sampler_params sampling; /* default gemma8_sampler_default_params() */
    bool ignore_eos;                /* keep going past <eos>/<end_of_turn>; default false */
    const char *const *stop;        /* stop strings (kept alive by the caller); default none */
    int32_t n_stop;
    gemma8_token_fn on_token;       /* default NULL */
    void *user_data;
    bool drop_oldest_turns;         /* gemma8_chat: drop the oldest turns instead of failing
                                       with GEMMA8_ERR_CONTEXT_FULL; default false */
    int32_t seq;                    /* the sequence of the context to generate in; default 0 */
    const gemma8_grammar *grammar;  /* the reply follows it (kept alive by the caller); the reply
                                       ends where it is complete; default NULL */
    bool embed;                     /* no reply: the prompt's embedding (gemma8_embed's), read with
                                       gemma8_gen_embedding once done; the prompt runs in chunks beside
                                       other generations' steps and the sequence is cleared after;
                                       default false */
} gemma8_generate_params;

GEMMA8_API gemma8_generate_params gemma8_generate_default_params(void);

typedef struct gemma8_generate_result {
    int32_t n_prompt;              /* prompt tokens */
    int32_t n_reused;              /* of which already in the cache (not evaluated again) */
    int32_t n_generated;           /* tokens generated (the stop token not counted) */
    double prompt_seconds, gen_seconds;
    gemma8_stop_reason stop_reason;
    int32_t n_dropped_messages;    /* gemma8_chat with drop_oldest_turns */
    double mask_seconds;           /* of gen_seconds, spent finding the tokens the grammar allows */
    int32_t stop_index;            /* GEMMA8_STOP_STRING: the stop string that ended it (index in params.stop) */
} gemma8_generate_result;

/* Generates after prompt. The prompt is the whole sequence so far: the longest
 * prefix it shares with the cache is kept and only the rest is evaluated, so a
 * follow-up turn only prefills its new tokens. Generated tokens join the cache. */
GEMMA8_API gemma8_status gemma8_generate(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                                         const gemma8_generate_params *params,
                                         gemma8_generate_result *result);

/* The same one step at a time, for a caller that interleaves several
 * generations (a server's slots, each on its own sequence of one context).
 * gemma8_gen_begin keeps the longest prefix the sequence shares with the prompt
 * (prompt stays owned by the caller and alive until gemma8_gen_prefilled) but
 * runs nothing; each gemma8_gen_step evaluates one chunk of the prompt (at most
 * n_batch tokens) or produces one token (through params->on_token), and sets
 * *done when the generation has ended; gemma8_gen_end reports the result
 * (FINISH to the callback; GEMMA8_STOP_ABORTED if ended before done) and frees
 * it. Steps of different generations may alternate on one context. */
typedef struct gemma8_gen gemma8_gen;
GEMMA8_API gemma8_status gemma8_gen_begin(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                                          const gemma8_generate_params *params, gemma8_gen **out);
GEMMA8_API gemma8_status gemma8_gen_step(gemma8_gen *gen, bool *done);
/* At most n of the prompt's tokens in one step of gemma8_gen_step_many (0: as many as n_batch
 * leaves room for, the default): a server keeps a long prompt or embedding from stalling the
 * replies that stream beside it. */
GEMMA8_API void gemma8_gen_set_max_chunk(gemma8_gen *gen, int32_t n);
/* Whether the whole prompt has been evaluated. */
GEMMA8_API bool gemma8_gen_prefilled(const gemma8_gen *gen);
/* The logits (n_vocab) the last token was drawn from; valid until the next step
 * of any generation, or eval, on the context. */
GEMMA8_API const float *gemma8_gen_logits(const gemma8_gen *gen);
GEMMA8_API gemma8_status gemma8_gen_end(gemma8_gen *gen, gemma8_generate_result *result);
/* An embedding generation's vector (n_embd floats) once done, until gemma8_gen_end; else NULL. */
GEMMA8_API const float *gemma8_gen_embedding(const gemma8_gen *gen);
/* One step of each of n generations of one context (done[i] as for
 * gemma8_gen_step), all in one forward pass (gemma8_decode): the next
 * token of each that is decoding, and the next chunk of the prompts being
 * evaluated, as many prompt tokens as n_batch leaves room for, the earlier
 * generations in gens first. Each is bit-identical to stepping it alone. A
 * server's loop over its slots. */
GEMMA8_API gemma8_status gemma8_gen_step_many(gemma8_gen **gens, int32_t n, bool *done);

/* Templates a conversation (gemma8_chat_tokenize) and generates the reply. */
GEMMA8_API gemma8_status gemma8_chat(gemma8_context *ctx, const gemma8_chat_message *msgs, int32_t n_msgs,
                                     const gemma8_generate_params *params, gemma8_generate_result *result);

/* Abort, from any thread. Each gemma8_decode, gemma8_generate and gemma8_chat
 * clears the flag when it starts; an abort that arrives while one runs makes it
 * return GEMMA8_ERR_ABORTED within one layer of the forward pass (the sequence
 * keeps what was complete: the tokens of an interrupted pass are not added).
 * An abort between two calls is forgotten by the next. */
GEMMA8_API void gemma8_abort(gemma8_context *ctx);

/* gemma8_generate on a thread of its own; prompt is copied, params too (not the
 * stop strings). One at a time per context, and collected with gemma8_wait
 * before the context is freed (gemma8_abort stops it early). */
typedef struct gemma8_async gemma8_async;
GEMMA8_API gemma8_status gemma8_generate_async(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                                               const gemma8_generate_params *params, gemma8_async **out);
/* Waits for the run to end, reports its result and frees it. */
GEMMA8_API gemma8_status gemma8_wait(gemma8_async *run, gemma8_generate_result *result);

/* ---- embeddings -------------------------------------------------------------------------- */

/* The embedding of n tokens on sequence seq (cleared before and after): the
 * mean of their last hidden layers (GEMMA8_OUTPUT_HIDDEN), L2-normalised,
 * n_embd floats into out. What the server's embedding endpoints return. */
GEMMA8_API gemma8_status gemma8_embed(gemma8_context *ctx, int32_t seq, const int32_t *tokens, int32_t n,
                                      float *out);
/* The pooling of gemma8_embed, for a caller that decodes the positions
 * itself: add each position's hidden state in order to sum (n_embd doubles,
 * zeroed first), then gemma8_pool_finish writes the normalised mean. The
 * same inputs give the same bits however they were cut into batches. */
GEMMA8_API void gemma8_pool_add(double *sum, const float *hidden, int32_t n_embd);
GEMMA8_API void gemma8_pool_finish(const double *sum, int32_t n_positions, int32_t n_embd, float *out);

/* ---- prompt cache ------------------------------------------------------- */

/* Writes the cache of sequence seq (tokens and their keys/values) to a file, atomically. */
GEMMA8_API gemma8_status gemma8_cache_save(const gemma8_context *ctx, int32_t seq, const char *path);
/* Replaces the cache by a saved one; refused with GEMMA8_ERR_FORMAT if the
 * file belongs to another model or does not fit this context. */
GEMMA8_API gemma8_status gemma8_cache_load(gemma8_context *ctx, int32_t seq, const char *path);
/* The same in memory (a prompt cache kept in RAM, as llama-server's --cache-ram): the bytes of the
 * file into buf; *size is what they take, and GEMMA8_ERR_BUFFER_TOO_SMALL says that cap is less
 * (buf NULL asks only the size). The rows keep the cache's type (f16: half of f32). */
GEMMA8_API gemma8_status gemma8_cache_save_buffer(const gemma8_context *ctx, int32_t seq, void *buf, size_t cap,
                                                  size_t *size);
GEMMA8_API gemma8_status gemma8_cache_load_buffer(gemma8_context *ctx, int32_t seq, const void *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* GEMMA8_H */
