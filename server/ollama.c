/* ollama.c - Ollama's API: chat and generate (NDJSON streams by
 * default), tags, show, version, ps, embed. Unset options take Ollama's
 * documented defaults: temperature 0.8, top_k 40, top_p 0.9, min_p 0,
 * repeat_penalty 1.1, repeat_last_n 64, num_predict -1 (until the context is full). */
#include "server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void created_at(char *buf, size_t cap) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%06ldZ", ts.tv_nsec / 1000);
}

static int ollama_error(srv_conn *c, unsigned status, const char *msg) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    return srv_reply_json(c, status, o);
}

/* Ollama's options object (and its defaults) */
static bool read_options(srv *s, const cJSON *body, srv_task *t, char *err, size_t cap) {
    const cJSON *o = cJSON_GetObjectItem(body, "options");
    if (o && !cJSON_IsNull(o) && !cJSON_IsObject(o)) {
        snprintf(err, cap, "'options' must be an object");
        return false;
    }
    gemma8_generate_params *p = &t->params;
    gemma8_sampler_params *sp = &p->sampling;
    double temp = 0.8, top_k = 40, top_p = 0.9, min_p = 0, rep = 1.1, last_n = 64, seed = -1, n_predict = -1;
    const srv_defaults *df = &s->dflt; /* gemma8 serve --temp ... replace Ollama's defaults */
    if (df->has_temp) temp = df->temp;
    if (df->has_top_k) top_k = df->top_k;
    if (df->has_top_p) top_p = df->top_p;
    if (df->has_n_predict) n_predict = df->n_predict;
    double pres = 0, freq = 0, num_ctx = 0;
    if (!srv_number(o, "temperature", 0, 100, &temp, err, cap) ||
        !srv_number(o, "top_k", 0, 1e6, &top_k, err, cap) ||
        !srv_number(o, "top_p", 0, 1, &top_p, err, cap) || !srv_number(o, "min_p", 0, 1, &min_p, err, cap) ||
        !srv_number(o, "repeat_penalty", 0.01, 100, &rep, err, cap) ||
        !srv_number(o, "repeat_last_n", -1, 1 << 20, &last_n, err, cap) ||
        !srv_number(o, "seed", -9.3e18, 9.3e18, &seed, err, cap) ||
        !srv_number(o, "num_predict", -2, 2147483647.0, &n_predict, err, cap) ||
        !srv_number(o, "presence_penalty", -100, 100, &pres, err, cap) ||
        !srv_number(o, "frequency_penalty", -100, 100, &freq, err, cap) ||
        !srv_number(o, "num_ctx", 0, 1e9, &num_ctx, err, cap))
        return false;
    if (!srv_stop(cJSON_GetObjectItem(o, "stop"), t, err, cap)) return false;
    sp->temperature = (float)temp;
    sp->top_k = (int32_t)top_k;
    sp->top_p = top_p > 0 ? (float)top_p : 1e-6f;
    sp->min_p = (float)min_p;
    sp->repeat_penalty = (float)rep;
    sp->repeat_last_n = last_n < 0 ? s->n_ctx_slot : (int32_t)last_n; /* -1: the whole context */
    sp->presence_penalty = (float)pres;
    sp->frequency_penalty = (float)freq;
    sp->seed = seed >= 0 ? (uint32_t)(uint64_t)seed : df->has_seed ? df->seed : srv_random_seed();
    p->max_new_tokens = n_predict < 0 || n_predict > s->n_ctx_slot ? s->n_ctx_slot : (int32_t)n_predict;
    /* format: "json" (any JSON object) or a JSON Schema */
    const cJSON *fmt = cJSON_GetObjectItem(body, "format");
    if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "json")) {
        if (!srv_constrain(t, NULL, NULL, err, cap)) return false;
    } else if (cJSON_IsObject(fmt)) {
        if (!srv_constrain(t, fmt, NULL, err, cap)) return false;
    } else if (fmt && !cJSON_IsNull(fmt) && !(cJSON_IsString(fmt) && !fmt->valuestring[0])) {
        snprintf(err, cap, "'format' must be \"json\" or a JSON schema");
        return false;
    }
    return true;
}

