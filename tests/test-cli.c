/* test-cli.c - the gemma8 command's contract, driven as a user would (pipes). */
#include "testutil.h"

#include <cjson/cJSON.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Runs the gemma8 binary with args, stdin from `input` (may be NULL); returns
 * the exit status (128+signal if killed) and the malloc'd stdout/stderr. */
int run_cli(const char *const *args, const char *input, char **out, char **err) {
    if (out) *out = calloc(1, 1);
    if (err) *err = calloc(1, 1);
    const char *bin = getenv("GEMMA8");
    if (!bin) bin = "build/gemma8";
    const char *in_path = tmp_path("cli.in"), *out_path = tmp_path("cli.out"), *err_path = tmp_path("cli.err");
    FILE *f = fopen(in_path, "w");
    if (input) fputs(input, f);
    fclose(f);
    char *argv[64];
    int n = 0;
    const char *wrapper = getenv("GEMMA8_WRAPPER"); /* e.g. qemu-aarch64 for a cross build */
    if (wrapper) argv[n++] = (char *)wrapper;
    int first = n;
    argv[n++] = (char *)bin;
    for (; args[n - 1 - first] && n < 63; n++) argv[n] = (char *)args[n - 1 - first];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_path, O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    int status;
    waitpid(pid, &status, 0);
    const char *paths[2] = {out_path, err_path};
    char **dst[2] = {out, err};
    for (int k = 0; k < 2; k++) {
        if (!dst[k]) continue;
        FILE *g = fopen(paths[k], "rb");
        if (!g) continue;
        free(*dst[k]);
        fseek(g, 0, SEEK_END);
        long len = ftell(g);
        fseek(g, 0, SEEK_SET);
        *dst[k] = calloc(1, (size_t)len + 1);
        if (fread(*dst[k], 1, (size_t)len, g) != (size_t)len) (*dst[k])[0] = 0;
        fclose(g);
    }
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static char *join_ids(const int32_t *v, size_t n) {
    char *s = malloc(n * 12 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)sprintf(s + k, i ? ",%d" : "%d", v[i]);
    s[k] = 0;
    return s;
}

/* The reference's greedy case gen0 of a fixture as comma-separated ids: the
 * prompt, the output and its length; false (and a failed check) if absent. */
typedef struct gen0_ids {
    char *prompt;
    char *output;
    char n[16];
} gen0_ids;

static bool load_gen0(const char *fixture, gen0_ids *g) {
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path(fixture));
    size_t np, no;
    int32_t *prompt = ref_load(ref, "gen0.prompt", &np), *gen = ref_load(ref, "gen0.output", &no);
    bool ok = prompt && gen;
    if (ok) {
        g->prompt = join_ids(prompt, np);
        g->output = join_ids(gen, no);
        snprintf(g->n, sizeof g->n, "%zu", no);
    }
    free(prompt);
    free(gen);
    return ok;
}

static void free_gen0(gen0_ids *g) {
    free(g->prompt);
    free(g->output);
}

TEST(cli_logits_and_run_contract) {
    const char *model = convert_fixture("tiny-a", GEMMA8_TYPE_F32);
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path("tiny-a"));
    size_t T, n, np, no;
    int32_t *tok = ref_load(ref, "seq1.tokens", &T);
    float *want = ref_load(ref, "seq1.logits", &n);
    int32_t *prompt = ref_load(ref, "gen0.prompt", &np);
    int32_t *gen = ref_load(ref, "gen0.output", &no);
    if (!model || !tok || !want || !prompt || !gen) return;
    char *toks = join_ids(tok, T), *ptoks = join_ids(prompt, np), *gens = join_ids(gen, no), *out, *err;
    const char *outf = tmp_path("cli-logits.f32");
    const char *a1[] = {"logits", "-m", model, "--tokens", toks, "-o", outf, NULL};
    CHECK(run_cli(a1, NULL, &out, &err) == 0);
    free(out);
    free(err);
    FILE *f = fopen(outf, "rb");
    float *got = calloc(n + 1, sizeof(float));
    size_t rd = f ? fread(got, sizeof(float), n + 1, f) : 0;
    if (f) fclose(f);
    CHECKF(rd == n, "logits file has %zu floats, want %zu", rd, n);
    CHECK(max_abs_diff(got, want, n) <= 1e-3f);
    char nbuf[16];
    snprintf(nbuf, sizeof nbuf, "%zu", no);
    const char *a2[] = {"run", "-m", model, "--tokens", ptoks, "-n", nbuf, "--temp", "0", "--ids", "--ignore-eos", NULL};
    CHECK(run_cli(a2, NULL, &out, &err) == 0);
    out[strcspn(out, "\n")] = 0;
    CHECKF(!strcmp(out, gens), "run printed '%s', want '%s'", out, gens);
    free(out);
    free(err);
    free(got);
    free(toks);
    free(ptoks);
    free(gens);
    free(tok);
    free(want);
    free(prompt);
    free(gen);
}

