/* llama.c - llama-server's own endpoints, beside the OpenAI API: /props, /apply-template,
 * /lora-adapters (list and set the global scales), GET /v1/models/{id}. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *oai_model_object(srv *s, const char *id) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", s->t_loaded);
    cJSON_AddStringToObject(m, "owned_by", "gemma8");
    return m;
}

/* GET /v1/models/{id}: the model (or "<model>:<adapter>") by any name it answers to */
int oai_model_one(srv_conn *c, cJSON *body) {
    (void)body;
    srv *s = srv_of(c);
    const char *url = srv_conn_url(c);
    const char *id = strncmp(url, "/v1/", 4) ? url + strlen("/models/") : url + strlen("/v1/models/");
    if (!srv_model_name_ok(s, id))
        return srv_reply_error(c, 404, "invalid_request_error", "model_not_found",
                               "the model '%.100s' does not exist (this server has '%.100s')", id, s->alias);
    return srv_reply_json(c, 200, oai_model_object(s, id));
}

/* llama-server's list: [{id, path, scale}] (path: the adapter's file name) */
int srv_lora_adapters(srv_conn *c, cJSON *body) {
    (void)body;
    srv *s = srv_of(c);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < s->n_lora; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "path", gemma8_lora_name(s->lora[i].a));
        cJSON_AddStringToObject(a, "name", s->lora[i].name);
        cJSON_AddNumberToObject(a, "scale", atomic_load(&s->lora[i].scale));
        cJSON_AddItemToArray(arr, a);
    }
    return srv_reply_json(c, 200, arr);
}

/* POST /lora-adapters [{id, scale}]: the scales of requests that name no adapter; adapters left out
 * go to 0, as in llama-server. Checked whole before anything changes. */
int srv_lora_adapters_set(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    const cJSON *arr = body; /* a list (the daemon lets this route have one) */
    float scale[GEMMA8_MAX_LORA] = {0};
    const char *bad = NULL;
    if (!cJSON_IsArray(arr)) bad = "the body must be a list of {\"id\", \"scale\"}";
    for (const cJSON *e = arr ? arr->child : NULL; !bad && e; e = e->next) {
        const cJSON *id = cJSON_GetObjectItem(e, "id"), *sc = cJSON_GetObjectItem(e, "scale");
        if (!cJSON_IsNumber(id) || id->valuedouble != (int)id->valuedouble || id->valueint < 0 ||
            id->valueint >= s->n_lora)
            bad = "each entry needs the 'id' of a loaded adapter (GET /lora-adapters lists them)";
        else if (!cJSON_IsNumber(sc) || sc->valuedouble < -100 || sc->valuedouble > 100)
            bad = "each entry needs a 'scale' from -100 to 100";
        else
            scale[id->valueint] = (float)sc->valuedouble;
    }
    if (bad) return srv_reply_error(c, 400, "invalid_request_error", NULL, "%s", bad);
    for (int i = 0; i < s->n_lora; i++) atomic_store(&s->lora[i].scale, scale[i]);
    return srv_lora_adapters(c, NULL);
}

/* GET /props: what llama-server's clients read (its web page, the test suite) */
int srv_props(srv_conn *c, cJSON *body) {
    (void)body;
    srv *s = srv_of(c);
    cJSON *o = cJSON_CreateObject();
    cJSON *d = cJSON_AddObjectToObject(o, "default_generation_settings");
    cJSON_AddNumberToObject(d, "id", 0);
    cJSON_AddNumberToObject(d, "n_ctx", s->n_ctx_slot);
    cJSON_AddBoolToObject(d, "is_processing", false);
    cJSON *p = cJSON_AddObjectToObject(d, "params");
    const srv_defaults *df = &s->dflt;
    cJSON_AddNumberToObject(p, "temperature", df->has_temp ? df->temp : 1.0);
    cJSON_AddNumberToObject(p, "top_k", df->has_top_k ? df->top_k : 0);
    cJSON_AddNumberToObject(p, "top_p", df->has_top_p ? df->top_p : 1.0);
    cJSON_AddNumberToObject(p, "n_predict", df->has_n_predict ? df->n_predict : -1);
    cJSON_AddNumberToObject(p, "seed", df->has_seed ? (double)df->seed : -1);
    cJSON_AddNumberToObject(o, "total_slots", s->n_slots);
    cJSON_AddStringToObject(o, "model_path", s->model_path ? s->model_path : "");
    cJSON_AddStringToObject(o, "model_alias", s->alias);
    cJSON *mod = cJSON_AddObjectToObject(o, "modalities");
    cJSON_AddBoolToObject(mod, "vision", false);
    cJSON_AddBoolToObject(mod, "audio", false);
    char tok[64];
    srv_token_text(s, gemma8_token_bos(s->model), tok, sizeof tok);
    cJSON_AddStringToObject(o, "bos_token", tok);
    srv_token_text(s, gemma8_token_eos(s->model), tok, sizeof tok);
    cJSON_AddStringToObject(o, "eos_token", tok);
    char build[64];
    snprintf(build, sizeof build, "gemma8 %s", gemma8_version());
    cJSON_AddStringToObject(o, "build_info", build);
    return srv_reply_json(c, 200, o);
}

/* POST /apply-template {messages}: {prompt}, the text the chat endpoints give the model */
int srv_apply_template(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    char err[256] = "";
    int32_t n, n_ids;
    char **store;
    gemma8_chat_message *msgs = srv_messages(cJSON_GetObjectItem(body, "messages"), &n, &store, err, sizeof err);
    if (!msgs) return srv_reply_error(c, 400, "invalid_request_error", NULL, "%s", err);
    int32_t *ids = NULL;
    gemma8_status st = srv_chat_tokens(s, msgs, n, &ids, &n_ids);
    srv_messages_free(msgs, n, store);
    if (st == GEMMA8_ERR_CONTEXT_FULL)
        return srv_reply_error(c, 400, "invalid_request_error", "context_length_exceeded",
                               "the conversation does not fit in the slot's context of %d tokens", s->n_ctx_slot);
    if (st) return srv_reply_error(c, 400, "invalid_request_error", NULL, "%s", gemma8_last_error());
    size_t cap = (size_t)n_ids * 64 + 16, len;
    char *text = malloc(cap);
    st = text ? gemma8_detokenize(s->model, ids, n_ids, false, text, cap, &len) : GEMMA8_ERR_NOMEM;
    free(ids);
    if (st) {
        free(text);
        return srv_reply_error(c, 500, "server_error", NULL, "%s", gemma8_last_error());
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", text);
    free(text);
    return srv_reply_json(c, 200, o);
}