static const char *done_reason(const srv_task *t) {
    return t->res.stop_reason == GEMMA8_STOP_LENGTH || t->res.stop_reason == GEMMA8_STOP_CONTEXT ? "length"
                                                                                                 : "stop";
}

typedef struct ol_stream {
    bool chat;
    int seen;
    bool finished;
    double t0;          /* the request's arrival */
    srv_reply_parse rp; /* tools: the reply read as text or calls */
} ol_stream;

/* Ollama's message.tool_calls: [{function: {index, name, arguments (an object)}}] */
static void add_calls(cJSON *o, const cJSON *calls, int first) {
    cJSON *tc = cJSON_AddArrayToObject(cJSON_GetObjectItem(o, "message"), "tool_calls");
    int k = first;
    for (const cJSON *c = calls->child; c; c = c->next, k++) {
        cJSON *item = cJSON_CreateObject();
        cJSON *fn = cJSON_AddObjectToObject(item, "function");
        cJSON_AddNumberToObject(fn, "index", k);
        cJSON_AddItemToObject(fn, "name", cJSON_Duplicate(cJSON_GetObjectItem(c, "name"), true));
        cJSON_AddItemToObject(fn, "arguments", cJSON_Duplicate(cJSON_GetObjectItem(c, "arguments"), true));
        cJSON_AddItemToArray(tc, item);
    }
}

/* A tools reply's text and calls from events (end: what is held goes to the text). */
static char *tool_split(ol_stream *st, const srv_event *ev, int n, bool end, cJSON *calls) {
    char *text = NULL;
    size_t len = 0;
    srv_reply_read(&st->rp, true, ev, n, end, &text, &len, calls);
    return text;
}

/* {model, created_at, message|response, done} */
static cJSON *base(srv *s, const ol_stream *st, const char *text, bool done) {
    char when[48];
    created_at(when, sizeof when);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", s->alias);
    cJSON_AddStringToObject(o, "created_at", when);
    if (st->chat) {
        cJSON *m = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(o, "response", text);
    }
    cJSON_AddBoolToObject(o, "done", done);
    return o;
}

/* the final object's reason and durations (nanoseconds) */
static void add_stats(srv *s, const ol_stream *st, const srv_task *t, cJSON *o) {
    (void)s;
    const double ns = 1e9;
    cJSON_AddStringToObject(o, "done_reason", done_reason(t));
    cJSON_AddNumberToObject(o, "total_duration", (double)(long long)((gemma8_time() - st->t0) * ns));
    cJSON_AddNumberToObject(o, "load_duration", (double)(long long)((t->t_started - t->t_queued) * ns));
    cJSON_AddNumberToObject(o, "prompt_eval_count", t->res.n_prompt - t->res.n_reused);
    cJSON_AddNumberToObject(o, "prompt_eval_duration", (double)(long long)(t->res.prompt_seconds * ns));
    cJSON_AddNumberToObject(o, "eval_count", t->res.n_generated);
    cJSON_AddNumberToObject(o, "eval_duration", (double)(long long)(t->res.gen_seconds * ns));
}

static void ndjson(char **out, size_t *len, cJSON *j) { srv_buf_json(out, len, "", j, "\n"); }

