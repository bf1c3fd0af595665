/* bench.c - `gemma8 bench`: prefill and decode speed, weight streaming rate,
 * resident memory, and the machine's memory read bandwidth (--membw). */
#include "cli.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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
    atomic_int *ready;  /* threads at the start line; all start reading together */
    int n_threads;
    double t0, t1;      /* when this thread began and ended its reads */
} membw_arg;

typedef uint64_t v4u64 __attribute__((vector_size(32)));
typedef uint64_t v8u64 __attribute__((vector_size(64)));

/* Sums the buffer with vector loads (GCC/clang vector extension) as four streams side by side (its
 * quarters): a core keeps more of memory busy with several streams than with one (on the VM measured,
 * four streams a thread read 7-25% more than one stream with four accumulators), and the figure is
 * meant as the most the machine reads. */
static uint64_t read_sum(const v4u64 *p, size_t n) {
    const size_t q = n / 16;
    v4u64 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (size_t i = 0; i < q; i++) s0 += p[i], s1 += p[q + i], s2 += p[2 * q + i], s3 += p[3 * q + i];
    v4u64 s = s0 + s1 + s2 + s3;
    return s[0] + s[1] + s[2] + s[3];
}

#if defined(__x86_64__) && defined(__GNUC__)
/* the same with 64-byte loads: on this kind of CPU the narrower loads leave ~15% of the bandwidth unread */
__attribute__((target("avx512f"))) static uint64_t read_sum_512(const v8u64 *p, size_t n) {
    const size_t q = n / 32;
    v8u64 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (size_t i = 0; i < q; i++) s0 += p[i], s1 += p[q + i], s2 += p[2 * q + i], s3 += p[3 * q + i];
    v8u64 s = s0 + s1 + s2 + s3;
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

__attribute__((target("avx2"))) static uint64_t read_sum_256(const v4u64 *p, size_t n) { return read_sum(p, n); }
#endif

static uint64_t read_best(const uint64_t *p, size_t n) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f")) return read_sum_512((const v8u64 *)p, n);
    if (__builtin_cpu_supports("avx2")) return read_sum_256((const v4u64 *)p, n);
#endif
    return read_sum((const v4u64 *)p, n);
}

static void *membw_read(void *a) {
    membw_arg *m = a;
    atomic_fetch_add(m->ready, 1);
    while (atomic_load(m->ready) < m->n_threads) {
    }
    m->t0 = gemma8_time();
    m->sum = read_best(m->p, m->n);
    m->t1 = gemma8_time();
    return NULL;
}

/* Seconds n_threads threads take to read the n words at p, each a contiguous part, from when
 * all have started (thread start-up is not counted) to when the last is done. */
static double read_seconds(const uint64_t *p, size_t n, int n_threads) {
    pthread_t th[64];
    membw_arg args[64];
    atomic_int ready = 0;
    bool started[64] = {false};
    n_threads = n_threads < 64 ? n_threads : 64;
    for (int t = 0; t < n_threads; t++) {
        args[t] = (membw_arg){p + n / n_threads * t, n / n_threads, 0, &ready, n_threads, 0, 0};
        started[t] = t && pthread_create(&th[t], NULL, membw_read, &args[t]) == 0;
        if (t && !started[t]) atomic_fetch_add(&ready, 1); /* its part is read below, after the others */
    }
    membw_read(&args[0]);
    uint64_t sum = args[0].sum;
    double t0 = args[0].t0, t1 = args[0].t1;
    for (int t = 1; t < n_threads; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else membw_read(&args[t]);
        sum += args[t].sum;
        t0 = args[t].t0 < t0 ? args[t].t0 : t0;
        t1 = args[t].t1 > t1 ? args[t].t1 : t1;
    }
    if (sum == 42) fprintf(stderr, " "); /* keep the reads */
    return t1 - t0;
}

enum { MEMBW_BYTES = 1 << 30, MEMBW_WINDOW = 128 << 20 };

/* tokens of the untimed decode run before each depth and sequence count (named in the help of -n) */
enum { WARMUP_TOKENS = 8 };

/* A 1 GiB buffer to read, on huge pages as the engine's packed weights (no page walk every
 * 4 KiB), filled; NULL when out of memory. */
static uint64_t *membw_buffer(void) {
    uint64_t *buf = aligned_alloc(2 << 20, MEMBW_BYTES);
    if (!buf) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(buf, MEMBW_BYTES, MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < MEMBW_BYTES / 8; i++) buf[i] = i;
    return buf;
}

