/* fields.c - what the OpenAI and Ollama handlers share: request fields, errors, the end of parsing. */
#include "server.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool srv_valid_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char b = p[i];
        int k = b < 0x80 ? 0 : (b & 0xe0) == 0xc0 ? 1 : (b & 0xf0) == 0xe0 ? 2 : (b & 0xf8) == 0xf0 ? 3 : -1;
        if (k < 0 || i + (size_t)k >= n + (k ? 0 : 1)) return false;
        uint32_t cp = k == 0 ? b : k == 1 ? b & 0x1f : k == 2 ? b & 0x0f : b & 0x07;
        for (int j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += (size_t)k + 1;
    }
    return true;
}

bool srv_whole(double v, double lo, double hi) { return v >= lo && v <= hi && v == floor(v); }

bool srv_has_nul_escape(const char *s, size_t n) {
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            in_str = !in_str;
        else if (in_str && s[i] == '\\') {
            if (i + 5 < n && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4)) return true;
            i++;
        }
    }
    return false;
}

/* A message's content into m: a string (copied into *owned), or an array of {type: "text", text}
 * parts (an array of pointers into the request, in *owned), which the chat template joins. */
static bool content_parts(const cJSON *content, gemma8_chat_message *m, char **owned, char *err, size_t cap) {
    if (!content || cJSON_IsNull(content)) content = NULL;
    else if (cJSON_IsString(content)) return (m->content = *owned = strdup(content->valuestring)) != NULL;
    if (!content) return (m->content = *owned = strdup("")) != NULL;
    if (!cJSON_IsArray(content)) {
        snprintf(err, cap, "a message's content must be a string or an array of text parts");
        return false;
    }
    const int n = cJSON_GetArraySize(content);
    const char **parts = calloc((size_t)n + 1, sizeof *parts);
    if (!parts) {
        snprintf(err, cap, "out of memory");
        return false;
    }
    *owned = (char *)parts;
    int i = 0;
    for (const cJSON *p = content->child; p; p = p->next, i++) {
        const cJSON *type = cJSON_GetObjectItem(p, "type"), *text = cJSON_GetObjectItem(p, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text)) {
            snprintf(err, cap, "only content parts of type \"text\" are supported");
            return false;
        }
        parts[i] = text->valuestring;
    }
    m->content = "";
    m->parts = parts;
    m->n_parts = n;
    return true;
}

/* A message's text: its content, or its parts joined. */
static void message_text(const gemma8_chat_message *m, char **out, size_t *len) {
    if (m->n_parts <= 0) {
        srv_buf_add(out, len, "", m->content ? m->content : "", "");
        return;
    }
    for (int32_t i = 0; i < m->n_parts; i++) srv_buf_add(out, len, "", m->parts[i], "");
}

/* Conversations as clients send them, made into what Gemma's template renders: a system message
 * after the first turn is read as user text; consecutive messages of one role become one, their
 * texts joined by a blank line (the merged text owned by store[*ns]). */
static int32_t normalize(gemma8_chat_message *m, int32_t count, char **store, int *ns) {
    int32_t out = 0;
    for (int32_t i = 0; i < count; i++) {
        if (i > 0 && !strcmp(m[i].role, "system") && strcmp(m[i - 1].role, "system")) m[i].role = "user";
        if (!out || strcmp(m[out - 1].role, m[i].role)) {
            m[out++] = m[i];
            continue;
        }
        char *text = NULL;
        size_t len = 0;
        message_text(&m[out - 1], &text, &len);
        srv_buf_add(&text, &len, "", "\n\n", "");
        message_text(&m[i], &text, &len);
        if (!text) return -1;
        store[(*ns)++] = text;
        m[out - 1].content = text;
        m[out - 1].parts = NULL;
        m[out - 1].n_parts = 0;
    }
    return out;
}

/* The name of the function a tool result answers: its own "name" / "tool_name" (Ollama's), else the
 * name of the call with its tool_call_id among the messages before it. */
