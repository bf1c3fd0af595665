/* arch.c - the architectures gemma8 runs, as data; tensor names (gguf-py's TensorNameMap for
 * Gemma2ForCausalLM and Gemma3ForCausalLM). */
#include "arch.h"

#include <stdio.h>
#include <string.h>

/* Gemma 2: every other layer slides (the even ones), one RoPE base, soft-caps 50 / 30 unless the
 * file says otherwise (transformers' Gemma2Config; llama.cpp's loader). */
static const g8_arch gemma2 = {
    .name = "gemma2", .hf_model_type = "gemma2", .hf_class = "Gemma2ForCausalLM",
    .qk_norm = false, .window_required = false, .swa_period = 2, .qpas_hidden_layers = 46,
    .local_rope_own_base = false, .local_rope_scaled = true,
    .attn_softcap = 50.0f, .final_softcap = 30.0f,
    .hf_sizes_required = true, .hf_layer_forms = false, .vocab_own_size = false, .template_keeps_system = false,
    .hf_vocab = 256000, .hf_hidden = 2304, .hf_layers = 26, .hf_ff = 9216, .hf_heads = 8, .hf_heads_kv = 4,
    .hf_head_dim = 256, .hf_ctx = 8192, .hf_window = 4096, .hf_rope_base = 10000.0f,
};

/* Gemma 3: q/k norms, 5 local layers to 1 global, 10,000 / 1,000,000 RoPE bases with linear
 * scaling on the global layers, no soft-caps unless set (transformers' Gemma3TextConfig;
 * llama.cpp's gemma3 loader). */
static const g8_arch gemma3 = {
    .name = "gemma3", .hf_model_type = "gemma3_text", .hf_class = "Gemma3ForCausalLM",
    .hf_multimodal = "gemma3", .hf_multimodal_class = "Gemma3ForConditionalGeneration",
    .qk_norm = true, .window_required = true, .swa_period = 6, .qpas_hidden_layers = 62,
    .local_rope_own_base = true, .local_rope_scaled = false,
    .attn_softcap = 0.0f, .final_softcap = 0.0f,
    .hf_sizes_required = false, .hf_layer_forms = true, .vocab_own_size = true, .template_keeps_system = true,
    .hf_vocab = 262208, .hf_hidden = 2304, .hf_layers = 26, .hf_ff = 9216, .hf_heads = 8, .hf_heads_kv = 4,
    .hf_head_dim = 256, .hf_ctx = 131072, .hf_window = 4096, .hf_rope_base = 1000000.0f,
};

static const g8_arch *const arches[] = {&gemma2, &gemma3};

const g8_arch *g8_arch_at(int i) {
    return i >= 0 && (size_t)i < sizeof arches / sizeof arches[0] ? arches[i] : NULL;
}

const g8_arch *g8_arch_find(const char *name, size_t len) {
    const g8_arch *a;
    for (int i = 0; (a = g8_arch_at(i)); i++)
        if (strlen(a->name) == len && !memcmp(a->name, name, len)) return a;
    return NULL;
}

const char *g8_arch_key(const g8_arch *a, const char *suffix, char *buf) {
    snprintf(buf, 96, "%s.%s", a->name, suffix);
    return buf;
}

const char *g8_arch_names(void) { return "gemma2, gemma3"; }

const g8_tensor_name g8_layer_tensor_names[LT_COUNT] = {
    [LT_ATTN_NORM] = {"attn_norm.weight", "input_layernorm.weight", 1},
    [LT_Q] = {"attn_q.weight", "self_attn.q_proj.weight", 0},
    [LT_K] = {"attn_k.weight", "self_attn.k_proj.weight", 0},
    [LT_V] = {"attn_v.weight", "self_attn.v_proj.weight", 0},
    [LT_O] = {"attn_output.weight", "self_attn.o_proj.weight", 0},
    [LT_POST_ATTN_NORM] = {"post_attention_norm.weight", "post_attention_layernorm.weight", 1},
    [LT_FFN_NORM] = {"ffn_norm.weight", "pre_feedforward_layernorm.weight", 1},
    [LT_GATE] = {"ffn_gate.weight", "mlp.gate_proj.weight", 0},
    [LT_UP] = {"ffn_up.weight", "mlp.up_proj.weight", 0},
    [LT_DOWN] = {"ffn_down.weight", "mlp.down_proj.weight", 0},
    [LT_POST_FFW_NORM] = {"post_ffw_norm.weight", "post_feedforward_layernorm.weight", 1},
    [LT_Q_NORM] = {"attn_q_norm.weight", "self_attn.q_norm.weight", 1},
    [LT_K_NORM] = {"attn_k_norm.weight", "self_attn.k_norm.weight", 1},
};
