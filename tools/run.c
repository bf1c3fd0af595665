/* run.c - `gemma8 run`: generation from token ids. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *tokens_s = NULL;
    int n_predict = 64, n_threads = 0, n_ctx = 0;
    bool ids = false, ignore_eos = false;
    float temp = 0.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: gemma8 run -m MODEL.gguf --tokens 2,17,5 [-n N] [--temp 0] [--ids] [--ignore-eos]\n"
                   "                 [-t THREADS] [-c CTX]\n\n"
                   "Generates N tokens after the prompt through the KV cache. --ids prints the generated ids\n"
                   "as one comma-separated line.\n");
            return 0;
        } else if (!strcmp(a, "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(a, "--tokens") && i + 1 < argc) tokens_s = argv[++i];
        else if (!strcmp(a, "-n") && i + 1 < argc) n_predict = atoi(argv[++i]);
        else if (!strcmp(a, "-t") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (!strcmp(a, "-c") && i + 1 < argc) n_ctx = atoi(argv[++i]);
        else if (!strcmp(a, "--temp") && i + 1 < argc) temp = (float)atof(argv[++i]);
        else if (!strcmp(a, "--ids")) ids = true;
        else if (!strcmp(a, "--ignore-eos")) ignore_eos = true;
        else return cli_usage_error("run", a);
    }
    if (!model_path || !tokens_s) {
        fprintf(stderr, "gemma8: error: run needs -m MODEL and --tokens\n");
        return 2;
    }
    if (temp != 0.0f) {
        fprintf(stderr, "gemma8: error: only greedy decoding (--temp 0) is available in this build\n");
        return 2;
    }
    int32_t *prompt, n_prompt;
    if (cli_parse_tokens(tokens_s, &prompt, &n_prompt)) return 2;
    gemma8_model *model;
    gemma8_context *ctx;
    if (cli_load(model_path, n_ctx, n_threads, &model, &ctx)) {
        free(prompt);
        return 1;
    }
    const int n_vocab = gemma8_model_get_info(model).n_vocab;
    int rc = 0;
    double t0 = cli_now();
    gemma8_status st = gemma8_eval(ctx, prompt, n_prompt, NULL);
    double t1 = cli_now();
    int n_gen = 0;
    for (; !st && n_gen < n_predict; n_gen++) {
        int32_t tok = argmax(gemma8_get_logits(ctx), n_vocab);
        if (!ignore_eos && (tok == 1 || tok == 107)) break;
        printf(ids ? (n_gen ? ",%d" : "%d") : "%d ", tok);
        fflush(stdout);
        if (n_gen + 1 < n_predict) st = gemma8_eval(ctx, &tok, 1, NULL);
    }
    printf("\n");
    double t2 = cli_now();
    if (st) {
        fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
        rc = 1;
    }
    fprintf(stderr, "gemma8: prompt %d tokens in %.3f s (%.1f tok/s), generated %d tokens in %.3f s (%.1f tok/s)\n",
            n_prompt, t1 - t0, n_prompt / (t1 - t0), n_gen, t2 - t1, n_gen > 0 ? n_gen / (t2 - t1) : 0.0);
    free(prompt);
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return rc;
}