/* --kv-type: a q8_0 cache still gives the reference's greedy tokens (tiny-b,
 * heads of 32); bench says which cache it measured (and with --membw the bandwidth it read between
 * tokens); a bad name is refused. */
TEST(cli_kv_type_option) {
    const char *model = convert_fixture("tiny-b", GEMMA8_TYPE_Q8_0);
    gen0_ids g;
    if (!model || !load_gen0("tiny-b", &g)) return;
    char *ptoks = g.prompt, *gens = g.output, *nbuf = g.n, *out, *err;
    const char *a1[] = {"run", "-m", model, "--tokens", ptoks, "-n", nbuf, "--temp", "0", "--ids", "--ignore-eos",
                        "--kv-type", "q8_0", NULL};
    CHECK(run_cli(a1, NULL, &out, &err) == 0);
    out[strcspn(out, "\n")] = 0;
    CHECKF(!strcmp(out, gens), "run --kv-type q8_0 printed '%s', want '%s'", out, gens);
    free(out);
    free(err);
    const char *a2[] = {"bench", "-m", model, "-p", "8", "-n", "4", "-r", "1", "--kv-type", "q8_0",
                        "--membw", NULL};
    CHECK(run_cli(a2, NULL, &out, &err) == 0);
    CHECKF(strstr(out, "KV cache q8_0") && strstr(out, "pp8") && strstr(out, "tg4"), "bench printed '%s'", out);
    const char *share = strstr(out, "read between its tokens (GB/s: "); /* --membw: the bandwidth it read */
    CHECKF(strstr(out, "decode read ") && share && atof(share + strlen("read between its tokens (GB/s: ")) > 0,
           "bench --membw printed '%s'", out);
    free(out);
    free(err);
    /* lists: every depth with every number of sequences, each a line of its own, in that order, then
     * each count against the first (a ratio of runs taken in the same round) */
    const char *a5[] = {"bench", "-m", model, "-p",   "0",   "-n",  "4",
                        "-r",    "2",  "-d",  "0,16", "-np", "1,3", NULL};
    CHECK(run_cli(a5, NULL, &out, &err) == 0);
    const char *at = out;
    const char *want[] = {"(depth 0, 1 sequences)",  "(depth 0, 3 sequences)",  "3 sequences against 1: ",
                          "(depth 16, 1 sequences)", "(depth 16, 3 sequences)", "3 sequences against 1: "};
    for (int i = 0; i < 6; i++) {
        at = at ? strstr(at, want[i]) : NULL;
        CHECKF(at != NULL, "bench -d 0,16 -np 1,3: no '%s' in order in '%s'", want[i], out);
    }
    const char *ratio = strstr(out, "3 sequences against 1: ");
    CHECKF(ratio && atof(ratio + strlen("3 sequences against 1: ")) > 0, "bench printed '%s'", out);
    CHECKF(strstr(out, "with the KV cache read: ") && !strstr(out, "pp0"), "bench printed '%s'", out);
    free(out);
    free(err);
    const char *a4[] = {"info", "-m", model, NULL}; /* heads of 32: info also gives the q8_0 cache's memory */
    CHECK(run_cli(a4, NULL, &out, &err) == 0);
    CHECKF(strstr(out, "| KV q8_0") && strstr(out, "by type:"), "info printed '%s'", out);
    free(out);
    free(err);
    const char *a3[] = {"run", "-m", model, "--tokens", ptoks, "-n", "2", "--kv-type", "q4", NULL};
    CHECK(run_cli(a3, NULL, &out, &err) == 1);
    CHECKF(strstr(err, "unknown KV cache type 'q4'"), "stderr: %s", err);
    free(out);
    free(err);
    free_gen0(&g);
}

