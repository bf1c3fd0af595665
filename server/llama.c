/* llama.c - llama-server's own endpoints, beside the OpenAI API: /props, /apply-template,
 * /lora-adapters (list and set the global scales), GET /v1/models/{id}, /slots (list; save, restore
 * and erase a slot's cache with --slot-save-path). */
#include "server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

/* a comma-separated list as a JSON array */
static cJSON *list(const char *csv) {
    cJSON *a = cJSON_CreateArray();
    for (const char *p = csv; p && *p;) {
        size_t k = strcspn(p, ",");
        char item[256];
        snprintf(item, sizeof item, "%.*s", (int)(k < 255 ? k : 255), p);
        if (k) cJSON_AddItemToArray(a, cJSON_CreateString(item));
        p += k + (p[k] == ',');
    }
    return a;
}

cJSON *oai_model_object(srv *s, const char *id) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", s->t_loaded);
    cJSON_AddStringToObject(m, "owned_by", "gemma8");
    cJSON_AddItemToObject(m, "aliases", list(s->aliases ? s->aliases : s->alias));
    cJSON_AddItemToObject(m, "tags", list(s->tags));
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
        if (!cJSON_IsNumber(id) || !srv_whole(id->valuedouble, 0, s->n_lora - 1))
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
    cJSON_AddBoolToObject(o, "is_sleeping", srv_sched_sleeping(s->sched));
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
static bool read_nothing(srv *s, const cJSON *body, srv_task *t, char *err, size_t cap) {
    (void)s, (void)body, (void)t, (void)err, (void)cap;
    return true;
}

int srv_apply_template(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    srv_task *t;
    srv_error e;
    if (!srv_chat_task(s, body, cJSON_GetObjectItem(body, "messages"), read_nothing, &t, &e))
        return srv_reply_refusal(c, &e);
    size_t cap = (size_t)t->n_prompt * 64 + 16, len;
    char *text = malloc(cap);
    gemma8_status st =
        text ? gemma8_detokenize(s->model, t->prompt, t->n_prompt, false, text, cap, &len) : GEMMA8_ERR_NOMEM;
    srv_task_unref(t);
    if (st) {
        free(text);
        return srv_reply_error(c, 500, "server_error", NULL, "%s", gemma8_last_error());
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", text);
    free(text);
    return srv_reply_json(c, 200, o);
}

/* GET /slots: [{id, n_ctx, is_processing, n_past}] (501 with --no-slots, as llama-server) */
int srv_slots(srv_conn *c, cJSON *body) {
    (void)body;
    srv *s = srv_of(c);
    if (s->no_slots)
        return srv_reply_error(c, 501, "not_supported_error", NULL, "this server has no /slots (--no-slots)");
    srv_slot_info info[256];
    srv_sched_slots(s->sched, info);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < s->n_slots; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", i);
        cJSON_AddNumberToObject(o, "n_ctx", s->n_ctx_slot);
        cJSON_AddBoolToObject(o, "is_processing", info[i].busy);
        cJSON_AddNumberToObject(o, "n_past", info[i].n_past);
        cJSON_AddItemToArray(arr, o);
    }
    return srv_reply_json(c, 200, arr);
}

/* A file name in --slot-save-path: a plain name (no path, no dot files), as llama-server checks. */
static bool plain_file_name(const char *f) {
    if (!f[0] || f[0] == '.' || strlen(f) > 200) return false;
    for (const char *p = f; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20) return false;
    return true;
}

/* POST /slots/{id}?action=save|restore|erase: a slot's cache to and from a file of --slot-save-path
 * (written atomically by gemma8_cache_save), or cleared; run when the slot is free. */
int srv_slot_action(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    const char *id_s = srv_conn_url(c) + strlen("/slots/");
    const char *action = srv_conn_arg(c, "action");
    char *end;
    long id = strtol(id_s, &end, 10);
    if (!*id_s || *end || id < 0 || id >= s->n_slots)
        return srv_reply_error(c, 400, "invalid_request_error", NULL, "no slot '%.40s' (0..%d)", id_s,
                               s->n_slots - 1);
    srv_kind kind = !action                      ? SRV_GENERATE
                    : !strcmp(action, "save")    ? SRV_SLOT_SAVE
                    : !strcmp(action, "restore") ? SRV_SLOT_RESTORE
                    : !strcmp(action, "erase")   ? SRV_SLOT_ERASE
                                                 : SRV_GENERATE;
    if (kind == SRV_GENERATE)
        return srv_reply_error(c, 400, "invalid_request_error", NULL,
                               "'action' must be save, restore or erase");
    const cJSON *fn = cJSON_GetObjectItem(body, "filename");
    char path[4096] = "";
    if (kind != SRV_SLOT_ERASE) {
        if (!s->slot_save_path)
            return srv_reply_error(c, 501, "not_supported_error", NULL,
                                   "this server saves no slots (start it with --slot-save-path DIR)");
        if (!cJSON_IsString(fn) || !plain_file_name(fn->valuestring))
            return srv_reply_error(c, 400, "invalid_request_error", NULL,
                                   "'filename' must be a plain file name (no '/', not starting with '.')");
        snprintf(path, sizeof path, "%s/%s", s->slot_save_path, fn->valuestring);
    }
    srv_task *t = srv_task_new(kind);
    if (!t || (path[0] && !(t->path = strdup(path)))) {
        srv_task_unref(t);
        return srv_reply_error(c, 500, "server_error", NULL, "out of memory");
    }
    t->id_slot = (int)id;
    const double t0 = gemma8_time();
    int rc;
    if (!srv_run_blocking(c, t)) {
        rc =
            srv_reply_error(c, 503, "server_error", "queue_full", "every slot is busy and the queue is full");
    } else if (t->status) {
        rc = srv_reply_error(c, kind == SRV_SLOT_RESTORE ? 400 : 500,
                             kind == SRV_SLOT_RESTORE ? "invalid_request_error" : "server_error", NULL, "%s",
                             t->error);
    } else {
        const double ms = (gemma8_time() - t0) * 1e3;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id_slot", (double)id);
        if (kind != SRV_SLOT_ERASE) cJSON_AddStringToObject(o, "filename", fn->valuestring);
        struct stat st;
        double bytes = path[0] && !stat(path, &st) ? (double)st.st_size : 0;
        if (kind == SRV_SLOT_SAVE) {
            cJSON_AddNumberToObject(o, "n_saved", t->slot_tokens);
            cJSON_AddNumberToObject(o, "n_written", bytes);
            cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "timings"), "save_ms", ms);
        } else if (kind == SRV_SLOT_RESTORE) {
            cJSON_AddNumberToObject(o, "n_restored", t->slot_tokens);
            cJSON_AddNumberToObject(o, "n_read", bytes);
            cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "timings"), "restore_ms", ms);
        } else {
            cJSON_AddNumberToObject(o, "n_erased", t->slot_tokens);
        }
        rc = srv_reply_json(c, 200, o);
    }
    srv_task_unref(t);
    return rc;
}
