/* bench.c - `gemma8 bench`: prefill and decode speed, weight streaming rate,
 * resident memory, and the machine's memory read bandwidth (--membw). */
#include "cli.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double rss_gib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, strlen(field))) kb = atof(line + strlen(field) + 1);
    if (f) fclose(f);
    return kb / (1024.0 * 1024.0);
}

static void mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

/* ---- memory bandwidth ------------------------------------------------------ */

typedef struct membw_arg {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} membw_arg;

typedef uint64_t v4u64 __attribute__((vector_size(32)));

/* Sums the buffer with 32-byte vector loads (GCC/clang vector extension), four
 * independent accumulators: the loads, not the adds, set the pace. */
static void *membw_read(void *a) {
    membw_arg *m = a;
    const v4u64 *p = (const v4u64 *)m->p;
    v4u64 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (size_t i = 0; i + 16 <= m->n; i += 16, p += 4) s0 += p[0], s1 += p[1], s2 += p[2], s3 += p[3];
    v4u64 s = s0 + s1 + s2 + s3;
    m->sum = s[0] + s[1] + s[2] + s[3];
    return NULL;
}

/* Reads a 1 GiB buffer with n_threads threads; returns GB/s (best of reps). */
double cli_membw(int n_threads, int reps) {
    const size_t bytes = (size_t)1 << 30, n = bytes / 8;
    uint64_t *buf = aligned_alloc(64, bytes);
    if (!buf) return 0;
    for (size_t i = 0; i < n; i++) buf[i] = i;
    double best = 0;
    for (int r = 0; r < reps; r++) {
        pthread_t th[64];
        membw_arg args[64];
        double t0 = cli_now();
        for (int t = 0; t < n_threads; t++) {
            args[t] = (membw_arg){buf + n / n_threads * t, n / n_threads, 0};
            pthread_create(&th[t], NULL, membw_read, &args[t]);
        }
        uint64_t sum = 0;
        for (int t = 0; t < n_threads; t++) pthread_join(th[t], NULL), sum += args[t].sum;
        double gbs = bytes / (cli_now() - t0) / 1e9;
        if (sum == 42) fprintf(stderr, " "); /* keep the reads */
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

int cmd_bench(int argc, char **argv) {
    const char *model_path = NULL, *kv_type = NULL;
    int n_threads = 2, n_prompt = 512, n_gen = 128, reps = 3, depth = 0;
    bool membw = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: gemma8 bench -m MODEL.gguf [-t THREADS] [-p PROMPT] [-n GEN] [-d DEPTH] [-r REPS]\n"
                   "                    [--kv-type f16|f32|q8_0]\n"
                   "       gemma8 bench --membw [-t THREADS]\n\n"
                   "Prefill of PROMPT tokens and decode of GEN tokens (after DEPTH tokens of context),\n"
                   "mean +- sd over REPS runs, the GB/s of weights streamed while decoding, and RSS.\n"
                   "--membw measures the read bandwidth of this machine (1 GiB, best of 5).\n");
            return 0;
        } else if (!strcmp(a, "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(a, "-t") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (!strcmp(a, "-p") && i + 1 < argc) n_prompt = atoi(argv[++i]);
        else if (!strcmp(a, "-n") && i + 1 < argc) n_gen = atoi(argv[++i]);
        else if (!strcmp(a, "-d") && i + 1 < argc) depth = atoi(argv[++i]);
        else if (!strcmp(a, "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--kv-type") && i + 1 < argc) kv_type = argv[++i];
        else if (!strcmp(a, "--membw")) membw = true;
        else return cli_usage_error("bench", a);
    }
    if (n_threads < 1 || n_threads > 64 || reps < 1 || n_prompt < 0 || n_gen < 0 || depth < 0) {
        fprintf(stderr, "gemma8: error: bad bench parameters\n");
        return 2;
    }
    if (membw) {
        printf("memory read bandwidth (%d threads): %.2f GB/s\n", n_threads, cli_membw(n_threads, 5));
        return 0;
    }
    if (!model_path) {
        fprintf(stderr, "gemma8: error: bench needs -m MODEL (or --membw)\n");
        return 2;
    }
    double t0 = cli_now();
    gemma8_model *model;
    gemma8_context *ctx;
    int n_ctx = depth + G8_MAX_INT(n_prompt, n_gen) + 1;
    if (cli_load(model_path, n_ctx, n_threads, kv_type, &model, &ctx)) return 1;
    double t_load = cli_now() - t0;
    gemma8_model_info info = gemma8_model_get_info(model);
    int32_t *tok = malloc((size_t)(depth + n_prompt + n_gen + 1) * sizeof *tok);
    uint32_t seed = 1;
    for (int i = 0; i < depth + n_prompt + n_gen + 1; i++) {
        seed = seed * 1664525u + 1013904223u;
        tok[i] = (int32_t)((seed >> 8) % (uint32_t)info.n_vocab);
    }
    printf("model: %s, %s, %.2f B params, %.2f GiB of weights, %d threads, KV cache %s, loaded in %.2f s\n",
           model_path, gemma8_type_name(info.matrix_type), info.n_params / 1e9, info.weight_bytes / 1073741824.0,
           n_threads, kv_type ? kv_type : "auto", t_load);
    double pp[64], tg[64];
    int rc = 0;
    for (int r = 0; r < reps && r < 64 && !rc; r++) {
        gemma8_kv_clear(ctx);
        if (n_prompt) {
            double a = cli_now();
            if (gemma8_eval(ctx, tok, n_prompt, NULL)) rc = 1;
            pp[r] = n_prompt / (cli_now() - a);
        }
        gemma8_kv_clear(ctx);
        if (depth && gemma8_eval(ctx, tok, depth, NULL)) rc = 1;
        double a = cli_now();
        for (int i = 0; i < n_gen && !rc; i++)
            if (gemma8_eval(ctx, &tok[depth + i], 1, NULL)) rc = 1;
        tg[r] = n_gen / (cli_now() - a);
    }
    if (rc) {
        fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
    } else {
        double m, sd;
        int nr = reps < 64 ? reps : 64;
        if (n_prompt) {
            mean_sd(pp, nr, &m, &sd);
            printf("pp%-5d  %8.2f ± %.2f tok/s\n", n_prompt, m, sd);
        }
        if (n_gen) {
            mean_sd(tg, nr, &m, &sd);
            printf("tg%-5d  %8.2f ± %.2f tok/s  (depth %d)  weights streamed: %.2f GB/s\n", n_gen, m, sd, depth,
                   m * info.weight_bytes / 1e9);
        }
        printf("RSS %.2f GiB (peak %.2f GiB)\n", rss_gib("VmRSS:"), rss_gib("VmHWM:"));
    }
    free(tok);
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return rc;
}
