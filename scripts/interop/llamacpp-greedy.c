/* llamacpp-greedy.c - a GGUF model's argmax ids in llama.cpp, for scripts/interop/llamacpp.sh:
 * given ids, prints the argmax of llama.cpp's logits at every one of them (one line), then N
 * greedy ids after them (a second line), comma-separated. Built against a llama.cpp build outside
 * this repository (llama.h, libllama). With ADAPTER.gguf, a LoRA adapter applied at scale 1. With
 * LLAMACPP_LOGITS=FILE in the environment, the logits of every given id go there (float32, T x vocab).
 *   llamacpp-greedy MODEL.gguf N ID,ID,... [ADAPTER.gguf] */
#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool no_progress(float done, void *user) {
    (void)done, (void)user;
    return true;
}

static llama_token argmax(const float *lg, int n_vocab) {
    llama_token best = 0;
    for (int v = 1; v < n_vocab; v++)
        if (lg[v] > lg[best]) best = v;
    return best;
}

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: llamacpp-greedy MODEL.gguf N ID,ID,... [ADAPTER.gguf]\n");
        return 2;
    }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.progress_callback = no_progress;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) return 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_threads = 2;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    struct llama_adapter_lora *lora = argc == 5 ? llama_adapter_lora_init(model, argv[4]) : NULL;
    float scale = 1.0f;
    if (argc == 5 && (!lora || llama_set_adapters_lora(ctx, &lora, 1, &scale))) return 1;
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    llama_token ids[512];
    int n = 0;
    for (char *s = strtok(argv[3], ","); s && n < 256; s = strtok(NULL, ",")) ids[n++] = atoi(s);
    const int n_new = atoi(argv[2]);
    struct llama_batch all = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        all.token[i] = ids[i];
        all.pos[i] = i;
        all.n_seq_id[i] = 1;
        all.seq_id[i][0] = 0;
        all.logits[i] = 1;
    }
    all.n_tokens = n;
    if (llama_decode(ctx, all)) return 1;
    for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", argmax(llama_get_logits_ith(ctx, i), n_vocab));
    printf("\n");
    const char *dump = getenv("LLAMACPP_LOGITS");
    FILE *f = dump ? fopen(dump, "wb") : NULL;
    for (int i = 0; f && i < n; i++) fwrite(llama_get_logits_ith(ctx, i), sizeof(float), n_vocab, f);
    if (dump && (!f || fclose(f))) return 1;
    llama_batch_free(all);
    for (int i = 0; i < n_new; i++) {
        ids[n] = argmax(llama_get_logits_ith(ctx, -1), n_vocab);
        printf(i ? ",%d" : "%d", ids[n]);
        struct llama_batch b = llama_batch_get_one(&ids[n], 1);
        n++;
        if (i + 1 < n_new && llama_decode(ctx, b)) return 1;
    }
    printf("\n");
    llama_free(ctx);
    if (lora) llama_adapter_lora_free(lora);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
