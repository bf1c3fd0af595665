/* responses.c - OpenAI's Responses API: POST /v1/responses (streamed as its events or not). A
 * request's input (a string, or items: messages, function_call, function_call_output) becomes the
 * chat request srv_chat_task reads; the reply becomes a message item and function_call items.
 * Responses are not stored: previous_response_id is refused with the reason. */
#include "server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_ullong g_next_resp = 1;

/* ---- the request ------------------------------------------------------------------------- */

/* A message item's text: a string, or parts of type input_text / output_text / text. */
static char *item_text(const cJSON *content, int k, char *err, size_t cap) {
    if (cJSON_IsString(content)) return strdup(content->valuestring);
    if (!cJSON_IsArray(content)) {
        snprintf(err, cap, "input[%d]: 'content' must be a string or a list of parts", k);
        return NULL;
    }
    char *out = NULL;
    size_t len = 0;
    int i = 0;
    for (const cJSON *p = content->child; p; p = p->next, i++) {
        const cJSON *type = cJSON_GetObjectItem(p, "type"), *text = cJSON_GetObjectItem(p, "text");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        if ((strcmp(t, "input_text") && strcmp(t, "output_text") && strcmp(t, "text")) ||
            !cJSON_IsString(text)) {
            snprintf(err, cap, "input[%d].content[%d]: parts of type '%.40s' are not supported%s", k, i, t,
                     strstr(t, "image") || strstr(t, "file") || strstr(t, "audio")
                         ? " (gemma8 reads text only)"
                         : "");
            free(out);
            return NULL;
        }
        srv_buf_add(&out, &len, "", text->valuestring, "");
    }
    return out ? out : strdup("");
}

/* The last converted message if it is the assistant's (function calls join it), else a new one. */
static cJSON *assistant_for_calls(cJSON *out) {
    cJSON *last = cJSON_GetArrayItem(out, cJSON_GetArraySize(out) - 1);
    const cJSON *role = cJSON_GetObjectItem(last, "role");
    if (last && cJSON_IsString(role) && !strcmp(role->valuestring, "assistant")) return last;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", "");
    cJSON_AddItemToArray(out, m);
    return m;
}

static bool convert_item(const cJSON *it, int k, cJSON *out, bool *dropped, char *err, size_t cap) {
    const cJSON *type = cJSON_GetObjectItem(it, "type"), *role = cJSON_GetObjectItem(it, "role");
    const char *t = cJSON_IsString(type) ? type->valuestring : "message";
    if (!cJSON_IsObject(it)) {
        snprintf(err, cap, "input[%d] must be an object", k);
        return false;
    }
    if (!strcmp(t, "message")) {
        const char *r = cJSON_IsString(role) ? role->valuestring : "";
        if (strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "system") && strcmp(r, "developer")) {
            snprintf(err, cap, "input[%d]: 'role' must be user, assistant, system or developer", k);
            return false;
        }
        char *text = item_text(cJSON_GetObjectItem(it, "content"), k, err, cap);
        if (!text) return false;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", r);
        cJSON_AddStringToObject(m, "content", text);
        free(text);
        cJSON_AddItemToArray(out, m);
        return true;
    }
    if (!strcmp(t, "function_call")) {
        const cJSON *id = cJSON_GetObjectItem(it, "call_id"), *name = cJSON_GetObjectItem(it, "name");
        const cJSON *args = cJSON_GetObjectItem(it, "arguments");
        if (!cJSON_IsString(id) || !cJSON_IsString(name)) {
            snprintf(err, cap, "input[%d]: a function_call needs 'call_id' and 'name'", k);
            return false;
        }
        cJSON *m = assistant_for_calls(out);
        cJSON *calls = cJSON_GetObjectItem(m, "tool_calls");
        if (!calls) calls = cJSON_AddArrayToObject(m, "tool_calls");
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "id", id->valuestring);
        cJSON_AddStringToObject(c, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(c, "function");
        cJSON_AddStringToObject(fn, "name", name->valuestring);
        cJSON_AddStringToObject(fn, "arguments", cJSON_IsString(args) ? args->valuestring : "{}");
        cJSON_AddItemToArray(calls, c);
        return true;
    }
    if (!strcmp(t, "function_call_output")) {
        const cJSON *id = cJSON_GetObjectItem(it, "call_id"), *output = cJSON_GetObjectItem(it, "output");
        char *text = cJSON_IsString(output) ? strdup(output->valuestring) : item_text(output, k, err, cap);
        if (!cJSON_IsString(id) || !text) {
            if (text) snprintf(err, cap, "input[%d]: a function_call_output needs 'call_id'", k);
            free(text);
            return false;
        }
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "tool");
        cJSON_AddStringToObject(m, "tool_call_id", id->valuestring);
        cJSON_AddStringToObject(m, "content", text);
        free(text);
        cJSON_AddItemToArray(out, m);
        return true;
    }
    if (!strcmp(t, "reasoning")) {
        *dropped = true; /* Gemma has no reasoning items: left out */
        return true;
    }
    snprintf(err, cap, "input[%d]: items of type '%.40s' are not supported", k, t);
    return false;
}