static long stream_next(srv_conn *c, srv_task *t, void *state, char **out) {
    srv *s = srv_of(c);
    ol_stream *st = state;
    size_t len = 0;
    *out = NULL;
    if (st->finished) return -1;
    if (!srv_task_wait(t, st->seen, 1.0)) return 0;
    bool done;
    srv_event *ev;
    const int n = srv_task_events(t, st->seen, &ev, &done);
    if (n > 0 || (done && t->tools)) {
        cJSON *calls = t->tools && st->chat ? cJSON_CreateArray() : NULL;
        char *text = calls ? tool_split(st, ev, n, done, calls) : srv_events_text(ev, n);
        if (!calls || text) ndjson(out, &len, base(s, st, text ? text : "", false));
        if (calls && cJSON_GetArraySize(calls)) {
            cJSON *o = base(s, st, "", false);
            add_calls(o, calls, st->rp.n_calls - cJSON_GetArraySize(calls));
            ndjson(out, &len, o);
        }
        cJSON_Delete(calls);
        free(text);
        free(ev);
        st->seen += n;
    }
    if (done) {
        if (t->status) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "error", t->error);
            ndjson(out, &len, e);
        } else {
            cJSON *o = base(s, st, "", true);
            add_stats(s, st, t, o);
            ndjson(out, &len, o);
        }
        srv_conn_log_tokens(c, t->res.n_prompt, t->res.n_reused, t->res.n_generated);
        st->finished = true;
    }
    return (long)len;
}

static void ol_free(void *p) {
    ol_stream *st = p;
    free(st->rp.buf);
    free(st);
}

/* Runs t and answers as a stream (the default) or one object. */
static int answer(srv_conn *c, const cJSON *body, srv_task *t, bool chat) {
    srv *s = srv_of(c);
    ol_stream *st = calloc(1, sizeof *st);
    if (!st) return SRV_FAIL;
    st->chat = chat;
    st->t0 = gemma8_time();
    const cJSON *stream = cJSON_GetObjectItem(body, "stream");
    if (!cJSON_IsFalse(stream)) {
        if (!srv_submit(s->sched, t)) {
            free(st);
            return ollama_error(c, 503, "every slot is busy and the queue is full");
        }
        return srv_reply_stream(c, "application/x-ndjson", t, stream_next, st, ol_free);
    }
    int rc;
    if (!srv_run_blocking(c, t)) {
        rc = ollama_error(c, 503, "every slot is busy and the queue is full");
    } else if (t->status) {
        rc = ollama_error(c, srv_task_error_code(s, t) ? 503 : 500, t->error);
    } else {
        srv_event *ev;
        const int n = srv_task_events(t, 0, &ev, NULL);
        cJSON *calls = t->tools && chat ? cJSON_CreateArray() : NULL;
        char *text = calls ? tool_split(st, ev, n, true, calls) : srv_events_text(ev, n);
        free(ev);
        cJSON *o = base(s, st, text ? text : "", true);
        if (calls && cJSON_GetArraySize(calls)) add_calls(o, calls, 0);
        cJSON_Delete(calls);
        free(text);
        add_stats(s, st, t, o);
        srv_conn_log_tokens(c, t->res.n_prompt, t->res.n_reused, t->res.n_generated);
        rc = srv_reply_json(c, 200, o);
    }
    ol_free(st);
    return rc;
}

/* An empty request loads the model (it is loaded): done_reason "load". */
static int load_reply(srv_conn *c, bool chat) {
    ol_stream st = {.chat = chat, .t0 = gemma8_time()};
    cJSON *o = base(srv_of(c), &st, "", true);
    cJSON_AddStringToObject(o, "done_reason", "load");
    return srv_reply_json(c, 200, o);
}

/* An empty request loads the model (it is loaded): true with no task. */
bool ollama_parse_chat(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    *out = NULL;
    if (!srv_model_known(s, body, e)) return false;
    const cJSON *arr = cJSON_GetObjectItem(body, "messages");
    if (!arr || (cJSON_IsArray(arr) && !cJSON_GetArraySize(arr))) return true;
    return srv_chat_task(s, body, arr, read_options, out, e);
}