static const char *result_name(const cJSON *arr, const cJSON *msg) {
    const cJSON *own = cJSON_GetObjectItem(msg, "name");
    if (!cJSON_IsString(own)) own = cJSON_GetObjectItem(msg, "tool_name");
    if (cJSON_IsString(own)) return own->valuestring;
    const cJSON *id = cJSON_GetObjectItem(msg, "tool_call_id");
    for (const cJSON *e = arr->child; cJSON_IsString(id) && e && e != msg; e = e->next) {
        const cJSON *calls = cJSON_GetObjectItem(e, "tool_calls");
        for (const cJSON *c = cJSON_IsArray(calls) ? calls->child : NULL; c; c = c->next) {
            const cJSON *cid = cJSON_GetObjectItem(c, "id");
            const cJSON *name = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "function"), "name");
            if (cJSON_IsString(cid) && !strcmp(cid->valuestring, id->valuestring) && cJSON_IsString(name))
                return name->valuestring;
        }
    }
    return NULL;
}

/* An assistant's tool calls after its text, a tool's result as a user's block (tools.c's format). */
static bool tool_message(const cJSON *arr, const cJSON *e, const char *role, gemma8_chat_message *m,
                         char **owned, char *err, size_t cap) {
    const cJSON *calls = cJSON_GetObjectItem(e, "tool_calls");
    const bool has_calls = cJSON_IsArray(calls) && cJSON_GetArraySize(calls) > 0;
    if (calls && !cJSON_IsNull(calls) && !cJSON_IsArray(calls)) {
        snprintf(err, cap, "'tool_calls' must be an array");
        return false;
    }
    if (has_calls && strcmp(role, "assistant")) {
        snprintf(err, cap, "only an assistant message has tool calls");
        return false;
    }
    if (!has_calls && strcmp(role, "tool")) return true;
    char *text = NULL;
    size_t len = 0;
    message_text(m, &text, &len);
    char *block = has_calls ? srv_tool_calls_text(text, calls, err, cap)
                            : srv_tool_result_text(result_name(arr, e), text ? text : "");
    free(text);
    if (!block) {
        if (!has_calls) snprintf(err, cap, "out of memory");
        return false;
    }
    *owned = block;
    m->content = block;
    m->parts = NULL;
    m->n_parts = 0;
    return true;
}

gemma8_chat_message *srv_messages(const cJSON *arr, const char *system, int32_t *n, char ***store, char *err,
                                  size_t cap) {
    *n = 0;
    *store = NULL;
    if (!cJSON_IsArray(arr)) {
        snprintf(err, cap, "'messages' must be an array");
        return NULL;
    }
    const int count = cJSON_GetArraySize(arr) + (system != NULL);
    gemma8_chat_message *m = calloc((size_t)count + 1, sizeof *m);
    char **s = calloc(3 * (size_t)count + 1, sizeof *s); /* what the messages own, NULL-terminated */
    if (!m || !s) {
        free(m);
        free(s);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    int k = 0, ns = 0;
    if (system) { /* the tools' instructions: merged with a system message that follows */
        m[k].role = "system";
        m[k++].content = system;
    }
    for (const cJSON *e = arr->child; e; e = e->next, k++) {
        const cJSON *role = cJSON_GetObjectItem(e, "role");
        if (!cJSON_IsObject(e) || !cJSON_IsString(role)) {
            snprintf(err, cap, "message %d has no 'role'", k - (system != NULL));
            break;
        }
        const char *r = role->valuestring;
        if (!strcmp(r, "developer")) r = "system";
        if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "model") &&
            strcmp(r, "tool")) {
            snprintf(err, cap, "message %d: unknown role '%.32s' (system, developer, user, assistant, tool)",
                     k - (system != NULL), r);
            break;
        }
        const cJSON *images = cJSON_GetObjectItem(e, "images");
        if (images && !cJSON_IsNull(images) && !(cJSON_IsArray(images) && !cJSON_GetArraySize(images))) {
            snprintf(err, cap, "message %d: images are not supported (gemma8 reads text only)",
                     k - (system != NULL));
            break;
        }
        bool ok = content_parts(cJSON_GetObjectItem(e, "content"), &m[k], &s[ns], err, cap);
        if (s[ns]) ns++;
        if (ok && !strcmp(r, "model")) r = "assistant";
        ok = ok && tool_message(arr, e, r, &m[k], &s[ns], err, cap);
        if (s[ns]) ns++;
        if (!ok) break;
        m[k].role = !strcmp(r, "system") ? "system" : !strcmp(r, "assistant") ? "assistant" : "user";
    }
    if (k == count && count >= 2 && !strcmp(m[count - 1].role, "assistant") &&
        !strcmp(m[count - 2].role, "assistant")) {
        snprintf(err, cap,
                 "the last two messages are the assistant's: a prefill is one assistant message at the end");
        k = -1;
    }
    int32_t kept = k < count ? -1 : normalize(m, count, s, &ns);
    if (kept < 0) {
        if (k == count) snprintf(err, cap, "out of memory");
        srv_messages_free(m, 0, s);
        return NULL;
    }
    *n = kept;
    *store = s;
    return m;
}

