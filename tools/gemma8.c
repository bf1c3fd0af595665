/* gemma8 - the command line: convert, run, logits, info, bench.
 * Uses only the public header. */
#include "gemma8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int fail_status(gemma8_status st) {
    const char *msg = gemma8_last_error();
    fprintf(stderr, "gemma8: error: %s\n", msg[0] ? msg : gemma8_status_str(st));
    return 1;
}

static void log_to_stderr(int level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (level <= 2) fprintf(stderr, "gemma8: %s: %s\n", names[level < 0 || level > 3 ? 0 : level], msg);
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

/* ---- convert ---------------------------------------------------------------- */

static void progress(const char *what, uint64_t done, uint64_t total, void *user) {
    (void)user;
    fprintf(stderr, "\rgemma8: writing %4llu/%llu %-40.40s", (unsigned long long)done, (unsigned long long)total, what);
    if (done == total) fprintf(stderr, "\n");
}

static int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *random_cfg = NULL, *tok_dir = NULL;
    gemma8_convert_params p = gemma8_convert_default_params();
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: gemma8 convert HF_DIR -o OUT.gguf [--type q8_0|f32|f16|bf16] [-q]\n"
                   "       gemma8 convert --random CONFIG.json -o OUT.gguf [--type T] [--tokenizer DIR]\n\n"
                   "Converts a Hugging Face Gemma 2 checkpoint (config.json, model.safetensors or shards with\n"
                   "model.safetensors.index.json; bf16, f16 or f32) into one GGUF file in llama.cpp's gemma2\n"
                   "layout. The default type is q8_0 (w8a8); matrices whose rows are not a multiple of 32 stay\n"
                   "bf16/f16. With --random, writes random weights of the shape in CONFIG.json (benchmarks).\n"
                   "The output appears only when complete.\n");
            return 0;
        } else if (!strcmp(a, "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(a, "--type") && i + 1 < argc) {
            if (!gemma8_type_parse(argv[++i], &p.type)) {
                fprintf(stderr, "gemma8: error: unknown type '%s' (q8_0, f32, f16, bf16)\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--random") && i + 1 < argc) random_cfg = argv[++i];
        else if (!strcmp(a, "--tokenizer") && i + 1 < argc) tok_dir = argv[++i];
        else if (!strcmp(a, "-q")) quiet = true;
        else if (a[0] != '-' && !in) in = a;
        else return cli_usage_error("convert", a);
    }
    if ((!in && !random_cfg) || !out) {
        fprintf(stderr, "gemma8: error: convert needs HF_DIR (or --random CONFIG.json) and -o OUT.gguf\n");
        return 2;
    }
    if (!quiet) p.progress = progress;
    double t0 = cli_now();
    gemma8_status st = random_cfg ? gemma8_convert_random(random_cfg, tok_dir ? tok_dir : in, out, &p)
                                  : gemma8_convert_hf(in, out, &p);
    if (st) return fail_status(st);
    if (!quiet) fprintf(stderr, "gemma8: wrote %s (%s) in %.1f s\n", out, gemma8_type_name(p.type), cli_now() - t0);
    return 0;
}

/* ---- logits ------------------------------------------------------------------ */

int cli_load(const char *path, int n_ctx, int n_threads, const char *kv_type, gemma8_model **model, gemma8_context **ctx) {
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = n_threads;
    if (kv_type) {
        const struct { const char *name; int32_t type; } kinds[] = {
            {"f32", GEMMA8_TYPE_F32}, {"f16", GEMMA8_TYPE_F16}, {"q8_0", GEMMA8_TYPE_Q8_0}, {"auto", GEMMA8_KV_AUTO}};
        cp.kv_type = -2;
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (!strcmp(kv_type, kinds[i].name)) cp.kv_type = kinds[i].type;
        if (cp.kv_type == -2) {
            fprintf(stderr, "gemma8: error: unknown KV cache type '%s' (f32, f16, q8_0 or auto)\n", kv_type);
            return 1;
        }
    }
    gemma8_model_params mp = gemma8_model_default_params();
    gemma8_status st = gemma8_model_load(path, &mp, model);
    if (st) return fail_status(st);
    if ((st = gemma8_context_new(*model, &cp, ctx))) {
        gemma8_model_free(*model);
        return fail_status(st);
    }
    return 0;
}

