/* convert.c - Hugging Face Gemma 2 or Gemma 3 checkpoint (config.json + safetensors) to a
 * gemma2 / gemma3 GGUF file in llama.cpp's layout; also random-weight models of a given
 * config.json, for benchmarks. */
#include "arch.h"
#include "convert.h"
#include "gguf.h"
#include "lora.h"
#include "quant.h"
#include "safetensors.h"
#include "vocab.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's general.file_type values */
#define FTYPE_ALL_F32 0
#define FTYPE_MOSTLY_F16 1
#define FTYPE_MOSTLY_Q4_0 2
#define FTYPE_MOSTLY_Q8_0 7
#define FTYPE_MOSTLY_BF16 32

typedef struct hf_config {
    const g8_arch *arch;
    bool multimodal;        /* the text model inside Gemma3ForConditionalGeneration (config in text_config) */
    int vocab, hidden, layers, ff, heads, heads_kv, head_dim, ctx, window;
    int period;             /* sliding layers: il % period < period - 1 (0: all; window 0: none) */
    float qpas, eps, rope_base, rope_base_local, rope_factor, attn_cap, final_cap;
} hf_config;

/* One tensor to write: where its data comes from and how it is stored. */
typedef struct out_tensor {
    const st_tensor *src;   /* NULL: random weights */
    int64_t rows, cols;     /* cols is the contiguous dimension */
    uint32_t type;
    int is_norm;            /* store 1 + w */
    uint64_t seed;
    int layer, lora;        /* a layer matrix the adapter may change: its layer and LORA_* (lora -1: none) */
} out_tensor;

typedef struct conv_state {
    out_tensor *t;
    size_t n;
    float *row;             /* (cols) scratch */
    int n_kept;             /* matrices left unquantized (columns not a multiple of 32) */
    const gemma8_lora *lora; /* merged into the layer matrices, at lora_scale */
    float lora_scale;
    char kept_names[256];   /* the first of them */
} conv_state;

gemma8_convert_params gemma8_convert_default_params(void) {
    gemma8_convert_params p = {GEMMA8_TYPE_Q8_0, NULL, NULL, NULL, 1.0f, -1};
    return p;
}

/* ---- config.json ---------------------------------------------------------- */

static gemma8_status json_int(const cJSON *root, const char *path, const char *key, int *out, int def, bool required) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' is missing", path, key);
        *out = def;
        return GEMMA8_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 || v->valuedouble > 1e9)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' is not a positive integer", path, key);
    *out = (int)v->valuedouble;
    return GEMMA8_OK;
}

/* null means "off" (0) for the soft-caps */
static gemma8_status json_float(const cJSON *root, const char *path, const char *key, float *out, float def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) {
        *out = def;
        return GEMMA8_OK;
    }
    if (cJSON_IsNull(v)) {
        *out = 0;
        return GEMMA8_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' is not a non-negative number", path, key);
    *out = (float)v->valuedouble;
    return GEMMA8_OK;
}

/* Checkpoints of the Gemma family that gemma8 does not run, by config.json's model_type or class:
 * refused by name rather than converted into a wrong model. */
static const struct { const char *key, *what; } other_gemmas[] = {
    {"gemma3n", "Gemma 3n"}, {"gemma3n_text", "Gemma 3n"}, {"Gemma3nForConditionalGeneration", "Gemma 3n"},
    {"Gemma3nForCausalLM", "Gemma 3n"}, {"gemma4", "Gemma 4"}, {"gemma4_text", "Gemma 4"},
    {"Gemma4ForConditionalGeneration", "Gemma 4"}, {"Gemma4ForCausalLM", "Gemma 4"},
    {"paligemma", "PaliGemma"}, {"PaliGemmaForConditionalGeneration", "PaliGemma"},
    {"Gemma3TextModel", "EmbeddingGemma"}, {"gemma", "Gemma 1"}, {"GemmaForCausalLM", "Gemma 1"},
    {"recurrent_gemma", "RecurrentGemma"}, {"t5gemma", "T5Gemma"},
};

static bool str_is(const cJSON *j, const char *s) { return cJSON_IsString(j) && !strcmp(j->valuestring, s); }

/* The architecture of a config.json (model_type or architectures[0]); NULL with an error naming
 * what the checkpoint is when gemma8 cannot convert it. */