void srv_messages_free(gemma8_chat_message *m, int32_t n, char **store) {
    (void)n;
    for (size_t i = 0; store && store[i]; i++) free(store[i]);
    free(store);
    free(m);
}

bool srv_stop(const cJSON *v, srv_task *t, char *err, size_t cap) {
    const char *list[SRV_MAX_STOP];
    int n = 0;
    if (!v || cJSON_IsNull(v)) return true;
    if (cJSON_IsString(v)) {
        list[n++] = v->valuestring;
    } else if (cJSON_IsArray(v)) {
        for (const cJSON *e = v->child; e; e = e->next) {
            if (!cJSON_IsString(e) || n == SRV_MAX_STOP) {
                snprintf(err, cap, "'stop' must be a string or an array of at most %d strings", SRV_MAX_STOP);
                return false;
            }
            list[n++] = e->valuestring;
        }
    } else {
        snprintf(err, cap, "'stop' must be a string or an array of strings");
        return false;
    }
    srv_task_set_stop(t, list, n);
    return true;
}

bool srv_number(const cJSON *obj, const char *name, double lo, double hi, double *out, char *err,
                size_t cap) {
    const cJSON *v = cJSON_GetObjectItem(obj, name);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble < lo || v->valuedouble > hi) {
        snprintf(err, cap, "'%s' must be a number from %g to %g", name, lo, hi);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

gemma8_status srv_chat_tokens(srv *s, const gemma8_chat_message *m, int32_t n, int32_t **out,
                              int32_t *n_out) {
    /* a last assistant message is a prefill: the reply continues it (llama-server's and Ollama's rule) */
    const bool prefill = n > 1 && !strcmp(m[n - 1].role, "assistant");
    int32_t cap = s->n_ctx_slot + 1;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return GEMMA8_ERR_NOMEM;
    gemma8_status st = gemma8_chat_tokenize(s->model, m, prefill ? n - 1 : n, true, ids, cap, n_out);
    if (!st && prefill) {
        char *text = NULL;
        size_t len = 0;
        for (int32_t i = 0; i < (m[n - 1].n_parts > 0 ? m[n - 1].n_parts : 1); i++)
            srv_buf_add(&text, &len, i ? "\n\n" : "",
                        m[n - 1].n_parts > 0 ? m[n - 1].parts[i] : m[n - 1].content, "");
        int32_t more = 0;
        st = text ? gemma8_tokenize(s->model, text, len, false, false, ids + *n_out, cap - *n_out, &more)
                  : GEMMA8_ERR_NOMEM;
        if (st == GEMMA8_ERR_BUFFER_TOO_SMALL)
            *n_out = cap;
        else
            *n_out += more;
        free(text);
    }
    if (st == GEMMA8_ERR_BUFFER_TOO_SMALL || (!st && *n_out >= s->n_ctx_slot)) st = GEMMA8_ERR_CONTEXT_FULL;
    if (st) {
        free(ids);
        return st;
    }
    *out = ids;
    return GEMMA8_OK;
}

gemma8_status srv_text_tokens(srv *s, const char *text, bool add_bos, bool special, int32_t **out,
                              int32_t *n_out) {
    size_t len = strlen(text);
    int32_t cap = (int32_t)(len < (size_t)s->n_ctx_slot ? len : (size_t)s->n_ctx_slot) + 2;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return GEMMA8_ERR_NOMEM;
    gemma8_status st = gemma8_tokenize(s->model, text, len, add_bos, special, ids, cap, n_out);
    if (st == GEMMA8_ERR_BUFFER_TOO_SMALL && *n_out < s->n_ctx_slot) { /* more tokens than bytes */
        int32_t *more = realloc(ids, (size_t)*n_out * sizeof *ids);
        if (!more) {
            free(ids);
            return GEMMA8_ERR_NOMEM;
        }
        ids = more;
        st = gemma8_tokenize(s->model, text, len, add_bos, special, ids, *n_out, n_out);
    }
    if (st == GEMMA8_ERR_BUFFER_TOO_SMALL || (!st && *n_out >= s->n_ctx_slot)) st = GEMMA8_ERR_CONTEXT_FULL;
    if (st) {
        free(ids);
        return st;
    }
    *out = ids;
    return GEMMA8_OK;
}

/* the adapter a model name "<ours>:NAME" picks; -1: none (a plain name), -2: not ours */
static int model_adapter(srv *s, const char *model) {
    char plain[256];
    size_t n = strlen(model);
    if (n > 7 && n < sizeof plain && !strcmp(model + n - 7, ":latest")) { /* Ollama's default tag */
        memcpy(plain, model, n - 7);
        plain[n - 7] = 0;
        model = plain;
    }
    if (!strcmp(model, s->alias) || !strcmp(model, s->info.name) || !model[0]) return -1;
    for (const char *p = s->aliases; p && *p;) { /* --alias A,B,C */
        size_t k = strcspn(p, ",");
        if (k && strlen(model) == k && !strncmp(model, p, k)) return -1;
        p += k + (p[k] == ',');
    }
    for (int i = 0; i < s->n_lora; i++) {
        const size_t la = strlen(s->alias), ln = strlen(s->info.name);
        const char *rest = !strncmp(model, s->alias, la) && model[la] == ':'  ? model + la + 1
                           : !strncmp(model, s->info.name, ln) && model[ln] == ':' ? model + ln + 1
                                                                                   : NULL;
        if (rest && !strcmp(rest, s->lora[i].name)) return i;
    }
    return -2;
}

bool srv_model_name_ok(srv *s, const char *name) { return model_adapter(s, name) != -2; }

bool srv_model_ok(srv *s, const cJSON *body) {
    const cJSON *m = cJSON_GetObjectItem(body, "model");
    if (!m || cJSON_IsNull(m)) return true;
    return cJSON_IsString(m) && model_adapter(s, m->valuestring) != -2;
}

static bool lora_add(srv_task *t, const gemma8_lora *a, double scale, char *err, size_t cap) {
    if (t->n_lora == (int)(sizeof t->lora / sizeof t->lora[0])) {
        snprintf(err, cap, "'lora': at most %zu adapters", sizeof t->lora / sizeof t->lora[0]);
        return false;
    }
    t->lora[t->n_lora] = a;
    t->lora_scale[t->n_lora++] = (float)scale;
    return true;
}

bool srv_lora_set(srv *s, const cJSON *body, srv_task *t, char *err, size_t cap) {
    const cJSON *l = cJSON_GetObjectItem(body, "lora"), *m = cJSON_GetObjectItem(body, "model");
    const int by_model = cJSON_IsString(m) ? model_adapter(s, m->valuestring) : -1;
    t->n_lora = 0;
    if (cJSON_IsString(l)) {
        for (int i = 0; i < s->n_lora; i++)
            if (!strcmp(l->valuestring, s->lora[i].name)) return lora_add(t, s->lora[i].a, 1.0, err, cap);
        snprintf(err, cap, "'lora': no adapter named '%.64s' (GET /lora-adapters lists them)", l->valuestring);
        return false;
    }
    if (cJSON_IsArray(l)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, l) {
            const cJSON *id = cJSON_GetObjectItem(e, "id");
            double scale = 1.0;
            if (!cJSON_IsNumber(id) || !srv_whole(id->valuedouble, 0, s->n_lora - 1)) {
                snprintf(err, cap, "'lora': each entry needs an 'id' of a loaded adapter (0..%d)", s->n_lora - 1);
                return false;
            }
            if (!srv_number(e, "scale", -100, 100, &scale, err, cap)) return false;
            if (scale != 0 && !lora_add(t, s->lora[id->valueint].a, scale, err, cap)) return false;
        }
        return true;
    }
    if (l && !cJSON_IsNull(l)) {
        snprintf(err, cap, "'lora' must be a list of {\"id\", \"scale\"} or an adapter's name");
        return false;
    }
    if (by_model >= 0) return lora_add(t, s->lora[by_model].a, 1.0, err, cap);
    for (int i = 0; i < s->n_lora; i++) {
        float scale = atomic_load(&s->lora[i].scale);
        if (scale != 0 && !lora_add(t, s->lora[i].a, scale, err, cap)) return false;
    }
    return true;
}

