/* options.c - the command line's option parser (a table per command, one
 * option per line in --help with its default) and the options that run, chat,
 * demo, bench and logits share. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* whether arg is one of the '|'-separated spellings in names */
static bool name_matches(const char *names, const char *arg, size_t len) {
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !strncmp(p, arg, len)) return true;
        p += n + (bar ? 1 : 0);
    }
    return false;
}

static const cli_opt *find_opt(const cli_opt *const *tables, const char *arg, size_t len) {
    for (int t = 0; tables[t]; t++)
        for (const cli_opt *o = tables[t]; o->names; o++)
            if (name_matches(o->names, arg, len)) return o;
    return NULL;
}

static int bad_value(const char *cmd, const char *opt, const char *want, const char *got) {
    fprintf(stderr, "gemma8 %s: %s expects %s, got '%s'\n", cmd, opt, want, got);
    return 2;
}

/* Stores the value v of option o (spelled opt). */
static int set_value(const char *cmd, const cli_opt *o, const char *opt, const char *v) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case CLI_FLAG:
        *(bool *)o->dst = true;
        return 0;
    case CLI_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < INT32_MIN || x > INT32_MAX) return bad_value(cmd, opt, "a number", v);
        *(int32_t *)o->dst = (int32_t)x;
        return 0;
    }
    case CLI_FLOAT: {
        float x = strtof(v, &end);
        if (end == v || *end || errno || !isfinite(x)) return bad_value(cmd, opt, "a number", v);
        *(float *)o->dst = x;
        return 0;
    }
    case CLI_SEED: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno || x < -1 || x > (long long)UINT32_MAX)
            return bad_value(cmd, opt, "a seed from 0 to 4294967295, or -1 for a random one", v);
        *(uint32_t *)o->dst = x < 0 ? (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16) : (uint32_t)x;
        return 0;
    }
    case CLI_STR:
        *(const char **)o->dst = v;
        return 0;
    case CLI_LIST: {
        cli_list *l = o->dst;
        if (l->n >= (int)(sizeof l->v / sizeof l->v[0])) {
            fprintf(stderr, "gemma8 %s: %s given more than %d times\n", cmd, opt, (int)(sizeof l->v / sizeof l->v[0]));
            return 2;
        }
        l->v[l->n++] = v;
        return 0;
    }
    }
    return 2;
}

static void print_default(const cli_opt *o) {
    switch (o->kind) {
    case CLI_INT: printf(" (default %d)", *(const int32_t *)o->dst); break;
    case CLI_FLOAT: printf(" (default %g)", *(const float *)o->dst); break;
    case CLI_SEED: printf(" (default %u)", *(const uint32_t *)o->dst); break;
    case CLI_STR:
        if (*(const char *const *)o->dst) printf(" (default %s)", *(const char *const *)o->dst);
        break;
    default: break;
    }
}

static void print_help(const char *usage, const cli_opt *const *tables) {
    printf("%s\noptions:\n", usage);
    for (int t = 0; tables[t]; t++)
        for (const cli_opt *o = tables[t]; o->names; o++) {
            char left[64];
            snprintf(left, sizeof left, "%s%s%s", o->names, o->arg ? " " : "", o->arg ? o->arg : "");
            for (char *p = left; *p; p++)
                if (*p == '|') *p = ',';
            printf("  %-30s %s", left, o->help);
            print_default(o);
            printf("\n");
        }
    printf("  %-30s %s\n", "-h,--help", "this help");
}

int cli_parse(const char *cmd, const char *usage, int argc, char **argv, const cli_opt *const *tables,
              const char **pos, int max_pos, int *n_pos) {
    int np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help(usage, tables);
            return 1;
        }
        if (a[0] != '-' || !a[1]) {
            if (np >= max_pos) {
                fprintf(stderr, "gemma8 %s: unexpected argument '%s' (see gemma8 %s --help)\n", cmd, a, cmd);
                return 2;
            }
            pos[np++] = a;
            continue;
        }
        const char *eq = !strncmp(a, "--", 2) ? strchr(a, '=') : NULL; /* --name=value */
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o = find_opt(tables, a, len);
        if (!o) {
            fprintf(stderr, "gemma8 %s: unknown option '%.*s' (see gemma8 %s --help)\n", cmd, (int)len, a, cmd);
            return 2;
        }
        if (o->given) *o->given = true;
        const char *v = o->kind == CLI_FLAG ? "" : eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!v) {
            fprintf(stderr, "gemma8 %s: %.*s needs a value (%s)\n", cmd, (int)len, a, o->arg ? o->arg : "");
            return 2;
        }
        char opt[64];
        snprintf(opt, sizeof opt, "%.*s", (int)len, a);
        if (set_value(cmd, o, opt, v)) return 2;
    }
    if (n_pos) *n_pos = np;
    return 0;
}

