/* lora.c - LoRA adapters: llama.cpp's LoRA GGUF files and PEFT folders read
 * into one form (A, B transposed, a factor per module), checked against the
 * model, applied per token at run time; PEFT folders written as llama.cpp's
 * files (gemma8_lora_convert). */
#include "lora.h"
#include "gguf.h"
#include "safetensors.h"
#include "threadpool.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const int g8_lora_layer_tensor[LORA_MATS] = {LT_Q, LT_K, LT_V, LT_O, LT_GATE, LT_UP, LT_DOWN};

/* PEFT's module names, in the same order */
static const char *const peft_modules[LORA_MATS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                    "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                    "mlp.down_proj"};

static const g8_matrix *base_matrix(const gemma8_model *m, int il, int which) {
    const g8_layer *L = &m->layers[il];
    const g8_matrix *mats[LORA_MATS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return mats[which];
}

void gemma8_lora_free(gemma8_lora *lora) {
    if (!lora) return;
    for (int i = 0; lora->mats && i < lora->n_layer * LORA_MATS; i++) {
        free(lora->mats[i].a);
        free(lora->mats[i].bt);
    }
    free(lora->mats);
    free(lora);
}

static gemma8_lora *lora_new(int n_layer, const int64_t rows[LORA_MATS], const int64_t cols[LORA_MATS],
                             const char *path) {
    gemma8_lora *l = g8_calloc(1, sizeof *l, "a LoRA adapter");
    if (!l) return NULL;
    l->n_layer = n_layer;
    memcpy(l->rows, rows, sizeof l->rows);
    memcpy(l->cols, cols, sizeof l->cols);
    l->mats = g8_calloc((size_t)l->n_layer * LORA_MATS, sizeof *l->mats, "a LoRA adapter");
    if (!l->mats) {
        free(l);
        return NULL;
    }
    char tmp[sizeof l->name];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') tmp[--n] = 0; /* a folder given with a trailing slash */
    const char *base = strrchr(tmp, '/');
    snprintf(l->name, sizeof l->name, "%s", base ? base + 1 : tmp);
    return l;
}

/* Stores A (r, in) and B (out, r), both given as row-major f32 getters'
 * results, after checking them against the base matrix. */
static gemma8_status set_mat(gemma8_lora *l, const char *path, int il, int which, int r, int64_t a_in, int64_t b_out,
                             int64_t b_r, float s) {
    const int64_t rows = l->rows[which], cols = l->cols[which];
    const char *name = g8_layer_tensor_names[g8_lora_layer_tensor[which]].gguf;
    if (r <= 0 || r > 65536)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': layer %d %s: rank %d is not valid", path, il, name, r);
    if (a_in != cols || b_out != rows || b_r != r)
        return g8_fail(GEMMA8_ERR_FORMAT,
                       "'%s': layer %d %s: A is (%d, %lld) and B (%lld, %lld), the model's matrix is (%lld, %lld): "
                       "an adapter for another model",
                       path, il, name, r, (long long)a_in, (long long)b_out, (long long)b_r, (long long)rows,
                       (long long)cols);
    if (!isfinite(s)) return g8_fail(GEMMA8_ERR_FORMAT, "'%s': layer %d %s: its scale is not finite", path, il, name);
    g8_lora_mat *m = &l->mats[il * LORA_MATS + which];
    if (m->r) return g8_fail(GEMMA8_ERR_FORMAT, "'%s': layer %d %s is adapted twice", path, il, name);
    m->r = r;
    m->s = s;
    m->a = malloc((size_t)r * (size_t)cols * sizeof(float));
    m->bt = malloc((size_t)r * (size_t)rows * sizeof(float));
    if (!m->a || !m->bt) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for a LoRA adapter");
    if (r > l->max_r) l->max_r = r;
    return GEMMA8_OK;
}

/* B (out, r) of any float type, transposed into bt (r, out) */
static void transpose_b(uint32_t type, const void *src, int64_t out, int r, float *bt) {
    float *row = malloc((size_t)r * sizeof(float));
    const size_t esz = type == GEMMA8_TYPE_F32 ? 4 : 2;
    for (int64_t o = 0; row && o < out; o++) {
        g8_to_f32(type, (const uint8_t *)src + (size_t)o * (size_t)r * esz, row, r);
        for (int j = 0; j < r; j++) bt[(size_t)j * (size_t)out + (size_t)o] = row[j];
    }
    free(row);
}

static bool finite_all(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

/* ---- llama.cpp's LoRA GGUF ------------------------------------------------------------ */

static bool str_is(const gguf_str *s, const char *want) { return s->len == strlen(want) && !memcmp(s->p, want, s->len); }

/* "blk.N.<name>.weight.lora_a" -> layer, matrix, which side; false if not of that form */
static bool parse_gguf_name(const char *name, int *il, int *which, bool *is_b) {
    int n = 0, consumed = 0;
    if (sscanf(name, "blk.%d.%n", &n, &consumed) != 1 || consumed == 0) return false;
    const char *rest = name + consumed;
    for (int k = 0; k < LORA_MATS; k++) {
        const char *t = g8_layer_tensor_names[g8_lora_layer_tensor[k]].gguf; /* "attn_q.weight" */
        const size_t lt = strlen(t);
        if (strncmp(rest, t, lt) || rest[lt] != '.') continue;
        if (strcmp(rest + lt + 1, "lora_a") && strcmp(rest + lt + 1, "lora_b")) return false;
        *il = n;
        *which = k;
        *is_b = rest[lt + 6] == 'b';
        return true;
    }
    return false;
}

static gemma8_status load_gguf(gemma8_lora *l, const char *path, const char *arch) {
    gguf_file f;
    gemma8_status st = g8_gguf_open(path, &f);
    if (st) return st;
    gguf_str s;
    if (!g8_gguf_get_str(&f, "general.type", &s, &st) || !str_is(&s, "adapter") ||
        !g8_gguf_get_str(&f, "adapter.type", &s, &st) || !str_is(&s, "lora")) {
        st = st ? st : g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a LoRA adapter (general.type 'adapter', adapter.type "
                                                  "'lora')", path);
        goto done;
    }
    if (g8_gguf_get_str(&f, "general.architecture", &s, &st) && !str_is(&s, arch)) {
        st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': an adapter for architecture '%.*s', not %s", path,
                     (int)G8_MIN(s.len, 64), s.p, arch);
        goto done;
    }
    if (st) goto done;
    if (!g8_gguf_get_f32(&f, "adapter.lora.alpha", &l->alpha, &st) && st) goto done;
    for (uint64_t i = 0; i < f.n_tensors; i++) {
        const gguf_tensor *a = &f.tensors[i];
        int il, which;
        bool is_b;
        if (!parse_gguf_name(a->name, &il, &which, &is_b)) {
            st = g8_fail(GEMMA8_ERR_UNSUPPORTED,
                         "'%s': tensor '%s' is not supported (LoRA on the attention and feed-forward projections only)",
                         path, a->name);
            goto done;
        }
        if (is_b) continue; /* taken with its A */
        if (il < 0 || il >= l->n_layer) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' is for layer %d; the model has %d", path, a->name, il,
                         l->n_layer);
            goto done;
        }
        char bname[160];
        snprintf(bname, sizeof bname, "%.*s_b", (int)strlen(a->name) - 2, a->name);
        const gguf_tensor *b = g8_gguf_find_tensor(&f, bname);
        if (!b) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' has no '%s'", path, a->name, bname);
            goto done;
        }
        if (a->n_dims != 2 || b->n_dims != 2 || a->type == GEMMA8_TYPE_Q8_0 || b->type == GEMMA8_TYPE_Q8_0) {
            st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': '%s' must be a 2-d float tensor (f32, f16, bf16)", path,
                         a->name);
            goto done;
        }
        const int r = (int)a->ne[1];
        const float factor = l->alpha != 0 ? l->alpha / (float)r : 1.0f; /* llama.cpp's rule */
        if ((st = set_mat(l, path, il, which, r, a->ne[0], b->ne[1], b->ne[0], factor))) goto done;
        g8_lora_mat *m = &l->mats[il * LORA_MATS + which];
        g8_to_f32(a->type, a->data, m->a, (int64_t)r * a->ne[0]);
        transpose_b(b->type, b->data, b->ne[1], r, m->bt);
        if (!finite_all(m->a, (size_t)r * (size_t)a->ne[0]) || !finite_all(m->bt, (size_t)r * (size_t)b->ne[1])) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' holds NaN or infinity", path, a->name);
            goto done;
        }
    }
    /* every B has its A */
    for (uint64_t i = 0; i < f.n_tensors; i++) {
        int il, which;
        bool is_b;
        if (parse_gguf_name(f.tensors[i].name, &il, &which, &is_b) && is_b &&
            (il < 0 || il >= l->n_layer || !l->mats[il * LORA_MATS + which].r)) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' has no lora_a", path, f.tensors[i].name);
            goto done;
        }
    }
