/* run.c - `gemma8 run`: one generation from a prompt (chat-templated by
 * default) or from token ids. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct run_out {
    bool ids;
    int n;
} run_out;

static bool print_token(int32_t token, const char *text, size_t len, gemma8_run_state st, void *user) {
    run_out *o = user;
    if (o->ids) {
        if (token >= 0 && st != GEMMA8_RUN_FINISH) printf(o->n++ ? ",%d" : "%d", token);
    } else if (len) {
        fwrite(text, 1, len, stdout);
    }
    fflush(stdout);
    return true;
}

void cli_print_timings(double load_s, const gemma8_generate_result *r) {
    int evaluated = r->n_prompt - r->n_reused;
    fprintf(stderr, "\ngemma8: load %.2f s | prompt %d tokens (%d reused) %.2f s, %.1f tok/s | "
            "generated %d tokens %.2f s, %.1f tok/s\n", load_s, r->n_prompt, r->n_reused, r->prompt_seconds,
            r->prompt_seconds > 0 ? evaluated / r->prompt_seconds : 0.0, r->n_generated, r->gen_seconds,
            r->gen_seconds > 0 ? r->n_generated / r->gen_seconds : 0.0);
}

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *tokens_s = NULL, *prompt = NULL, *system = NULL;
    bool raw = false, verbose = true;
    run_out out = {0};
    gemma8_generate_params p = gemma8_generate_default_params();
    p.max_new_tokens = 256;
    cli_gen_extra x = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_generation_option(argc, argv, &i, &p, &x);
        if (r < 0) return cli_usage_error("run", a);
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: gemma8 run -m MODEL.gguf -p PROMPT [--system TEXT] [--raw] [options]\n"
                   "       gemma8 run -m MODEL.gguf --tokens 2,17,5 [-n N] [--temp 0] [--ids] [--ignore-eos]\n\n"
                   "Generates after a prompt and streams the text to stdout; timings go to stderr.\n"
                   "PROMPT is put in Gemma's chat template (one user turn) unless --raw is given.\n"
                   "  --tokens IDS   the prompt as comma-separated token ids\n"
                   "  --ids          print the generated ids as one comma-separated line\n"
                   "  -n N           tokens to generate (default 256)\n"
                   "  -t N           threads (default: physical cores) -c N  context length (default 8192)\n"
                   "  --kv-type T    KV cache: f16 (default for q8_0 models), f32, q8_0 (half the bytes)\n"
                   "  -q             no timings\n%s", cli_sampling_help);
            return 0;
        } else if (!strcmp(a, "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(a, "--tokens") && i + 1 < argc) tokens_s = argv[++i];
        else if (!strcmp(a, "-p") && i + 1 < argc) prompt = argv[++i];
        else if (!strcmp(a, "--system") && i + 1 < argc) system = argv[++i];
        else if (!strcmp(a, "--raw")) raw = true;
        else if (!strcmp(a, "--ids")) out.ids = true;
        else if (!strcmp(a, "-q")) verbose = false;
        else return cli_usage_error("run", a);
    }
    if (!model_path || (!tokens_s && !prompt)) {
        fprintf(stderr, "gemma8: error: run needs -m MODEL and -p PROMPT or --tokens IDS\n");
        return 2;
    }
    cli_generation_finish(&p, &x);
    double t0 = cli_now();
    gemma8_model *model;
    gemma8_context *ctx;
    if (cli_load(model_path, x.n_ctx, x.n_threads, x.kv_type, &model, &ctx)) return 1;
    double load_s = cli_now() - t0;
    p.on_token = print_token;
    p.user_data = &out;
    gemma8_generate_result res = {0};
    gemma8_status st;
    int32_t *ids = NULL, n = 0;
    if (tokens_s) {
        st = cli_parse_tokens(tokens_s, &ids, &n) ? GEMMA8_ERR_INVALID_ARG : GEMMA8_OK;
        if (st) {
            gemma8_context_free(ctx);
            gemma8_model_free(model);
            return 2;
        }
        st = gemma8_generate(ctx, ids, n, &p, &res);
    } else if (raw) {
        size_t len = strlen(prompt);
        int32_t cap = (int32_t)len + 2;
        ids = malloc((size_t)cap * sizeof *ids);
        st = gemma8_tokenize(model, prompt, len, true, false, ids, cap, &n);
        if (!st) st = gemma8_generate(ctx, ids, n, &p, &res);
    } else {
        gemma8_chat_message msgs[2] = {{"system", system}, {"user", prompt}};
        st = system ? gemma8_chat(ctx, msgs, 2, &p, &res) : gemma8_chat(ctx, msgs + 1, 1, &p, &res);
    }
    printf("\n");
    int rc = 0;
    if (st) {
        fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
        rc = 1;
    } else {
        if (res.stop_reason == GEMMA8_STOP_CONTEXT)
            fprintf(stderr, "gemma8: stopped: the context of %d tokens is full (use -c)\n", x.n_ctx ? x.n_ctx : 8192);
        if (verbose) cli_print_timings(load_s, &res);
    }
    free(ids);
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return rc;
}