static const g8_arch *config_arch(const cJSON *root, const char *path, bool *multimodal) {
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    const char *cls = cJSON_IsString(a0) ? a0->valuestring : "?", *type = cJSON_IsString(mt) ? mt->valuestring : "?";
    for (size_t i = 0; i < sizeof other_gemmas / sizeof other_gemmas[0]; i++)
        if (!strcmp(cls, other_gemmas[i].key) || (!cJSON_IsString(a0) && !strcmp(type, other_gemmas[i].key))) {
            g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': %s (%s, model_type '%s') is not supported: gemma8 converts "
                    "Gemma2ForCausalLM, Gemma3ForCausalLM and the text model of Gemma3ForConditionalGeneration",
                    path, other_gemmas[i].what, cls, type);
            return NULL;
        }
    const g8_arch *a;
    for (int i = 0; (a = g8_arch_at(i)); i++) {
        *multimodal = a->hf_multimodal && (!strcmp(cls, a->hf_multimodal_class) ||
                                           (!cJSON_IsString(a0) && !strcmp(type, a->hf_multimodal)));
        if (*multimodal || !strcmp(cls, a->hf_class) || (!cJSON_IsString(a0) && !strcmp(type, a->hf_model_type)))
            return a;
    }
    g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': unsupported architecture '%s' (model_type '%s'); gemma8 converts "
            "Gemma2ForCausalLM, Gemma3ForCausalLM and Gemma3ForConditionalGeneration", path, cls, type);
    return NULL;
}

/* RoPE (gemma3): the Hub's form (rope_theta, rope_local_base_freq, rope_scaling) or newer
 * transformers' rope_parameters {full_attention: {...}, sliding_attention: {...}}. */
static gemma8_status read_rope(const cJSON *root, const char *path, hf_config *c) {
    gemma8_status st;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(rp, "full_attention");
    const cJSON *local = cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention");
    const cJSON *scaling = full;
    if (cJSON_IsObject(full) || cJSON_IsObject(local)) {
        if ((st = json_float(full, path, "rope_theta", &c->rope_base, c->arch->hf_rope_base)) ||
            (st = json_float(local, path, "rope_theta", &c->rope_base_local, G8_DEFAULT_ROPE_BASE)))
            return st;
        const cJSON *lt = cJSON_GetObjectItemCaseSensitive(local, "rope_type");
        if (lt && !str_is(lt, "default"))
            return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': RoPE type '%s' on the sliding layers is not supported", path,
                           cJSON_IsString(lt) ? lt->valuestring : "?");
    } else {
        if ((st = json_float(root, path, "rope_theta", &c->rope_base, c->arch->hf_rope_base)) ||
            (st = json_float(root, path, "rope_local_base_freq", &c->rope_base_local, G8_DEFAULT_ROPE_BASE)))
            return st;
        scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
        if (!scaling) scaling = rp; /* a flat rope_parameters: {rope_type, factor, ...} */
    }
    c->rope_factor = 0;
    if (cJSON_IsObject(scaling)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(scaling, "rope_type");
        if (!t) t = cJSON_GetObjectItemCaseSensitive(scaling, "type");
        if (str_is(t, "linear")) {
            if ((st = json_float(scaling, path, "factor", &c->rope_factor, 0))) return st;
            if (c->rope_factor <= 0)
                return g8_fail(GEMMA8_ERR_FORMAT, "'%s': linear RoPE scaling without a positive factor", path);
        } else if (t && !str_is(t, "default")) {
            return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': RoPE scaling '%s' is not supported (linear)", path,
                           cJSON_IsString(t) ? t->valuestring : "?");
        }
    }
    if (c->rope_base <= 0 || c->rope_base_local <= 0)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': the RoPE bases must be positive", path);
    return GEMMA8_OK;
}

/* The sliding layers (gemma3): layer_types, else sliding_window_pattern (transformers' rule: layer i
 * slides unless (i + 1) % pattern == 0), as the period llama.cpp's loader takes. */
