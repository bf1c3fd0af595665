/* gemma8 - the command line: convert, run, logits, info, bench.
 * Uses only the public header. */
#include "gemma8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void log_to_stderr(int level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (level <= 2) fprintf(stderr, "gemma8: %s: %s\n", names[level < 0 || level > 3 ? 0 : level], msg);
}

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
    if (!buf || bad) return free(buf), NULL;
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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

/* ---- convert ----------------------------------------------------------------------- */

static volatile sig_atomic_t g_interrupted;

static void on_interrupt(int sig) {
    (void)sig;
    g_interrupted = 1;
}

typedef struct convert_progress {
    bool tty;            /* redraw one line with \r; else a plain line every 10% */
    int last_decile;
} convert_progress;

static bool progress(const char *what, uint64_t done, uint64_t total, void *user) {
    convert_progress *cp = user;
    const double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    if (cp->tty) {
        fprintf(stderr, "\rgemma8: writing %7.2f / %.2f GB (%3.0f%%) %-36.36s", done / 1e9, total / 1e9, pct, what);
        if (done == total) fprintf(stderr, "\n");
    } else if ((int)(pct / 10) > cp->last_decile) {
        cp->last_decile = (int)(pct / 10);
        fprintf(stderr, "gemma8: writing %.2f / %.2f GB (%.0f%%)\n", done / 1e9, total / 1e9, pct);
    }
    return !g_interrupted; /* Ctrl-C: the library stops and removes its temporary file */
}

/* --type and --output-type: types that can be written; 2 after the error */
static int parse_types(const char *cmd, const char *type, const char *out_type, gemma8_convert_params *p) {
    gemma8_type t;
    if (!gemma8_type_parse(type, &p->type) || p->type == GEMMA8_TYPE_Q6_K) {
        fprintf(stderr, "gemma8 %s: --type expects q8_0, q4_0, f32, f16 or bf16, got '%s'\n", cmd, type);
        return 2;
    }
    if (out_type && (!gemma8_type_parse(out_type, &t) || t == GEMMA8_TYPE_Q6_K)) {
        fprintf(stderr, "gemma8 %s: --output-type expects q8_0, q4_0, f32, f16 or bf16, got '%s'\n", cmd, out_type);
        return 2;
    }
    p->output_type = out_type ? (int32_t)t : -1;
    return 0;
}

/* Ctrl-C handling and progress lines for convert and quantize; the result line. */
static int write_model(const char *cmd, const char *out, const char *type, bool quiet, gemma8_convert_params *p,
                       gemma8_status (*run)(void *), void *arg) {
    convert_progress cp = {isatty(2), -1};
    p->progress = progress;
    p->progress_user_data = &cp;
    if (quiet) cp.last_decile = 10; /* no lines; progress still carries Ctrl-C */
    cp.tty = cp.tty && !quiet;
    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double t0 = cli_now();
    gemma8_status st = run(arg);
    if (st == GEMMA8_ERR_ABORTED) {
        fprintf(stderr, "\ngemma8: interrupted: '%s' was not written\n", out);
        return 130;
    }
    if (st) return cli_fail(st);
    struct stat sb;
    double gb = stat(out, &sb) == 0 ? (double)sb.st_size / 1e9 : 0;
    if (!quiet) fprintf(stderr, "gemma8 %s: wrote %s (%s, %.2f GB) in %.1f s\n", cmd, out, type, gb, cli_now() - t0);
    return 0;
}

typedef struct convert_args {
    const char *in, *out, *random_cfg, *tok_dir;
    const gemma8_convert_params *p;
} convert_args;

static gemma8_status run_convert(void *arg) {
    const convert_args *a = arg;
    return a->random_cfg ? gemma8_convert_random(a->random_cfg, a->tok_dir ? a->tok_dir : a->in, a->out, a->p)
                         : gemma8_convert_hf(a->in, a->out, a->p);
}

static gemma8_status run_quantize(void *arg) {
    const convert_args *a = arg;
    return gemma8_quantize(a->in, a->out, a->p);
}

