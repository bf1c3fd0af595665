/* anthropic.c - Anthropic's Messages API: POST /v1/messages (streamed as its events or not) and
 * POST /v1/messages/count_tokens. A request becomes the chat request srv_chat_task reads (its
 * system blocks, text / tool_use / tool_result blocks as messages, tool calls and results);
 * the reply's text and calls become text and tool_use blocks. What agents such as Claude Code
 * send that a local Gemma has no use for (cache_control, metadata, thinking, service_tier) is
 * accepted and logged once a request, never refused. */
#include "server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_ullong g_next_msg = 1;

/* ---- the request ------------------------------------------------------------------------- */

/* The text of a content that is a string or a list of blocks of type text (others: err). */
static char *block_text(const cJSON *content, const char *what, char *err, size_t cap) {
    char *out = NULL;
    size_t len = 0;
    if (cJSON_IsString(content)) {
        srv_buf_add(&out, &len, "", content->valuestring, "");
        return out ? out : strdup("");
    }
    if (content && !cJSON_IsArray(content) && !cJSON_IsNull(content)) {
        snprintf(err, cap, "%s must be a string or a list of text blocks", what);
        return NULL;
    }
    int i = 0;
    for (const cJSON *b = content ? content->child : NULL; b; b = b->next, i++) {
        const cJSON *type = cJSON_GetObjectItem(b, "type"), *text = cJSON_GetObjectItem(b, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text)) {
            snprintf(err, cap, "%s: block %d is not a text block (gemma8 reads text only)", what, i);
            free(out);
            return NULL;
        }
        srv_buf_add(&out, &len, len ? "\n\n" : "", text->valuestring, "");
    }
    return out ? out : strdup("");
}

/* One Anthropic message into OpenAI-shaped messages appended to out: a user's tool_result blocks
 * as tool messages (first, as they answer the turn before), its text as a user message; an
 * assistant's text and tool_use blocks as one message with tool_calls. */
