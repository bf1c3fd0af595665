/* bench.c - `gemma8 bench`: prefill and decode speed, weight streaming rate,
 * resident memory, and the machine's memory read bandwidth (--membw). */
#include "cli.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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
typedef uint64_t v8u64 __attribute__((vector_size(64)));

/* Sums the buffer with vector loads (GCC/clang vector extension), four
 * independent accumulators: the loads, not the adds, set the pace. */
static uint64_t read_sum(const v4u64 *p, size_t n) {
    v4u64 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (size_t i = 0; i + 16 <= n; i += 16, p += 4) s0 += p[0], s1 += p[1], s2 += p[2], s3 += p[3];
    v4u64 s = s0 + s1 + s2 + s3;
    return s[0] + s[1] + s[2] + s[3];
}

#if defined(__x86_64__) && defined(__GNUC__)
/* the same with 64-byte loads: on this kind of CPU the narrower loads leave ~15% of the bandwidth unread,
 * and the figure is meant as the most the machine reads */
__attribute__((target("avx512f"))) static uint64_t read_sum_512(const v8u64 *p, size_t n) {
    v8u64 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (size_t i = 0; i + 32 <= n; i += 32, p += 4) s0 += p[0], s1 += p[1], s2 += p[2], s3 += p[3];
    v8u64 s = s0 + s1 + s2 + s3;
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

__attribute__((target("avx2"))) static uint64_t read_sum_256(const v4u64 *p, size_t n) { return read_sum(p, n); }
#endif

static void *membw_read(void *a) {
    membw_arg *m = a;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) {
        m->sum = read_sum_512((const v8u64 *)m->p, m->n);
        return NULL;
    }
    if (__builtin_cpu_supports("avx2")) {
        m->sum = read_sum_256((const v4u64 *)m->p, m->n);
        return NULL;
    }
#endif
    m->sum = read_sum((const v4u64 *)m->p, m->n);
    return NULL;
}