/* text.format: text, json_object, json_schema {name, schema, strict} */
static bool read_fields(srv *s, const cJSON *b, srv_task *t, char *err, size_t cap) {
    gemma8_sampler_params *sp = &t->params.sampling;
    double temp = s->dflt.has_temp ? s->dflt.temp : 1.0, top_p = s->dflt.has_top_p ? s->dflt.top_p : 1.0;
    double max_tokens = -1;
    if (!srv_number(b, "max_output_tokens", 1, 2147483647.0, &max_tokens, err, cap) ||
        !srv_number(b, "temperature", 0, 2, &temp, err, cap) ||
        !srv_number(b, "top_p", 0, 1, &top_p, err, cap))
        return false;
    sp->temperature = (float)temp;
    sp->top_p = top_p > 0 ? (float)top_p : 1e-6f;
    sp->top_k = s->dflt.has_top_k ? s->dflt.top_k : 0;
    sp->min_p = 0;
    sp->repeat_penalty = 1;
    sp->seed = s->dflt.has_seed ? s->dflt.seed : srv_random_seed();
    t->params.max_new_tokens =
        max_tokens < 0 || max_tokens > s->n_ctx_slot ? s->n_ctx_slot : (int32_t)max_tokens;
    const cJSON *fmt = cJSON_GetObjectItem(cJSON_GetObjectItem(b, "text"), "format");
    const cJSON *type = cJSON_GetObjectItem(fmt, "type");
    if (!fmt || cJSON_IsNull(fmt)) return true;
    if (!cJSON_IsString(type)) {
        snprintf(err, cap, "'text.format' must be an object with a 'type'");
        return false;
    }
    if (!strcmp(type->valuestring, "text")) return true;
    if (!strcmp(type->valuestring, "json_object")) return srv_constrain(t, NULL, NULL, err, cap);
    if (!strcmp(type->valuestring, "json_schema")) {
        const cJSON *schema = cJSON_GetObjectItem(fmt, "schema");
        if (!cJSON_IsObject(schema)) {
            snprintf(err, cap, "'text.format.schema' must be an object (a JSON schema)");
            return false;
        }
        return srv_constrain(t, schema, NULL, err, cap);
    }
    snprintf(err, cap, "'text.format': type '%.40s' is not text, json_object or json_schema",
             type->valuestring);
    return false;
}