/* ---- options several commands share ------------------------------------------------ */

cli_common cli_common_defaults(void) {
    cli_common c = {0};
    c.n_batch = 256;
    c.kv_type = "auto";
    return c;
}

void cli_common_table(cli_common *c, cli_opt *t, bool with_ctx) {
    int n = 0;
    t[n++] = (cli_opt){"-m|--model", CLI_STR, &c->model, "FILE", "the model (GGUF)", NULL};
    t[n++] = (cli_opt){"-t|--threads", CLI_INT, &c->n_threads, "N", "threads; 0: the physical cores", NULL};
    if (with_ctx) {
        t[n++] = (cli_opt){"-c|--ctx-size", CLI_INT, &c->n_ctx, "N", "context length; 0: the model's", NULL};
        t[n++] = (cli_opt){"-b|--batch-size", CLI_INT, &c->n_batch, "N", "tokens per prefill step", NULL};
        t[n++] = (cli_opt){"--kv-type", CLI_STR, &c->kv_type, "T", "KV cache: auto (f32 for float models, f16 "
                           "for q8_0), f32, f16, q8_0 (half of f16)", NULL};
    }
    t[n++] = (cli_opt){"--lora", CLI_LIST, &c->lora, "FILE[:SCALE]", "a LoRA adapter (llama.cpp GGUF or PEFT folder), "
                       "scale 1 by default; repeatable", NULL};
    t[n] = (cli_opt){0};
}

/* Checks what does not need the model; prints the problem and returns 2. */
int cli_common_check(const char *cmd, const cli_common *c) {
    if (!c->model) {
        fprintf(stderr, "gemma8 %s: -m MODEL is required (see gemma8 %s --help)\n", cmd, cmd);
        return 2;
    }
    if (c->n_threads < 0 || c->n_threads > 1024) {
        fprintf(stderr, "gemma8 %s: -t expects 0 to 1024 threads, got %d\n", cmd, c->n_threads);
        return 2;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0 && c->n_threads > online)
        fprintf(stderr, "gemma8: warning: -t %d is more threads than the %ld online CPUs: expect it slower\n",
                c->n_threads, online);
    if (c->n_ctx < 0 || c->n_batch < 1) {
        fprintf(stderr, "gemma8 %s: -c and -b must be positive (got %d and %d)\n", cmd, c->n_ctx, c->n_batch);
        return 2;
    }
    return 0;
}

const char *cli_sampling_note =
    "Sampling defaults are RKLLM's; --temp 0 is greedy (and turns the repeat penalty off unless given).\n";