void srv_token_text(srv *s, int32_t token, char *buf, size_t cap) {
    size_t len;
    if (gemma8_detokenize(s->model, &token, 1, false, buf, cap, &len)) buf[0] = 0;
}

char *srv_events_text(const srv_event *e, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) len += e[i].len;
    char *text = malloc(len + 1);
    if (!text) return NULL;
    len = 0;
    for (int i = 0; i < n; i++) {
        memcpy(text + len, e[i].text, e[i].len);
        len += e[i].len;
    }
    text[len] = 0;
    return text;
}

void srv_buf_add(char **out, size_t *len, const char *prefix, const char *text, const char *suffix) {
    const size_t a = strlen(prefix), b = strlen(text), c = strlen(suffix);
    char *no = realloc(*out, *len + a + b + c + 1);
    if (!no) return;
    memcpy(no + *len, prefix, a);
    memcpy(no + *len + a, text, b);
    memcpy(no + *len + a + b, suffix, c + 1);
    *out = no;
    *len += a + b + c;
}

void srv_buf_json(char **out, size_t *len, const char *prefix, cJSON *j, const char *suffix) {
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (text) srv_buf_add(out, len, prefix, text, suffix);
    free(text);
}

uint32_t srv_random_seed(void) {
    static atomic_uint counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint32_t)ts.tv_sec ^ (uint32_t)ts.tv_nsec ^ (atomic_fetch_add(&counter, 1) * 2654435761u);
}

