/* arch.h - the GGUF vocabulary of the architectures gemma8 runs (gemma2, gemma3): metadata
 * keys and tensor names shared by the converter (writer) and the loader (reader), as llama.cpp's
 * gguf-py names them, and each architecture's differences as data (g8_arch).
 *
 * An architecture's keys are "<arch>.<suffix>" (g8_arch_key). Keys gemma8 adds where llama.cpp has
 * none (documented in README.md):
 *   <arch>.query_pre_attn_scalar  f32  queries are scaled by its -1/2 power; when absent,
 *                                      llama.cpp's rule applies (hidden/heads for the 27B layer
 *                                      count, 46 layers for gemma2, 62 for gemma3; else head_dim)
 *   gemma2.attn_logit_softcapping / gemma2.final_logit_softcapping = 0.0 mean "off"
 *                                      (config.json null); when absent: 50 / 30 (gemma3: off).
 */
#ifndef G8_ARCH_H
#define G8_ARCH_H

#include <stdbool.h>
#include <stddef.h>

#define KEY_ARCH "general.architecture"
#define KEY_NAME "general.name"
#define KEY_FILE_TYPE "general.file_type"
#define KEY_QUANT_VERSION "general.quantization_version"

/* suffixes of the architecture's keys */
#define KEY_CTX "context_length"
#define KEY_EMBD "embedding_length"
#define KEY_BLOCKS "block_count"
#define KEY_FF "feed_forward_length"
#define KEY_HEADS "attention.head_count"
#define KEY_HEADS_KV "attention.head_count_kv"
#define KEY_KEY_LEN "attention.key_length"
#define KEY_VAL_LEN "attention.value_length"
#define KEY_RMS_EPS "attention.layer_norm_rms_epsilon"
#define KEY_ATTN_SOFTCAP "attn_logit_softcapping"
#define KEY_FINAL_SOFTCAP "final_logit_softcapping"
#define KEY_WINDOW "attention.sliding_window"
#define KEY_PATTERN "attention.sliding_window_pattern"
#define KEY_ROPE_BASE "rope.freq_base"
#define KEY_ROPE_BASE_SWA "rope.freq_base_swa"
#define KEY_ROPE_SCALING_TYPE "rope.scaling.type"
#define KEY_ROPE_SCALING_FACTOR "rope.scaling.factor"
#define KEY_ROPE_SCALE_LINEAR "rope.scale_linear"
#define KEY_QUERY_SCALAR "query_pre_attn_scalar"

/* llama.cpp's tokenizer keys (gguf-py's Keys.Tokenizer) */
#define KEY_TOK_MODEL "tokenizer.ggml.model"
#define KEY_TOK_PRE "tokenizer.ggml.pre"
#define KEY_TOK_TOKENS "tokenizer.ggml.tokens"
#define KEY_TOK_SCORES "tokenizer.ggml.scores"
#define KEY_TOK_TYPES "tokenizer.ggml.token_type"
#define KEY_TOK_BOS "tokenizer.ggml.bos_token_id"
#define KEY_TOK_EOS "tokenizer.ggml.eos_token_id"
#define KEY_TOK_UNK "tokenizer.ggml.unknown_token_id"
#define KEY_TOK_PAD "tokenizer.ggml.padding_token_id"
#define KEY_TOK_ADD_BOS "tokenizer.ggml.add_bos_token"
#define KEY_TOK_ADD_EOS "tokenizer.ggml.add_eos_token"
#define KEY_TOK_ADD_SPACE "tokenizer.ggml.add_space_prefix"
#define KEY_TOK_TEMPLATE "tokenizer.chat_template"

/* The most layers a model may have (Gemma 2 27B has 46, Gemma 3 27B 62). */
#define G8_MAX_LAYER 256

#define G8_DEFAULT_RMS_EPS 1e-6f
#define G8_DEFAULT_ROPE_BASE 10000.0f /* llama.cpp's, for both bases, when a file does not say */

/* What sets one architecture apart, read by the loader, the converter and the forward pass. */
typedef struct g8_arch {
    const char *name;           /* general.architecture */
    const char *hf_model_type;  /* config.json's model_type (of the text model) */
    const char *hf_class;       /* config.json's architectures[0] (the text model's) */
    const char *hf_multimodal;  /* the model_type / class holding it with a vision tower, or NULL */
    const char *hf_multimodal_class;
    bool qk_norm;               /* each query and key head RMS-normed (attn_q_norm / attn_k_norm) */
    bool window_required;       /* no sliding-window key: every layer global (else the default window) */
    int swa_period;             /* layer il slides unless il % period == period - 1 (0: all slide) */
    int qpas_hidden_layers;     /* llama.cpp scales queries by hidden/heads at this layer count */
    bool local_rope_own_base;   /* local layers: rope.freq_base_swa (default 10,000), else the global base */
    bool local_rope_scaled;     /* the linear RoPE factor applies to local layers too */
    float attn_softcap;         /* when the file does not say (0: off) */
    float final_softcap;
    bool hf_sizes_required;     /* config.json must give every size (else transformers' defaults below) */
    bool hf_layer_forms;        /* config.json's layer_types / sliding_window_pattern and per-type RoPE */
    bool vocab_own_size;        /* the vocabulary is the tokenizer's; embedding rows past it are dropped */
    bool template_keeps_system; /* the chat template puts "{system}\n\n" untrimmed before the first user
                                   text and trims each part (for files without a template) */
    /* transformers' config defaults, for config.json fields a checkpoint leaves out */
    int hf_vocab, hf_hidden, hf_layers, hf_ff, hf_heads, hf_heads_kv, hf_head_dim, hf_ctx, hf_window;
    float hf_rope_base;
} g8_arch;

/* The i-th architecture gemma8 runs, or NULL past the last. */
const g8_arch *g8_arch_at(int i);

/* The architecture called name[0, len), or NULL. */
const g8_arch *g8_arch_find(const char *name, size_t len);

/* "<arch>.<suffix>" in buf (at least 96 bytes); returns buf. */
const char *g8_arch_key(const g8_arch *a, const char *suffix, char *buf);

/* The list of architecture names, for messages ("gemma2, gemma3"). */
const char *g8_arch_names(void);

#define TN_TOKEN_EMBD "token_embd.weight"
#define TN_OUTPUT_NORM "output_norm.weight"
#define TN_OUTPUT "output.weight"

/* Per-layer tensors: GGUF name "blk.N.<gguf>", HF name "<prefix>layers.N.<hf>". LT_Q_NORM and
 * LT_K_NORM (head_dim each) exist only in architectures with qk_norm. */
enum g8_layer_tensor {
    LT_ATTN_NORM, LT_Q, LT_K, LT_V, LT_O, LT_POST_ATTN_NORM,
    LT_FFN_NORM, LT_GATE, LT_UP, LT_DOWN, LT_POST_FFW_NORM, LT_Q_NORM, LT_K_NORM, LT_COUNT
};

typedef struct g8_tensor_name {
    const char *gguf;
    const char *hf;
    int is_norm;      /* stored as 1 + w (f32) in GGUF */
} g8_tensor_name;

extern const g8_tensor_name g8_layer_tensor_names[LT_COUNT];

/* The layer tensors architecture a has (the q/k norms only with qk_norm). */
static inline int g8_arch_layer_tensors(const g8_arch *a) { return a->qk_norm ? LT_COUNT : LT_Q_NORM; }

#endif