/* Bad input: exit status 1 with a message, never a signal. */
TEST(cli_bad_input_clean_errors) {
    const char *model = convert_fixture("tiny-c", GEMMA8_TYPE_F32);
    if (!model) return;
    struct {
        const char *args[10];
        int want;
        const char *mention;
    } cases[] = {
        {{"logits", "-m", "/nonexistent.gguf", "--tokens", "2", "-o", "/tmp/x", NULL}, 1, "nonexistent"},
        {{"logits", "-m", model, "--tokens", "2,999999", "-o", "/tmp/x", NULL}, 1, "outside the vocabulary"},
        {{"logits", "-m", model, "--tokens", "2,abc", "-o", "/tmp/x", NULL}, 2, "bad token list"},
        {{"run", "-m", model, "--tokens", "2,3,4,5,6", "-c", "4", "-n", "10", NULL}, 1, "does not fit"},
        {{"run", "-m", model, "--tokens", "2", "-c", "4", "-n", "10", NULL},
         0,
         "context of 4 tokens is full"},
        {{"convert", "/nonexistent-dir", "-o", "/tmp/x.gguf", NULL}, 1, "config.json"},
        {{"convert", "x", "-o", "y", "--type", "q4_k", NULL},
         2,
         "--type expects q8_0, q4_0, f32, f16 or bf16, got 'q4_k'"},
        {{"run", "-m", model, "--tokens", "2", "-n", "abc", NULL}, 2, "-n expects a number, got 'abc'"},
        {{"run", "-m", model, "--tokens", "2", "-n", NULL}, 2, "-n needs a value"},
        {{"run", "-m", model, "--tokens", "2", "--temp", "hot", NULL},
         2,
         "--temp expects a number, got 'hot'"},
        {{"run", "-m", model, "--tokens", "2", "--seed", "-7", NULL}, 2, "--seed expects a seed"},
        {{"run", "-m", model, "--tokens", "2", "--top-p", "0", NULL}, 2, "top_p 0 is not in (0, 1]"},
        {{"run", "-m", model, "--tokens", "2", "--frobnicate", NULL}, 2, "unknown option '--frobnicate'"},
        {{"run", "-m", model, "--tokens", "2", "-t", "-3", NULL}, 2, "-t expects 0 to 1024 threads, got -3"},
        {{"chat", "-m", model, "--top-k", "-1", NULL}, 2, "top_k -1 is negative"},
        {{"bench", "-m", model, "-r", "0", NULL}, 2, "-r 1..64"},
        {{"bench", "-m", model, "-np", "1,x", NULL},
         2,
         "-np takes up to 16 comma-separated values in 1..256"},
        {{"bench", "-m", model, "-d", "0,,8", NULL}, 2, "-d takes up to 16 comma-separated values"},
        {{"info", "-m", data_path("tiny-a/config.json"), NULL}, 1, "not a GGUF file"},
        {{"frobnicate", NULL}, 2, "unknown command"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int rc = run_cli(cases[i].args, NULL, &out, &err);
        CHECKF(rc == cases[i].want, "case %zu (%s): exit %d want %d: %s", i, cases[i].args[0], rc, cases[i].want, err);
        CHECKF(strstr(err, cases[i].mention) != NULL, "case %zu: stderr '%s' lacks '%s'", i, err, cases[i].mention);
        free(out);
        free(err);
    }
}

TEST(cli_help_on_every_subcommand) {
    const char *cmds[] = {"convert", "run", "chat", "demo", "logits", "info", "bench", "tokenize", "detokenize"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *a[] = {cmds[i], "--help", NULL};
        char *out, *err;
        CHECKF(run_cli(a, NULL, &out, &err) == 0 && strstr(out, "usage: gemma8"), "%s --help", cmds[i]);
        free(out);
        free(err);
    }
}

/* run -p: the prompt goes through the chat template, text streams to stdout,
 * timings to stderr; the text and the ids are the reference's greedy ones
 * (chat case 0 of the fullvocab fixture, from transformers) */
TEST(cli_run_prompt_streams_text) {
    const char *model = data_path("llamacpp-gguf/fullvocab-f16.gguf");
    FILE *f = fopen(data_path("fullvocab/chat_cases.jsonl"), "r");
    char line[1 << 16];
    cJSON *c = f && fgets(line, sizeof line, f) ? cJSON_Parse(line) : NULL;
    if (f) fclose(f);
    const cJSON *ids = cJSON_GetObjectItem(c, "ids"), *greedy = cJSON_GetObjectItem(c, "greedy_ids");
    const cJSON *text = cJSON_GetObjectItem(c, "greedy_text");
    const cJSON *msg = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "messages"), 0);
    if (!CHECK(cJSON_IsArray(ids) && cJSON_IsArray(greedy) && cJSON_IsString(text) && msg)) {
        cJSON_Delete(c);
        return;
    }
    const int n = 8;
    int32_t want_ids[8], prompt[256];
    int np = 0;
    for (int i = 0; i < n; i++) want_ids[i] = cJSON_GetArrayItem(greedy, i)->valueint;
    for (const cJSON *x = ids->child; x && np < 256; x = x->next) prompt[np++] = x->valueint;
    char *want = join_ids(want_ids, (size_t)n), *ptoks = join_ids(prompt, (size_t)np);
    /* the first n characters of the greedy text are the n tokens' text (one character each here) */
    char want_text[64];
    snprintf(want_text, sizeof want_text, "%.*s\n", n, text->valuestring);
    const char *content = cJSON_GetObjectItem(msg, "content")->valuestring;
    const char *a[] = {"run", "-m", model, "-p", content, "-n", "8", "--temp", "0", "--ignore-eos", NULL};
    char *out, *err;
    CHECK(run_cli(a, NULL, &out, &err) == 0);
    CHECKF(!strcmp(out, want_text), "run -p printed '%s', want '%s'", out, want_text);
    char pt[32];
    snprintf(pt, sizeof pt, "(prompt %d tokens, 0 reused)", np);
    CHECKF(strstr(err, pt) && strstr(err, "tokens per second") && strstr(err, "load time") && strstr(err, "total time"),
           "timings: %s", err);
    free(out);
    free(err);
    /* --tokens/--ids with the template's ids gives the greedy ids */
    const char *b[] = {"run", "-m", model, "--tokens", ptoks, "-n", "8", "--temp", "0", "--ids", "--ignore-eos", NULL};
    CHECK(run_cli(b, NULL, &out, &err) == 0);
    out[strcspn(out, "\n")] = 0;
    CHECKF(!strcmp(out, want), "ids: '%s', want '%s'", out, want);
    free(out);
    free(err);
    free(want);
    free(ptoks);
    cJSON_Delete(c);
}