bool srv_constrain(srv_task *t, const cJSON *json_schema, const char *gbnf, char *err, size_t cap) {
    if (t->grammar) {
        snprintf(err, cap, "only one of response_format/format, json_schema and grammar");
        return false;
    }
    gemma8_status st;
    if (gbnf) {
        st = gemma8_grammar_from_gbnf(gbnf, &t->grammar);
    } else {
        char *text = json_schema ? cJSON_PrintUnformatted(json_schema) : NULL;
        if (json_schema && !text) {
            snprintf(err, cap, "out of memory");
            return false;
        }
        st = gemma8_grammar_from_json_schema(text, &t->grammar);
        free(text);
    }
    if (st) {
        snprintf(err, cap, "%s", gemma8_last_error());
        return false;
    }
    const char *warn = gemma8_grammar_warnings(t->grammar);
    if (warn) fprintf(stderr, "gemma8 serve: warning: %s", warn);
    t->params.grammar = t->grammar;
    return true;
}

bool srv_fail(srv_error *e, unsigned status, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = status;
    e->code = code;
    e->n_prompt = e->n_ctx = 0;
    return false;
}

bool srv_model_known(srv *s, const cJSON *body, srv_error *e) {
    if (srv_model_ok(s, body)) return true;
    const cJSON *m = cJSON_GetObjectItem(body, "model");
    if (m && !cJSON_IsString(m)) return srv_fail(e, 400, NULL, "'model' must be a string");
    return srv_fail(e, 404, "model_not_found", "the model '%.100s' does not exist (this server has '%.100s')",
                    m->valuestring, s->alias);
}

/* "<ours>:<something>": our model under an adapter, which must exist */
static bool names_an_adapter(srv *s, const char *m) {
    size_t la = strlen(s->alias), ln = strlen(s->info.name);
    return (!strncmp(m, s->alias, la) && m[la] == ':') || (!strncmp(m, s->info.name, ln) && m[ln] == ':');
}

bool srv_model_known_lenient(srv *s, const cJSON *body, srv_error *e) {
    const cJSON *m = cJSON_GetObjectItem(body, "model");
    if (s->strict_names || (m && !cJSON_IsNull(m) && !cJSON_IsString(m))) return srv_model_known(s, body, e);
    if (cJSON_IsString(m) && names_an_adapter(s, m->valuestring)) return srv_model_known(s, body, e);
    return true;
}