static bool convert_message(const cJSON *m, int k, cJSON *out, bool *dropped, char *err, size_t cap) {
    const cJSON *role = cJSON_GetObjectItem(m, "role"), *content = cJSON_GetObjectItem(m, "content");
    /* system: a mid-conversation system message (Claude Code sends them), read as Gemma's template can */
    if (!cJSON_IsObject(m) || !cJSON_IsString(role) ||
        (strcmp(role->valuestring, "user") && strcmp(role->valuestring, "assistant") &&
         strcmp(role->valuestring, "system"))) {
        snprintf(err, cap, "messages.%d: 'role' must be user, assistant or system", k);
        return false;
    }
    const bool user = strcmp(role->valuestring, "assistant") != 0;
    if (cJSON_IsString(content)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", role->valuestring);
        cJSON_AddStringToObject(o, "content", content->valuestring);
        cJSON_AddItemToArray(out, o);
        return true;
    }
    if (!cJSON_IsArray(content)) {
        snprintf(err, cap, "messages.%d: 'content' must be a string or a list of blocks", k);
        return false;
    }
    char *text = NULL;
    size_t len = 0;
    cJSON *calls = cJSON_CreateArray();
    int i = 0;
    bool ok = true;
    for (const cJSON *b = content->child; b && ok; b = b->next, i++) {
        const cJSON *type = cJSON_GetObjectItem(b, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        if (!strcmp(t, "text") && cJSON_IsString(cJSON_GetObjectItem(b, "text"))) {
            srv_buf_add(&text, &len, len ? "\n\n" : "", cJSON_GetObjectItem(b, "text")->valuestring, "");
        } else if (!strcmp(t, "tool_use") && !user) {
            const cJSON *id = cJSON_GetObjectItem(b, "id"), *name = cJSON_GetObjectItem(b, "name");
            const cJSON *input = cJSON_GetObjectItem(b, "input");
            if (!cJSON_IsString(id) || !cJSON_IsString(name)) {
                snprintf(err, cap, "messages.%d.content.%d: a tool_use block needs 'id' and 'name'", k, i);
                ok = false;
                break;
            }
            char *args = input ? cJSON_PrintUnformatted(input) : strdup("{}");
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "id", id->valuestring);
            cJSON_AddStringToObject(c, "type", "function");
            cJSON *fn = cJSON_AddObjectToObject(c, "function");
            cJSON_AddStringToObject(fn, "name", name->valuestring);
            cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
            free(args);
            cJSON_AddItemToArray(calls, c);
        } else if (!strcmp(t, "tool_result") && user) {
            const cJSON *id = cJSON_GetObjectItem(b, "tool_use_id");
            char what[64];
            snprintf(what, sizeof what, "messages.%d.content.%d.content", k, i);
            char *result = block_text(cJSON_GetObjectItem(b, "content"), what, err, cap);
            if (!cJSON_IsString(id) || !result) {
                if (result)
                    snprintf(err, cap, "messages.%d.content.%d: a tool_result needs 'tool_use_id'", k, i);
                free(result);
                ok = false;
                break;
            }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "role", "tool");
            cJSON_AddStringToObject(o, "tool_call_id", id->valuestring);
            if (cJSON_IsTrue(cJSON_GetObjectItem(b, "is_error"))) {
                char *e = NULL;
                size_t el = 0;
                srv_buf_add(&e, &el, "error: ", result, "");
                free(result);
                result = e;
            }
            cJSON_AddStringToObject(o, "content", result ? result : "");
            free(result);
            cJSON_AddItemToArray(out, o);
        } else if (!strcmp(t, "thinking") || !strcmp(t, "redacted_thinking")) {
            *dropped = true; /* Gemma has no thinking: a client's earlier thinking is left out */
        } else {
            snprintf(err, cap, "messages.%d.content.%d: blocks of type '%.40s' are not supported%s", k, i, t,
                     !strcmp(t, "image") || !strcmp(t, "document") ? " (gemma8 reads text only)" : "");
            ok = false;
        }
    }
    if (ok && (len || cJSON_GetArraySize(calls) || (!user && !cJSON_GetArraySize(calls)))) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", role->valuestring);
        cJSON_AddStringToObject(o, "content", text ? text : "");
        if (cJSON_GetArraySize(calls)) {
            cJSON_AddItemToObject(o, "tool_calls", calls);
            calls = NULL;
        }
        cJSON_AddItemToArray(out, o);
    }
    cJSON_Delete(calls);
    free(text);
    return ok;
}

/* Anthropic's sampling fields: max_tokens (required), temperature 0..1, top_p, top_k, stop_sequences. */
static bool read_fields(srv *s, const cJSON *b, srv_task *t, char *err, size_t cap) {
    gemma8_sampler_params *sp = &t->params.sampling;
    double temp = s->dflt.has_temp ? s->dflt.temp : 1.0, top_p = 1, top_k = 0, max_tokens = -1;
    if (!srv_number(b, "max_tokens", 1, 2147483647.0, &max_tokens, err, cap) ||
        !srv_number(b, "temperature", 0, 1, &temp, err, cap) ||
        !srv_number(b, "top_p", 0, 1, &top_p, err, cap) || !srv_number(b, "top_k", 0, 1e6, &top_k, err, cap))
        return false;
    if (max_tokens < 0) {
        snprintf(err, cap, "max_tokens: Field required");
        return false;
    }
    if (!srv_stop(cJSON_GetObjectItem(b, "stop_sequences"), t, err, cap)) return false;
    sp->temperature = (float)temp;
    sp->top_p = top_p > 0 ? (float)top_p : 1e-6f;
    sp->top_k = (int32_t)top_k;
    sp->min_p = 0;
    sp->repeat_penalty = 1;
    sp->seed = s->dflt.has_seed ? s->dflt.seed : srv_random_seed();
    t->params.max_new_tokens = max_tokens > s->n_ctx_slot ? s->n_ctx_slot : (int32_t)max_tokens;
    return true;
}

/* The request as the chat request srv_chat_task reads (a new body: messages, tools, tool_choice,
 * parallel_tool_calls), or NULL with err. */