static gemma8_status read_layer_types(const cJSON *root, const char *path, hf_config *c) {
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    int pattern = 6;
    if (!cJSON_IsArray(lt)) {
        gemma8_status st = json_int(root, path, "sliding_window_pattern", &pattern, 6, false);
        if (st) return st;
        c->period = pattern;
        return GEMMA8_OK;
    }
    if (cJSON_GetArraySize(lt) != c->layers)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': layer_types has %d entries for %d layers", path, cJSON_GetArraySize(lt),
                       c->layers);
    bool slides[G8_MAX_LAYER];
    int il = 0;
    for (const cJSON *e = lt->child; e; e = e->next, il++) {
        if (!str_is(e, "sliding_attention") && !str_is(e, "full_attention"))
            return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': layer type '%s' is not supported", path,
                           cJSON_IsString(e) ? e->valuestring : "?");
        slides[il] = str_is(e, "sliding_attention");
    }
    for (int period = 0; period <= c->layers + 1; period++) { /* the period that gives these types */
        bool same = true;
        for (int i = 0; i < c->layers && same; i++) same = slides[i] == (period == 0 || i % period < period - 1);
        if (same) {
            c->period = period;
            return GEMMA8_OK;
        }
    }
    return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': layer_types is not a repeating pattern of sliding layers ending in "
                   "a global one, which is all GGUF files can describe", path);
}

static gemma8_status read_config(const char *path, hf_config *c) {
    g8_map m;
    gemma8_status st = g8_map_file(path, &m);
    if (st) return st;
    cJSON *doc = cJSON_ParseWithLength((const char *)m.data, m.size);
    g8_unmap(&m);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a JSON object", path);
    }
    memset(c, 0, sizeof *c);
    if (!(c->arch = config_arch(doc, path, &c->multimodal))) {
        cJSON_Delete(doc);
        return GEMMA8_ERR_UNSUPPORTED;
    }
    const g8_arch *a = c->arch;
    const cJSON *root = doc;
    if (c->multimodal) { /* the text model's config; the vision tower's is not needed */
        root = cJSON_GetObjectItemCaseSensitive(doc, "text_config");
        if (!root) root = cJSON_GetObjectItemCaseSensitive(doc, "text_config_dict");
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(doc);
            return g8_fail(GEMMA8_ERR_FORMAT, "'%s': %s without a text_config", path, a->hf_multimodal_class);
        }
    }
    /* Gemma 2's checkpoints give every size; Gemma 3's leave out what transformers defaults */
    const bool req = a->hf_sizes_required;
    if ((st = json_int(root, path, "vocab_size", &c->vocab, a->hf_vocab, req)) ||
        (st = json_int(root, path, "hidden_size", &c->hidden, a->hf_hidden, req)) ||
        (st = json_int(root, path, "num_hidden_layers", &c->layers, a->hf_layers, req)) ||
        (st = json_int(root, path, "intermediate_size", &c->ff, a->hf_ff, req)) ||
        (st = json_int(root, path, "num_attention_heads", &c->heads, a->hf_heads, req)) ||
        (st = json_int(root, path, "num_key_value_heads", &c->heads_kv, req ? c->heads : a->hf_heads_kv, false)) ||
        (st = json_int(root, path, "head_dim", &c->head_dim, req ? c->hidden / c->heads : a->hf_head_dim, false)) ||
        (st = json_int(root, path, "max_position_embeddings", &c->ctx, a->hf_ctx, false)) ||
        (st = json_int(root, path, "sliding_window", &c->window, a->hf_window, false)) ||
        (st = json_float(root, path, "query_pre_attn_scalar", &c->qpas, (float)c->head_dim)) ||
        (st = json_float(root, path, "rms_norm_eps", &c->eps, G8_DEFAULT_RMS_EPS)) ||
        (st = json_float(root, path, "attn_logit_softcapping", &c->attn_cap, a->attn_softcap)) ||
        (st = json_float(root, path, "final_logit_softcapping", &c->final_cap, a->final_softcap)))
        goto done;
    if (c->layers > G8_MAX_LAYER) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': %d layers (gemma8 takes up to %d)", path, c->layers, G8_MAX_LAYER);
        goto done;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_bidirectional_attention"))) {
        st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': bidirectional attention (EmbeddingGemma) is not supported", path);
        goto done;
    }
    if (a->hf_layer_forms) {
        if ((st = read_rope(root, path, c)) || (st = read_layer_types(root, path, c))) goto done;
    } else {
        if ((st = json_float(root, path, "rope_theta", &c->rope_base, a->hf_rope_base))) goto done;
        c->rope_base_local = c->rope_base;
        c->period = a->swa_period;
    }
    if (c->heads % c->heads_kv || c->head_dim % 2 || c->qpas <= 0 || c->rope_base <= 0)
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': inconsistent config (heads %d / kv heads %d, head_dim %d)", path,
                     c->heads, c->heads_kv, c->head_dim);
