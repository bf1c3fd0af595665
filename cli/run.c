/* run.c - `gemma8 run`: one generation from a prompt (chat-templated by
 * default), a prompt file, or token ids. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int cmd_run(int argc, char **argv) {
    cli_common c = cli_common_defaults();
    gemma8_generate_params p = gemma8_generate_default_params();
    p.max_new_tokens = 256;
    cli_gen_extra x = {0};
    const char *tokens_s = NULL, *prompt = NULL, *file = NULL, *system = NULL;
    bool raw = false, quiet = false;
    run_out out = {0};
    cli_opt common[8], gen[20];
    cli_common_table(&c, common, true);
    cli_generation_table(&p, &x, gen);
    const cli_opt opts[] = {
        {"-p|--prompt", CLI_STR, &prompt, "TEXT", "the prompt (one user turn of Gemma's chat template)", NULL},
        {"-f|--file", CLI_STR, &file, "FILE", "the prompt from a file", NULL},
        {"--system", CLI_STR, &system, "TEXT", "a system message (folded into the user turn)", NULL},
        {"--raw", CLI_FLAG, &raw, NULL, "the prompt as it is, without the chat template", NULL},
        {"--tokens", CLI_STR, &tokens_s, "IDS", "the prompt as comma-separated token ids", NULL},
        {"--ids", CLI_FLAG, &out.ids, NULL, "print the generated ids as one comma-separated line", NULL},
        {"-q|--quiet", CLI_FLAG, &quiet, NULL, "no timings", NULL},
        {0},
    };
    const cli_opt *tables[] = {common, opts, gen, NULL};
    char usage[512];
    snprintf(usage, sizeof usage,
             "usage: gemma8 run -m MODEL.gguf -p PROMPT [options]\n"
             "       gemma8 run -m MODEL.gguf --tokens 2,17,5 [-n N] [--temp 0] [--ids]\n\n"
             "Generates after a prompt and streams the text to stdout; timings go to stderr.\n%s",
             cli_sampling_note);
    int r = cli_parse("run", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if ((r = cli_common_check("run", &c)) || (r = cli_generation_finish("run", &p, &x))) return r;
    if (!tokens_s && !prompt && !file) {
        fprintf(stderr, "gemma8 run: needs -p PROMPT, -f FILE or --tokens IDS\n");
        cli_generation_free(&x);
        return 2;
    }
    char *file_text = NULL;
    size_t file_len = 0;
    if (file && (file_text = cli_read_file(file, &file_len)) && file_len && file_text[file_len - 1] == '\n')
        file_text[file_len - 1] = 0; /* one trailing newline is not part of the prompt */
    if (file && !(prompt = file_text)) {
        fprintf(stderr, "gemma8 run: cannot read the prompt file '%s'\n", file);
        cli_generation_free(&x);
        return 1;
    }
    int32_t *ids = NULL, n = 0;
    if (tokens_s && cli_parse_tokens(tokens_s, &ids, &n)) {
        free(file_text);
        cli_generation_free(&x);
        return 2;
    }
    double t0 = gemma8_time();
    cli_loaded loaded;
    if (cli_load(&c, 1, &loaded)) {
        free(ids);
        free(file_text);
        cli_generation_free(&x);
        return 1;
    }
    gemma8_model *model = loaded.model;
    gemma8_context *ctx = loaded.ctx;
    double load_s = gemma8_time() - t0;
    p.on_token = print_token;
    p.user_data = &out;
    gemma8_generate_result res = {0};
    gemma8_status st;
    if (tokens_s) {
        st = gemma8_generate(ctx, ids, n, &p, &res);
    } else if (raw) {
        size_t len = strlen(prompt);
        int32_t cap = (int32_t)len + 2;
        ids = malloc((size_t)cap * sizeof *ids);
        st = ids ? gemma8_tokenize(model, prompt, len, true, false, ids, cap, &n) : GEMMA8_ERR_NOMEM;
        if (!st) st = gemma8_generate(ctx, ids, n, &p, &res);
    } else {
        gemma8_chat_message msgs[2] = {{.role = "system", .content = system}, {.role = "user", .content = prompt}};
        st = system ? gemma8_chat(ctx, msgs, 2, &p, &res) : gemma8_chat(ctx, msgs + 1, 1, &p, &res);
    }
    /* a constrained reply is the output exactly (a file, a pipe): the line ends only on a terminal */
    if (!p.grammar || isatty(STDOUT_FILENO)) printf("\n");
    fflush(stdout);
    int rc = 0;
    if (st) {
        rc = cli_fail(st);
    } else {
        if (res.stop_reason == GEMMA8_STOP_CONTEXT)
            fprintf(stderr, "gemma8: stopped: the context of %d tokens is full (use -c)\n", gemma8_n_ctx(ctx));
        if (res.stop_reason == GEMMA8_STOP_LENGTH)
            fprintf(stderr, "gemma8: stopped: the reply reached its limit of %d tokens (use -n)\n",
                    p.max_new_tokens);
        if (!quiet) cli_print_timings(load_s, &res);
    }
    free(ids);
    free(file_text);
    cli_generation_free(&x);
    cli_unload(&loaded);
    return rc;
}
