/* arch.h - the gemma2 GGUF vocabulary: metadata keys and tensor names shared by
 * the converter (writer) and the loader (reader), as llama.cpp's gguf-py names them.
 *
 * Keys gemma8 adds where llama.cpp has none (documented in README.md):
 *   gemma2.query_pre_attn_scalar  f32  queries are scaled by its -1/2 power; when
 *                                      absent, llama.cpp's rule applies (hidden/heads
 *                                      for 46-layer models, i.e. 27B, else head_dim)
 *   gemma2.attn_logit_softcapping / gemma2.final_logit_softcapping = 0.0 mean "off"
 *                                      (config.json null); when absent: 50 / 30.
 */
#ifndef G8_ARCH_H
#define G8_ARCH_H

#define G8_ARCH_NAME "gemma2"

#define KEY_ARCH "general.architecture"
#define KEY_NAME "general.name"
#define KEY_FILE_TYPE "general.file_type"
#define KEY_QUANT_VERSION "general.quantization_version"
#define KEY_CTX "gemma2.context_length"
#define KEY_EMBD "gemma2.embedding_length"
#define KEY_BLOCKS "gemma2.block_count"
#define KEY_FF "gemma2.feed_forward_length"
#define KEY_HEADS "gemma2.attention.head_count"
#define KEY_HEADS_KV "gemma2.attention.head_count_kv"
#define KEY_KEY_LEN "gemma2.attention.key_length"
#define KEY_VAL_LEN "gemma2.attention.value_length"
#define KEY_RMS_EPS "gemma2.attention.layer_norm_rms_epsilon"
#define KEY_ATTN_SOFTCAP "gemma2.attn_logit_softcapping"
#define KEY_FINAL_SOFTCAP "gemma2.final_logit_softcapping"
#define KEY_WINDOW "gemma2.attention.sliding_window"
#define KEY_ROPE_BASE "gemma2.rope.freq_base"
#define KEY_QUERY_SCALAR "gemma2.query_pre_attn_scalar"

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

/* Gemma 2's values where a config.json or a GGUF file does not give them
 * (transformers' Gemma2Config defaults; llama.cpp's for the soft-caps) */
#define G8_DEFAULT_CTX_TRAIN 8192
#define G8_DEFAULT_WINDOW 4096
#define G8_DEFAULT_ATTN_SOFTCAP 50.0f
#define G8_DEFAULT_FINAL_SOFTCAP 30.0f
#define G8_DEFAULT_ROPE_BASE 10000.0f
#define G8_DEFAULT_RMS_EPS 1e-6f

#define TN_TOKEN_EMBD "token_embd.weight"
#define TN_OUTPUT_NORM "output_norm.weight"
#define TN_OUTPUT "output.weight"

/* Per-layer tensors: GGUF name "blk.N.<gguf>", HF name "model.layers.N.<hf>". */
enum g8_layer_tensor {
    LT_ATTN_NORM, LT_Q, LT_K, LT_V, LT_O, LT_POST_ATTN_NORM,
    LT_FFN_NORM, LT_GATE, LT_UP, LT_DOWN, LT_POST_FFW_NORM, LT_COUNT
};

typedef struct g8_tensor_name {
    const char *gguf;
    const char *hf;
    int is_norm;      /* stored as 1 + w (f32) in GGUF */
} g8_tensor_name;

extern const g8_tensor_name g8_layer_tensor_names[LT_COUNT];

#endif