done:
    cJSON_Delete(doc);
    return st;
}

/* ---- tensors --------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static gemma8_status fill_tensor(void *user, size_t index, void *buf, size_t nbytes) {
    conv_state *cs = user;
    const out_tensor *ot = &cs->t[index];
    const size_t row_bytes = g8_gguf_row_size(ot->type, ot->cols);
    (void)nbytes;
    uint64_t rng = ot->seed;
    for (int64_t r = 0; r < ot->rows; r++) {
        float *row = cs->row;
        if (ot->src) {
            size_t esz = ot->src->type == GEMMA8_TYPE_F32 ? 4 : 2;
            g8_to_f32(ot->src->type, (const uint8_t *)ot->src->data + (size_t)r * ot->cols * esz, row, ot->cols);
        } else { /* random: uniform, std about 0.02 for matrices, small norm weights */
            const float amp = ot->is_norm ? 0.1f : 0.035f;
            for (int64_t i = 0; i < ot->cols; i++)
                row[i] = amp * ((float)(splitmix(&rng) >> 40) / (float)(1 << 23) - 1.0f);
        }
        if (ot->is_norm)
            for (int64_t i = 0; i < ot->cols; i++) row[i] += 1.0f;
        if (cs->lora && ot->lora >= 0) g8_lora_merge_row(cs->lora, ot->layer, ot->lora, r, cs->lora_scale, row);
        uint8_t *dst = (uint8_t *)buf + (size_t)r * row_bytes;
        switch (ot->type) {
        case GEMMA8_TYPE_F32: memcpy(dst, row, (size_t)ot->cols * 4); break;
        case GEMMA8_TYPE_F16:
            for (int64_t i = 0; i < ot->cols; i++) {
                uint16_t h = g8_f32_to_f16(row[i]);
                memcpy(dst + 2 * i, &h, 2);
            }
            break;
        case GEMMA8_TYPE_BF16:
            for (int64_t i = 0; i < ot->cols; i++) {
                uint16_t h = g8_f32_to_bf16(row[i]);
                memcpy(dst + 2 * i, &h, 2);
            }
            break;
        case GEMMA8_TYPE_Q8_0: g8_quantize_row_q8_0_ref(row, (block_q8_0 *)dst, ot->cols); break;
        case GEMMA8_TYPE_Q4_0: g8_quantize_row_q4_0_ref(row, (block_q4_0 *)dst, ot->cols); break;
        }
    }
    return GEMMA8_OK;
}

uint32_t g8_file_type(uint32_t type) {
    switch (type) {
    case GEMMA8_TYPE_Q8_0: return FTYPE_MOSTLY_Q8_0;
    case GEMMA8_TYPE_Q4_0: return FTYPE_MOSTLY_Q4_0;
    case GEMMA8_TYPE_F16: return FTYPE_MOSTLY_F16;
    case GEMMA8_TYPE_BF16: return FTYPE_MOSTLY_BF16;
    default: return FTYPE_ALL_F32;
    }
}

uint32_t g8_output_type(const gemma8_convert_params *p) {
    if (p->output_type >= 0) return (uint32_t)p->output_type;
    return p->type == GEMMA8_TYPE_Q4_0 ? GEMMA8_TYPE_Q8_0 : p->type;
}

static bool writable_type(int32_t t) {
    return t == GEMMA8_TYPE_F32 || t == GEMMA8_TYPE_F16 || t == GEMMA8_TYPE_BF16 || t == GEMMA8_TYPE_Q8_0 ||
           t == GEMMA8_TYPE_Q4_0;
}

gemma8_status g8_check_convert_types(const gemma8_convert_params *p) {
    if (!writable_type((int32_t)p->type))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "output type %s (%d) is not supported (f32, f16, bf16, q8_0, q4_0)",
                       gemma8_type_name(p->type), (int)p->type);
    if (p->output_type != -1 && !writable_type(p->output_type))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "the embedding's type %d is not supported (f32, f16, bf16, q8_0, q4_0)",
                       (int)p->output_type);
    return GEMMA8_OK;
}