bool ollama_parse_generate(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    *out = NULL;
    if (!srv_model_known(s, body, e)) return false;
    const cJSON *prompt = cJSON_GetObjectItem(body, "prompt"), *system = cJSON_GetObjectItem(body, "system");
    if (prompt && !cJSON_IsString(prompt)) return srv_fail(e, 400, NULL, "'prompt' must be a string");
    if (system && !cJSON_IsNull(system) && !cJSON_IsString(system))
        return srv_fail(e, 400, NULL, "'system' must be a string");
    const cJSON *tools = cJSON_GetObjectItem(body, "tools");
    if (cJSON_IsArray(tools) && cJSON_GetArraySize(tools))
        return srv_fail(e, 400, NULL, "/api/generate takes no tools: /api/chat does");
    if (!prompt || !prompt->valuestring[0]) return true;
    srv_task *t = srv_task_new(SRV_GENERATE);
    if (!t) return srv_fail(e, 500, NULL, "out of memory");
    gemma8_status gs;
    if (cJSON_IsTrue(cJSON_GetObjectItem(body, "raw"))) {
        gs = srv_text_tokens(s, prompt->valuestring, true, true, &t->prompt, &t->n_prompt);
    } else { /* the prompt as a user turn of the chat template, as Ollama's template does */
        const bool sys = cJSON_IsString(system) && system->valuestring[0];
        gemma8_chat_message m[2] = {{.role = "system", .content = sys ? system->valuestring : ""},
                                    {.role = "user", .content = prompt->valuestring}};
        gs = srv_chat_tokens(s, sys ? m : m + 1, sys ? 2 : 1, &t->prompt, &t->n_prompt);
    }
    return srv_parse_done(s, body, t, gs, read_options, out, e);
}

static int refuse(srv_conn *c, const srv_error *e) { return ollama_error(c, e->status, e->msg); }

int ollama_chat(srv_conn *c, cJSON *body) {
    srv_task *t;
    srv_error e;
    if (!ollama_parse_chat(srv_of(c), body, &t, &e)) return refuse(c, &e);
    if (!t) return load_reply(c, true);
    int rc = answer(c, body, t, true);
    srv_task_unref(t);
    return rc;
}

int ollama_generate(srv_conn *c, cJSON *body) {
    srv_task *t;
    srv_error e;
    if (!ollama_parse_generate(srv_of(c), body, &t, &e)) return refuse(c, &e);
    if (!t) return load_reply(c, false);
    int rc = answer(c, body, t, false);
    srv_task_unref(t);
    return rc;
}

static cJSON *details(srv *s) {
    cJSON *d = cJSON_CreateObject();
    char size[32], quant[16];
    snprintf(size, sizeof size, s->info.n_params >= 1000000000ull ? "%.1fB" : "%.1fM",
             s->info.n_params >= 1000000000ull ? s->info.n_params / 1e9 : s->info.n_params / 1e6);
    snprintf(quant, sizeof quant, "%s", gemma8_type_name(s->info.matrix_type));
    for (char *p = quant; *p; p++) *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    cJSON_AddStringToObject(d, "parent_model", "");
    cJSON_AddStringToObject(d, "format", "gguf");
    cJSON_AddStringToObject(d, "family", s->info.arch);
    cJSON *f = cJSON_AddArrayToObject(d, "families");
    cJSON_AddItemToArray(f, cJSON_CreateString(s->info.arch));
    cJSON_AddStringToObject(d, "parameter_size", size);
    cJSON_AddStringToObject(d, "quantization_level", quant);
    return d;
}

static cJSON *model_entry(srv *s, bool running) {
    char when[48];
    created_at(when, sizeof when);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "name", s->alias);
    cJSON_AddStringToObject(m, "model", s->alias);
    if (!running) cJSON_AddStringToObject(m, "modified_at", when);
    cJSON_AddNumberToObject(m, "size", (double)s->info.weight_bytes);
    cJSON_AddStringToObject(m, "digest", "");
    cJSON_AddItemToObject(m, "details", details(s));
    if (running) {
        cJSON_AddStringToObject(m, "expires_at", "2318-01-01T00:00:00Z");
        cJSON_AddNumberToObject(m, "size_vram", 0);
    }
    return m;
}