static int cmd_logits(int argc, char **argv) {
    const char *model_path = NULL, *tokens_s = NULL, *out = NULL;
    int n_threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: gemma8 logits -m MODEL.gguf --tokens 2,17,5,... -o OUT.f32 [-t N]\n\n"
                   "Writes the logits of every position, row-major float32 little-endian, T x vocab.\n");
            return 0;
        } else if (!strcmp(a, "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(a, "--tokens") && i + 1 < argc) tokens_s = argv[++i];
        else if (!strcmp(a, "-o") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(a, "-t") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else return cli_usage_error("logits", a);
    }
    if (!model_path || !tokens_s || !out) {
        fprintf(stderr, "gemma8: error: logits needs -m MODEL, --tokens and -o OUT\n");
        return 2;
    }
    int32_t *tokens, n;
    if (cli_parse_tokens(tokens_s, &tokens, &n)) return 2;
    gemma8_model *model;
    gemma8_context *ctx;
    if (cli_load(model_path, 0, n_threads, NULL, &model, &ctx)) {
        free(tokens);
        return 1;
    }
    int rc = 0;
    size_t nv = (size_t)gemma8_model_get_info(model).n_vocab;
    float *logits = malloc((size_t)n * nv * sizeof(float));
    gemma8_status st = logits ? gemma8_eval(ctx, tokens, n, logits) : GEMMA8_ERR_NOMEM;
    if (st) {
        rc = fail_status(st);
    } else {
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(logits, sizeof(float), (size_t)n * nv, f) != (size_t)n * nv || fclose(f) != 0) {
            fprintf(stderr, "gemma8: error: cannot write '%s': %s\n", out, strerror(errno));
            rc = 1;
        }
    }
    free(logits);
    free(tokens);
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return rc;
}

/* ---- info ------------------------------------------------------------------ */

static int cmd_info(int argc, char **argv) {
    const char *model_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: gemma8 info -m MODEL.gguf\n\nPrints the architecture, sizes and types of a model.\n");
            return 0;
        } else if (!strcmp(argv[i], "-m") && i + 1 < argc) model_path = argv[++i];
        else return cli_usage_error("info", argv[i]);
    }
    if (!model_path) {
        fprintf(stderr, "gemma8: error: info needs -m MODEL\n");
        return 2;
    }
    gemma8_model *model;
    gemma8_model_params mp = gemma8_model_default_params();
    gemma8_status st = gemma8_model_load(model_path, &mp, &model);
    if (st) return fail_status(st);
    gemma8_model_info in = gemma8_model_get_info(model);
    printf("architecture:          gemma2\n");
    printf("parameters:            %.3f B (%.2f GiB of weights)\n", in.n_params / 1e9, in.weight_bytes / 1073741824.0);
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
    gemma8_context_params cp = gemma8_context_default_params();
    gemma8_memory_estimate e = gemma8_estimate_memory(model, &cp);
    const double G = 1073741824.0;
    printf("memory at context %d:  %.2f GiB = weights %.2f + KV cache %.2f (%.2f without sliding-window rings)"
           " + scratch %.2f; %.2f GiB available\n", in.n_ctx_train, e.total / G, e.weights / G, e.kv_cache / G,
           e.kv_cache_full / G, e.scratch / G, e.available / G);
    if (in.head_dim % 32 == 0) { /* what --kv-type q8_0 would take */
        cp.kv_type = GEMMA8_TYPE_Q8_0;
        gemma8_memory_estimate q = gemma8_estimate_memory(model, &cp);
        printf("  with --kv-type q8_0:  %.2f GiB (KV cache %.2f)\n", q.total / G, q.kv_cache / G);
    }
    gemma8_model_free(model);
    return 0;
}

/* ---- main ------------------------------------------------------------------- */

int cli_usage_error(const char *cmd, const char *arg) {
    fprintf(stderr, "gemma8 %s: unknown or incomplete option '%s' (see gemma8 %s --help)\n", cmd, arg, cmd);
    return 2;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"convert", cmd_convert, "convert a Hugging Face checkpoint to GGUF (default q8_0)"},
    {"run", cmd_run, "generate from a prompt or token ids"},
    {"chat", cmd_chat, "interactive multi-turn chat"},
    {"demo", cmd_demo, "chat with a tiny random-weight model (no real model needed)"},
    {"logits", cmd_logits, "write the logits of every position of a token sequence"},
    {"info", cmd_info, "show a model's architecture, sizes and types"},
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