/* Adds one tensor of its source's first `keep` rows, checking the source's shape. */
static gemma8_status add_tensor(gguf_writer *w, conv_state *cs, const st_set *set, const char *hf_name,
                                const char *gguf_name, int64_t rows, int64_t keep, int64_t cols, int is_norm,
                                const gemma8_convert_params *p) {
    out_tensor *ot = &cs->t[cs->n];
    memset(ot, 0, sizeof *ot);
    ot->rows = keep;
    ot->cols = cols;
    ot->is_norm = is_norm;
    ot->seed = 0x5eed0000ull + cs->n;
    ot->lora = -1;
    uint32_t src_type = GEMMA8_TYPE_BF16;
    if (set) {
        const st_tensor *t = g8_st_find(set, hf_name);
        if (!t) return g8_fail(GEMMA8_ERR_FORMAT, "tensor '%s' is missing from the checkpoint", hf_name);
        bool ok = is_norm ? (t->n_dims == 1 && t->shape[0] == cols)
                          : (t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols);
        if (!ok) {
            if (is_norm)
                return g8_fail(GEMMA8_ERR_FORMAT, "tensor '%s' has shape [%lld%s], expected [%lld] from config.json", hf_name,
                               (long long)t->shape[0], t->n_dims > 1 ? ", ..." : "", (long long)cols);
            return g8_fail(GEMMA8_ERR_FORMAT, "tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] from config.json",
                           hf_name, (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0),
                           (long long)rows, (long long)cols);
        }
        if (t->type == ST_TYPE_I32)
            return g8_fail(GEMMA8_ERR_UNSUPPORTED, "tensor '%s' holds integers, not weights", hf_name);
        ot->src = t;
        src_type = t->type;
    }
    if (is_norm) {
        ot->type = GEMMA8_TYPE_F32;
    } else {
        const bool embd = !strcmp(gguf_name, TN_TOKEN_EMBD) || !strcmp(gguf_name, TN_OUTPUT);
        ot->type = embd ? g8_output_type(p) : p->type;
        if ((ot->type == GEMMA8_TYPE_Q8_0 || ot->type == GEMMA8_TYPE_Q4_0) && cols % QK8_0) {
            ot->type = src_type == GEMMA8_TYPE_BF16 ? GEMMA8_TYPE_BF16 : GEMMA8_TYPE_F16;
            size_t used = strlen(cs->kept_names);
            if (cs->n_kept++ < 3)
                snprintf(cs->kept_names + used, sizeof cs->kept_names - used, "%s%s %s", used ? ", " : "",
                         gguf_name, gemma8_type_name(ot->type));
        }
    }
    int64_t ne[2] = {cols, keep};
    g8_gguf_add_tensor(w, gguf_name, ot->type, is_norm ? 1 : 2, ne);
    cs->n++;
    return GEMMA8_OK;
}