/* Reads a 1 GiB buffer with n_threads threads; returns GB/s (best of reps). */
double cli_membw(int n_threads, int reps) {
    const size_t bytes = (size_t)1 << 30, n = bytes / 8;
    uint64_t *buf = aligned_alloc(2 << 20, bytes);
    if (!buf) return 0;
#ifdef MADV_HUGEPAGE
    madvise(buf, bytes, MADV_HUGEPAGE); /* as the engine's packed weights: no page walk every 4 KiB */
#endif
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
    cli_common c = cli_common_defaults();
    c.n_threads = 2;
    int32_t n_prompt = 512, n_gen = 128, reps = 3, depth = 0, parallel = 1;
    bool membw = false, json = false;
    cli_list schemas = {0};
    cli_opt common[8];
    cli_common_table(&c, common, false);
    const cli_opt opts[] = {
        {"-p|--n-prompt", CLI_INT, &n_prompt, "N", "prompt tokens to prefill", NULL},
        {"-n|--n-gen", CLI_INT, &n_gen, "N", "tokens to decode", NULL},
        {"-d|--depth", CLI_INT, &depth, "N", "tokens of context before decoding", NULL},
        {"-r|--repetitions", CLI_INT, &reps, "N", "runs (mean +- sd)", NULL},
        {"-b|--batch-size", CLI_INT, &c.n_batch, "N", "tokens per prefill step", NULL},
        {"--kv-type", CLI_STR, &c.kv_type, "T", "KV cache: auto, f32, f16, q8_0", NULL},
        {"-np|--parallel", CLI_INT, &parallel, "N", "sequences decoded together (batched decode); tg is their sum",
         NULL},
        {"--membw", CLI_FLAG, &membw, NULL, "measure this machine's read bandwidth (1 GiB, best of 5); with -m, "
         "before each decode run, and print decode's share of it (peak RSS then counts the 1 GiB)", NULL},
        {"--json-schema", CLI_LIST, &schemas, "FILE", "sampled decode with and without this schema (repeatable: "
         "the streams take them in turn), and the time of each mask", NULL},
        {"--json", CLI_FLAG, &json, NULL, "the same with any JSON object", NULL},
        {0},
    };
    const cli_opt *tables[] = {common, opts, NULL};
    const char *usage =
        "usage: gemma8 bench -m MODEL.gguf [-t THREADS] [-p PROMPT] [-n GEN] [-d DEPTH] [-r REPS]\n"
        "       gemma8 bench --membw [-t THREADS]\n"
        "       gemma8 bench -m MODEL.gguf --membw ...  (decode as a share of the bandwidth)\n\n"
        "Prefill of PROMPT tokens and decode of GEN tokens (after DEPTH tokens of context),\n"
        "mean +- sd over REPS runs, the GB/s of weights streamed while decoding, and RSS.\n";
    int r = cli_parse("bench", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (c.n_threads < 1 || c.n_threads > 1024 || reps < 1 || reps > 64 || n_prompt < 0 || n_gen < 0 || depth < 0 ||
        parallel < 1 || parallel > 256) {
        fprintf(stderr, "gemma8 bench: -t 1..1024, -r 1..64, -np 1..256, and -p, -n, -d >= 0 (got %d, %d, %d, %d, %d, "
                "%d)\n", c.n_threads, reps, parallel, n_prompt, n_gen, depth);
        return 2;
    }
    if (membw && !c.model) {
        printf("memory read bandwidth (%d threads): %.2f GB/s\n", c.n_threads, cli_membw(c.n_threads, 5));
        return 0;
    }
    if ((r = cli_common_check("bench", &c))) return r;
    const char *kv_type = c.kv_type;
    const int n_threads = c.n_threads;
    const char *model_path = c.model;
    double t0 = cli_now();
    gemma8_model *model;
    gemma8_context *ctx;
    c.n_ctx = (depth + (n_prompt > n_gen ? n_prompt : n_gen) + 1) * parallel;
    if (cli_load(&c, parallel, &model, &ctx)) return 1;
    double t_load = cli_now() - t0;
    if (schemas.n || json) {
        printf("model: %s, %d threads, loaded in %.2f s\n", model_path, n_threads, t_load);
        r = cli_bench_grammar(model, ctx, &schemas, json, parallel, n_gen, reps);
        gemma8_context_free(ctx);
        gemma8_model_free(model);
        return r;
    }
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
    double pp[64], tg[64], bw[64];
    float *logits = malloc((size_t)parallel * info.n_vocab * sizeof(float));
    int rc = 0;
    for (int r = 0; r < reps && r < 64 && !rc; r++) {
        gemma8_kv_clear(ctx);
        if (n_prompt) {
            double a = cli_now();
            if (gemma8_eval(ctx, tok, n_prompt, NULL)) rc = 1;
            pp[r] = n_prompt / (cli_now() - a);
        }
        /* decode: each of the sequences after depth tokens, together when there are several */
        int32_t seqs[256], ids[256];
        for (int q = 0; q < parallel; q++) {
            gemma8_seq_clear(ctx, q);
            if (depth && gemma8_eval_seq(ctx, q, tok, depth, NULL)) rc = 1;
            seqs[q] = q;
        }
        bw[r] = membw && n_gen ? cli_membw(n_threads, 3) : 0; /* the machine's read bandwidth, just before */
        double a = cli_now();
        for (int i = 0; i < n_gen && !rc; i++) {
            for (int q = 0; q < parallel; q++) ids[q] = tok[(depth + i + 31 * q) % (depth + n_prompt + n_gen + 1)];
            if (parallel == 1 ? gemma8_eval(ctx, ids, 1, NULL) : gemma8_decode_batch(ctx, seqs, ids, parallel, logits))
                rc = 1;
        }
        tg[r] = (double)n_gen * parallel / (cli_now() - a);
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
            printf("tg%-5d  %8.2f ± %.2f tok/s  (depth %d, %d sequences)  weights streamed: %.2f GB/s\n", n_gen, m,
                   sd, depth, parallel, m / parallel * info.weight_bytes / 1e9);
            if (membw) { /* each round's stream against the bandwidth read just before it */
                double f[64] = {0};
                for (int r = 0; r < nr; r++) f[r] = tg[r] / parallel * info.weight_bytes / 1e9 / bw[r];
                mean_sd(f, nr, &m, &sd);
                printf("decode read %.0f%% ± %.0f%% of the memory read bandwidth measured before each run", 100 * m,
                       100 * sd);
                for (int r = 0; r < nr; r++) printf("%s%.1f", r ? ", " : " (GB/s: ", bw[r]);
                printf(")\n");
            }
        }
        printf("RSS %.2f GiB (peak %.2f GiB)\n", rss_gib("VmRSS:"), rss_gib("VmHWM:"));
    }
    free(tok);
    free(logits);
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return rc;
}