int ollama_tags(srv_conn *c, cJSON *body) {
    (void)body;
    srv *s = srv_of(c);
    cJSON *o = cJSON_CreateObject(), *models = cJSON_AddArrayToObject(o, "models");
    cJSON_AddItemToArray(models, model_entry(s, false));
    for (int i = 0; i < s->n_lora; i++) { /* "<model>:<adapter>": the model under that adapter */
        cJSON *m = model_entry(s, false);
        char name[256];
        snprintf(name, sizeof name, "%s:%s", s->alias, s->lora[i].name);
        cJSON_ReplaceItemInObject(m, "name", cJSON_CreateString(name));
        cJSON_ReplaceItemInObject(m, "model", cJSON_CreateString(name));
        cJSON_AddItemToArray(models, m);
    }
    return srv_reply_json(c, 200, o);
}

int ollama_ps(srv_conn *c, cJSON *body) {
    (void)body;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "models"), model_entry(srv_of(c), true));
    return srv_reply_json(c, 200, o);
}

int ollama_show(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    const cJSON *m = cJSON_GetObjectItem(body, "model");
    if (!m) m = cJSON_GetObjectItem(body, "name");
    if (!cJSON_IsString(m) || !srv_model_name_ok(s, m->valuestring) || !m->valuestring[0])
        return ollama_error(c, 404, "model not found");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "modelfile", "");
    cJSON_AddStringToObject(o, "parameters", "stop \"<end_of_turn>\"");
    cJSON_AddStringToObject(o, "template",
                            "<start_of_turn>user\n{{ .Prompt }}<end_of_turn>\n<start_of_turn>model\n");
    cJSON_AddItemToObject(o, "details", details(s));
    cJSON *info = cJSON_AddObjectToObject(o, "model_info");
    cJSON_AddStringToObject(info, "general.architecture", s->info.arch);
    cJSON_AddNumberToObject(info, "general.parameter_count", (double)s->info.n_params);
    const struct { const char *key; double v; } arch_info[] = { /* "<arch>.<key>", as Ollama names them */
        {"context_length", s->info.n_ctx_train},
        {"embedding_length", s->info.n_embd},
        {"block_count", s->info.n_layer},
        {"feed_forward_length", s->info.n_ff},
        {"attention.head_count", s->info.n_head},
        {"attention.head_count_kv", s->info.n_head_kv},
        {"attention.key_length", s->info.head_dim},
        {"attention.value_length", s->info.head_dim},
        {"attention.sliding_window", s->info.sliding_window},
        {"rope.freq_base", s->info.rope_base},
    };
    for (size_t i = 0; i < sizeof arch_info / sizeof arch_info[0]; i++) {
        char key[96];
        snprintf(key, sizeof key, "%s.%s", s->info.arch, arch_info[i].key);
        cJSON_AddNumberToObject(info, key, arch_info[i].v);
    }
    cJSON *caps = cJSON_AddArrayToObject(o, "capabilities");
    cJSON_AddItemToArray(caps, cJSON_CreateString("completion"));
    return srv_reply_json(c, 200, o);
}

int ollama_version(srv_conn *c, cJSON *body) {
    (void)body;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", gemma8_version());
    return srv_reply_json(c, 200, o);
}