done:
    g8_gguf_close(&f);
    return st;
}

/* ---- PEFT folders ------------------------------------------------------------------ */

typedef struct peft_config {
    int r;
    float alpha;
    bool rslora;
    cJSON *root;             /* owns the rest */
    const cJSON *targets;    /* target_modules: a list, or a string (a regex, not supported) */
    const cJSON *rank_pattern, *alpha_pattern;
} peft_config;

static bool json_true(const cJSON *o, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static gemma8_status read_peft_config(const char *dir, peft_config *c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    g8_map m;
    gemma8_status st = g8_map_file(path, &m);
    if (st) return st;
    c->root = cJSON_ParseWithLength((const char *)m.data, m.size);
    g8_unmap(&m);
    const cJSON *root = c->root;
    if (!cJSON_IsObject(root)) return g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a JSON object", path);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "peft_type");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "r");
    const cJSON *alpha = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(root, "bias");
    const cJSON *save = cJSON_GetObjectItemCaseSensitive(root, "modules_to_save");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "LORA"))
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': peft_type is not LORA", path);
    if (json_true(root, "use_dora")) return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': DoRA is not supported", path);
    if (json_true(root, "fan_in_fan_out"))
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': fan_in_fan_out is not supported", path);
    if (cJSON_IsString(bias) && strcmp(bias->valuestring, "none"))
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': bias '%s' is not supported (LoRA without bias terms only)", path,
                       bias->valuestring);
    if (cJSON_IsArray(save) && cJSON_GetArraySize(save) > 0)
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': modules_to_save is not supported", path);
    if (!cJSON_IsNumber(r) || r->valuedouble < 1 || r->valuedouble > 65536)
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': 'r' must be a positive integer", path);
    if (!cJSON_IsNumber(alpha) || !isfinite(alpha->valuedouble))
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': 'lora_alpha' is not a number", path);
    c->r = r->valueint;
    c->alpha = (float)alpha->valuedouble;
    c->rslora = json_true(root, "use_rslora");
    c->targets = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
    c->rank_pattern = cJSON_GetObjectItemCaseSensitive(root, "rank_pattern");
    c->alpha_pattern = cJSON_GetObjectItemCaseSensitive(root, "alpha_pattern");
    if (!cJSON_IsArray(c->targets))
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': target_modules must be a list of module names", path);
    const cJSON *t;
    cJSON_ArrayForEach(t, c->targets) {
        bool known = false;
        for (int k = 0; cJSON_IsString(t) && k < LORA_MATS; k++)
            known |= !strcmp(strchr(peft_modules[k], '.') + 1, t->valuestring);
        if (!known)
            return g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': target module '%s' is not supported (q/k/v/o_proj, "
                           "gate/up/down_proj)", path, cJSON_IsString(t) ? t->valuestring : "?");
    }
    return GEMMA8_OK;
}