bool srv_parse_done(srv *s, const cJSON *body, srv_task *t, gemma8_status gs, srv_read_fn read, srv_task **out,
                    srv_error *e) {
    char err[256];
    bool ok = true;
    if (gs == GEMMA8_ERR_CONTEXT_FULL) {
        ok = srv_fail(e, 400, "context_length_exceeded",
                      "the prompt (%d tokens) exceeds the available context size (%d tokens, a slot's)",
                      t->n_prompt, s->n_ctx_slot);
        e->n_prompt = t->n_prompt;
        e->n_ctx = s->n_ctx_slot;
    } else if (gs) {
        ok = srv_fail(e, 400, NULL, "%s", gemma8_last_error());
    }
    if (ok && !read(s, body, t, err, sizeof err)) ok = srv_fail(e, 400, NULL, "%s", err);
    double id_slot = -1;
    if (ok && !srv_number(body, "id_slot", -1, s->n_slots - 1, &id_slot, err, sizeof err))
        ok = srv_fail(e, 400, NULL, "%s", err);
    t->id_slot = (int)id_slot;
    t->no_cache = cJSON_IsFalse(cJSON_GetObjectItem(body, "cache_prompt"));
    t->progress = cJSON_IsTrue(cJSON_GetObjectItem(body, "return_progress")) &&
                  cJSON_IsTrue(cJSON_GetObjectItem(body, "stream"));
    if (ok && !srv_lora_set(s, body, t, err, sizeof err)) ok = srv_fail(e, 400, NULL, "%s", err);
    if (!ok) {
        srv_task_unref(t);
        return false;
    }
    *out = t;
    return true;
}

bool srv_chat_task(srv *s, const cJSON *body, const cJSON *messages, srv_read_fn read, srv_task **out,
                   srv_error *e) {
    char err[256] = "";
    *out = NULL;
    srv_tools tt;
    if (!srv_tools_read(cJSON_GetObjectItem(body, "tools"), cJSON_GetObjectItem(body, "tool_choice"),
                        cJSON_GetObjectItem(body, "parallel_tool_calls"), &tt, err, sizeof err)) {
        srv_tools_free(&tt);
        return srv_fail(e, 400, NULL, "%s", err);
    }
    char *system = tt.n ? srv_tools_prompt(&tt, NULL) : NULL;
    int32_t n;
    char **store;
    gemma8_chat_message *msgs =
        tt.n && !system ? NULL : srv_messages(messages, system, &n, &store, err, sizeof err);
    if (!msgs || !n) {
        if (msgs) srv_messages_free(msgs, n, store);
        srv_tools_free(&tt);
        free(system);
        return srv_fail(e, 400, NULL, "%s", msgs ? "'messages' is empty" : err[0] ? err : "out of memory");
    }
    srv_task *t = srv_task_new(SRV_GENERATE);
    gemma8_status gs = t ? srv_chat_tokens(s, msgs, n, &t->prompt, &t->n_prompt) : GEMMA8_ERR_NOMEM;
    srv_messages_free(msgs, n, store);
    free(system);
    bool ok = t ? srv_parse_done(s, body, t, gs, read, out, e) : srv_fail(e, 500, NULL, "out of memory");
    if (ok && !srv_tools_apply(&tt, *out, err, sizeof err)) {
        srv_task_unref(*out);
        *out = NULL;
        ok = srv_fail(e, 400, NULL, "%s", err);
    }
    srv_tools_free(&tt);
    return ok;
}

bool srv_converted_chat_task(srv *s, const cJSON *body, srv_convert_fn convert, srv_read_fn read,
                             srv_task **out, srv_error *e) {
    char err[256] = "";
    *out = NULL;
    if (!srv_model_known_lenient(s, body, e)) return false;
    cJSON *b = convert(body, err, sizeof err);
    if (!b) return srv_fail(e, 400, NULL, "%s", err[0] ? err : "out of memory");
    bool ok = srv_chat_task(s, b, cJSON_GetObjectItem(b, "messages"), read, out, e);
    cJSON_Delete(b);
    return ok;
}

void srv_log_ignored(const cJSON *body, const char *api, const char *const *keys, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItem(body, keys[i]);
        if (v && !cJSON_IsNull(v))
            fprintf(stderr, "gemma8 serve: %s: '%s' accepted and ignored\n", api, keys[i]);
    }
}

void srv_apply_defaults(const srv *s, gemma8_sampler_params *sp) {
    const srv_defaults *d = &s->dflt;
    if (d->has_temp) sp->temperature = d->temp;
    if (d->has_top_k) sp->top_k = d->top_k;
    if (d->has_top_p) sp->top_p = d->top_p;
    if (d->has_seed) sp->seed = d->seed;
}