static int cmd_convert(int argc, char **argv) {
    const char *out = NULL, *random_cfg = NULL, *tok_dir = NULL, *type = "q8_0", *out_type = NULL;
    bool quiet = false;
    gemma8_convert_params p = gemma8_convert_default_params();
    const cli_opt opts[] = {
        {"-o|--output", CLI_STR, &out, "OUT.gguf", "the file to write (it appears only when complete)", NULL},
        {"--type", CLI_STR, &type, "T", "matrix storage: q8_0 (w8a8), q4_0 (w4a8), f32, f16, bf16", NULL},
        {"--output-type", CLI_STR, &out_type, "T", "token_embd/output (every logit): default q8_0 for q4_0, else "
         "--type", NULL},
        {"--random", CLI_STR, &random_cfg, "CONFIG.json", "random weights of this shape (benchmarks)", NULL},
        {"--lora", CLI_STR, &p.lora, "ADAPTER", "merge a LoRA adapter (PEFT folder or LoRA GGUF) before storing", NULL},
        {"--lora-scale", CLI_FLOAT, &p.lora_scale, "S", "its scale", NULL},
        {"--tokenizer", CLI_STR, &tok_dir, "DIR", "tokenizer.json for --random", NULL},
        {"-q|--quiet", CLI_FLAG, &quiet, NULL, "no progress", NULL},
        {0},
    };
    const cli_opt *tables[] = {opts, NULL};
    const char *usage =
        "usage: gemma8 convert HF_DIR -o OUT.gguf [--type q8_0|q4_0|f32|f16|bf16] [--lora ADAPTER [--lora-scale S]]\n"
        "       gemma8 convert --random CONFIG.json -o OUT.gguf [--type T] [--tokenizer DIR]\n\n"
        "Converts a Hugging Face Gemma 2 checkpoint (config.json, model.safetensors or shards with\n"
        "model.safetensors.index.json; bf16, f16 or f32) into one GGUF file in llama.cpp's gemma2\n"
        "layout. Matrices whose rows are not a multiple of 32 stay bf16/f16. Ctrl-C stops it and\n"
        "leaves no partial file.\n";
    const char *in = NULL;
    int np = 0;
    int r = cli_parse("convert", usage, argc, argv, tables, &in, 1, &np);
    if (r) return r == 1 ? 0 : 2;
    if ((r = parse_types("convert", type, out_type, &p))) return r;
    if ((!in && !random_cfg) || !out) {
        fprintf(stderr, "gemma8 convert: needs HF_DIR (or --random CONFIG.json) and -o OUT.gguf\n");
        return 2;
    }
    convert_args a = {in, out, random_cfg, tok_dir, &p};
    return write_model("convert", out, type, quiet, &p, run_convert, &a);
}

static int cmd_quantize(int argc, char **argv) {
    const char *type = NULL, *out_type = NULL;
    bool quiet = false;
    gemma8_convert_params p = gemma8_convert_default_params();
    const cli_opt opts[] = {
        {"--type", CLI_STR, &type, "T", "q4_0 (w4a8), q8_0 (w8a8), f16, bf16, f32", NULL},
        {"--output-type", CLI_STR, &out_type, "T", "token_embd/output: default q8_0 for q4_0, else --type", NULL},
        {"-q|--quiet", CLI_FLAG, &quiet, NULL, "no progress", NULL},
        {0},
    };
    const cli_opt *tables[] = {opts, NULL};
    const char *usage =
        "usage: gemma8 quantize IN.gguf OUT.gguf --type q4_0|q8_0|f16|bf16|f32 [--output-type T]\n\n"
        "Quantizes a GGUF Gemma 2 model again, as llama.cpp's llama-quantize: its matrices (f32, f16, bf16,\n"
        "q8_0, q4_0, q6_k) are widened to f32 and stored in the new type (ggml's reference rounding);\n"
        "norms and metadata are copied. OUT.gguf appears only when complete.\n";
    const char *pos[2] = {NULL, NULL};
    int np = 0;
    int r = cli_parse("quantize", usage, argc, argv, tables, pos, 2, &np);
    if (r) return r == 1 ? 0 : 2;
    if (np != 2 || !type) {
        fprintf(stderr, "gemma8 quantize: needs IN.gguf OUT.gguf and --type\n");
        return 2;
    }
    if ((r = parse_types("quantize", type, out_type, &p))) return r;
    convert_args a = {pos[0], pos[1], NULL, NULL, &p};
    return write_model("quantize", pos[1], type, quiet, &p, run_quantize, &a);
}