/* "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight" -> layer, matrix, side (the text
 * model of Gemma3ForConditionalGeneration: "...model.language_model.layers.N..." or
 * "...language_model.model.layers.N...") */
static bool peft_name(const char *name, int *il, int *which, bool *is_b) {
    int consumed = 0;
    const char *p = strstr(name, "model.layers.");
    if (!p && (p = strstr(name, ".language_model.layers."))) p += strlen(".language_");
    *il = -1;
    *which = -1;
    if (!p || sscanf(p, "model.layers.%d.%n", il, &consumed) != 1 || !consumed || *il < 0) return false;
    for (int k = 0; k < LORA_MATS; k++) {
        const size_t n = strlen(peft_modules[k]);
        if (!strncmp(p + consumed, peft_modules[k], n) && p[consumed + n] == '.') *which = k;
    }
    const char *side = *which >= 0 ? p + consumed + strlen(peft_modules[*which]) : "";
    *is_b = !strcmp(side, ".lora_B.weight");
    return *is_b || !strcmp(side, ".lora_A.weight");
}

/* a rank_pattern / alpha_pattern entry for a module ("model.layers.3.self_attn.q_proj"):
 * the longest key that ends the module's name at a dot boundary */
static const cJSON *pattern_for(const cJSON *pattern, const char *module) {
    const cJSON *best = NULL, *e;
    size_t best_len = 0, ml = strlen(module);
    if (!cJSON_IsObject(pattern)) return NULL;
    cJSON_ArrayForEach(e, pattern) {
        const size_t kl = strlen(e->string);
        if (kl > ml || strcmp(module + ml - kl, e->string) || (kl < ml && module[ml - kl - 1] != '.')) continue;
        if (kl > best_len && cJSON_IsNumber(e)) best = e, best_len = kl;
    }
    return best;
}

