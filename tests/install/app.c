/* app.c - a program of a gemma8 user, built against the installed library with
 * pkg-config (tests/install-test.sh): greedy ids after a prompt of token ids.
 * usage: app MODEL.gguf N_NEW ID,ID,... */
#include <gemma8.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool print_id(int32_t token, const char *text, size_t len, gemma8_run_state st, void *user) {
    (void)text;
    (void)len;
    int *n = user;
    if (token >= 0 && st != GEMMA8_RUN_FINISH) printf((*n)++ ? ",%d" : "%d", token);
    return true;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: app MODEL.gguf N_NEW ID,ID,...\n");
        return 2;
    }
    fprintf(stderr, "gemma8 library %s\n", gemma8_version());
    int32_t prompt[256];
    int32_t n = 0;
    for (char *p = strtok(argv[3], ","); p && n < 256; p = strtok(NULL, ",")) prompt[n++] = atoi(p);
    gemma8_model *model;
    gemma8_model_params mp = gemma8_model_default_params();
    if (gemma8_model_load(argv[1], &mp, &model)) {
        fprintf(stderr, "app: %s\n", gemma8_last_error());
        return 1;
    }
    gemma8_context *ctx;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 256;
    if (gemma8_context_new(model, &cp, &ctx)) {
        fprintf(stderr, "app: %s\n", gemma8_last_error());
        gemma8_model_free(model);
        return 1;
    }
    gemma8_generate_params gp = gemma8_generate_default_params();
    gp.max_new_tokens = atoi(argv[2]);
    gp.sampling.temperature = 0;
    gp.sampling.repeat_penalty = 1;
    gp.ignore_eos = true;
    int count = 0;
    gp.on_token = print_id;
    gp.user_data = &count;
    gemma8_status st = gemma8_generate(ctx, prompt, n, &gp, NULL);
    printf("\n");
    if (st) fprintf(stderr, "app: %s\n", gemma8_last_error());
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return st ? 1 : 0;
}
