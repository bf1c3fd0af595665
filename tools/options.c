/* options.c - sampling and generation options shared by `run` and `chat`. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cli_sampling_help =
    "sampling (defaults as RKLLM's):\n"
    "  --temp T              temperature; 0 is greedy (default 0.8)\n"
    "  --top-k K             (default 40; 0 off)      --top-p P   (default 0.9; 1 off)\n"
    "  --min-p P             (default 0; off)\n"
    "  --repeat-penalty R    (default 1.1; 1 with --temp 0)   --repeat-last-n N (default 64)\n"
    "  --frequency-penalty F --presence-penalty P    (default 0)\n"
    "  --mirostat 1|2        --mirostat-tau T (5)   --mirostat-eta E (0.1)\n"
    "  --seed S              (default 42)\n"
    "  --stop STRING         stop when STRING appears (repeatable)\n"
    "  --ignore-eos          keep generating past <eos>/<end_of_turn>\n";

/* Parses one option at argv[*i] into p; returns 1 if taken, 0 if not ours, -1 on a bad value. */
int cli_generation_option(int argc, char **argv, int *i, gemma8_generate_params *p, cli_gen_extra *x) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    gemma8_sampler_params *s = &p->sampling;
    struct { const char *name; float *f; int32_t *n; } opts[] = {
        {"--temp", &s->temperature, NULL}, {"--top-k", NULL, &s->top_k}, {"--top-p", &s->top_p, NULL},
        {"--min-p", &s->min_p, NULL}, {"--repeat-penalty", &s->repeat_penalty, NULL},
        {"--repeat-last-n", NULL, &s->repeat_last_n}, {"--frequency-penalty", &s->frequency_penalty, NULL},
        {"--presence-penalty", &s->presence_penalty, NULL}, {"--mirostat", NULL, &s->mirostat},
        {"--mirostat-tau", &s->mirostat_tau, NULL}, {"--mirostat-eta", &s->mirostat_eta, NULL},
        {"-n", NULL, &p->max_new_tokens},
    };
    for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        if (strcmp(a, opts[k].name)) continue;
        if (!v) return -1;
        char *end;
        if (opts[k].f) *opts[k].f = strtof(v, &end);
        else *opts[k].n = (int32_t)strtol(v, &end, 10);
        if (*end || end == v) return -1;
        if (!strcmp(a, "--repeat-penalty")) x->repeat_penalty_set = true;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--seed") && v) {
        s->seed = (uint32_t)strtoul(v, NULL, 10);
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--stop") && v) {
        if (x->n_stop < (int)(sizeof x->stop / sizeof x->stop[0])) x->stop[x->n_stop++] = v;
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--ignore-eos")) {
        p->ignore_eos = true;
        return 1;
    }
    if (!strcmp(a, "-t") && v) {
        x->n_threads = atoi(v);
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "-c") && v) {
        x->n_ctx = atoi(v);
        (*i)++;
        return 1;
    }
    if (!strcmp(a, "--kv-type") && v) {
        x->kv_type = v;
        (*i)++;
        return 1;
    }
    return 0;
}

void cli_generation_finish(gemma8_generate_params *p, cli_gen_extra *x) {
    if (p->sampling.temperature == 0 && !x->repeat_penalty_set) p->sampling.repeat_penalty = 1.0f; /* pure greedy */
    p->stop = x->stop;
    p->n_stop = x->n_stop;
}