/* The request as a chat request (messages, tools, tool_choice, parallel_tool_calls), or NULL. */
static cJSON *chat_body(const cJSON *body, char *err, size_t cap) {
    const cJSON *input = cJSON_GetObjectItem(body, "input"),
                *prev = cJSON_GetObjectItem(body, "previous_response_id");
    if (prev && !cJSON_IsNull(prev)) {
        snprintf(err, cap,
                 "previous_response_id: gemma8 does not store responses; send the whole conversation in "
                 "'input'");
        return NULL;
    }
    if (!cJSON_IsString(input) && !(cJSON_IsArray(input) && cJSON_GetArraySize(input))) {
        snprintf(err, cap, "'input' must be a string or a non-empty list of items");
        return NULL;
    }
    cJSON *b = cJSON_Duplicate(body, true);
    cJSON *out = cJSON_CreateArray();
    const cJSON *instr = cJSON_GetObjectItem(body, "instructions");
    if (cJSON_IsString(instr) && instr->valuestring[0]) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", instr->valuestring);
        cJSON_AddItemToArray(out, m);
    }
    bool ok = true, dropped = false;
    if (cJSON_IsString(input)) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", input->valuestring);
        cJSON_AddItemToArray(out, m);
    }
    int k = 0;
    for (const cJSON *it = cJSON_IsArray(input) ? input->child : NULL; it && ok; it = it->next, k++)
        ok = convert_item(it, k, out, &dropped, err, cap);
    /* allowed_tools {mode}: its mode is the choice (the list itself is not narrowed) */
    const cJSON *choice = cJSON_GetObjectItem(body, "tool_choice");
    const cJSON *ctype = cJSON_GetObjectItem(choice, "type");
    if (cJSON_IsString(ctype) && !strcmp(ctype->valuestring, "allowed_tools")) {
        const cJSON *mode = cJSON_GetObjectItem(choice, "mode");
        cJSON_ReplaceItemInObject(b, "tool_choice",
                                  cJSON_CreateString(cJSON_IsString(mode) ? mode->valuestring : "auto"));
        fprintf(stderr, "gemma8 serve: /v1/responses: tool_choice allowed_tools read as its mode\n");
    }
    cJSON_DeleteItemFromObject(b, "messages");
    cJSON_AddItemToObject(b, "messages", out);
    static const char *const ignored[] = {
        "reasoning",        "metadata",     "include",           "store",      "truncation",     "user",
        "prompt_cache_key", "service_tier", "safety_identifier", "background", "client_metadata"};
    if (ok) srv_log_ignored(body, "/v1/responses", ignored, sizeof ignored / sizeof *ignored);
    if (ok && dropped)
        fprintf(stderr, "gemma8 serve: /v1/responses: reasoning items in the input left out\n");
    if (ok) return b;
    cJSON_Delete(b);
    return NULL;
}

bool responses_parse(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    return srv_converted_chat_task(s, body, chat_body, read_fields, out, e);
}

/* ---- the reply ------------------------------------------------------------------------------ */

typedef struct rs_stream {
    unsigned long long n; /* the response's number: its ids */
    long created;
    cJSON *req; /* the request's fields echoed in the response object */
    int seen;
    int phase;      /* 0: created to send, 1: items, 2: done */
    int seq;        /* sequence_number of the next event */
    bool text_open; /* the message item is open (output index msg_index) */
    int msg_index, items;
    char *text; /* the message's text so far */
    size_t text_len;
    srv_reply_parse rp;
    int calls;
    cJSON *output; /* the items done */
    bool timings;  /* llama-server's timings_per_token: timings in each text delta */
} rs_stream;

static cJSON *text_part(const char *text) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "output_text");
    cJSON_AddStringToObject(p, "text", text ? text : "");
    cJSON_AddArrayToObject(p, "annotations");
    return p;
}

static cJSON *message_item(const rs_stream *st, const char *status, const char *text) {
    cJSON *m = cJSON_CreateObject();
    char id[64];
    snprintf(id, sizeof id, "msg_%llx", st->n);
    cJSON_AddStringToObject(m, "type", "message");
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "status", status);
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON *content = cJSON_AddArrayToObject(m, "content");
    if (text) cJSON_AddItemToArray(content, text_part(text));
    return m;
}