static gemma8_status load_peft(gemma8_lora *l, const char *dir) {
    peft_config c = {0};
    gemma8_status st = read_peft_config(dir, &c);
    st_set set = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (!st) st = g8_st_open_file(path, &set);
    for (size_t i = 0; !st && i < set.n_tensors; i++) {
        const st_tensor *t = &set.tensors[i];
        int il, which;
        bool is_b;
        if (!peft_name(t->name, &il, &which, &is_b)) {
            st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': tensor '%s' is not supported (lora_A/lora_B weights of "
                         "q/k/v/o_proj and gate/up/down_proj only)", path, t->name);
            break;
        }
        if (is_b) continue; /* taken with its A */
        if (il < 0 || il >= l->n_layer) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' is for layer %d; the model has %d", path, t->name, il,
                         l->n_layer);
            break;
        }
        char bname[512];
        snprintf(bname, sizeof bname, "%.*sB.weight", (int)(strlen(t->name) - strlen("A.weight")), t->name);
        const st_tensor *b = g8_st_find(&set, bname);
        if (!b) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' has no '%s'", path, t->name, bname);
            break;
        }
        if (t->n_dims != 2 || b->n_dims != 2 || t->type == ST_TYPE_I32 || b->type == ST_TYPE_I32) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' must be a 2-d float tensor", path, t->name);
            break;
        }
        char module[128];
        snprintf(module, sizeof module, "model.layers.%d.%s", il, peft_modules[which]);
        const cJSON *rp = pattern_for(c.rank_pattern, module), *ap = pattern_for(c.alpha_pattern, module);
        const int r = (int)t->shape[0];
        if (rp && rp->valueint != r) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': %s has rank %d, rank_pattern says %d", path, module, r, rp->valueint);
            break;
        }
        const float alpha = ap ? (float)ap->valuedouble : c.alpha;
        const float s = c.rslora ? alpha / sqrtf((float)r) : alpha / (float)r;
        if ((st = set_mat(l, path, il, which, r, t->shape[1], b->shape[0], b->shape[1], s))) break;
        g8_lora_mat *m = &l->mats[il * LORA_MATS + which];
        g8_to_f32(t->type, t->data, m->a, (int64_t)r * t->shape[1]);
        transpose_b(b->type, b->data, b->shape[0], r, m->bt);
        if (!finite_all(m->a, (size_t)r * (size_t)t->shape[1]) || !finite_all(m->bt, (size_t)r * (size_t)b->shape[0]))
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' holds NaN or infinity", path, t->name);
    }
    for (size_t i = 0; !st && i < set.n_tensors; i++) { /* every B has its A */
        const char *n = set.tensors[i].name;
        const size_t len = strlen(n);
        if (len < 14 || strcmp(n + len - 14, ".lora_B.weight")) continue;
        char aname[512];
        snprintf(aname, sizeof aname, "%.*sA.weight", (int)(len - strlen("B.weight")), n);
        if (!g8_st_find(&set, aname)) st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': '%s' has no lora_A", path, n);
    }
    l->alpha = c.alpha * (c.rslora ? sqrtf((float)c.r) : 1.0f);
    g8_st_close(&set);
    cJSON_Delete(c.root);
    return st;
}