cJSON *srv_timings(const srv_task *t) {
    const gemma8_generate_result *r = &t->res;
    const int32_t pn = r->n_prompt - r->n_reused, gn = r->n_generated;
    const double pms = r->prompt_seconds * 1e3, gms = r->gen_seconds * 1e3;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "cache_n", r->n_reused);
    cJSON_AddNumberToObject(o, "prompt_n", pn);
    cJSON_AddNumberToObject(o, "prompt_ms", pms);
    cJSON_AddNumberToObject(o, "prompt_per_token_ms", pn ? pms / pn : 0);
    cJSON_AddNumberToObject(o, "prompt_per_second", pms > 0 ? pn * 1e3 / pms : 0);
    cJSON_AddNumberToObject(o, "predicted_n", gn);
    cJSON_AddNumberToObject(o, "predicted_ms", gms);
    cJSON_AddNumberToObject(o, "predicted_per_token_ms", gn ? gms / gn : 0);
    cJSON_AddNumberToObject(o, "predicted_per_second", gms > 0 ? gn * 1e3 / gms : 0);
    return o;
}

/* One logit_bias entry: a token id (a number, or a key of digits) or a text (each of its tokens). */
static bool bias_add(srv *s, srv_task *t, int *cap_n, const cJSON *key, const char *key_text, const cJSON *v,
                     char *err, size_t cap) {
    float bias;
    if (cJSON_IsFalse(v))
        bias = -INFINITY;
    else if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
        bias = (float)v->valuedouble;
    else {
        snprintf(err, cap, "'logit_bias': a bias must be a number or false");
        return false;
    }
    int32_t one, *ids = &one, n = 1;
    char *end = NULL;
    double id = key ? (cJSON_IsNumber(key) ? key->valuedouble : -1) : strtod(key_text, &end);
    bool is_id = key ? cJSON_IsNumber(key) : (key_text[0] && end && !*end);
    if (is_id) {
        if (!srv_whole(id, 0, s->info.n_vocab - 1)) {
            snprintf(err, cap, "'logit_bias': token %g is not in 0..%d", id, s->info.n_vocab - 1);
            return false;
        }
        one = (int32_t)id;
    } else {
        const char *text = key ? (cJSON_IsString(key) ? key->valuestring : NULL) : key_text;
        if (!text || !text[0] || srv_text_tokens(s, text, false, false, &ids, &n)) {
            snprintf(err, cap, "'logit_bias': an entry must be a token id or a non-empty text");
            return false;
        }
    }
    if (t->params.sampling.n_logit_bias + n > *cap_n) {
        int nc = (t->params.sampling.n_logit_bias + n) * 2;
        gemma8_logit_bias *nb = realloc(t->bias, (size_t)nc * sizeof *nb);
        if (!nb) {
            if (ids != &one) free(ids);
            snprintf(err, cap, "out of memory");
            return false;
        }
        t->bias = nb;
        *cap_n = nc;
    }
    for (int32_t i = 0; i < n; i++)
        t->bias[t->params.sampling.n_logit_bias++] = (gemma8_logit_bias){ids[i], bias};
    if (ids != &one) free(ids);
    t->params.sampling.logit_bias = t->bias;
    return true;
}

bool srv_logit_bias(srv *s, const cJSON *v, srv_task *t, char *err, size_t cap) {
    if (!v || cJSON_IsNull(v)) return true;
    int cap_n = 0;
    if (cJSON_IsObject(v)) {
        for (const cJSON *e = v->child; e; e = e->next)
            if (!bias_add(s, t, &cap_n, NULL, e->string, e, err, cap)) return false;
        return true;
    }
    if (cJSON_IsArray(v)) {
        for (const cJSON *e = v->child; e; e = e->next) {
            if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2) {
                snprintf(err, cap, "'logit_bias': a list entry must be [token id or text, bias or false]");
                return false;
            }
            if (!bias_add(s, t, &cap_n, e->child, NULL, e->child->next, err, cap)) return false;
        }
        return true;
    }
    snprintf(err, cap, "'logit_bias' must be an object or a list");
    return false;
}