static cJSON *call_item(const rs_stream *st, const cJSON *call, int k, const char *status, bool args) {
    cJSON *o = cJSON_CreateObject();
    char id[64];
    cJSON_AddStringToObject(o, "type", "function_call");
    snprintf(id, sizeof id, "fc_%llx_%d", st->n, k);
    cJSON_AddStringToObject(o, "id", id);
    snprintf(id, sizeof id, "call_%llx_%d", st->n, k);
    cJSON_AddStringToObject(o, "call_id", id);
    cJSON_AddItemToObject(o, "name", cJSON_Duplicate(cJSON_GetObjectItem(call, "name"), true));
    char *a = args ? cJSON_PrintUnformatted(cJSON_GetObjectItem(call, "arguments")) : NULL;
    cJSON_AddStringToObject(o, "arguments", a ? a : "");
    free(a);
    cJSON_AddStringToObject(o, "status", status);
    return o;
}

/* The response object: status, the items (output, taken), usage when done. */
static cJSON *response(srv *s, const rs_stream *st, const srv_task *t, const char *status, cJSON *output) {
    cJSON *o = cJSON_CreateObject();
    char id[48];
    snprintf(id, sizeof id, "resp_%llx", st->n);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddNumberToObject(o, "created_at", (double)st->created);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddNullToObject(o, "error");
    if (!strcmp(status, "incomplete"))
        cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "incomplete_details"), "reason",
                                "max_output_tokens");
    else
        cJSON_AddNullToObject(o, "incomplete_details");
    cJSON_AddStringToObject(o, "model", s->alias);
    cJSON_AddItemToObject(o, "output", output ? output : cJSON_CreateArray());
    for (const cJSON *f = st->req->child; f; f = f->next)
        cJSON_AddItemToObject(o, f->string, cJSON_Duplicate(f, true));
    if (strcmp(status, "in_progress")) {
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "input_tokens", t->res.n_prompt);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "input_tokens_details"), "cached_tokens",
                                t->res.n_reused);
        cJSON_AddNumberToObject(u, "output_tokens", t->res.n_generated);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "output_tokens_details"), "reasoning_tokens", 0);
        cJSON_AddNumberToObject(u, "total_tokens", t->res.n_prompt + t->res.n_generated);
    } else {
        cJSON_AddNullToObject(o, "usage");
    }
    return o;
}

static void event(rs_stream *st, char **out, size_t *len, const char *type, cJSON *o) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNumberToObject(e, "sequence_number", st->seq++);
    for (cJSON *f = o ? o->child : NULL; f;) {
        cJSON *next = f->next;
        cJSON_AddItemToObject(e, f->string, cJSON_DetachItemViaPointer(o, f));
        f = next;
    }
    cJSON_Delete(o);
    char pre[96];
    snprintf(pre, sizeof pre, "event: %s\ndata: ", type);
    srv_buf_json(out, len, pre, e, "\n\n");
}

static cJSON *fields(const char *k1, cJSON *v1, const char *k2, cJSON *v2) {
    cJSON *o = cJSON_CreateObject();
    if (k1) cJSON_AddItemToObject(o, k1, v1);
    if (k2) cJSON_AddItemToObject(o, k2, v2);
    return o;
}

static void close_text(rs_stream *st, char **out, size_t *len) {
    if (!st->text_open) return;
    char id[64];
    snprintf(id, sizeof id, "msg_%llx", st->n);
    cJSON *o = fields("item_id", cJSON_CreateString(id), "output_index", cJSON_CreateNumber(st->msg_index));
    cJSON_AddNumberToObject(o, "content_index", 0);
    cJSON_AddStringToObject(o, "text", st->text ? st->text : "");
    event(st, out, len, "response.output_text.done", o);
    o = fields("item_id", cJSON_CreateString(id), "output_index", cJSON_CreateNumber(st->msg_index));
    cJSON_AddNumberToObject(o, "content_index", 0);
    cJSON_AddItemToObject(o, "part", text_part(st->text));
    event(st, out, len, "response.content_part.done", o);
    cJSON *item = message_item(st, "completed", st->text ? st->text : "");
    cJSON_AddItemToArray(st->output, cJSON_Duplicate(item, true));
    event(st, out, len, "response.output_item.done",
          fields("output_index", cJSON_CreateNumber(st->msg_index), "item", item));
    st->text_open = false;
}