static cJSON *chat_body(const cJSON *body, char *err, size_t cap) {
    const cJSON *msgs = cJSON_GetObjectItem(body, "messages");
    if (!cJSON_IsArray(msgs)) {
        snprintf(err, cap, "messages: Field required (a list)");
        return NULL;
    }
    cJSON *b = cJSON_Duplicate(body, true);
    cJSON *out = cJSON_CreateArray();
    bool dropped = false, ok = true;
    const cJSON *system = cJSON_GetObjectItem(body, "system");
    if (system && !cJSON_IsNull(system)) {
        char *text = block_text(system, "system", err, cap);
        ok = text != NULL;
        if (ok && *text) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "role", "system");
            cJSON_AddStringToObject(o, "content", text);
            cJSON_AddItemToArray(out, o);
        }
        free(text);
    }
    int k = 0;
    for (const cJSON *m = msgs->child; m && ok; m = m->next, k++)
        ok = convert_message(m, k, out, &dropped, err, cap);
    if (ok && !cJSON_GetArraySize(msgs)) { /* none: an empty user turn (llama-server accepts it too) */
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", "user");
        cJSON_AddStringToObject(o, "content", "");
        cJSON_AddItemToArray(out, o);
    }
    const cJSON *choice = cJSON_GetObjectItem(body, "tool_choice");
    if (cJSON_IsTrue(cJSON_GetObjectItem(choice, "disable_parallel_tool_use")))
        cJSON_AddFalseToObject(b, "parallel_tool_calls");
    cJSON_DeleteItemFromObject(b, "messages");
    cJSON_AddItemToObject(b, "messages", out);
    /* fields for the cloud service and for models that think: accepted, said once */
    static const char *const ignored[] = {"metadata",    "thinking",           "service_tier", "container",
                                          "mcp_servers", "context_management", "output_config"};
    if (ok) srv_log_ignored(body, "/v1/messages", ignored, sizeof ignored / sizeof *ignored);
    if (ok && dropped)
        fprintf(stderr, "gemma8 serve: /v1/messages: thinking blocks in the history left out\n");
    if (ok) return b;
    cJSON_Delete(b);
    return NULL;
}

bool anthropic_parse(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    return srv_converted_chat_task(s, body, chat_body, read_fields, out, e);
}

/* ---- the reply ------------------------------------------------------------------------------ */

typedef struct an_stream {
    char id[48];
    int seen;
    int phase;          /* 0: message_start to send, 1: blocks, 2: done */
    int block;          /* the next block's index */
    bool text_open;     /* a text block is open (its index block - 1) */
    srv_reply_parse rp; /* the reply read as text or calls */
    int calls;
} an_stream;

static const char *stop_reason(const srv_task *t, int calls) {
    if (t->res.stop_reason == GEMMA8_STOP_LENGTH || t->res.stop_reason == GEMMA8_STOP_CONTEXT)
        return "max_tokens";
    if (calls) return "tool_use";
    return t->res.stop_reason == GEMMA8_STOP_STRING ? "stop_sequence" : "end_turn";
}

/* usage; before the run (message_start) the prompt's tokens, its cache reads not known yet */
static cJSON *usage(const srv_task *t, bool final) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "input_tokens", final ? t->res.n_prompt - t->res.n_reused : t->n_prompt);
    cJSON_AddNumberToObject(u, "cache_read_input_tokens", final ? t->res.n_reused : 0);
    cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 0);
    cJSON_AddNumberToObject(u, "output_tokens", final ? t->res.n_generated : 0);
    return u;
}

static cJSON *tool_use(const an_stream *st, const cJSON *call, int k, bool with_input) {
    cJSON *o = cJSON_CreateObject();
    char id[96];
    snprintf(id, sizeof id, "toolu_%s_%d", st->id + 4, k);
    cJSON_AddStringToObject(o, "type", "tool_use");
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddItemToObject(o, "name", cJSON_Duplicate(cJSON_GetObjectItem(call, "name"), true));
    cJSON_AddItemToObject(o, "input",
                          with_input ? cJSON_Duplicate(cJSON_GetObjectItem(call, "arguments"), true)
                                     : cJSON_CreateObject());
    return o;
}