/* llama-server's multimodal prompt object {prompt_string} (text only here): its text */
static const cJSON *object_text(const cJSON *p) {
    const cJSON *str = cJSON_GetObjectItem(p, "prompt_string");
    return cJSON_IsObject(p) && cJSON_IsString(str) && !cJSON_GetObjectItem(p, "multimodal_data") ? str
                                                                                                  : NULL;
}

/* llama-server's prompt forms: a text (or {prompt_string}), token ids, or a list mixing both (holding a
 * number) */
static bool one_prompt(const cJSON *p) {
    if (cJSON_IsString(p) || object_text(p)) return true;
    if (!cJSON_IsArray(p) || !p->child) return false;
    bool number = false;
    for (const cJSON *x = p->child; x; x = x->next) {
        if (!cJSON_IsNumber(x) && !cJSON_IsString(x)) return false;
        number = number || cJSON_IsNumber(x);
    }
    return number;
}

int srv_prompt_count(const cJSON *p) {
    if (one_prompt(p)) return 1;
    if (!cJSON_IsArray(p) || !p->child) return 0;
    int n = 0;
    for (const cJSON *x = p->child; x; x = x->next, n++)
        if (!one_prompt(x)) return 0;
    return n;
}

const cJSON *srv_prompt_at(const cJSON *p, int i) {
    if (one_prompt(p)) return p;
    const cJSON *x = p->child;
    while (x && i--) x = x->next;
    return x;
}

gemma8_status srv_prompt_tokens(srv *s, const cJSON *p, bool add_bos, int32_t **out, int32_t *n_out,
                                char *err, size_t cap) {
    *out = NULL;
    *n_out = 0;
    if (object_text(p)) p = object_text(p);
    if (cJSON_IsString(p)) {
        gemma8_status st = srv_text_tokens(s, p->valuestring, add_bos, true, out, n_out);
        if (st && st != GEMMA8_ERR_CONTEXT_FULL) snprintf(err, cap, "%s", gemma8_last_error());
        return st;
    }
    int32_t *ids = NULL, n = 0;
    size_t room = 0;
    bool first = true;
    for (const cJSON *x = p->child; x; x = x->next, first = false) {
        int32_t *part = NULL, np = 0, one;
        if (cJSON_IsNumber(x)) {
            if (!srv_whole(x->valuedouble, 0, s->info.n_vocab - 1)) {
                free(ids);
                snprintf(err, cap, "token ids must be integers in 0..%d", s->info.n_vocab - 1);
                return GEMMA8_ERR_INVALID_ARG;
            }
            one = (int32_t)x->valuedouble;
            part = &one;
            np = 1;
        } else {
            gemma8_status st = srv_text_tokens(s, x->valuestring, add_bos && first, true, &part, &np);
            if (st) {
                free(ids);
                if (st != GEMMA8_ERR_CONTEXT_FULL) snprintf(err, cap, "%s", gemma8_last_error());
                *n_out = n + np;
                return st;
            }
        }
        if ((size_t)(n + np) > room) {
            room = (size_t)(n + np) * 2;
            int32_t *ni = realloc(ids, room * sizeof *ni);
            if (!ni) {
                if (part != &one) free(part);
                free(ids);
                snprintf(err, cap, "out of memory");
                return GEMMA8_ERR_NOMEM;
            }
            ids = ni;
        }
        memcpy(ids + n, part, (size_t)np * sizeof *ids);
        n += np;
        if (part != &one) free(part);
    }
    *out = ids;
    *n_out = n;
    return n >= s->n_ctx_slot ? GEMMA8_ERR_CONTEXT_FULL : GEMMA8_OK;
}

cJSON *srv_progress_of(const srv_task *t, const srv_event *e) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "total", t->n_prompt);
    cJSON_AddNumberToObject(p, "cache", e->cached);
    cJSON_AddNumberToObject(p, "processed", e->processed);
    cJSON_AddNumberToObject(p, "time_ms", e->ms);
    return p;
}

char *srv_prompt_text(srv *s, const srv_task *t) {
    size_t cap = (size_t)t->n_prompt * 64 + 16, len = 0;
    char *text = malloc(cap);
    if (text && gemma8_detokenize(s->model, t->prompt, t->n_prompt, false, text, cap, &len)) len = 0;
    if (text) text[len] = 0;
    return text;
}