static gemma8_status convert(const char *config_path, const st_set *set, const char *hf_dir, const char *name,
                             const char *out_path, const gemma8_convert_params *p) {
    gemma8_status st = g8_check_convert_types(p);
    if (st) return st;
    hf_config c;
    if ((st = read_config(config_path, &c))) return st;
    gguf_writer *w = g8_gguf_writer_new();
    conv_state cs = {0};
    size_t max_tensors = (size_t)c.layers * LT_COUNT + 3;
    cs.t = g8_calloc(max_tensors, sizeof(out_tensor), "tensor list");
    cs.row = g8_malloc((size_t)G8_MAX(G8_MAX(c.hidden, c.ff), c.heads * c.head_dim) * sizeof(float), "a row");
    if (!w || !cs.t || !cs.row) {
        st = GEMMA8_ERR_NOMEM;
        goto done;
    }

    const g8_arch *a = c.arch;
    char k[96];
#define KEY(suffix) g8_arch_key(a, suffix, k)
    g8_gguf_set_str(w, KEY_ARCH, a->name);
    g8_gguf_set_str(w, "general.type", "model");
    g8_gguf_set_str(w, KEY_NAME, name);
    g8_gguf_set_u32(w, KEY(KEY_CTX), (uint32_t)c.ctx);
    g8_gguf_set_u32(w, KEY(KEY_EMBD), (uint32_t)c.hidden);
    g8_gguf_set_u32(w, KEY(KEY_BLOCKS), (uint32_t)c.layers);
    g8_gguf_set_u32(w, KEY(KEY_FF), (uint32_t)c.ff);
    g8_gguf_set_u32(w, KEY(KEY_HEADS), (uint32_t)c.heads);
    g8_gguf_set_u32(w, KEY(KEY_HEADS_KV), (uint32_t)c.heads_kv);
    g8_gguf_set_f32(w, KEY(KEY_RMS_EPS), c.eps);
    g8_gguf_set_u32(w, KEY(KEY_KEY_LEN), (uint32_t)c.head_dim);
    g8_gguf_set_u32(w, KEY(KEY_VAL_LEN), (uint32_t)c.head_dim);
    g8_gguf_set_u32(w, KEY_FILE_TYPE, g8_file_type(p->type));
    g8_gguf_set_f32(w, KEY(KEY_ROPE_BASE), c.rope_base);
    g8_gguf_set_f32(w, KEY(KEY_QUERY_SCALAR), c.qpas);
    /* what llama.cpp's converter writes, and what its loader would otherwise assume wrongly: a cap
     * where the architecture's default is one or the config sets one, the window where a layer
     * slides, the pattern where it is not the default, the local base where it is its own */
    const bool any_sliding = c.period == 0 || (c.period > 1 && c.layers > 0);
    if (c.attn_cap > 0 || a->attn_softcap > 0) g8_gguf_set_f32(w, KEY(KEY_ATTN_SOFTCAP), c.attn_cap);
    if (c.final_cap > 0 || a->final_softcap > 0) g8_gguf_set_f32(w, KEY(KEY_FINAL_SOFTCAP), c.final_cap);
    if (any_sliding) g8_gguf_set_u32(w, KEY(KEY_WINDOW), (uint32_t)c.window);
    if (any_sliding && c.period != a->swa_period) g8_gguf_set_u32(w, KEY(KEY_PATTERN), (uint32_t)c.period);
    if (a->local_rope_own_base) g8_gguf_set_f32(w, KEY(KEY_ROPE_BASE_SWA), c.rope_base_local);
    if (c.rope_factor > 0) {
        g8_gguf_set_str(w, KEY(KEY_ROPE_SCALING_TYPE), "linear");
        g8_gguf_set_f32(w, KEY(KEY_ROPE_SCALING_FACTOR), c.rope_factor);
    }
#undef KEY
    g8_gguf_set_u32(w, KEY_QUANT_VERSION, 2);
    int n_vocab;
    if ((st = g8_vocab_convert(w, hf_dir, c.vocab, a->vocab_own_size, &n_vocab))) goto done;

    /* the text model's tensors: "model." (CausalLM); in Gemma3ForConditionalGeneration
     * "language_model.model." (the Hub's files) or "model.language_model." (newer transformers) */
    const char *prefix = "model.", *head = "lm_head.weight";
    if (c.multimodal && set) {
        const char *prefixes[2][2] = {{"language_model.model.", "language_model.lm_head.weight"},
                                      {"model.language_model.", "lm_head.weight"}};
        prefix = NULL;
        for (int i = 0; i < 2 && !prefix; i++) {
            char probe[128];
            snprintf(probe, sizeof probe, "%sembed_tokens.weight", prefixes[i][0]);
            if (g8_st_find(set, probe)) prefix = prefixes[i][0], head = prefixes[i][1];
        }
        if (!prefix) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "%s checkpoint without language_model.model.embed_tokens.weight or "
                         "model.language_model.embed_tokens.weight", a->hf_multimodal_class);
            goto done;
        }
        size_t skipped = 0;
        for (size_t i = 0; i < set->n_tensors; i++)
            skipped += strncmp(set->tensors[i].name, prefix, strlen(prefix)) && strcmp(set->tensors[i].name, head);
        g8_log(G8_LOG_INFO, "%s: converting the text model (%s*); the vision tower and projector (%zu tensors) "
               "are skipped", a->hf_multimodal_class, prefix, skipped);
    }

    const int64_t E = c.hidden, Q = (int64_t)c.heads * c.head_dim, KV = (int64_t)c.heads_kv * c.head_dim;
    gemma8_lora *lora = NULL;
    if (p->lora) { /* checked against the checkpoint's shapes, merged row by row as the file is written */
        const int64_t rows[LORA_MATS] = {Q, KV, KV, E, c.ff, c.ff, E}, cols[LORA_MATS] = {E, E, E, Q, E, E, c.ff};
        if (!isfinite(p->lora_scale)) {
            st = g8_fail(GEMMA8_ERR_INVALID_ARG, "the LoRA scale is not finite");
            goto done;
        }
        if ((st = g8_lora_load_shaped(p->lora, a->name, c.layers, rows, cols, &lora))) goto done;
        cs.lora = lora;
        cs.lora_scale = p->lora_scale;
    }
    char hf[160];
    snprintf(hf, sizeof hf, "%sembed_tokens.weight", prefix);
    /* the embedding's rows past the vocabulary are dropped (gemma3) */
    if ((st = add_tensor(w, &cs, set, hf, TN_TOKEN_EMBD, c.vocab, n_vocab, E, 0, p))) goto done;
    if (set && g8_st_find(set, head) && (st = add_tensor(w, &cs, set, head, TN_OUTPUT, c.vocab, n_vocab, E, 0, p)))
        goto done;
    const int n_layer_tensors = g8_arch_layer_tensors(a);
    for (int il = 0; il < c.layers; il++) {
        const int64_t shape[LT_COUNT][2] = {
            [LT_ATTN_NORM] = {1, E}, [LT_Q] = {Q, E}, [LT_K] = {KV, E}, [LT_V] = {KV, E}, [LT_O] = {E, Q},
            [LT_POST_ATTN_NORM] = {1, E}, [LT_FFN_NORM] = {1, E}, [LT_GATE] = {c.ff, E}, [LT_UP] = {c.ff, E},
            [LT_DOWN] = {E, c.ff}, [LT_POST_FFW_NORM] = {1, E}, [LT_Q_NORM] = {1, c.head_dim},
            [LT_K_NORM] = {1, c.head_dim},
        };
        for (int kt = 0; kt < n_layer_tensors; kt++) {
            char gg[96];
            snprintf(hf, sizeof hf, "%slayers.%d.%s", prefix, il, g8_layer_tensor_names[kt].hf);
            snprintf(gg, sizeof gg, "blk.%d.%s", il, g8_layer_tensor_names[kt].gguf);
            const int is_norm = g8_layer_tensor_names[kt].is_norm;
            if ((st = add_tensor(w, &cs, set, hf, gg, shape[kt][0], shape[kt][0], shape[kt][1], is_norm, p))) goto done;
            for (int m = 0; m < LORA_MATS; m++)
                if (g8_lora_layer_tensor[m] == kt) cs.t[cs.n - 1].lora = m, cs.t[cs.n - 1].layer = il;
        }
    }
    snprintf(hf, sizeof hf, "%snorm.weight", prefix);
    if ((st = add_tensor(w, &cs, set, hf, TN_OUTPUT_NORM, 1, 1, E, 1, p))) goto done;
    if (cs.n_kept)
        g8_log(G8_LOG_WARN, "%d matrices stay unquantized, their rows not being a multiple of 32: %s%s", cs.n_kept,
               cs.kept_names, cs.n_kept > 3 ? ", ..." : "");
    st = g8_gguf_write(w, out_path, fill_tensor, &cs, p->progress, p->progress_user_data);