/* Reads a 1 GiB buffer with n_threads threads; returns GB/s (best of reps). */
double cli_membw(int n_threads, int reps) {
    uint64_t *buf = membw_buffer();
    if (!buf) return 0;
    double best = 0;
    for (int r = 0; r < reps; r++) {
        const double gbs = MEMBW_BYTES / read_seconds(buf, MEMBW_BYTES / 8, n_threads) / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

/* "0,4096,16384" into out (at most max values in lo..hi); false after a message if it is not that. */
static bool parse_list(const char *opt, const char *s, int32_t *out, int *n, int max, long lo, long hi) {
    *n = 0;
    for (const char *p = s;;) {
        char *end;
        const long x = strtol(p, &end, 10);
        if (end == p || x < lo || x > hi || *n == max || (*end && *end != ',')) {
            fprintf(stderr, "gemma8 bench: %s takes up to %d comma-separated values in %ld..%ld, not '%s'\n",
                    opt, max, lo, hi, s);
            return false;
        }
        out[(*n)++] = (int32_t)x;
        if (!*end) return true;
        p = end + 1;
    }
}

/* Bytes of KV cache one decoded token of a sequence reads, averaged over n_gen tokens after depth:
 * every position on the global layers, at most the window on the sliding ones. */
static double kv_bytes_per_token(const gemma8_model_info *info, const char *kv_type, int32_t depth,
                                 int32_t n_gen) {
    gemma8_type t = info->matrix_type == GEMMA8_TYPE_Q8_0 || info->matrix_type == GEMMA8_TYPE_Q4_0
                        ? GEMMA8_TYPE_F16
                        : GEMMA8_TYPE_F32; /* the context's auto choice */
    if (kv_type && strcmp(kv_type, "auto")) gemma8_type_parse(kv_type, &t);
    const double row =
        t == GEMMA8_TYPE_Q8_0 ? info->head_dim / 32.0 * 34 : info->head_dim * (t == GEMMA8_TYPE_F16 ? 2 : 4);
    const double per_position = 2.0 * info->n_head_kv * row; /* K and V */
    double positions = 0;
    for (int32_t i = 0; i < n_gen; i++) {
        const double p = depth + i + 1.0, w = info->sliding_window > 0 ? info->sliding_window : p;
        positions += (info->n_layer - info->n_layer_sliding) * p + info->n_layer_sliding * (p < w ? p : w);
    }
    return n_gen ? positions / n_gen * per_position : 0;
}

/* One run of decode: sequences 0..np-1 each after d tokens of context (kept from the last run where it
 * can be), then n_gen steps of np tokens, or WARMUP_TOKENS untimed when tg is NULL: a process's first
 * decode runs 10-30% under the later ones (docs/performance.md), llama-bench warms up too. Into *tg
 * the tokens a second; into *bw, with --membw, the GB/s of the window read after each token. */
static int decode_run(gemma8_context *ctx, const int32_t *tok, int n_tok, int32_t d, int32_t np, int n_gen,
                      const uint64_t *bwbuf, int n_threads, double *tg, double *bw) {
    int32_t seqs[256], ids[256];
    for (int q = 0; q < np; q++) {
        seqs[q] = q;
        if (gemma8_seq_n_past(ctx, q) >= d) gemma8_seq_truncate(ctx, q, d);
        if (gemma8_seq_n_past(ctx, q) == d) continue;
        gemma8_seq_clear(ctx, q);
        const gemma8_batch past = gemma8_batch_tokens(q, tok, d);
        if (d && gemma8_decode(ctx, &past)) return 1;
    }
    /* with --membw, a window of MEMBW_WINDOW bytes is read after every token, on as many threads, so
     * that decode and the plain read see the same seconds of this machine */
    double t_tokens = 0, t_read = 0;
    const int n_run = tg ? n_gen : n_gen < WARMUP_TOKENS ? n_gen : WARMUP_TOKENS;
    for (int i = 0; i < n_run; i++) {
        for (int q = 0; q < np; q++) ids[q] = tok[(d + i + 31 * q) % n_tok];
        const double a = gemma8_time();
        const gemma8_batch step = {.n = np, .token = ids, .seq = seqs};
        if (gemma8_decode(ctx, &step)) return 1;
        t_tokens += gemma8_time() - a;
        if (!bwbuf || !tg) continue;
        /* 3 ms for the engine's idle workers to stop spinning (threadpool.c) and leave the cores, waited
         * awake: after a 3 ms sleep this VM read 128 MiB at 24-31 GB/s where it read 45-48 straight on
         * or after 3 ms of spinning */
        for (const double until = gemma8_time() + 0.003; gemma8_time() < until;) {
        }
        const size_t words = MEMBW_WINDOW / 8, at = (size_t)i % (MEMBW_BYTES / MEMBW_WINDOW) * words;
        t_read += read_seconds(bwbuf + at, words, n_threads);
    }
    if (tg) *tg = (double)n_gen * np / t_tokens;
    if (tg && bw) *bw = bwbuf ? (double)n_gen * MEMBW_WINDOW / t_read / 1e9 : 0;
    return 0;
}

/* The decode lines of one depth and sequence count: tokens a second, GB/s streamed, and with --membw
 * (bw) each run's stream against the plain read between its tokens */
static void print_decode(const gemma8_model_info *info, const char *kv_type, int32_t d, int32_t np, int n_gen,
                         int nr, const double *tg, const double *bw) {
    double m, sd;
    mean_sd(tg, nr, &m, &sd);
    /* a step reads the weights once and each sequence's cache rows */
    const double kvb = kv_bytes_per_token(info, kv_type, d, n_gen);
    printf("tg%-5d  %8.2f ± %.2f tok/s  (depth %d, %d sequences)  weights streamed: %.2f GB/s, with the KV "
           "cache read: %.2f GB/s\n",
           n_gen, m, sd, d, np, m / np * info->weight_bytes / 1e9,
           m / np * (info->weight_bytes + np * kvb) / 1e9);
    if (!bw) return;
    double f[64] = {0};
    for (int r = 0; r < nr; r++) f[r] = tg[r] / np * (info->weight_bytes + np * kvb) / 1e9 / bw[r];
    mean_sd(f, nr, &m, &sd);
    printf("decode read %.0f%% ± %.0f%% of the memory read bandwidth, read between its tokens", 100 * m,
           100 * sd);
    for (int r = 0; r < nr; r++) printf("%s%.1f", r ? ", " : " (GB/s: ", bw[r]);
    printf(")\n");
}

int cmd_bench(int argc, char **argv) {
    cli_common c = cli_common_defaults();
    c.n_threads = 2;
    int32_t n_prompt = 512, n_gen = 128, reps = 3;
    const char *np_s = "1", *depth_s = "0";
    bool membw = false, json = false;
    cli_list schemas = {0};
    cli_opt common[8];
    cli_common_table(&c, common, false);
    const cli_opt opts[] = {
        {"-p|--n-prompt", CLI_INT, &n_prompt, "N", "prompt tokens to prefill", NULL},
        {"-n|--n-gen", CLI_INT, &n_gen, "N",
         "tokens to decode (each depth and sequence count after an untimed decode of 8)", NULL},
        {"-d|--depth", CLI_STR, &depth_s, "N[,N...]",
         "tokens of context before decoding (a list: each in turn)", NULL},
        {"-r|--repetitions", CLI_INT, &reps, "N", "runs (mean +- sd)", NULL},
        {"-b|--batch-size", CLI_INT, &c.n_batch, "N", "tokens per prefill step", NULL},
        {"--kv-type", CLI_STR, &c.kv_type, "T", "KV cache: auto, f32, f16, q8_0", NULL},
        {"-np|--parallel", CLI_STR, &np_s, "N[,N...]",
         "sequences decoded together (batched decode; a list: in rounds, a run of each in turn, and each "
         "against the first); tg is their sum", NULL},
        {"--membw", CLI_FLAG, &membw, NULL,
         "measure this machine's read bandwidth (1 GiB, four streams a thread, "
         "best of 5); with -m, read 128 MiB of it after every decoded token (not timed as decode; after a "
         "3 ms busy wait) and print decode's share of that bandwidth (peak RSS then counts the 1 GiB)",
         NULL},
        {"--json-schema", CLI_LIST, &schemas, "FILE",
         "sampled decode with and without this schema (repeatable: "
         "the streams take them in turn), and the time of each mask",
         NULL},
        {"--json", CLI_FLAG, &json, NULL, "the same with any JSON object", NULL},
        {0},
    };
    const cli_opt *tables[] = {common, opts, NULL};
    const char *usage =
        "usage: gemma8 bench -m MODEL.gguf [-t THREADS] [-p PROMPT] [-n GEN] [-d DEPTH,...] [-np N,...] [-r "
        "REPS]\n"
        "       gemma8 bench --membw [-t THREADS]\n"
        "       gemma8 bench -m MODEL.gguf --membw ...  (decode as a share of the bandwidth)\n\n"
        "Prefill of PROMPT tokens and decode of GEN tokens (after DEPTH tokens of context, N sequences\n"
        "at once: every DEPTH with every N), mean +- sd over REPS runs, the GB/s of weights streamed\n"
        "while decoding (and with the KV cache rows attention reads), and RSS.\n";
    int r = cli_parse("bench", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    int32_t nps[16], depths[16];
    int n_np, n_depth;
    if (!parse_list("-np", np_s, nps, &n_np, 16, 1, 256) ||
        !parse_list("-d", depth_s, depths, &n_depth, 16, 0, 1 << 24))
        return 2;
    if (c.n_threads < 1 || c.n_threads > 1024 || reps < 1 || reps > 64 || n_prompt < 0 || n_gen < 0) {
        fprintf(stderr, "gemma8 bench: -t 1..1024, -r 1..64, and -p, -n >= 0 (got %d, %d, %d, %d)\n",
                c.n_threads, reps, n_prompt, n_gen);
        return 2;
    }
    int32_t parallel = 1, depth = 0; /* the largest of each: the context holds them */
    for (int i = 0; i < n_np; i++) parallel = nps[i] > parallel ? nps[i] : parallel;
    for (int i = 0; i < n_depth; i++) depth = depths[i] > depth ? depths[i] : depth;
    if ((schemas.n || json) && (n_np > 1 || n_depth > 1 || depth)) {
        fprintf(stderr, "gemma8 bench: --json-schema / --json take one -np and no -d\n");
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
    double t0 = gemma8_time();
    c.n_ctx = (depth + (n_prompt > n_gen ? n_prompt : n_gen) + 1) * parallel;
    cli_loaded loaded;
    if (cli_load(&c, parallel, &loaded)) return 1;
    gemma8_model *model = loaded.model;
    gemma8_context *ctx = loaded.ctx;
    double t_load = gemma8_time() - t0;
    if (schemas.n || json) {
        printf("model: %s, %d threads, loaded in %.2f s\n", model_path, n_threads, t_load);
        r = cli_bench_grammar(model, ctx, &schemas, json, parallel, n_gen, reps);
        cli_unload(&loaded);
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
    double pp[64], tg[16][64], bw[16][64]; /* [N][run] */
    uint64_t *bwbuf = membw && n_gen ? membw_buffer() : NULL;
    if (membw && n_gen && !bwbuf) fprintf(stderr, "gemma8 bench: no memory for --membw's 1 GiB, left out\n");
    const int nr = reps < 64 ? reps : 64;
    const int n_tok = depth + n_prompt + n_gen + 1;
    int rc = 0;
    double m, sd;
    for (int r = 0; r < nr && n_prompt && !rc; r++) {
        gemma8_seq_clear(ctx, 0);
        double a = gemma8_time();
        const gemma8_batch prompt = gemma8_batch_tokens(0, tok, n_prompt);
        if (gemma8_decode(ctx, &prompt)) rc = 1;
        pp[r] = n_prompt / (gemma8_time() - a);
    }
    if (!rc && n_prompt) {
        mean_sd(pp, nr, &m, &sd);
        printf("pp%-5d  %8.2f ± %.2f tok/s\n", n_prompt, m, sd);
    }
    /* decode: each of the sequences after d tokens, together when there are several; every d with every
     * N, the N in rounds (run r of each N, then run r + 1 of each), so that the machine's drift over
     * minutes (this VM's bandwidth swung 13-31 GB/s) falls on every N alike and their ratios hold */
    for (int di = 0; di < n_depth && n_gen && !rc; di++) {
        const int32_t d = depths[di];
        for (int r = -1; r < nr && !rc; r++)
            for (int ni = 0; ni < n_np && !rc; ni++)
                rc = decode_run(ctx, tok, n_tok, d, nps[ni], n_gen, bwbuf, n_threads,
                                r < 0 ? NULL : &tg[ni][r], r < 0 ? NULL : &bw[ni][r]);
        for (int ni = 0; ni < n_np && !rc; ni++)
            print_decode(&info, kv_type, d, nps[ni], n_gen, nr, tg[ni], bwbuf ? bw[ni] : NULL);
        for (int ni = 1; ni < n_np && !rc; ni++) { /* each N against the first, round by round */
            double f[64];
            for (int r = 0; r < nr; r++) f[r] = tg[ni][r] / tg[0][r];
            mean_sd(f, nr, &m, &sd);
            printf("tg%-5d  %d sequences against %d: %.2fx ± %.2f (depth %d, a ratio a round)\n", n_gen,
                   nps[ni], nps[0], m, sd, d);
        }
    }
    if (rc)
        fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
    else
        printf("RSS %.2f GiB (peak %.2f GiB)\n", rss_gib("VmRSS:"), rss_gib("VmHWM:"));
    free(tok);
    free(bwbuf);
    cli_unload(&loaded);
    return rc;
}
