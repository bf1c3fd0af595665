/* common.c - what the commands share: reading files and token lists, loading a model with
 * its context and --lora adapters, errors and timings. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, k;
    char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* Parses "2,17,5" into a malloc'd array. */
int cli_parse_tokens(const char *s, int32_t **out, int32_t *n) {
    size_t cap = 16, len = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX) {
            fprintf(stderr, "gemma8: error: bad token list at '%.20s' (want comma-separated ids)\n", p);
            free(v);
            return -1;
        }
        if (len == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *nv);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[len++] = (int32_t)x;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    if (len == 0) {
        fprintf(stderr, "gemma8: error: empty token list\n");
        free(v);
        return -1;
    }
    *out = v;
    *n = (int32_t)len;
    return 0;
}

/* ---- loading ------------------------------------------------------------------------ */

int cli_fail(gemma8_status st) {
    const char *msg = gemma8_last_error();
    fprintf(stderr, "gemma8: error: %s\n", msg[0] ? msg : gemma8_status_str(st));
    return 1;
}

static bool kv_type_of(const char *name, int32_t *out) {
    const struct {
        const char *name;
        int32_t type;
    } kinds[] = {{"f32", GEMMA8_TYPE_F32}, {"f16", GEMMA8_TYPE_F16}, {"q8_0", GEMMA8_TYPE_Q8_0}, {"auto", GEMMA8_KV_AUTO}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(name, kinds[i].name)) {
            *out = kinds[i].type;
            return true;
        }
    return false;
}

/* Loads the --lora adapters ("NAME=FILE[:SCALE]": named; else the file's name) into l and sets
 * them on every sequence of its context. */
static gemma8_status load_lora(const cli_common *c, cli_loaded *l) {
    if (c->lora.n > GEMMA8_MAX_LORA) {
        fprintf(stderr, "gemma8: error: %d --lora adapters; at most %d\n", c->lora.n, GEMMA8_MAX_LORA);
        return GEMMA8_ERR_INVALID_ARG;
    }
    for (int i = 0; i < c->lora.n; i++) {
        char path[4096];
        char name[64] = "";
        const char *spec = c->lora.v[i];
        const char *eq = strchr(spec, '=');
        if (eq && !memchr(spec, '/', (size_t)(eq - spec))) { /* NAME=FILE */
            snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
            spec = eq + 1;
        }
        snprintf(path, sizeof path, "%s", spec);
        char *colon = strrchr(path, ':');
        char *end = NULL;
        float scale = 1.0f;
        if (colon) {
            double v = strtod(colon + 1, &end);
            if (end != colon + 1 && *end == 0 && isfinite(v)) {
                scale = (float)v;
                *colon = 0;
            }
        }
        gemma8_status st = gemma8_lora_load(l->model, path, &l->lora[l->n_lora]);
        if (st) return st;
        const int k = l->n_lora++;
        snprintf(l->lora_name[k], sizeof l->lora_name[k], "%s", name[0] ? name : gemma8_lora_name(l->lora[k]));
        l->lora_scale[k] = scale;
        fprintf(stderr, "gemma8: LoRA adapter %d '%s' (%s), scale %g\n", k, l->lora_name[k], path, scale);
    }
    for (int32_t s = 0; l->n_lora && s < gemma8_n_seq(l->ctx); s++) {
        const gemma8_lora *const *set = (const gemma8_lora *const *)l->lora;
        gemma8_status st = gemma8_seq_set_lora(l->ctx, s, set, l->lora_scale, l->n_lora);
        if (st) return st;
    }
    return GEMMA8_OK;
}

int cli_load(const cli_common *c, int32_t n_seq, cli_loaded *l) {
    memset(l, 0, sizeof *l);
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = c->n_ctx;
    cp.n_threads = c->n_threads;
    cp.n_batch = c->n_batch;
    cp.n_seq = n_seq;
    cp.kv_unified = c->kv_unified;
    if (c->kv_type && !kv_type_of(c->kv_type, &cp.kv_type)) {
        fprintf(stderr, "gemma8: error: unknown KV cache type '%s' (f32, f16, q8_0 or auto)\n", c->kv_type);
        return 1;
    }
    gemma8_model_params mp = gemma8_model_default_params();
    gemma8_status st = gemma8_model_load(c->model, &mp, &l->model);
    if (st) return cli_fail(st);
    const int32_t train = gemma8_model_get_info(l->model).n_ctx_train;
    if (c->n_ctx / (n_seq > 0 && !c->kv_unified ? n_seq : 1) > train)
        fprintf(stderr, "gemma8: warning: a context of %d tokens is longer than the %d the model was trained for\n",
                c->n_ctx, train);
    l->cp = cp;
    st = gemma8_context_new(l->model, &cp, &l->ctx);
    if (!st) st = load_lora(c, l);
    if (st) {
        cli_unload(l);
        return cli_fail(st);
    }
    return 0;
}

void cli_unload(cli_loaded *l) {
    gemma8_context_free(l->ctx);
    for (int i = 0; i < l->n_lora; i++) gemma8_lora_free(l->lora[i]);
    gemma8_model_free(l->model);
    memset(l, 0, sizeof *l);
}

void cli_print_timings(double load_s, const gemma8_generate_result *r) {
    const int evaluated = r->n_prompt - r->n_reused;
    const double pms = r->prompt_seconds * 1e3;
    const double gms = r->gen_seconds * 1e3;
    fprintf(stderr, "\n");
    if (load_s >= 0) fprintf(stderr, "gemma8: load time   = %9.2f ms\n", load_s * 1e3);
    fprintf(stderr, "gemma8: prompt eval = %9.2f ms / %4d tokens (%7.2f ms per token, %8.2f tokens per second)"
            " (prompt %d tokens, %d reused)\n", pms, evaluated, evaluated ? pms / evaluated : 0.0,
            pms > 0 ? evaluated / r->prompt_seconds : 0.0, r->n_prompt, r->n_reused);
    fprintf(stderr, "gemma8: generation  = %9.2f ms / %4d tokens (%7.2f ms per token, %8.2f tokens per second)\n",
            gms, r->n_generated, r->n_generated ? gms / r->n_generated : 0.0,
            gms > 0 ? r->n_generated / r->gen_seconds : 0.0);
    fprintf(stderr, "gemma8: total time  = %9.2f ms\n", (load_s > 0 ? load_s * 1e3 : 0) + pms + gms);
}