done:
    gemma8_lora_free((gemma8_lora *)cs.lora);
    g8_gguf_writer_free(w);
    free(cs.t);
    free(cs.row);
    return st;
}

static const char *base_name(const char *path) {
    const char *s = path + strlen(path);
    while (s > path && s[-1] == '/') s--; /* trailing slashes */
    const char *e = s;
    while (s > path && s[-1] != '/') s--;
    static _Thread_local char buf[128];
    snprintf(buf, sizeof buf, "%.*s", (int)G8_MIN((size_t)(e - s), sizeof buf - 1), s);
    return buf;
}

gemma8_status gemma8_convert_hf(const char *hf_dir, const char *out_path, const gemma8_convert_params *params) {
    if (!hf_dir || !out_path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "convert needs an input directory and an output path");
    gemma8_convert_params p = params ? *params : gemma8_convert_default_params();
    char *config = g8_path_join(hf_dir, "config.json");
    if (!config) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    hf_config c;
    gemma8_status st = read_config(config, &c); /* refuse other architectures before touching weights */
    st_set set;
    if (!st) st = g8_st_open_dir(hf_dir, &set);
    if (!st) {
        st = convert(config, &set, hf_dir, base_name(hf_dir), out_path, &p);
        g8_st_close(&set);
    }
    free(config);
    return st;
}

gemma8_status gemma8_convert_random(const char *config_path, const char *tokenizer_dir, const char *out_path,
                                    const gemma8_convert_params *params) {
    if (!config_path || !out_path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "convert needs a config and an output path");
    gemma8_convert_params p = params ? *params : gemma8_convert_default_params();
    return convert(config_path, NULL, tokenizer_dir, "random", out_path, &p);
}