static cJSON *message(srv *s, const an_stream *st, const srv_task *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", st->id);
    cJSON_AddStringToObject(o, "type", "message");
    cJSON_AddStringToObject(o, "role", "assistant");
    cJSON_AddStringToObject(o, "model", s->alias);
    cJSON_AddArrayToObject(o, "content");
    cJSON_AddNullToObject(o, "stop_reason");
    cJSON_AddNullToObject(o, "stop_sequence");
    cJSON_AddItemToObject(o, "usage", usage(t, false));
    return o;
}

/* "event: NAME\ndata: JSON\n\n" (takes j) */
static void event(char **out, size_t *len, const char *name, cJSON *j) {
    char pre[64];
    snprintf(pre, sizeof pre, "event: %s\ndata: ", name);
    srv_buf_json(out, len, pre, j, "\n\n");
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static void block_stop(int index, char **out, size_t *len) {
    cJSON *o = typed("content_block_stop");
    cJSON_AddNumberToObject(o, "index", index);
    event(out, len, "content_block_stop", o);
}

/* New text as a text_delta (the block opened first); each new call as a tool_use block whose
 * input comes in one input_json_delta. */
static void news(an_stream *st, const srv_task *t, const srv_event *ev, int n, bool end, char **out,
                 size_t *len) {
    char *text = NULL;
    size_t tlen = 0;
    cJSON *calls = cJSON_CreateArray();
    srv_reply_read(&st->rp, t->tools, ev, n, end, &text, &tlen, calls);
    if (tlen) {
        if (!st->text_open) {
            cJSON *o = typed("content_block_start");
            cJSON_AddNumberToObject(o, "index", st->block++);
            cJSON *b = cJSON_AddObjectToObject(o, "content_block");
            cJSON_AddStringToObject(b, "type", "text");
            cJSON_AddStringToObject(b, "text", "");
            event(out, len, "content_block_start", o);
            st->text_open = true;
        }
        cJSON *o = typed("content_block_delta");
        cJSON_AddNumberToObject(o, "index", st->block - 1);
        cJSON *d = cJSON_AddObjectToObject(o, "delta");
        cJSON_AddStringToObject(d, "type", "text_delta");
        cJSON_AddStringToObject(d, "text", text);
        event(out, len, "content_block_delta", o);
    }
    free(text);
    for (const cJSON *c = calls->child; c; c = c->next) {
        if (st->text_open) block_stop(st->block - 1, out, len);
        st->text_open = false;
        const int index = st->block++;
        cJSON *o = typed("content_block_start");
        cJSON_AddNumberToObject(o, "index", index);
        cJSON_AddItemToObject(o, "content_block", tool_use(st, c, st->calls, false));
        event(out, len, "content_block_start", o);
        o = typed("content_block_delta");
        cJSON_AddNumberToObject(o, "index", index);
        cJSON *d = cJSON_AddObjectToObject(o, "delta");
        cJSON_AddStringToObject(d, "type", "input_json_delta");
        char *args = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "arguments"));
        cJSON_AddStringToObject(d, "partial_json", args ? args : "{}");
        free(args);
        event(out, len, "content_block_delta", o);
        block_stop(index, out, len);
        st->calls++;
    }
    cJSON_Delete(calls);
}

static cJSON *error_object(const char *type, const char *msg) {
    cJSON *o = typed("error");
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddStringToObject(e, "message", msg);
    return o;
}

