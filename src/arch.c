/* arch.c - gemma2 tensor names (gguf-py's TensorNameMap for Gemma2ForCausalLM). */
#include "arch.h"

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
};