/* chat through a pipe: two turns, /reset, another turn */
TEST(cli_chat_two_turns_and_reset) {
    const char *model = data_path("llamacpp-gguf/fullvocab-f16.gguf");
    const char *a[] = {"chat", "-m", model, "-n", "6", "--seed", "3", NULL};
    char *out, *err;
    int rc = run_cli(a, "Hello there\nAnd a second question?\n/reset\nFresh start\n/exit\n", &out, &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    CHECKF(strstr(out, "(conversation cleared)") != NULL, "stdout: %s", out);
    CHECKF(lines >= 4, "stdout has %d lines: %s", lines, out);
    free(out);
    free(err);
    /* a turn that cannot fit is an error with a message, not a crash */
    const char *b[] = {"chat", "-m", model, "-c", "16", "-n", "4", NULL};
    rc = run_cli(b, "This message is far too long for a context of sixteen tokens, surely it is\n", &out, &err);
    CHECKF(rc == 1 && strstr(err, "does not fit"), "exit %d: %s", rc, err);
    free(out);
    free(err);
}

TEST(cli_demo_runs_without_a_model) {
    const char *path = tmp_path("demo.gguf");
    const char *a[] = {"demo", "-o", path, "--tokenizer", tokenizer_dir(), "-n", "5", NULL};
    char *out, *err;
    int rc = run_cli(a, NULL, &out, &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    CHECK(strstr(out, "RANDOM weights") != NULL && strstr(out, "> Hello") != NULL);
    free(out);
    free(err);
}

#include <sys/stat.h>

/* A converted model cut at 50+ offsets, or with bytes flipped in its header and
 * tensor table: the command always ends cleanly (exit 1 and a message, or a
 * model that still loads), never by a signal. */
TEST(cli_truncated_and_corrupted_models) {
    const char *model = convert_fixture("tiny-c", GEMMA8_TYPE_Q8_0);
    if (!model) return;
    FILE *f = fopen(model, "rb");
    struct stat sb;
    stat(model, &sb);
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = malloc(n);
    CHECK(fread(buf, 1, n, f) == n);
    fclose(f);
    const char *bad = tmp_path("bad.gguf");
    int clean = 0, runs = 0;
    for (int k = 0; k < 55; k++) {
        size_t cut = k < 30 ? (size_t)k * 211 : (size_t)((double)n * (k - 29) / 27.0);
        if (cut >= n) cut = n - 1;
        f = fopen(bad, "wb");
        fwrite(buf, 1, cut, f);
        fclose(f);
        const char *a[] = {"logits", "-m", bad, "--tokens", "2,5", "-o", tmp_path("x.f32"), NULL};
        char *out, *err;
        int rc = run_cli(a, NULL, &out, &err);
        runs++;
        clean += rc == 1 && strstr(err, "error:") != NULL;
        CHECKF(rc == 1, "cut at %zu: exit %d (%s)", cut, rc, err);
        free(out);
        free(err);
    }
    harness_note("truncated at %d offsets: %d clean errors (exit 1 with a message)", runs, clean);
    /* flips in the header and tensor table (the first ~6 KB) */
    unsigned seed = 99;
    int signals = 0, errors = 0, loads = 0;
    for (int k = 0; k < 40; k++) {
        seed = seed * 1103515245u + 12345u;
        size_t at = (seed >> 8) % (n < 6000 ? n : 6000);
        unsigned char old = buf[at];
        buf[at] ^= (unsigned char)(0x10 << (k % 4));
        f = fopen(bad, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        buf[at] = old;
        const char *a[] = {"logits", "-m", bad, "--tokens", "2,5", "-o", tmp_path("x.f32"), NULL};
        char *out, *err;
        int rc = run_cli(a, NULL, &out, &err);
        signals += rc >= 128;
        errors += rc == 1;
        loads += rc == 0;
        CHECKF(rc == 0 || (rc == 1 && strstr(err, "error:")), "flip at %zu: exit %d (%s)", at, rc, err);
        free(out);
        free(err);
    }
    harness_note("40 header flips: %d clean errors, %d still ran, %d signals", errors, loads, signals);
    free(buf);
}

/* llama.cpp's long option names, --seed -1, a warning for more threads than
 * CPUs and for a context past the training length; --help one option a line */
TEST(cli_llamacpp_option_names) {
    const char *model = convert_fixture("tiny-a", GEMMA8_TYPE_F32);
    gen0_ids g;
    if (!model || !load_gen0("tiny-a", &g)) return;
    char *ptoks = g.prompt, *gens = g.output, *nbuf = g.n, *out, *err;
    const char *a[] = {"run", "--model", model, "--tokens", ptoks, "--n-predict", nbuf, "--temp=0", "--ids",
                       "--ignore-eos", "--ctx-size", "100000", "--threads", "64", "--batch-size", "7", "-s", "-1",
                       NULL};
    CHECK(run_cli(a, NULL, &out, &err) == 0);
    out[strcspn(out, "\n")] = 0;
    CHECKF(!strcmp(out, gens), "printed '%s', want '%s' (%s)", out, gens, err);
    CHECKF(strstr(err, "-t 64 is more threads than the"), "no thread warning: %s", err);
    CHECKF(strstr(err, "longer than the 8192 the model was trained for"), "no context warning: %s", err);
    free(out);
    free(err);
    const char *h[] = {"run", "--help", NULL};
    CHECK(run_cli(h, NULL, &out, &err) == 0);
    CHECKF(strstr(out, "\n  -n,--n-predict N") && strstr(out, "(default 256)\n") && strstr(out, "\n  -s,--seed S") &&
               strstr(out, "\n  -f,--file FILE") && strstr(out, "\n  --top-k K") && strstr(out, "(default 40)\n"),
           "run --help: %s", out);
    free(out);
    free(err);
    free_gen0(&g);
}

/* chat: unknown commands say so; a trailing \ and """ blocks make one message;
 * /save then /load in a new process resumes the conversation (its next turn
 * reuses the history); --drop-oldest keeps a long chat going */
TEST(cli_chat_commands_multiline_and_resume) {
    const char *model = data_path("llamacpp-gguf/fullvocab-f16.gguf");
    const char *saved = tmp_path("chat.cache");
    char input[1024];
    snprintf(input, sizeof input,
             "/frobnicate\nFirst line\\\nsecond line\n\"\"\"\nA block\nof two lines\n\"\"\"\n/save %s\n", saved);
    const char *a[] = {"chat", "-m", model, "-n", "4", "--temp", "0", NULL};
    char *out, *err;
    int rc = run_cli(a, input, &out, &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    CHECKF(strstr(out, "unknown command '/frobnicate'"), "stdout: %s", out);
    CHECKF(strstr(out, "(saved the conversation"), "stdout: %s", out);
    /* two user turns went in: the timings show 2 prompts */
    int turns = 0;
    for (const char *p = err; (p = strstr(p, "prompt eval")); p++) turns++;
    CHECKF(turns == 2, "%d turns, want 2: %s", turns, err);
    free(out);
    free(err);
    snprintf(input, sizeof input, "/load %s\nAnd now?\n", saved);
    rc = run_cli(a, input, &out, &err);
    CHECKF(rc == 0, "exit %d: %s", rc, err);
    CHECKF(strstr(out, "(loaded a conversation of 4 messages"), "stdout: %s", out);
    const char *reuse = strstr(err, " reused)");
    int n_prompt = 0, n_reused = 0;
    const char *pp = reuse ? strstr(err, "(prompt ") : NULL;
    if (pp) sscanf(pp, "(prompt %d tokens, %d reused)", &n_prompt, &n_reused);
    const char *lp = strstr(out, "(loaded a conversation of 4 messages, ");
    int loaded = 0;
    if (lp) sscanf(lp, "(loaded a conversation of 4 messages, %d tokens", &loaded);
    /* all of it but the last reply (4 tokens, which the template trims, as in any next turn);
     * a dropped conversation would reuse only the template's first tokens */
    CHECKF(loaded > 20 && n_reused >= loaded - 4, "after /load of %d tokens: prompt %d, reused %d: %s", loaded,
           n_prompt, n_reused, err);
    harness_note("after /load of %d tokens: prompt %d tokens, %d reused", loaded, n_prompt, n_reused);
    free(out);
    free(err);
    /* a context that holds one turn: --drop-oldest goes on, without it the turn is refused */
    const char *b[] = {"chat", "-m", model, "-c", "48", "-n", "4", "--temp", "0", "--drop-oldest", NULL};
    rc = run_cli(b, "Tell me a story about a cat\nAnd another about a dog\nAnd a third one\n", &out, &err);
    CHECKF(rc == 0 && strstr(out, "oldest messages no longer fit"), "exit %d: %s / %s", rc, out, err);
    free(out);
    free(err);
}

/* Runs `gemma8 ARGS` through sh in folder dir with extra environment; returns the exit status. */
static int run_sh(const char *dir, const char *env, const char *args, char **out, char **err) {
    char bin[1024], cmd[4096];
    const char *b = getenv("GEMMA8") ? getenv("GEMMA8") : "build/gemma8";
    if (!realpath(b, bin)) return -1;
    const char *wrapper = getenv("GEMMA8_WRAPPER") ? getenv("GEMMA8_WRAPPER") : "";
    const char *o = tmp_path("sh.out"), *e = tmp_path("sh.err");
    snprintf(cmd, sizeof cmd, "cd '%s' && %s %s '%s' %s </dev/null >'%s' 2>'%s'", dir, env, wrapper, bin, args, o, e);
    int st = system(cmd);
    const char *paths[2] = {o, e};
    char **dst[2] = {out, err};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(paths[k], "rb");
        *dst[k] = calloc(1, 1 << 16);
        if (f) {
            size_t n = fread(*dst[k], 1, (1 << 16) - 1, f);
            (*dst[k])[n] = 0;
            fclose(f);
        }
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* demo from another folder: it finds the tokenizer beside the program, keeps
 * its model in $XDG_CACHE_HOME, and refuses a folder without tokenizer.json */
TEST(cli_demo_from_any_folder) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tmp_path("elsewhere"));
    mkdir(dir, 0755);
    char *out, *err;
    /* without GEMMA8_TOKENIZER_DIR, as a new user has it */
    int rc = run_sh(dir, "env -u GEMMA8_TOKENIZER_DIR XDG_CACHE_HOME=cache", "demo -n 3", &out, &err);
    CHECKF(rc == 0 && strstr(out, "RANDOM weights"), "exit %d: %s / %s", rc, out, err);
    char cached[1200];
    snprintf(cached, sizeof cached, "%s/cache/gemma8/demo.gguf", dir);
    CHECKF(access(cached, R_OK) == 0, "no demo model at %s", cached);
    free(out);
    free(err);
    rc = run_sh(dir, "XDG_CACHE_HOME=cache2", "demo -n 3 --tokenizer /nonexistent", &out, &err);
    CHECKF(rc == 1 && strstr(err, "no tokenizer.json in /nonexistent"), "exit %d: %s", rc, err);
    snprintf(cached, sizeof cached, "%s/cache2/gemma8/demo.gguf", dir);
    CHECKF(access(cached, F_OK) != 0, "a model was cached without a tokenizer");
    free(out);
    free(err);
}

/* Ctrl-C during a conversion leaves neither the output nor a temporary file;
 * convert progress is plain lines in a log and ends with the size */
TEST(cli_convert_interrupted_leaves_nothing) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tmp_path("conv-int"));
    mkdir(dir, 0755);
    const char *bin = getenv("GEMMA8") ? getenv("GEMMA8") : "build/gemma8";
    const char *wrapper = getenv("GEMMA8_WRAPPER");
    char outp[1200];
    snprintf(outp, sizeof outp, "%s/big.gguf", dir);
    char *argv[12];
    int n = 0;
    if (wrapper) argv[n++] = (char *)wrapper;
    argv[n++] = (char *)bin;
    argv[n++] = "convert";
    argv[n++] = "--random";
    argv[n++] = (char *)data_path("gemma2-configs/gemma-2-2b-it.json");
    argv[n++] = "-o";
    argv[n++] = outp;
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, tmp_path("conv-int.err"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    CHECK(posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    sleep(1);
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d", status);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", dir);
    CHECKF(system(cmd) == 0, "files left in %s after Ctrl-C", dir);
    /* a small conversion: plain progress lines, the size at the end */
    char small[1200];
    snprintf(small, sizeof small, "%s/small.gguf", dir);
    const char *a[] = {"convert", data_path("tiny-a"), "-o", small, NULL};
    char *out, *err;
    CHECK(run_cli(a, NULL, &out, &err) == 0);
    CHECKF(strstr(err, "(100%)\n") && !strchr(err, '\r') && strstr(err, " GB) in "), "stderr: %s", err);
    free(out);
    free(err);
    const char *b[] = {"info", "-m", small, NULL};
    CHECK(run_cli(b, NULL, &out, &err) == 0);
    CHECKF(strstr(out, "file:                  ") && strstr(out, "name:                  tiny-a") &&
               strstr(out, " M ("),
           "info: %s", out);
    free(out);
    free(err);
}

/* convert-lora writes llama.cpp's file; logits --lora FILE and --lora DIR:SCALE
 * give PEFT's base + adapter logits (scale 1), and scale 0 the base's. */
TEST(cli_lora) {
    const char *model = convert_fixture("tiny-a", GEMMA8_TYPE_F32);
    char ref[512], dir[512];
    snprintf(ref, sizeof ref, "%s", data_path("tiny-a-lora/reference.safetensors"));
    snprintf(dir, sizeof dir, "%s", data_path("tiny-a-lora"));
    size_t T, n;
    int32_t *tok = ref_load(ref, "seq0.tokens", &T);
    float *want = ref_load(ref, "seq0.logits", &n);
    if (!model || !tok || !want) return;
    char *toks = join_ids(tok, T), *out, *err;
    const char *gguf = tmp_path("cli-lora.gguf"), *outf = tmp_path("cli-lora.f32");
    const char *a0[] = {"convert-lora", dir, "-o", gguf, NULL};
    CHECK(run_cli(a0, NULL, &out, &err) == 0);
    free(out);
    free(err);
    char dir1[600], dir0[600];
    snprintf(dir1, sizeof dir1, "%s:1", dir);
    snprintf(dir0, sizeof dir0, "%s:0", dir);
    const char *adapters[] = {gguf, dir1, dir0};
    float *got = calloc(n + 1, sizeof(float));
    for (int i = 0; i < 3 && got; i++) {
        const char *a1[] = {"logits", "-m", model, "--tokens", toks, "-o", outf, "--lora", adapters[i], NULL};
        CHECKF(run_cli(a1, NULL, &out, &err) == 0, "%s", err);
        free(out);
        free(err);
        FILE *f = fopen(outf, "rb");
        size_t rd = f ? fread(got, sizeof(float), n + 1, f) : 0;
        if (f) fclose(f);
        const float d = max_abs_diff(got, want, n);
        CHECKF(rd == n && (i < 2 ? d <= 1e-3f : d > 1.0f), "--lora %s: %zu floats, max |diff| %g", adapters[i], rd, d);
    }
    const char *a2[] = {"logits", "-m", model, "--tokens", toks, "-o", outf, "--lora", "/nonexistent", NULL};
    CHECK(run_cli(a2, NULL, &out, &err) == 1 && strstr(err, "/nonexistent"));
    free(out);
    free(err);
    free(got);
    free(toks);
    free(tok);
    free(want);
}

/* --json-schema FILE / --json / --grammar FILE: stdout is the reply alone, and it parses. */
TEST(cli_structured_output) {
    const char *model = data_path("llamacpp-gguf/fullvocab-f16.gguf");
    char schema_path[1024], gbnf_path[1024]; /* tmp_path's buffer is reused */
    snprintf(schema_path, sizeof schema_path, "%s", tmp_path("cli-schema.json"));
    snprintf(gbnf_path, sizeof gbnf_path, "%s", tmp_path("cli.gbnf"));
    FILE *f = fopen(schema_path, "w");
    fputs("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":10},\"n\":{\"type\":"
          "\"integer\",\"minimum\":1,\"maximum\":5}},\"required\":[\"name\",\"n\"],\"additionalProperties\":false}",
          f);
    fclose(f);
    f = fopen(gbnf_path, "w");
    fputs("root ::= \"[\" item (\",\" item){0,3} \"]\"\nitem ::= [0-9]{1,2}\n", f);
    fclose(f);
    for (int seed = 1; seed <= 3; seed++) {
        char s[8];
        snprintf(s, sizeof s, "%d", seed);
        const char *a[] = {"run", "-m", model, "-p", "Name and number?", "--json-schema", schema_path, "--temp", "1",
                           "-s", s, "-n", "120", NULL};
        char *out, *err;
        CHECK(run_cli(a, NULL, &out, &err) == 0);
        cJSON *v =
            cJSON_Parse(out); /* the whole of stdout: the JSON, and no newline the schema did not allow */
        CHECKF(out[0] && out[strlen(out) - 1] == '}', "stdout ends '%s'", out);
        const cJSON *n = cJSON_GetObjectItem(v, "n");
        CHECKF(v && cJSON_IsString(cJSON_GetObjectItem(v, "name")) && cJSON_IsNumber(n) && n->valueint >= 1 &&
                   n->valueint <= 5 && cJSON_GetArraySize(v) == 2,
               "stdout '%s' (stderr %s)", out, err);
        cJSON_Delete(v);
        free(out);
        free(err);
    }
    const char *j[] = {"run", "-m", model, "-p", "hi", "--json", "--temp", "0", "-n", "100", "-q", NULL};
    char *out, *err;
    CHECK(run_cli(j, NULL, &out, &err) == 0);
    cJSON *v = cJSON_Parse(out);
    CHECKF(cJSON_IsObject(v), "--json greedy: '%s'", out);
    cJSON_Delete(v);
    free(out);
    free(err);
    const char *g[] = {"run", "-m", model, "-p", "hi", "--grammar", gbnf_path, "--temp", "1", "-n", "40", "-q", NULL};
    CHECK(run_cli(g, NULL, &out, &err) == 0);
    v = cJSON_Parse(out);
    CHECKF(cJSON_IsArray(v) && cJSON_GetArraySize(v) >= 1 && cJSON_GetArraySize(v) <= 4, "--grammar: '%s'", out);
    cJSON_Delete(v);
    free(out);
    free(err);
    /* cut by its length limit: said on stderr (the grammar's own end is not) */
    const char *cut[] = {"run", "-m", model, "-p", "hi", "--json", "--temp",
                         "1",   "-s", "3",   "-n", "3",  "-q",     NULL};
    CHECK(run_cli(cut, NULL, &out, &err) == 0);
    CHECKF(strstr(err, "limit of 3 tokens"), "stderr: '%s'", err);
    free(out);
    free(err);

    /* bad input: named, status 2, nothing on stdout */
    const char *bad[][2] = {{"{\"type\":\"integer\",\"multipleOf\":2}", "multipleOf"}, {"{\"type\":", "not valid JSON"}};
    for (int i = 0; i < 2; i++) {
        const char *a[] = {"run", "-m", model, "-p", "x", "--json-schema", bad[i][0], NULL};
        CHECK(run_cli(a, NULL, &out, &err) == 2);
        CHECKF(strstr(err, bad[i][1]) && !out[0], "'%s': %s", bad[i][0], err);
        free(out);
        free(err);
    }
    const char *both[] = {"run", "-m", model, "-p", "x", "--json", "--grammar", gbnf_path, NULL};
    CHECK(run_cli(both, NULL, &out, &err) == 2);
    CHECKF(strstr(err, "exclude each other"), "%s", err);
    free(out);
    free(err);
    const char *missing[] = {"run", "-m", model, "-p", "x", "--grammar", "/nonexistent.gbnf", NULL};
    CHECK(run_cli(missing, NULL, &out, &err) == 2);
    CHECKF(strstr(err, "/nonexistent.gbnf"), "%s", err);
    free(out);
    free(err);
}