static int cmd_convert_lora(int argc, char **argv) {
    const char *out = NULL, *in = NULL;
    const cli_opt opts[] = {
        {"-o|--output", CLI_STR, &out, "OUT.gguf", "the file to write (it appears only when complete)", NULL},
        {0},
    };
    const cli_opt *tables[] = {opts, NULL};
    const char *usage = "usage: gemma8 convert-lora ADAPTER_DIR -o OUT.gguf\n\n"
                        "Writes a PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) as a\n"
                        "LoRA GGUF in llama.cpp's layout, usable by gemma8 and llama.cpp alike.\n";
    int np = 0;
    int r = cli_parse("convert-lora", usage, argc, argv, tables, &in, 1, &np);
    if (r) return r == 1 ? 0 : 2;
    if (!in || !out) {
        fprintf(stderr, "gemma8 convert-lora: needs ADAPTER_DIR and -o OUT.gguf\n");
        return 2;
    }
    gemma8_status st = gemma8_lora_convert(in, out);
    if (st) return cli_fail(st);
    fprintf(stderr, "gemma8: wrote %s\n", out);
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

/* the adapters of --lora, freed at exit (before the leak check) */
static gemma8_lora *loaded_lora[16];
static char loaded_name[16][64];
static float loaded_scale[16];
static int n_loaded_lora;

int cli_lora_count(void) { return n_loaded_lora; }

const gemma8_lora *cli_lora_get(int i, const char **name, float *scale) {
    if (i < 0 || i >= n_loaded_lora) return NULL;
    if (name) *name = loaded_name[i];
    if (scale) *scale = loaded_scale[i];
    return loaded_lora[i];
}

static void free_lora(void) {
    for (int i = 0; i < n_loaded_lora; i++) gemma8_lora_free(loaded_lora[i]);
    n_loaded_lora = 0;
}

/* Loads the --lora adapters and sets them on every sequence of ctx. */
static gemma8_status apply_lora(const cli_common *c, const gemma8_model *model, gemma8_context *ctx) {
    float scales[16];
    if (n_loaded_lora + c->lora.n > (int)(sizeof loaded_lora / sizeof loaded_lora[0])) /* a second load */
        return GEMMA8_ERR_INVALID_ARG;
    for (int i = 0; i < c->lora.n; i++) {
        char path[4096], name[64] = "";
        const char *spec = c->lora.v[i], *eq = strchr(spec, '=');
        if (eq && !memchr(spec, '/', (size_t)(eq - spec))) { /* NAME=FILE */
            snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
            spec = eq + 1;
        }
        snprintf(path, sizeof path, "%s", spec);
        char *colon = strrchr(path, ':'), *end = NULL;
        scales[i] = 1.0f;
        if (colon) {
            double v = strtod(colon + 1, &end);
            if (end != colon + 1 && *end == 0 && isfinite(v)) {
                scales[i] = (float)v;
                *colon = 0;
            }
        }
        if (n_loaded_lora == 0) atexit(free_lora);
        gemma8_status st = gemma8_lora_load(model, path, &loaded_lora[n_loaded_lora]);
        if (st) return st;
        snprintf(loaded_name[n_loaded_lora], sizeof loaded_name[0], "%s",
                 name[0] ? name : gemma8_lora_name(loaded_lora[n_loaded_lora]));
        loaded_scale[n_loaded_lora] = scales[i];
        fprintf(stderr, "gemma8: LoRA adapter %d '%s' (%s), scale %g\n", n_loaded_lora,
                loaded_name[n_loaded_lora], path, scales[i]);
        n_loaded_lora++;
    }
    const gemma8_lora *const *set = (const gemma8_lora *const *)loaded_lora + n_loaded_lora - c->lora.n;
    for (int32_t s = 0; c->lora.n && s < gemma8_n_seq(ctx); s++) {
        gemma8_status st = gemma8_seq_set_lora(ctx, s, set, scales, c->lora.n);
        if (st) return st;
    }
    return GEMMA8_OK;
}

int cli_load(const cli_common *c, int32_t n_seq, gemma8_model **model, gemma8_context **ctx) {
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = c->n_ctx;
    cp.n_threads = c->n_threads;
    cp.n_batch = c->n_batch;
    cp.n_seq = n_seq;
    if (c->kv_type && !kv_type_of(c->kv_type, &cp.kv_type)) {
        fprintf(stderr, "gemma8: error: unknown KV cache type '%s' (f32, f16, q8_0 or auto)\n", c->kv_type);
        return 1;
    }
    gemma8_model_params mp = gemma8_model_default_params();
    gemma8_status st = gemma8_model_load(c->model, &mp, model);
    if (st) return cli_fail(st);
    const int32_t train = gemma8_model_get_info(*model).n_ctx_train;
    if (c->n_ctx / (n_seq > 0 ? n_seq : 1) > train)
        fprintf(stderr, "gemma8: warning: a context of %d tokens is longer than the %d the model was trained for\n",
                c->n_ctx, train);
    if ((st = gemma8_context_new(*model, &cp, ctx)) || (st = apply_lora(c, *model, *ctx))) {
        gemma8_context_free(*ctx);
        gemma8_model_free(*model);
        return cli_fail(st);
    }
    return 0;
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

/* ---- logits ------------------------------------------------------------------------- */

static int cmd_logits(int argc, char **argv) {
    cli_common c = cli_common_defaults();
    const char *tokens_s = NULL, *out = NULL;
    cli_opt common[8];
    cli_common_table(&c, common, false);
    const cli_opt opts[] = {
        {"--tokens", CLI_STR, &tokens_s, "IDS", "the token ids, comma-separated", NULL},
        {"-o|--output", CLI_STR, &out, "OUT.f32", "where the logits go", NULL},
        {0},
    };
    const cli_opt *tables[] = {common, opts, NULL};
    const char *usage = "usage: gemma8 logits -m MODEL.gguf --tokens 2,17,5,... -o OUT.f32\n\n"
                        "Writes the logits of every position, row-major float32 little-endian, T x vocab.\n";
    int r = cli_parse("logits", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if ((r = cli_common_check("logits", &c))) return r;
    if (!tokens_s || !out) {
        fprintf(stderr, "gemma8 logits: needs --tokens IDS and -o OUT\n");
        return 2;
    }
    int32_t *tokens, n;
    if (cli_parse_tokens(tokens_s, &tokens, &n)) return 2;
    c.n_ctx = n;
    gemma8_model *model;
    gemma8_context *ctx;
    if (cli_load(&c, 1, &model, &ctx)) {
        free(tokens);
        return 1;
    }
    int rc = 0;
    size_t nv = (size_t)gemma8_model_get_info(model).n_vocab;
    uint8_t *every = malloc((size_t)n);
    if (every) memset(every, GEMMA8_OUTPUT_LOGITS, (size_t)n);
    gemma8_batch b = gemma8_batch_tokens(0, tokens, n);
    b.output = every;
    gemma8_status st = every ? gemma8_decode(ctx, &b) : GEMMA8_ERR_NOMEM;
    if (st) {
        rc = cli_fail(st);
    } else {
        FILE *f = fopen(out, "wb");
        bool ok = f != NULL;
        for (int32_t i = 0; ok && i < n; i++) ok = fwrite(gemma8_get_logits(ctx, i), sizeof(float), nv, f) == nv;
        if (f && fclose(f) != 0) ok = false;
        if (!ok) {
            fprintf(stderr, "gemma8: error: cannot write '%s': %s\n", out, strerror(errno));
            rc = 1;
        }
    }
    free(every);
    free(tokens);
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return rc;
}

/* ---- info --------------------------------------------------------------------------- */

static int cmd_info(int argc, char **argv) {
    const char *model_path = NULL;
    cli_list lora = {0};
    const cli_opt opts[] = {{"-m|--model", CLI_STR, &model_path, "FILE", "the model (GGUF)", NULL},
                            {"--lora", CLI_LIST, &lora, "ADAPTER", "also check and describe a LoRA adapter", NULL},
                            {0}};
    const cli_opt *tables[] = {opts, NULL};
    const char *usage = "usage: gemma8 info -m MODEL.gguf [--lora ADAPTER]\n\n"
                        "Prints the architecture, sizes and types of a model (and of adapters for it).\n";
    int r = cli_parse("info", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!model_path) {
        fprintf(stderr, "gemma8 info: -m MODEL is required\n");
        return 2;
    }
    gemma8_model *model;
    gemma8_model_params mp = gemma8_model_default_params();
    gemma8_status st = gemma8_model_load(model_path, &mp, &model);
    if (st) return cli_fail(st);
    gemma8_model_info in = gemma8_model_get_info(model);
    const double G = 1073741824.0;
    char params[32];
    if (in.n_params >= 1000000000ull) snprintf(params, sizeof params, "%.2f B", in.n_params / 1e9);
    else snprintf(params, sizeof params, "%.2f M", in.n_params / 1e6);
    printf("file:                  %s\n", model_path);
    printf("name:                  %s\n", in.name);
    printf("architecture:          gemma2\n");
    printf("parameters:            %s (%.2f GiB of weights)\n", params, in.weight_bytes / G);
    printf("matrix type:           %s\n", gemma8_type_name(in.matrix_type));
    printf("vocabulary:            %d\n", in.n_vocab);
    printf("hidden size:           %d\n", in.n_embd);
    printf("layers:                %d\n", in.n_layer);
    printf("heads / kv heads:      %d / %d (head_dim %d)\n", in.n_head, in.n_head_kv, in.head_dim);
    printf("feed-forward size:     %d\n", in.n_ff);
    printf("context length:        %d\n", in.n_ctx_train);
    printf("sliding window:        %d (even layers)\n", in.sliding_window);
    printf("query_pre_attn_scalar: %g\n", in.query_pre_attn_scalar);
    printf("soft-caps (attn/final): %g / %g\n", in.attn_softcap, in.final_softcap);
    printf("rms eps / rope base:   %g / %g\n", in.rms_eps, in.rope_base);
    printf("file, by type:        ");
    for (int t = 0; t < 32; t++)
        if (in.tensors_of_type[t])
            printf(" %s %.3f GiB (%d tensors);", gemma8_type_name((gemma8_type)t), in.file_bytes_of_type[t] / G,
                   in.tensors_of_type[t]);
    printf("\nin memory:             %.3f GiB of weights (quantized matrices packed for the GEMM)\n",
           in.weight_bytes / G);
    gemma8_context_params cp = gemma8_context_default_params();
    gemma8_memory_estimate e = gemma8_estimate_memory(model, &cp);
    printf("memory at context %d:  %.2f GiB = weights %.2f + KV cache %.2f (%.2f without sliding-window rings)"
           " + scratch %.2f; %.2f GiB available\n", in.n_ctx_train, e.total / G, e.weights / G, e.kv_cache / G,
           e.kv_cache_full / G, e.scratch / G, e.available / G);
    printf("memory by context (GiB: weights + KV + scratch), KV f16%s:\n", in.head_dim % 32 ? "" : " | KV q8_0");
    for (int n = 1024; n <= in.n_ctx_train; n *= 2) {
        cp.n_ctx = n;
        cp.kv_type = GEMMA8_KV_AUTO;
        gemma8_memory_estimate a = gemma8_estimate_memory(model, &cp);
        printf("  %6d: %6.2f", n, a.total / G);
        if (in.head_dim % 32 == 0) { /* what --kv-type q8_0 would take */
            cp.kv_type = GEMMA8_TYPE_Q8_0;
            gemma8_memory_estimate q = gemma8_estimate_memory(model, &cp);
            printf(" | %6.2f", q.total / G);
        }
        printf("\n");
    }
    int rc = 0;
    for (int i = 0; i < lora.n && !rc; i++) {
        gemma8_lora *l;
        if ((st = gemma8_lora_load(model, lora.v[i], &l))) {
            rc = cli_fail(st);
            break;
        }
        gemma8_lora_info li = gemma8_lora_get_info(l);
        printf("LoRA adapter:          %s: %d of %d matrices, rank %d", gemma8_lora_name(l), li.n_matrices,
               in.n_layer * 7, li.min_rank);
        if (li.max_rank != li.min_rank) printf("..%d", li.max_rank);
        printf(", alpha %g, %.2f M parameters\n", li.alpha, li.n_params / 1e6);
        gemma8_lora_free(l);
    }
    gemma8_model_free(model);
    if (rc) return rc;
    return 0;
}

/* ---- main ------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"convert", cmd_convert, "convert a Hugging Face checkpoint to GGUF (default q8_0)"},
    {"convert-lora", cmd_convert_lora, "convert a PEFT LoRA adapter to a LoRA GGUF (llama.cpp's layout)"},
    {"quantize", cmd_quantize, "quantize a GGUF model again (q4_0, q8_0, ...), as llama-quantize"},
    {"run", cmd_run, "generate from a prompt or token ids"},
    {"chat", cmd_chat, "interactive multi-turn chat"},
    {"demo", cmd_demo, "chat with a tiny random-weight model (no real model needed)"},
    {"logits", cmd_logits, "write the logits of every position of a token sequence"},
    {"info", cmd_info, "show a model's architecture, sizes and types"},
    {"serve", cmd_serve, "an OpenAI- and Ollama-compatible HTTP server"},
    {"bench", cmd_bench, "measure prefill/decode speed, weight GB/s, memory bandwidth"},
    {"tokenize", cmd_tokenize, "text (or a chat as JSON) on stdin to token ids"},
    {"detokenize", cmd_detokenize, "token ids (JSON array) on stdin to text"},
};

int main(int argc, char **argv) {
    gemma8_log_set(log_to_stderr, NULL);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        printf("usage: gemma8 COMMAND [options]   (gemma8 COMMAND --help for each; gemma8 --version)\n\n"
               "commands:\n");
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            printf("  %-10s %s\n", commands[i].name, commands[i].help);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("gemma8 %s\n", gemma8_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "gemma8: unknown command '%s' (see gemma8 --help)\n", argv[1]);
    return 2;
}