bool ollama_parse_embed(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    *out = NULL;
    if (s->pooling_none)
        return srv_fail(e, 400, NULL,
                        "the server pools none (--pooling none): per-token vectors are at /embeddings");
    if (!srv_model_known(s, body, e)) return false;
    const cJSON *in = cJSON_GetObjectItem(body, "input");
    const bool list = cJSON_IsArray(in);
    const int n = list ? cJSON_GetArraySize(in) : 1;
    if (!(cJSON_IsString(in) || list) || n == 0 || n > 2048)
        return srv_fail(e, 400, NULL, "'input' must be a string or strings");
    srv_task *t = srv_task_new(SRV_EMBED);
    if (t) t->inputs = calloc((size_t)n, sizeof *t->inputs);
    if (t) t->n_inputs = calloc((size_t)n, sizeof *t->n_inputs);
    if (!t || !t->inputs || !t->n_inputs) {
        srv_task_unref(t);
        return srv_fail(e, 500, NULL, "out of memory");
    }
    const cJSON *x = list ? in->child : in;
    for (int i = 0; i < n; i++, x = x->next) {
        t->n_in = i + 1;
        bool ok = cJSON_IsString(x) && x->valuestring[0];
        if (!ok) srv_fail(e, 400, NULL, "input %d must be a non-empty string", i);
        if (ok && srv_text_tokens(s, x->valuestring, true, false, &t->inputs[i], &t->n_inputs[i]))
            ok = srv_fail(e, 400, NULL, "input %d does not fit in a slot of %d tokens", i, s->n_ctx_slot);
        if (!ok) {
            srv_task_unref(t);
            return false;
        }
    }
    *out = t;
    return true;
}

int ollama_embed(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    srv_task *t;
    srv_error e;
    if (!ollama_parse_embed(s, body, &t, &e)) return refuse(c, &e);
    const double t0 = gemma8_time();
    int rc = srv_run_task(c, t);
    if (rc < 0) {
        const int E = s->info.n_embd;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", s->alias);
        cJSON *embs = cJSON_AddArrayToObject(o, "embeddings");
        for (int i = 0; i < t->n_in; i++) {
            cJSON_AddItemToArray(embs, cJSON_CreateFloatArray(t->embeddings + (size_t)i * E, E));
        }
        cJSON_AddNumberToObject(o, "total_duration", (double)(long long)((gemma8_time() - t0) * 1e9));
        cJSON_AddNumberToObject(o, "load_duration", 0);
        cJSON_AddNumberToObject(o, "prompt_eval_count", t->embed_tokens);
        srv_conn_log_tokens(c, t->embed_tokens, 0, 0);
        rc = srv_reply_json(c, 200, o);
    }
    srv_task_unref(t);
    return rc;
}

/* The legacy POST /api/embeddings {model, prompt}: {embedding} (one vector, as /api/embed makes it). */
int ollama_embeddings(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    const cJSON *prompt = cJSON_GetObjectItem(body, "prompt");
    if (!cJSON_IsString(prompt) || !prompt->valuestring[0])
        return ollama_error(c, 400, "'prompt' must be a non-empty string");
    cJSON *req = cJSON_Duplicate(body, true);
    cJSON_DeleteItemFromObject(req, "prompt");
    cJSON_AddStringToObject(req, "input", prompt->valuestring);
    srv_task *t;
    srv_error e;
    bool ok = ollama_parse_embed(s, req, &t, &e);
    cJSON_Delete(req);
    if (!ok) return refuse(c, &e);
    int rc = srv_run_task(c, t);
    if (rc < 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "embedding", cJSON_CreateFloatArray(t->embeddings, s->info.n_embd));
        srv_conn_log_tokens(c, t->embed_tokens, 0, 0);
        rc = srv_reply_json(c, 200, o);
    }
    srv_task_unref(t);
    return rc;
}

/* POST /api/pull: the loaded model is there already (success, streamed or not); another is an error. */
int ollama_pull(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    const cJSON *m = cJSON_GetObjectItem(body, "model");
    if (!m) m = cJSON_GetObjectItem(body, "name");
    if (!cJSON_IsString(m)) return ollama_error(c, 400, "'model' must be a string");
    if (!srv_model_name_ok(s, m->valuestring)) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "gemma8 serves one model, '%.100s', and does not download others ('%.100s')", s->alias,
                 m->valuestring);
        return ollama_error(c, 404, msg);
    }
    if (cJSON_IsFalse(cJSON_GetObjectItem(body, "stream"))) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "success");
        return srv_reply_json(c, 200, o);
    }
    return srv_reply_text(c, 200, "application/x-ndjson", "{\"status\":\"success\"}\n");
}