static void news(rs_stream *st, const srv_task *t, const srv_event *ev, int n, bool end, char **out,
                 size_t *len) {
    char *text = NULL;
    size_t tlen = 0;
    cJSON *calls = cJSON_CreateArray();
    for (int k = 0; k < n; k++) /* llama-server's return_progress: the prompt's progress first */
        if (ev[k].token == SRV_PROGRESS)
            event(st, out, len, "response.in_progress",
                  fields("prompt_progress", srv_progress_of(t, &ev[k]), NULL, NULL));
    srv_reply_read(&st->rp, t->tools, ev, n, end, &text, &tlen, calls);
    char id[64];
    snprintf(id, sizeof id, "msg_%llx", st->n);
    if (tlen && !st->text_open) {
        st->text_open = true;
        st->msg_index = st->items++;
        event(st, out, len, "response.output_item.added",
              fields("output_index", cJSON_CreateNumber(st->msg_index), "item",
                     message_item(st, "in_progress", NULL)));
        cJSON *o =
            fields("item_id", cJSON_CreateString(id), "output_index", cJSON_CreateNumber(st->msg_index));
        cJSON_AddNumberToObject(o, "content_index", 0);
        cJSON_AddItemToObject(o, "part", text_part(""));
        event(st, out, len, "response.content_part.added", o);
    }
    if (tlen) {
        srv_buf_add(&st->text, &st->text_len, "", text, "");
        cJSON *o =
            fields("item_id", cJSON_CreateString(id), "output_index", cJSON_CreateNumber(st->msg_index));
        cJSON_AddNumberToObject(o, "content_index", 0);
        cJSON_AddStringToObject(o, "delta", text);
        if (st->timings) cJSON_AddItemToObject(o, "timings", srv_timings(t));
        event(st, out, len, "response.output_text.delta", o);
    }
    free(text);
    for (const cJSON *c = calls->child; c; c = c->next, st->calls++) {
        close_text(st, out, len);
        const int index = st->items++;
        cJSON *added = call_item(st, c, st->calls, "in_progress", false);
        char fid[64];
        snprintf(fid, sizeof fid, "%s", cJSON_GetObjectItem(added, "id")->valuestring);
        event(st, out, len, "response.output_item.added",
              fields("output_index", cJSON_CreateNumber(index), "item", added));
        char *args = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "arguments"));
        cJSON *o = fields("item_id", cJSON_CreateString(fid), "output_index", cJSON_CreateNumber(index));
        cJSON_AddStringToObject(o, "delta", args ? args : "{}");
        event(st, out, len, "response.function_call_arguments.delta", o);
        o = fields("item_id", cJSON_CreateString(fid), "output_index", cJSON_CreateNumber(index));
        cJSON_AddStringToObject(o, "arguments", args ? args : "{}");
        event(st, out, len, "response.function_call_arguments.done", o);
        free(args);
        cJSON *done = call_item(st, c, st->calls, "completed", true);
        cJSON_AddItemToArray(st->output, cJSON_Duplicate(done, true));
        event(st, out, len, "response.output_item.done",
              fields("output_index", cJSON_CreateNumber(index), "item", done));
    }
    cJSON_Delete(calls);
}

static const char *final_status(const srv_task *t) {
    return t->res.stop_reason == GEMMA8_STOP_LENGTH || t->res.stop_reason == GEMMA8_STOP_CONTEXT
               ? "incomplete"
               : "completed";
}

