/* fuzz-request.c - the server's request parsers on arbitrary bodies: every
 * body gives a task that can run (token ids in the vocabulary, a prompt that
 * fits a slot, sampling parameters the sampler takes) or a refusal with a
 * status and a message; never a crash. */
#include "gemma8.h"
#include "fuzz-common.h"
#include "../server/server.h"

#include <string.h>

static srv server;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    server.model = fuzz_load_fullvocab();
    server.info = gemma8_model_get_info(server.model);
    server.alias = server.info.name;
    server.n_slots = 1;
    server.n_ctx_slot = 256;
    return 0;
}

static void check(bool ok, srv_task *t, const srv_error *e) {
    if (!ok) {
        if (t || e->status < 400 || e->status > 599 || !e->msg[0]) abort();
        return;
    }
    if (!t) return; /* Ollama's "load the model" request */
    if (t->kind == SRV_GENERATE) {
        if (t->n_prompt <= 0 || t->n_prompt >= server.n_ctx_slot) abort();
        for (int32_t i = 0; i < t->n_prompt; i++)
            if (t->prompt[i] < 0 || t->prompt[i] >= server.info.n_vocab) abort();
        gemma8_sampler *s;
        if (gemma8_sampler_new(&t->params.sampling, &s)) abort();
        gemma8_sampler_free(s);
        if (t->params.max_new_tokens < 0 || t->n_logprobs > SRV_MAX_TOP) abort();
    } else {
        for (int i = 0; i < t->n_in; i++) {
            if (t->n_inputs[i] <= 0 || t->n_inputs[i] >= server.n_ctx_slot) abort();
            for (int32_t k = 0; k < t->n_inputs[i]; k++)
                if (t->inputs[i][k] < 0 || t->inputs[i][k] >= server.info.n_vocab) abort();
        }
    }
    srv_task_unref(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *body = cJSON_ParseWithLength((const char *)data, size);
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        return 0;
    }
    bool (*parsers[])(srv *, const cJSON *, srv_task **, srv_error *) = {
        oai_parse_chat,         oai_parse_completion,  oai_parse_embedding,
        ollama_parse_chat,      ollama_parse_generate, ollama_parse_embed,
        llama_parse_completion, anthropic_parse,       responses_parse,
    };
    for (size_t i = 0; i < sizeof parsers / sizeof parsers[0]; i++) {
        srv_task *t = NULL;
        srv_error e = {0};
        check(parsers[i](&server, body, &t, &e), t, &e);
    }
    cJSON_Delete(body);
    return 0;
}
