/* info.c - the commands that inspect a model: info (hyper-parameters, bytes by type, memory by
 * context length) and logits (every position's logits to a file). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- logits ------------------------------------------------------------------------- */

int cmd_logits(int argc, char **argv) {
    cli_common c = cli_common_defaults();
    const char *tokens_s = NULL, *out = NULL;
    cli_opt common[8];
    cli_common_table(&c, common, false);
    const cli_opt opts[] = {
        {"--tokens", CLI_STR, &tokens_s, "IDS", "the token ids, comma-separated", NULL},
        {"-o|--output", CLI_STR, &out, "OUT.f32", "where the logits go", NULL},
        {0},
    };
    const cli_opt *tables[] = {common, opts, NULL};
    const char *usage = "usage: gemma8 logits -m MODEL.gguf --tokens 2,17,5,... -o OUT.f32\n\n"
                        "Writes the logits of every position, row-major float32 little-endian, T x vocab.\n";
    int r = cli_parse("logits", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if ((r = cli_common_check("logits", &c))) return r;
    if (!tokens_s || !out) {
        fprintf(stderr, "gemma8 logits: needs --tokens IDS and -o OUT\n");
        return 2;
    }
    int32_t *tokens, n;
    if (cli_parse_tokens(tokens_s, &tokens, &n)) return 2;
    c.n_ctx = n;
    cli_loaded loaded;
    if (cli_load(&c, 1, &loaded)) {
        free(tokens);
        return 1;
    }
    gemma8_model *model = loaded.model;
    gemma8_context *ctx = loaded.ctx;
    int rc = 0;
    size_t nv = (size_t)gemma8_model_get_info(model).n_vocab;
    uint8_t *every = malloc((size_t)n);
    if (every) memset(every, GEMMA8_OUTPUT_LOGITS, (size_t)n);
    gemma8_batch b = gemma8_batch_tokens(0, tokens, n);
    b.output = every;
    gemma8_status st = every ? gemma8_decode(ctx, &b) : GEMMA8_ERR_NOMEM;
    if (st) {
        rc = cli_fail(st);
    } else {
        FILE *f = fopen(out, "wb");
        bool ok = f != NULL;
        for (int32_t i = 0; ok && i < n; i++) ok = fwrite(gemma8_get_logits(ctx, i), sizeof(float), nv, f) == nv;
        if (f && fclose(f) != 0) ok = false;
        if (!ok) {
            fprintf(stderr, "gemma8: error: cannot write '%s': %s\n", out, strerror(errno));
            rc = 1;
        }
    }
    free(every);
    free(tokens);
    cli_unload(&loaded);
    return rc;
}

/* ---- info --------------------------------------------------------------------------- */

int cmd_info(int argc, char **argv) {
    const char *model_path = NULL;
    cli_list lora = {0};
    const cli_opt opts[] = {{"-m|--model", CLI_STR, &model_path, "FILE", "the model (GGUF)", NULL},
                            {"--lora", CLI_LIST, &lora, "ADAPTER", "also check and describe a LoRA adapter", NULL},
                            {0}};
    const cli_opt *tables[] = {opts, NULL};
    const char *usage = "usage: gemma8 info -m MODEL.gguf [--lora ADAPTER]\n\n"
                        "Prints the architecture, sizes and types of a model (and of adapters for it).\n";
    int r = cli_parse("info", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!model_path) {
        fprintf(stderr, "gemma8 info: -m MODEL is required\n");
        return 2;
    }
    gemma8_model *model;
    gemma8_model_params mp = gemma8_model_default_params();
    gemma8_status st = gemma8_model_load(model_path, &mp, &model);
    if (st) return cli_fail(st);
    gemma8_model_info in = gemma8_model_get_info(model);
    const double G = 1073741824.0;
    char params[32];
    if (in.n_params >= 1000000000ull) snprintf(params, sizeof params, "%.2f B", in.n_params / 1e9);
    else snprintf(params, sizeof params, "%.2f M", in.n_params / 1e6);
    printf("file:                  %s\n", model_path);
    printf("name:                  %s\n", in.name);
    printf("architecture:          %s%s\n", in.arch, in.qk_norm ? " (q/k norms)" : "");
    printf("parameters:            %s (%.2f GiB of weights)\n", params, in.weight_bytes / G);
    printf("matrix type:           %s\n", gemma8_type_name(in.matrix_type));
    printf("vocabulary:            %d\n", in.n_vocab);
    printf("hidden size:           %d\n", in.n_embd);
    printf("layers:                %d\n", in.n_layer);
    printf("heads / kv heads:      %d / %d (head_dim %d)\n", in.n_head, in.n_head_kv, in.head_dim);
    printf("feed-forward size:     %d\n", in.n_ff);
    printf("context length:        %d\n", in.n_ctx_train);
    if (in.n_layer_sliding)
        printf("sliding window:        %d (%d of %d layers; the rest attend over every position)\n",
               in.sliding_window, in.n_layer_sliding, in.n_layer);
    else
        printf("sliding window:        none (every layer attends over every position)\n");
    printf("query_pre_attn_scalar: %g\n", in.query_pre_attn_scalar);
    printf("soft-caps (attn/final): %g / %g\n", in.attn_softcap, in.final_softcap);
    printf("rms eps:               %g\n", in.rms_eps);
    printf("rope base:             %g global, %g sliding\n", in.rope_base, in.rope_base_local);
    if (in.rope_scale != 1.0f) printf("rope scaling:          linear x%g on the global layers\n", in.rope_scale);
    printf("file, by type:        ");
    for (int t = 0; t < 32; t++)
        if (in.tensors_of_type[t])
            printf(" %s %.3f GiB (%d tensors);", gemma8_type_name((gemma8_type)t), in.file_bytes_of_type[t] / G,
                   in.tensors_of_type[t]);
    printf("\nin memory:             %.3f GiB of weights (quantized matrices packed for the GEMM)\n",
           in.weight_bytes / G);
    gemma8_context_params cp = gemma8_context_default_params();
    gemma8_memory_estimate e = gemma8_estimate_memory(model, &cp);
    printf("memory at context %d:  %.2f GiB = weights %.2f + KV cache %.2f (%.2f without sliding-window rings)"
           " + scratch %.2f; %.2f GiB available besides the %.2f the model holds\n", in.n_ctx_train, e.total / G,
           e.weights / G, e.kv_cache / G, e.kv_cache_full / G, e.scratch / G, e.available / G, e.loaded / G);
    printf("memory by context (GiB: weights + KV + scratch), KV f16%s:\n", in.head_dim % 32 ? "" : " | KV q8_0");
    for (int n = 1024; n <= in.n_ctx_train; n *= 2) {
        cp.n_ctx = n;
        cp.kv_type = GEMMA8_KV_AUTO;
        gemma8_memory_estimate a = gemma8_estimate_memory(model, &cp);
        printf("  %6d: %6.2f", n, a.total / G);
        if (in.head_dim % 32 == 0) { /* what --kv-type q8_0 would take */
            cp.kv_type = GEMMA8_TYPE_Q8_0;
            gemma8_memory_estimate q = gemma8_estimate_memory(model, &cp);
            printf(" | %6.2f", q.total / G);
        }
        printf("\n");
    }
    int rc = 0;
    for (int i = 0; i < lora.n && !rc; i++) {
        gemma8_lora *l;
        if ((st = gemma8_lora_load(model, lora.v[i], &l))) {
            rc = cli_fail(st);
            break;
        }
        gemma8_lora_info li = gemma8_lora_get_info(l);
        printf("LoRA adapter:          %s: %d of %d matrices, rank %d", gemma8_lora_name(l), li.n_matrices,
               in.n_layer * 7, li.min_rank);
        if (li.max_rank != li.min_rank) printf("..%d", li.max_rank);
        printf(", alpha %g, %.2f M parameters\n", li.alpha, li.n_params / 1e6);
        gemma8_lora_free(l);
    }
    gemma8_model_free(model);
    if (rc) return rc;
    return 0;
}