static long stream_next(srv_conn *c, srv_task *t, void *state, char **out) {
    srv *s = srv_of(c);
    rs_stream *st = state;
    size_t len = 0;
    *out = NULL;
    if (st->phase == 2) return -1;
    if (st->phase == 0) {
        event(st, out, &len, "response.created",
              fields("response", response(s, st, t, "in_progress", NULL), NULL, NULL));
        event(st, out, &len, "response.in_progress",
              fields("response", response(s, st, t, "in_progress", NULL), NULL, NULL));
        st->phase = 1;
        return (long)len;
    }
    if (!srv_task_wait(t, st->seen, 1.0)) return 0;
    bool done;
    srv_event *ev;
    const int n = srv_task_events(t, st->seen, &ev, &done);
    news(st, t, ev, n, done && !t->status, out, &len);
    free(ev);
    st->seen += n;
    if (!done) return (long)len;
    st->phase = 2;
    if (t->status) {
        cJSON *o = fields(
            "code", cJSON_CreateString(srv_task_error_code(s, t) ? "server_is_overloaded" : "server_error"),
            "message", cJSON_CreateString(t->error));
        cJSON_AddNullToObject(o, "param");
        event(st, out, &len, "error", o);
        return (long)len;
    }
    close_text(st, out, &len);
    const char *status = final_status(t);
    cJSON *r = response(s, st, t, status, cJSON_Duplicate(st->output, true));
    event(st, out, &len, !strcmp(status, "completed") ? "response.completed" : "response.incomplete",
          fields("response", r, "timings", srv_timings(t))); /* timings: llama-server's */
    srv_conn_log_tokens(c, t->res.n_prompt, t->res.n_reused, t->res.n_generated);
    return (long)len;
}

static void stream_free(void *p) {
    rs_stream *st = p;
    free(st->rp.buf);
    free(st->text);
    cJSON_Delete(st->output);
    cJSON_Delete(st->req);
    free(st);
}

/* The request's fields a response echoes (as OpenAI's does). */
static cJSON *echo(const cJSON *body) {
    cJSON *o = cJSON_CreateObject();
    static const char *const keys[] = {"instructions", "max_output_tokens", "temperature",         "top_p",
                                       "tools",        "tool_choice",       "parallel_tool_calls", "text",
                                       "metadata"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const cJSON *v = cJSON_GetObjectItem(body, keys[i]);
        cJSON_AddItemToObject(o, keys[i], v ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
    }
    cJSON_AddFalseToObject(o, "store");
    return o;
}

int responses_create(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    srv_task *t;
    srv_error e;
    if (!responses_parse(s, body, &t, &e)) return srv_reply_refusal(c, &e);
    rs_stream *st = calloc(1, sizeof *st);
    if (!st) {
        srv_task_unref(t);
        return SRV_FAIL;
    }
    st->n = atomic_fetch_add(&g_next_resp, 1);
    st->created = (long)time(NULL);
    st->req = echo(body);
    st->output = cJSON_CreateArray();
    st->timings = cJSON_IsTrue(cJSON_GetObjectItem(body, "timings_per_token"));
    if (cJSON_IsTrue(cJSON_GetObjectItem(body, "stream"))) {
        if (!srv_submit(s->sched, t)) {
            srv_task_unref(t);
            stream_free(st);
            return srv_reply_error(c, 503, "server_error", "queue_full",
                                   "every slot is busy and the queue is full");
        }
        int rc = srv_reply_stream(c, "text/event-stream", t, stream_next, st, stream_free);
        srv_task_unref(t); /* the stream holds it */
        return rc;
    }
    int rc = srv_run_task(c, t);
    if (rc < 0) { /* the same items as the stream makes, without its events */
        srv_event *ev;
        const int n = srv_task_events(t, 0, &ev, NULL);
        char *sink = NULL;
        size_t sink_len = 0;
        news(st, t, ev, n, true, &sink, &sink_len);
        close_text(st, &sink, &sink_len);
        free(sink);
        free(ev);
        cJSON *o = response(s, st, t, final_status(t), st->output);
        st->output = NULL;
        srv_conn_log_tokens(c, t->res.n_prompt, t->res.n_reused, t->res.n_generated);
        rc = srv_reply_json(c, 200, o);
    }
    srv_task_unref(t);
    stream_free(st);
    return rc;
}