static long stream_next(srv_conn *c, srv_task *t, void *state, char **out) {
    srv *s = srv_of(c);
    an_stream *st = state;
    size_t len = 0;
    *out = NULL;
    if (st->phase == 2) return -1;
    if (st->phase == 0) {
        cJSON *o = typed("message_start");
        cJSON_AddItemToObject(o, "message", message(s, st, t));
        event(out, &len, "message_start", o);
        event(out, &len, "ping", typed("ping"));
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
        event(out, &len, "error",
              error_object(srv_task_error_code(s, t) ? "overloaded_error" : "api_error", t->error));
        return (long)len;
    }
    if (st->text_open) block_stop(st->block - 1, out, &len);
    cJSON *o = typed("message_delta");
    cJSON *d = cJSON_AddObjectToObject(o, "delta");
    cJSON_AddStringToObject(d, "stop_reason", stop_reason(t, st->calls));
    if (t->res.stop_reason == GEMMA8_STOP_STRING)
        cJSON_AddStringToObject(d, "stop_sequence", t->stop[t->res.stop_index]);
    else
        cJSON_AddNullToObject(d, "stop_sequence");
    cJSON_AddItemToObject(o, "usage", usage(t, true));
    event(out, &len, "message_delta", o);
    event(out, &len, "message_stop", typed("message_stop"));
    srv_conn_log_tokens(c, t->res.n_prompt, t->res.n_reused, t->res.n_generated);
    return (long)len;
}

static void stream_free(void *p) {
    an_stream *st = p;
    free(st->rp.buf);
    free(st);
}

int anthropic_messages(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    srv_task *t;
    srv_error e;
    if (!anthropic_parse(s, body, &t, &e)) return srv_reply_refusal(c, &e);
    an_stream *st = calloc(1, sizeof *st);
    if (!st) {
        srv_task_unref(t);
        return SRV_FAIL;
    }
    snprintf(st->id, sizeof st->id, "msg_%llx", (unsigned long long)atomic_fetch_add(&g_next_msg, 1));
    if (cJSON_IsTrue(cJSON_GetObjectItem(body, "stream"))) {
        if (!srv_submit(s->sched, t)) {
            srv_task_unref(t);
            free(st);
            return srv_reply_error(c, 529, "overloaded_error", NULL,
                                   "every slot is busy and the queue is full");
        }
        int rc = srv_reply_stream(c, "text/event-stream", t, stream_next, st, stream_free);
        srv_task_unref(t); /* the stream holds it */
        return rc;
    }
    int rc = srv_run_task(c, t);
    if (rc < 0) {
        srv_event *ev;
        const int n = srv_task_events(t, 0, &ev, NULL);
        char *text = NULL;
        size_t tlen = 0;
        cJSON *calls = cJSON_CreateArray();
        srv_reply_read(&st->rp, t->tools, ev, n, true, &text, &tlen, calls);
        free(ev);
        cJSON *o = message(s, st, t);
        cJSON *content = cJSON_GetObjectItem(o, "content");
        if (tlen || !cJSON_GetArraySize(calls)) {
            cJSON *b = typed("text");
            cJSON_AddStringToObject(b, "text", text ? text : "");
            cJSON_AddItemToArray(content, b);
        }
        int k = 0;
        for (const cJSON *call = calls->child; call; call = call->next, k++)
            cJSON_AddItemToArray(content, tool_use(st, call, k, true));
        cJSON_ReplaceItemInObject(o, "stop_reason", cJSON_CreateString(stop_reason(t, k)));
        if (t->res.stop_reason == GEMMA8_STOP_STRING)
            cJSON_ReplaceItemInObject(o, "stop_sequence", cJSON_CreateString(t->stop[t->res.stop_index]));
        cJSON_ReplaceItemInObject(o, "usage", usage(t, true));
        free(text);
        cJSON_Delete(calls);
        srv_conn_log_tokens(c, t->res.n_prompt, t->res.n_reused, t->res.n_generated);
        rc = srv_reply_json(c, 200, o);
    }
    srv_task_unref(t);
    stream_free(st);
    return rc;
}

int anthropic_count_tokens(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    srv_task *t;
    srv_error e;
    cJSON *b = cJSON_Duplicate(body, true);
    if (!cJSON_GetObjectItem(b, "max_tokens"))
        cJSON_AddNumberToObject(b, "max_tokens", 1); /* not asked here */
    const bool ok = anthropic_parse(s, b, &t, &e);
    cJSON_Delete(b);
    if (!ok) return srv_reply_refusal(c, &e);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "input_tokens", t->n_prompt);
    srv_task_unref(t);
    return srv_reply_json(c, 200, o);
}