void cli_generation_table(gemma8_generate_params *p, cli_gen_extra *x, cli_opt *t) {
    gemma8_sampler_params *s = &p->sampling;
    int n = 0;
    t[n++] = (cli_opt){"-n|--n-predict", CLI_INT, &p->max_new_tokens, "N", "tokens to generate at most", NULL};
    t[n++] = (cli_opt){"--temp", CLI_FLOAT, &s->temperature, "T", "temperature; 0 is greedy", NULL};
    t[n++] = (cli_opt){"--top-k", CLI_INT, &s->top_k, "K", "keep the K most likely; 0 off", NULL};
    t[n++] = (cli_opt){"--top-p", CLI_FLOAT, &s->top_p, "P", "nucleus sampling; 1 off", NULL};
    t[n++] = (cli_opt){"--min-p", CLI_FLOAT, &s->min_p, "P", "drop tokens below P * p(max); 0 off", NULL};
    t[n++] = (cli_opt){"--repeat-penalty", CLI_FLOAT, &s->repeat_penalty, "R", "penalty of recent tokens; 1 off",
                       &x->repeat_penalty_set};
    t[n++] = (cli_opt){"--repeat-last-n", CLI_INT, &s->repeat_last_n, "N", "window of the penalties", NULL};
    t[n++] = (cli_opt){"--frequency-penalty", CLI_FLOAT, &s->frequency_penalty, "F", "per occurrence", NULL};
    t[n++] = (cli_opt){"--presence-penalty", CLI_FLOAT, &s->presence_penalty, "P", "once per token", NULL};
    t[n++] = (cli_opt){"--mirostat", CLI_INT, &s->mirostat, "0|1|2", "mirostat sampling version", NULL};
    t[n++] = (cli_opt){"--mirostat-tau", CLI_FLOAT, &s->mirostat_tau, "T", "mirostat target surprise", NULL};
    t[n++] = (cli_opt){"--mirostat-eta", CLI_FLOAT, &s->mirostat_eta, "E", "mirostat learning rate", NULL};
    t[n++] = (cli_opt){"-s|--seed", CLI_SEED, &s->seed, "S", "random seed; -1: a random one", NULL};
    t[n++] = (cli_opt){"--stop", CLI_LIST, &x->stop, "TEXT", "stop when TEXT appears (repeatable)", NULL};
    t[n++] = (cli_opt){"--ignore-eos", CLI_FLAG, &p->ignore_eos, NULL, "keep generating past <eos>/<end_of_turn>",
                       NULL};
    t[n++] = (cli_opt){"--json", CLI_FLAG, &x->json, NULL, "the reply is a JSON object (constrained decoding)", NULL};
    t[n++] = (cli_opt){"--json-schema", CLI_STR, &x->json_schema, "FILE",
                       "the reply is JSON valid against this JSON Schema (a file, or the schema if it starts with {)",
                       NULL};
    t[n++] = (cli_opt){"--grammar", CLI_STR, &x->grammar_file, "FILE", "the reply follows this GBNF grammar (llama.cpp's)",
                       NULL};
    t[n] = (cli_opt){0};
}

/* --json, --json-schema or --grammar, compiled */
static int compile_grammar(const char *cmd, gemma8_generate_params *p, cli_gen_extra *x) {
    if (x->json + !!x->json_schema + !!x->grammar_file > 1) {
        fprintf(stderr, "gemma8 %s: --json, --json-schema and --grammar exclude each other\n", cmd);
        return 2;
    }
    const char *file = x->json_schema ? x->json_schema : x->grammar_file;
    char *text = NULL;
    if (file && !(x->json_schema && file[0] == '{') && !(text = cli_read_file(file, NULL))) {
        fprintf(stderr, "gemma8 %s: cannot read '%s'\n", cmd, file);
        return 2;
    }
    gemma8_status st = GEMMA8_OK;
    if (x->json) st = gemma8_grammar_from_json_schema(NULL, &x->grammar);
    else if (x->json_schema) st = gemma8_grammar_from_json_schema(text ? text : file, &x->grammar);
    else if (x->grammar_file) st = gemma8_grammar_from_gbnf(text, &x->grammar);
    free(text);
    if (st) {
        fprintf(stderr, "gemma8 %s: %s: %s\n", cmd, file ? file : "--json", gemma8_last_error());
        return 2;
    }
    const char *warn = gemma8_grammar_warnings(x->grammar);
    if (warn) fprintf(stderr, "gemma8 %s: warning: %s", cmd, warn);
    p->grammar = x->grammar;
    return 0;
}

/* Finishes and checks the generation options (the sampler's checks, before the model loads). */
int cli_generation_finish(const char *cmd, gemma8_generate_params *p, cli_gen_extra *x) {
    if (p->sampling.temperature == 0 && !x->repeat_penalty_set) p->sampling.repeat_penalty = 1.0f; /* pure greedy */
    p->stop = x->stop.v;
    p->n_stop = x->stop.n;
    if (p->max_new_tokens < 0) {
        fprintf(stderr, "gemma8 %s: -n expects a number of tokens >= 0, got %d\n", cmd, p->max_new_tokens);
        return 2;
    }
    gemma8_sampler *s;
    if (gemma8_sampler_new(&p->sampling, &s)) {
        fprintf(stderr, "gemma8 %s: %s\n", cmd, gemma8_last_error());
        return 2;
    }
    gemma8_sampler_free(s);
    return compile_grammar(cmd, p, x);
}

void cli_generation_free(cli_gen_extra *x) {
    gemma8_grammar_free(x->grammar);
    x->grammar = NULL;
}