/* ---- public ------------------------------------------------------------------------ */

gemma8_status g8_lora_load_shaped(const char *path, const char *arch, int n_layer, const int64_t rows[LORA_MATS],
                                  const int64_t cols[LORA_MATS], gemma8_lora **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return g8_fail(GEMMA8_ERR_IO, "cannot open '%s'", path);
    gemma8_lora *l = lora_new(n_layer, rows, cols, path);
    if (!l) return GEMMA8_ERR_NOMEM;
    gemma8_status st = S_ISDIR(sb.st_mode) ? load_peft(l, path) : load_gguf(l, path, arch);
    if (!st && !l->max_r) st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' adapts no matrix", path);
    if (st) {
        gemma8_lora_free(l);
        return st;
    }
    *out = l;
    return GEMMA8_OK;
}

gemma8_status gemma8_lora_load(const gemma8_model *model, const char *path, gemma8_lora **out) {
    if (!out) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_lora_load");
    *out = NULL;
    if (!model || !path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_lora_load");
    int64_t rows[LORA_MATS], cols[LORA_MATS];
    for (int k = 0; k < LORA_MATS; k++) {
        rows[k] = base_matrix(model, 0, k)->rows;
        cols[k] = base_matrix(model, 0, k)->cols;
    }
    gemma8_status st = g8_lora_load_shaped(path, model->hp.arch->name, model->hp.n_layer, rows, cols, out);
    if (!st) (*out)->model = model;
    return st;
}

void g8_lora_merge_row(const gemma8_lora *l, int il, int which, int64_t o, float scale, float *row) {
    const g8_lora_mat *m = &l->mats[il * LORA_MATS + which];
    const int64_t out = l->rows[which], in = l->cols[which];
    for (int j = 0; j < m->r; j++) {
        const float f = scale * m->s * m->bt[(size_t)j * (size_t)out + (size_t)o];
        for (int64_t i = 0; i < in; i++) row[i] += f * m->a[(size_t)j * (size_t)in + (size_t)i];
    }
}

const char *gemma8_lora_name(const gemma8_lora *lora) { return lora ? lora->name : ""; }

gemma8_lora_info gemma8_lora_get_info(const gemma8_lora *l) {
    gemma8_lora_info info = {0};
    for (int k = 0; l && k < l->n_layer * LORA_MATS; k++) {
        const g8_lora_mat *m = &l->mats[k];
        if (!m->r) continue;
        info.min_rank = info.n_matrices ? G8_MIN(info.min_rank, m->r) : m->r;
        info.max_rank = G8_MAX(info.max_rank, m->r);
        info.n_matrices++;
        info.n_params += (uint64_t)m->r * (uint64_t)(l->rows[k % LORA_MATS] + l->cols[k % LORA_MATS]);
    }
    if (l) info.alpha = l->alpha;
    return info;
}


uint64_t g8_lora_set_fingerprint(const g8_lora_set *set) {
    uint64_t h = G8_FNV64_SEED;
    for (int i = 0; set && i < set->n; i++) {
        const gemma8_lora *l = set->a[i];
        h = g8_fnv64(h, &set->scale[i], sizeof(float));
        for (int k = 0; k < l->n_layer * LORA_MATS; k++) {
            const g8_lora_mat *m = &l->mats[k];
            if (!m->r) continue;
            h = g8_fnv64(h, &m->s, sizeof m->s);
            h = g8_fnv64(h, m->a, (size_t)m->r * (size_t)l->cols[k % LORA_MATS] * sizeof(float));
            h = g8_fnv64(h, m->bt, (size_t)m->r * (size_t)l->rows[k % LORA_MATS] * sizeof(float));
        }
    }
    return h;
}

/* ---- run time ---------------------------------------------------------------------- */

typedef struct apply_task {
    const g8_kernels *k;
    const g8_lora_set *const *sets;
    int il, which, in, out, T, max_r;
    const float *x;
    float *y, *u;
} apply_task;

/* u[t][i][j] = A_j x_t for the adapters i of token t's set, the j split over threads */
static void apply_down(void *arg, int ith, int nth) {
    const apply_task *at = arg;
    for (int t = 0; t < at->T; t++) {
        const g8_lora_set *set = at->sets[t];
        float *u = at->u + (size_t)t * GEMMA8_MAX_LORA * at->max_r;
        for (int i = 0; set && i < set->n; i++) {
            const g8_lora_mat *m = &set->a[i]->mats[at->il * LORA_MATS + at->which];
            for (int j = ith; j < m->r; j += nth)
                u[i * at->max_r + j] = at->k->dot_f32(at->in, m->a + (size_t)j * at->in, at->x + (size_t)t * at->in);
        }
    }
}

/* y_t += scale_i s_i sum_j u[t][i][j] B_j, each thread a slice of y's columns (64-aligned, so
 * an element takes the same SIMD or tail path whatever the thread count) */
static void apply_up(void *arg, int ith, int nth) {
    const apply_task *at = arg;
    int64_t o0, o1;
    g8_split(at->out, ith, nth, 64, &o0, &o1);
    for (int t = 0; o1 > o0 && t < at->T; t++) {
        const g8_lora_set *set = at->sets[t];
        const float *u = at->u + (size_t)t * GEMMA8_MAX_LORA * at->max_r;
        for (int i = 0; set && i < set->n; i++) {
            const g8_lora_mat *m = &set->a[i]->mats[at->il * LORA_MATS + at->which];
            if (!m->r || set->scale[i] == 0) continue;
            const float f = set->scale[i] * m->s;
            for (int j = 0; j < m->r; j++)
                at->k->axpy((int)(o1 - o0), f * u[i * at->max_r + j], m->bt + (size_t)j * at->out + o0,
                            at->y + (size_t)t * at->out + o0);
        }
    }
}

void g8_lora_apply(g8_pool *pool, const g8_kernels *k, const g8_lora_set *const *sets, int il, int which,
                   const float *x, int in, float *y, int out, int T, float *u, int max_r) {
    apply_task at = {k, sets, il, which, in, out, T, max_r, x, y, u};
    g8_pool_run(pool, apply_down, &at);
    g8_pool_run(pool, apply_up, &at);
}

/* ---- PEFT folder -> llama.cpp LoRA GGUF -------------------------------------------- */

typedef struct conv_tensor {
    const st_tensor *t;
    float factor;       /* applied to B: PEFT's module factor over what llama.cpp will use */
} conv_tensor;

static gemma8_status fill_lora(void *user, size_t index, void *buf, size_t nbytes) {
    const conv_tensor *ct = (const conv_tensor *)user + index;
    float *out = buf;
    const int64_t n = ct->t->shape[0] * ct->t->shape[1];
    if ((size_t)n * sizeof(float) != nbytes) return g8_fail(GEMMA8_ERR_FORMAT, "'%s': size mismatch", ct->t->name);
    g8_to_f32(ct->t->type, ct->t->data, out, n);
    for (int64_t i = 0; i < n; i++) out[i] *= ct->factor;
    return GEMMA8_OK;
}

/* The base model's architecture, for llama.cpp (which loads an adapter only onto its architecture):
 * PEFT's auto_mapping.base_model_class or the base model's name when they tell, else gemma2. */
static const char *peft_arch(const peft_config *c) {
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(c->root, "auto_mapping");
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(map, "base_model_class");
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(c->root, "base_model_name_or_path");
    if (cJSON_IsString(cls)) return strncmp(cls->valuestring, "Gemma3", 6) ? "gemma2" : "gemma3";
    if (cJSON_IsString(base) && (strstr(base->valuestring, "gemma-3") || strstr(base->valuestring, "gemma3")))
        return "gemma3";
    return "gemma2";
}

gemma8_status gemma8_lora_convert(const char *peft_dir, const char *out_path) {
    if (!peft_dir || !out_path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid arguments to gemma8_lora_convert");
    peft_config c = {0};
    st_set set = {0};
    conv_tensor *ct = NULL;
    gguf_writer *w = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", peft_dir);
    gemma8_status st = read_peft_config(peft_dir, &c);
    if (!st) st = g8_st_open_file(path, &set);
    if (!st && !(ct = g8_calloc(set.n_tensors + 1, sizeof *ct, "a conversion"))) st = GEMMA8_ERR_NOMEM;
    if (!st && !(w = g8_gguf_writer_new())) st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    const float alpha_file = c.alpha * (c.rslora ? sqrtf((float)c.r) : 1.0f);
    if (!st) {
        g8_gguf_set_str(w, "general.architecture", peft_arch(&c));
        g8_gguf_set_str(w, "general.type", "adapter");
        g8_gguf_set_str(w, "adapter.type", "lora");
        g8_gguf_set_f32(w, "adapter.lora.alpha", alpha_file);
    }
    size_t n = 0;
    for (size_t i = 0; !st && i < set.n_tensors; i++) {
        const st_tensor *t = &set.tensors[i];
        int il, which;
        bool is_b;
        if (!peft_name(t->name, &il, &which, &is_b) || t->n_dims != 2 || t->type == ST_TYPE_I32) {
            st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': tensor '%s' is not supported (lora_A/lora_B weights of "
                         "q/k/v/o_proj and gate/up/down_proj only)", path, t->name);
            break;
        }
        const bool is_a = !is_b;
        char module[128], name[160];
        snprintf(module, sizeof module, "model.layers.%d.%s", il, peft_modules[which]);
        const int r = (int)(is_a ? t->shape[0] : t->shape[1]);
        const cJSON *ap = pattern_for(c.alpha_pattern, module);
        const float alpha = ap ? (float)ap->valuedouble : c.alpha;
        const float s = c.rslora ? alpha / sqrtf((float)r) : alpha / (float)r;
        ct[n].t = t;
        /* llama.cpp scales by alpha_file / r (by 1 when alpha_file is 0) */
        ct[n].factor = !is_b ? 1.0f : alpha_file != 0 ? s * (float)r / alpha_file : s;
        snprintf(name, sizeof name, "blk.%d.%s.lora_%c", il, g8_layer_tensor_names[g8_lora_layer_tensor[which]].gguf,
                 is_a ? 'a' : 'b');
        const int64_t ne[2] = {t->shape[1], t->shape[0]};
        g8_gguf_add_tensor(w, name, GEMMA8_TYPE_F32, 2, ne);
        n++;
    }
    if (!st && n == 0) st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' holds no LoRA tensor", path);
    if (!st) st = g8_gguf_write(w, out_path, fill_lora, ct, NULL, NULL);
    g8_gguf_writer_free(w);
    free(ct);
    g8_st_close(&set);
    cJSON_Delete(c.root);
    return st;
}
