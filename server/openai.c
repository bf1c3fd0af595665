/* openai.c - the OpenAI API: chat completions, completions (streamed as
 * server-sent events or not), models, embeddings. Unset sampling fields take
 * OpenAI's defaults: temperature 1, top_p 1, no top-k, no penalties. */
#include "server.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_ullong g_next_id = 1;

#define OAI_MAX_N 16 /* choices a request may ask for (n) */
/* llama-server's is "b<build>"; clients read it as an opaque string */
#define FINGERPRINT "b" GEMMA8_VERSION "-gemma8"

#define ERR(c, ...) srv_reply_error(c, 400, "invalid_request_error", NULL, __VA_ARGS__)

/* response_format: text, json_object (llama.cpp: with an optional schema) or
 * json_schema {name, schema, strict}; llama.cpp's json_schema and grammar fields. */
static bool read_format(const cJSON *b, srv_task *t, char *err, size_t cap) {
    const cJSON *rf = cJSON_GetObjectItem(b, "response_format");
    const cJSON *rft = cJSON_GetObjectItem(rf, "type");
    const cJSON *js = cJSON_GetObjectItem(b, "json_schema"), *gr = cJSON_GetObjectItem(b, "grammar");
    if (rf && !cJSON_IsNull(rf)) {
        const char *type = cJSON_IsString(rft) ? rft->valuestring : "";
        if (!cJSON_IsObject(rf) || !cJSON_IsString(rft)) {
            snprintf(err, cap, "'response_format' must be an object with a 'type'");
            return false;
        }
        if (!strcmp(type, "json_object")) {
            const cJSON *sch = cJSON_GetObjectItem(rf, "schema");
            if (sch && !cJSON_IsNull(sch) && !cJSON_IsObject(sch)) {
                snprintf(err, cap, "'response_format.schema' must be an object (a JSON schema)");
                return false;
            }
            if (!srv_constrain(t, sch && cJSON_IsObject(sch) ? sch : NULL, NULL, err, cap)) return false;
        } else if (!strcmp(type, "json_schema")) {
            const cJSON *w = cJSON_GetObjectItem(rf, "json_schema");
            const cJSON *sch = cJSON_GetObjectItem(w, "schema");
            if (!cJSON_IsObject(w)) {
                snprintf(err, cap, "'response_format.json_schema' must be an object");
                return false;
            }
            if (sch && !cJSON_IsObject(sch) && !cJSON_IsBool(sch)) {
                snprintf(err, cap, "'response_format.json_schema.schema' must be an object");
                return false;
            }
            if (!srv_constrain(t, sch, NULL, err, cap)) return false;
        } else if (strcmp(type, "text")) {
            snprintf(err, cap, "'response_format': type '%.40s' is not text, json_object or json_schema", type);
            return false;
        }
    }
    if (js && !cJSON_IsNull(js) && !srv_constrain(t, js, NULL, err, cap)) return false;
    if (gr && !cJSON_IsNull(gr)) {
        if (!cJSON_IsString(gr)) {
            snprintf(err, cap, "'grammar' must be a string (GBNF)");
            return false;
        }
        if (!srv_constrain(t, NULL, gr->valuestring, err, cap)) return false;
    }
    return true;
}

/* The request's sampling and length fields (llama.cpp's extras where they map). */
static bool read_params(srv *s, const cJSON *b, srv_task *t, bool chat, char *err, size_t cap) {
    gemma8_generate_params *p = &t->params;
    gemma8_sampler_params *sp = &p->sampling;
    sp->temperature = 1.0f;
    sp->top_p = 1.0f;
    sp->top_k = 0;
    sp->min_p = 0.0f;
    sp->repeat_penalty = 1.0f;
    sp->seed = srv_random_seed();
    srv_apply_defaults(s, sp);
    double temp = sp->temperature, top_p = sp->top_p, top_k = sp->top_k, min_p = 0, rep = 1, pres = 0,
           freq = 0, seed = -1;
    double max_tokens = s->dflt.has_n_predict ? s->dflt.n_predict : chat ? -1 : 16, n = 1;
    if (!srv_number(b, "temperature", 0, 2, &temp, err, cap) ||
        !srv_number(b, "top_p", 0, 1, &top_p, err, cap) ||
        !srv_number(b, "top_k", 0, 1e6, &top_k, err, cap) ||
        !srv_number(b, "min_p", 0, 1, &min_p, err, cap) ||
        !srv_number(b, "repeat_penalty", 0.01, 100, &rep, err, cap) ||
        !srv_number(b, "presence_penalty", -2, 2, &pres, err, cap) ||
        !srv_number(b, "frequency_penalty", -2, 2, &freq, err, cap) ||
        !srv_number(b, "seed", -9.3e18, 9.3e18, &seed, err, cap) ||
        !srv_number(b, "max_tokens", -1, 2147483647.0, &max_tokens, err, cap) ||
        !srv_number(b, "max_completion_tokens", -1, 2147483647.0, &max_tokens, err, cap) ||
        !srv_number(b, "n", 1, OAI_MAX_N, &n, err, cap))
        return false;
    if (max_tokens == 0) {
        snprintf(err, cap, "'max_tokens' must be at least 1 (or -1: as many as the slot holds)");
        return false;
    }
    if (!srv_stop(cJSON_GetObjectItem(b, "stop"), t, err, cap)) return false;
    if (!srv_logit_bias(s, cJSON_GetObjectItem(b, "logit_bias"), t, err, cap)) return false;
    sp->temperature = (float)temp;
    sp->top_p = top_p > 0 ? (float)top_p : 1e-6f;
    sp->top_k = (int32_t)top_k;
    sp->min_p = (float)min_p;
    sp->repeat_penalty = (float)rep;
    sp->presence_penalty = (float)pres;
    sp->frequency_penalty = (float)freq;
    if (seed >= 0) sp->seed = (uint32_t)(uint64_t)seed;
    /* as many as the slot holds when unset (-1) or larger */
    p->max_new_tokens = max_tokens < 0 || max_tokens > s->n_ctx_slot ? s->n_ctx_slot : (int32_t)max_tokens;
    p->ignore_eos = cJSON_IsTrue(cJSON_GetObjectItem(b, "ignore_eos"));
    const cJSON *lp = cJSON_GetObjectItem(b, "logprobs");
    if (chat) {
        double top = 0;
        if (!srv_number(b, "top_logprobs", 0, 20, &top, err, cap)) return false;
        if (cJSON_IsTrue(lp))
            t->n_logprobs = (int)top;
        else if (lp && !cJSON_IsBool(lp) && !cJSON_IsNull(lp)) {
            snprintf(err, cap, "'logprobs' must be a boolean");
            return false;
        }
    } else {
        double k = -1;
        if (!srv_number(b, "logprobs", 0, 5, &k, err, cap)) return false;
        t->n_logprobs = (int)k;
    }
    const char *unsupported[] = {"functions", "function_call"}; /* the deprecated forms of tools */
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        const cJSON *v = cJSON_GetObjectItem(b, unsupported[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsArray(v) && !cJSON_GetArraySize(v)) &&
            !(cJSON_IsString(v) && !strcmp(v->valuestring, "none"))) {
            snprintf(err, cap, "'%s' is OpenAI's deprecated form: send 'tools' and 'tool_choice'",
                     unsupported[i]);
            return false;
        }
    }
    return read_format(b, t, err, cap);
}

static const char *finish_reason(const srv_task *t, int n_calls) {
    if (n_calls && t->res.stop_reason != GEMMA8_STOP_LENGTH && t->res.stop_reason != GEMMA8_STOP_CONTEXT)
        return "tool_calls";
    switch (t->res.stop_reason) {
    case GEMMA8_STOP_LENGTH:
    case GEMMA8_STOP_CONTEXT:
        return "length";
    default:
        return "stop";
    }
}

static cJSON *usage(const srv_task *t) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", t->res.n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", t->res.n_generated);
    cJSON_AddNumberToObject(u, "total_tokens", t->res.n_prompt + t->res.n_generated);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", t->res.n_reused);
    return u;
}

static cJSON *token_bytes(const char *text) {
    cJSON *a = cJSON_CreateArray();
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(*p));
    return a;
}

/* chat: {token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]} */
static cJSON *chat_logprob(srv *s, const srv_event *e) {
    char tok[256];
    cJSON *o = cJSON_CreateObject();
    srv_token_text(s, e->token, tok, sizeof tok);
    cJSON_AddStringToObject(o, "token", tok);
    cJSON_AddNumberToObject(o, "logprob", e->logprob);
    cJSON_AddItemToObject(o, "bytes", token_bytes(tok));
    cJSON *top = cJSON_AddArrayToObject(o, "top_logprobs");
    for (int k = 0; k < e->n_top; k++) {
        cJSON *a = cJSON_CreateObject();
        srv_token_text(s, e->top_id[k], tok, sizeof tok);
        cJSON_AddStringToObject(a, "token", tok);
        cJSON_AddNumberToObject(a, "logprob", e->top_lp[k]);
        cJSON_AddItemToObject(a, "bytes", token_bytes(tok));
        cJSON_AddItemToArray(top, a);
    }
    return o;
}

/* completions: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset} */
static cJSON *completion_logprobs(srv *s, const srv_event *ev, int n, size_t offset) {
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens"), *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs"), *offs = cJSON_AddArrayToObject(o, "text_offset");
    char tok[256];
    for (int i = 0; i < n; i++) {
        if (ev[i].token < 0) continue;
        srv_token_text(s, ev[i].token, tok, sizeof tok);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(tok));
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(ev[i].logprob));
        cJSON *top = cJSON_CreateObject();
        for (int k = 0; k < ev[i].n_top; k++) {
            srv_token_text(s, ev[i].top_id[k], tok, sizeof tok);
            if (!cJSON_GetObjectItemCaseSensitive(top, tok))
                cJSON_AddNumberToObject(top, tok, ev[i].top_lp[k]);
        }
        cJSON_AddItemToArray(tops, top);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
        offset += ev[i].len;
    }
    return o;
}

/* ---- one generation request, streamed or not ---------------------------------------------- */

typedef struct oai_stream {
    bool chat;
    srv_reply_parse rp; /* tools: the reply read as text or calls */
    int index; /* the choice's */
    int seen;
    int phase;     /* 0 role chunk, 1 tokens, 2 finished */
    size_t offset; /* text sent so far (completions' text_offset) */
    char id[48];
    long created;
} oai_stream;

/* The choices of one request (n of them, each a task of its own: a sequence of the batch). */
typedef struct oai_reply {
    srv_group g;
    oai_stream st[OAI_MAX_N];
    bool include_usage;
    bool timings_per_token; /* llama-server's: timings in every chunk */
    bool ended;
} oai_reply;

static cJSON *chunk_base(srv *s, const oai_stream *st) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", st->id);
    cJSON_AddStringToObject(o, "object", st->chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)st->created);
    cJSON_AddStringToObject(o, "model", s->alias);
    cJSON_AddStringToObject(o, "system_fingerprint", FINGERPRINT);
    return o;
}

/* appends "data: JSON\n\n" to out (taking j) */
static void sse(char **out, size_t *len, cJSON *j) { srv_buf_json(out, len, "data: ", j, "\n\n"); }

static cJSON *choice(srv *s, oai_stream *st, const srv_event *e, int n_ev, const char *finish,
                     bool logprobs) {
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", st->index);
    char *text = srv_events_text(e, n_ev);
    if (st->chat) {
        cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
        if (n_ev) cJSON_AddStringToObject(delta, "content", text ? text : "");
    } else {
        cJSON_AddStringToObject(ch, "text", text ? text : "");
    }
    free(text);
    if (logprobs && n_ev) {
        if (st->chat) {
            cJSON *lp = cJSON_AddObjectToObject(ch, "logprobs");
            cJSON *content = cJSON_AddArrayToObject(lp, "content");
            for (int i = 0; i < n_ev; i++)
                if (e[i].token >= 0) cJSON_AddItemToArray(content, chat_logprob(s, &e[i]));
        } else {
            cJSON_AddItemToObject(ch, "logprobs", completion_logprobs(s, e, n_ev, st->offset));
        }
    } else {
        cJSON_AddNullToObject(ch, "logprobs");
    }
    for (int i = 0; i < n_ev; i++) st->offset += e[i].len;
    if (finish)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    return ch;
}

/* OpenAI's tool call k ({index, id, type, function: {name, arguments}}); args false: arguments "" */
static cJSON *tool_call(const oai_stream *st, const cJSON *call, int k, bool head, bool args) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", k);
    cJSON *fn = cJSON_CreateObject();
    if (head) {
        char id[80];
        snprintf(id, sizeof id, "call_%s_%d", st->id + (strncmp(st->id, "chatcmpl-", 9) ? 0 : 9), k);
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "type", "function");
        const cJSON *name = cJSON_GetObjectItem(call, "name");
        cJSON_AddStringToObject(fn, "name", cJSON_IsString(name) ? name->valuestring : "");
    }
    char *a = args ? cJSON_PrintUnformatted(cJSON_GetObjectItem(call, "arguments")) : NULL;
    cJSON_AddStringToObject(fn, "arguments", a ? a : "");
    free(a);
    cJSON_AddItemToObject(o, "function", fn);
    return o;
}

/* A chunk of one choice: its delta (taken), no logprobs, no finish reason yet. */
static void delta_chunk(srv *s, const oai_stream *st, cJSON *delta, char **out, size_t *len) {
    cJSON *o = chunk_base(s, st);
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", st->index);
    cJSON_AddItemToObject(ch, "delta", delta);
    cJSON_AddNullToObject(ch, "logprobs");
    cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    sse(out, len, o);
}

/* A tools reply's news as chunks: its text as content deltas, each call completed as two chunks
 * (index, id and name; then the arguments), as OpenAI streams them. end: what is held goes out. */
static void tool_news(srv *s, oai_stream *st, const srv_event *ev, int n, bool end, char **out, size_t *len) {
    char *text = NULL;
    size_t tlen = 0;
    cJSON *calls = cJSON_CreateArray();
    srv_reply_read(&st->rp, true, ev, n, end, &text, &tlen, calls);
    if (tlen) {
        cJSON *delta = cJSON_CreateObject();
        cJSON_AddStringToObject(delta, "content", text);
        delta_chunk(s, st, delta, out, len);
    }
    free(text);
    const int first = st->rp.n_calls - cJSON_GetArraySize(calls);
    int k = first;
    for (const cJSON *c = calls->child; c; c = c->next, k++)
        for (int part = 0; part < 2; part++) {
            cJSON *delta = cJSON_CreateObject();
            cJSON_AddItemToArray(cJSON_AddArrayToObject(delta, "tool_calls"),
                                 tool_call(st, c, k, part == 0, part == 1));
            delta_chunk(s, st, delta, out, len);
        }
    cJSON_Delete(calls);
}

/* usage over the choices: the prompt once, the completions summed */
static cJSON *usage_of(const oai_reply *r) {
    cJSON *u = usage(r->g.t[0]);
    int32_t gen = 0;
    for (int i = 0; i < r->g.n; i++) gen += r->g.t[i]->res.n_generated;
    cJSON_ReplaceItemInObject(u, "completion_tokens", cJSON_CreateNumber(gen));
    cJSON_ReplaceItemInObject(u, "total_tokens", cJSON_CreateNumber(r->g.t[0]->res.n_prompt + gen));
    return u;
}

/* One choice's news: its new tokens, and its last chunk when it is done; true when it ended
 * with an error (written as an error event). */
static bool choice_news(srv *s, srv_task *t, oai_stream *st, bool per_token, char **out, size_t *len) {
    bool done;
    srv_event *ev;
    const int n = srv_task_events(t, st->seen, &ev, &done); /* the new tokens, a copy */
    for (int k = 0; k < n; k++) { /* return_progress: {choices: [], prompt_progress} first */
        if (ev[k].token != SRV_PROGRESS) continue;
        cJSON *o = chunk_base(s, st);
        cJSON_AddArrayToObject(o, "choices");
        cJSON_AddItemToObject(o, "prompt_progress", srv_progress_of(t, &ev[k]));
        sse(out, len, o);
    }
    int texts = 0;
    for (int k = 0; k < n; k++) texts += ev[k].token != SRV_PROGRESS;
    if (t->tools && st->chat) {
        tool_news(s, st, ev, n, done && !t->status, out, len);
        texts = 0;
    }
    if (texts > 0) {
        cJSON *o = chunk_base(s, st);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"),
                             choice(s, st, ev, n, NULL, t->n_logprobs >= 0));
        if (per_token) cJSON_AddItemToObject(o, "timings", srv_timings(t));
        sse(out, len, o);
    }
    free(ev);
    st->seen += n;
    if (!done) return false;
    st->phase = 2;
    if (t->status) { /* an error, or the server shutting down: an error event ends the stream */
        cJSON *e = cJSON_CreateObject();
        cJSON *err = cJSON_AddObjectToObject(e, "error");
        cJSON_AddStringToObject(err, "message", t->error);
        cJSON_AddStringToObject(err, "type", "server_error");
        const char *code = srv_task_error_code(s, t);
        if (code) cJSON_AddStringToObject(err, "code", code);
        sse(out, len, e);
        return true;
    }
    cJSON *o = chunk_base(s, st);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"),
                         choice(s, st, NULL, 0, finish_reason(t, st->rp.n_calls), false));
    cJSON_AddItemToObject(o, "timings", srv_timings(t));
    sse(out, len, o);
    return false;
}

static long stream_next(srv_conn *c, srv_task *t0, void *state, char **out) {
    (void)t0; /* r->g.t[0] */
    srv *s = srv_of(c);
    oai_reply *r = state;
    size_t len = 0;
    *out = NULL;
    if (r->ended) return -1;
    if (r->st[0].phase == 0) { /* the role first, as OpenAI does */
        for (int i = 0; i < r->g.n; i++) {
            r->st[i].phase = 1;
            if (!r->st[i].chat) continue;
            cJSON *delta = cJSON_CreateObject();
            cJSON_AddStringToObject(delta, "role", "assistant");
            cJSON_AddNullToObject(delta, "content"); /* as llama-server sends it */
            delta_chunk(s, &r->st[i], delta, out, &len);
        }
        if (len) return (long)len;
    }
    /* wait for news of the first choice still running (briefly when there are others) */
    int open = -1;
    for (int i = 0; i < r->g.n && open < 0; i++)
        if (r->st[i].phase != 2) open = i;
    if (!srv_task_wait(r->g.t[open], r->st[open].seen, r->g.n == 1 ? 1.0 : 0.05) && r->g.n == 1) {
        pthread_mutex_lock(&r->g.t[0]->mu);
        bool waiting = !r->g.t[0]->started;
        pthread_mutex_unlock(&r->g.t[0]->mu);
        if (waiting)
            srv_buf_add(out, &len, "", ": waiting\n\n", ""); /* keeps proxies and clients from timing out */
        return (long)len;
    }
    bool failed = false, all = true;
    for (int i = 0; i < r->g.n && !failed; i++) {
        if (r->st[i].phase != 2)
            failed = choice_news(s, r->g.t[i], &r->st[i], r->timings_per_token, out, &len);
        all = all && r->st[i].phase == 2;
    }
    if (failed || all) {
        if (!failed && r->include_usage) {
            cJSON *u = chunk_base(s, &r->st[0]);
            cJSON_AddArrayToObject(u, "choices");
            cJSON_AddItemToObject(u, "usage", usage_of(r));
            cJSON_AddItemToObject(u, "timings", srv_timings(r->g.t[0]));
            sse(out, &len, u);
        }
        srv_buf_add(out, &len, "", "data: [DONE]\n\n", "");
        srv_group_log(c, &r->g);
        r->ended = true;
    }
    return (long)len;
}

/* The reply is over: the choices past the first (the stream holds the first) end and go. */
static void reply_free(void *state) {
    oai_reply *r = state;
    srv_group_release(&r->g, 1);
    for (int i = 0; i < r->g.n; i++) free(r->st[i].rp.buf);
    free(r);
}

/* Runs the choices (their prompts and parameters set; r owns them) and answers in the chat or
 * completion shape. */
static int answer(srv_conn *c, const cJSON *body, oai_reply *r, bool chat) {
    srv *s = srv_of(c);
    char id[48];
    snprintf(id, sizeof id, "%s-%llx", chat ? "chatcmpl" : "cmpl",
             (unsigned long long)atomic_fetch_add(&g_next_id, 1));
    for (int i = 0; i < r->g.n; i++) {
        r->st[i].chat = chat;
        r->st[i].index = i;
        r->st[i].created = (long)time(NULL);
        snprintf(r->st[i].id, sizeof r->st[i].id, "%s", id);
    }
    r->include_usage =
        cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(body, "stream_options"), "include_usage"));
    r->timings_per_token = cJSON_IsTrue(cJSON_GetObjectItem(body, "timings_per_token"));
    bool streaming;
    int rc = srv_group_run(c, &r->g, body, stream_next, r, reply_free, &streaming);
    if (streaming) return rc;
    if (rc < 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "object", chat ? "chat.completion" : "text_completion");
        cJSON_AddNumberToObject(o, "created", (double)r->st[0].created);
        cJSON_AddStringToObject(o, "model", s->alias);
        cJSON_AddStringToObject(o, "system_fingerprint", FINGERPRINT);
        cJSON *choices = cJSON_AddArrayToObject(o, "choices");
        for (int i = 0; i < r->g.n; i++) {
            srv_task *t = r->g.t[i];
            srv_event *ev;
            const int n_ev = srv_task_events(t, 0, &ev, NULL);
            /* a tools reply: its text and its calls */
            char *text = NULL;
            size_t tlen = 0;
            cJSON *calls = t->tools && chat ? cJSON_CreateArray() : NULL;
            if (calls) srv_reply_read(&r->st[i].rp, true, ev, n_ev, true, &text, &tlen, calls);
            const int n_calls = calls ? cJSON_GetArraySize(calls) : 0;
            cJSON *ch =
                choice(s, &r->st[i], ev, n_ev, finish_reason(t, n_calls), t->n_logprobs >= 0 && !calls);
            free(ev);
            if (chat) { /* a message instead of a delta */
                cJSON *delta = cJSON_DetachItemFromObject(ch, "delta");
                cJSON *msg = cJSON_CreateObject();
                cJSON_AddStringToObject(msg, "role", "assistant");
                const cJSON *content = cJSON_GetObjectItem(delta, "content");
                if (calls && n_calls && !tlen)
                    cJSON_AddNullToObject(msg, "content");
                else
                    cJSON_AddStringToObject(msg, "content",
                                            calls                     ? (text ? text : "")
                                            : cJSON_IsString(content) ? content->valuestring
                                                                      : "");
                if (n_calls) {
                    cJSON *tc = cJSON_AddArrayToObject(msg, "tool_calls");
                    int k = 0;
                    for (const cJSON *c = calls->child; c; c = c->next, k++)
                        cJSON_AddItemToArray(tc, tool_call(&r->st[i], c, k, true, true));
                }
                cJSON_AddItemToObject(ch, "message", msg);
                cJSON_Delete(delta);
            }
            free(text);
            cJSON_Delete(calls);
            cJSON_AddItemToArray(choices, ch);
        }
        cJSON_AddItemToObject(o, "usage", usage_of(r));
        cJSON_AddItemToObject(o, "timings", srv_timings(r->g.t[0]));
        if (cJSON_IsTrue(cJSON_GetObjectItem(body, "verbose"))) { /* llama-server's: the prompt as seen */
            char *prompt = srv_prompt_text(s, r->g.t[0]);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "__verbose"), "prompt", prompt ? prompt : "");
            free(prompt);
        }
        srv_group_log(c, &r->g);
        rc = srv_reply_json(c, 200, o);
    }
    for (int i = 0; i < r->g.n; i++) srv_task_unref(r->g.t[i]);
    free(r);
    return rc;
}

/* read_params for a chat request and for a completion request */
static bool read_chat_params(srv *s, const cJSON *b, srv_task *t, char *err, size_t cap) {
    return read_params(s, b, t, true, err, cap);
}

static bool read_completion_params(srv *s, const cJSON *b, srv_task *t, char *err, size_t cap) {
    return read_params(s, b, t, false, err, cap);
}

bool oai_parse_chat(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    *out = NULL;
    if (!srv_model_known_lenient(s, body, e)) return false;
    if (cJSON_IsTrue(cJSON_GetObjectItem(body, "add_generation_prompt")) &&
        cJSON_IsTrue(cJSON_GetObjectItem(body, "continue_final_message")))
        return srv_fail(e, 400, NULL, "add_generation_prompt and continue_final_message exclude each other");
    return srv_chat_task(s, body, cJSON_GetObjectItem(body, "messages"), read_chat_params, out, e);
}

bool oai_parse_completion(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    *out = NULL;
    if (!srv_model_known_lenient(s, body, e)) return false;
    const cJSON *prompt = cJSON_GetObjectItem(body, "prompt");
    if (cJSON_IsArray(prompt) && cJSON_GetArraySize(prompt) == 1 && cJSON_IsString(prompt->child))
        prompt = prompt->child;
    if (!cJSON_IsString(prompt)) return srv_fail(e, 400, NULL, "'prompt' must be a string");
    srv_task *t = srv_task_new(SRV_GENERATE);
    if (!t) return srv_fail(e, 500, NULL, "out of memory");
    /* the prompt as given, <bos> first, control-token text recognised (llama.cpp's rule) */
    gemma8_status gs = srv_text_tokens(s, prompt->valuestring, true, true, &t->prompt, &t->n_prompt);
    return srv_parse_done(s, body, t, gs, read_completion_params, out, e);
}

static int refuse(srv_conn *c, const srv_error *e) { return srv_reply_refusal(c, e); }

/* n choices: the request parsed n times, each its own sequence (seed + i) */
static int run_choices(srv_conn *c, cJSON *body, bool chat) {
    srv *s = srv_of(c);
    srv_error e;
    double n = 1;
    char err[128];
    if (!srv_number(body, "n", 1, OAI_MAX_N, &n, err, sizeof err) || n != (int)n)
        return srv_reply_error(c, 400, "invalid_request_error", NULL,
                               "'n' must be a whole number from 1 to %d", OAI_MAX_N);
    oai_reply *r = calloc(1, sizeof *r);
    if (!r) return SRV_FAIL;
    r->g.s = s;
    for (; r->g.n < (int)n; r->g.n++) {
        bool ok = chat ? oai_parse_chat(s, body, &r->g.t[r->g.n], &e)
                       : oai_parse_completion(s, body, &r->g.t[r->g.n], &e);
        if (!ok) {
            for (int i = 0; i < r->g.n; i++) srv_task_unref(r->g.t[i]);
            free(r);
            return refuse(c, &e);
        }
        r->g.t[r->g.n]->params.sampling.seed += (uint32_t)r->g.n;
    }
    return answer(c, body, r, chat);
}

int oai_chat(srv_conn *c, cJSON *body) { return run_choices(c, body, true); }

/* POST /chat/completions/input_tokens: {input_tokens}, the prompt a conversation makes, counted */
int oai_input_tokens(srv_conn *c, cJSON *body) {
    srv_task *t;
    srv_error e;
    if (!oai_parse_chat(srv_of(c), body, &t, &e)) return refuse(c, &e);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "input_tokens", t->n_prompt);
    srv_task_unref(t);
    return srv_reply_json(c, 200, o);
}

int oai_completions(srv_conn *c, cJSON *body) { return run_choices(c, body, false); }

int oai_models(srv_conn *c, cJSON *body) {
    (void)body;
    srv *s = srv_of(c);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    cJSON_AddItemToArray(data, oai_model_object(s, s->alias));
    for (int i = 0; i < s->n_lora; i++) { /* "<model>:<adapter>": the model under that adapter */
        char id[256];
        snprintf(id, sizeof id, "%s:%s", s->alias, s->lora[i].name);
        cJSON_AddItemToArray(data, oai_model_object(s, id));
    }
    return srv_reply_json(c, 200, o);
}

/* ---- embeddings ----------------------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64(const unsigned char *p, size_t n) {
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    for (size_t i = 0; out && i < n; i += 3) {
        uint32_t v =
            (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *o++ = b64[v >> 18 & 63];
        *o++ = b64[v >> 12 & 63];
        *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    if (out) *o = 0;
    return out;
}

/* The inputs of an embedding request: a string, strings, token ids, or lists of ids. */
static bool embed_inputs(srv *s, const cJSON *in, srv_task *t, char *err, size_t cap) {
    const int n = srv_prompt_count(in); /* llama-server's prompt forms: texts, ids, mixes, lists of them */
    if (n == 0 || n > 2048) {
        snprintf(err, cap, "'input' must be a string, token ids, or a list of those (1 to 2048 inputs)");
        return false;
    }
    t->inputs = calloc((size_t)n, sizeof *t->inputs);
    t->n_inputs = calloc((size_t)n, sizeof *t->n_inputs);
    if (!t->inputs || !t->n_inputs) {
        snprintf(err, cap, "out of memory");
        return false;
    }
    for (int i = 0; i < n; i++) {
        t->n_in = i + 1;
        char why[200] = "";
        gemma8_status st =
            srv_prompt_tokens(s, srv_prompt_at(in, i), true, &t->inputs[i], &t->n_inputs[i], why, sizeof why);
        if (st == GEMMA8_ERR_CONTEXT_FULL) {
            snprintf(err, cap,
                     "input %d is too large to process: %d tokens, more than the slot's context of %d", i,
                     t->n_inputs[i], s->n_ctx_slot);
            return false;
        }
        if (st) {
            snprintf(err, cap, "input %d: %s", i, why);
            return false;
        }
        if (t->n_inputs[i] == 0) {
            snprintf(err, cap, "input %d is empty", i);
            return false;
        }
    }
    return true;
}

static bool parse_embedding(srv *s, const cJSON *body, srv_task **out, srv_error *e, srv_kind kind) {
    char err[256] = "";
    *out = NULL;
    if (!srv_model_known_lenient(s, body, e)) return false;
    const cJSON *fmt = cJSON_GetObjectItem(body, "encoding_format");
    const bool known =
        !fmt || cJSON_IsNull(fmt) ||
        (cJSON_IsString(fmt) && (!strcmp(fmt->valuestring, "base64") || !strcmp(fmt->valuestring, "float")));
    if (!known) return srv_fail(e, 400, NULL, "'encoding_format' must be \"float\" or \"base64\"");
    const cJSON *dims = cJSON_GetObjectItem(body, "dimensions");
    if (dims && !cJSON_IsNull(dims) && !(cJSON_IsNumber(dims) && dims->valuedouble == s->info.n_embd))
        return srv_fail(e, 400, NULL,
                        "'dimensions': this model's embeddings have %d dimensions and are not shortened",
                        s->info.n_embd);
    srv_task *t = srv_task_new(kind);
    if (!t) return srv_fail(e, 500, NULL, "out of memory");
    if (!embed_inputs(s, cJSON_GetObjectItem(body, "input"), t, err, sizeof err)) {
        srv_task_unref(t);
        return srv_fail(e, 400, NULL, "%s", err);
    }
    *out = t;
    return true;
}

bool oai_parse_embedding(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    *out = NULL;
    if (s->pooling_none) /* as llama-server: OpenAI's shape has one vector per input */
        return srv_fail(e, 400, NULL,
                        "the server pools none (--pooling none): per-token vectors are at /embeddings");
    return parse_embedding(s, body, out, e, SRV_EMBED);
}

/* llama-server's native POST /embeddings (and /embedding): "content" or "input"; the reply
 * [{index, embedding: [vector]}] (one pooled vector each: gemma8 pools by mean). */
int llama_embeddings(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    srv_task *t;
    srv_error e;
    cJSON *req = cJSON_Duplicate(body, true);
    const cJSON *content = cJSON_GetObjectItem(req, "content");
    if (content && !cJSON_GetObjectItem(req, "input"))
        cJSON_AddItemToObject(req, "input", cJSON_Duplicate(content, true));
    bool ok = req && parse_embedding(s, req, &t, &e, s->pooling_none ? SRV_EMBED_TOKENS : SRV_EMBED);
    cJSON_Delete(req);
    if (!ok) return refuse(c, &e);
    int rc = srv_run_task(c, t);
    if (rc < 0) {
        cJSON *arr = cJSON_CreateArray();
        const float *v = t->embeddings;
        for (int i = 0; i < t->n_in; i++) { /* one vector per input, or per token of it (--pooling none) */
            cJSON *d = cJSON_CreateObject();
            cJSON_AddNumberToObject(d, "index", i);
            cJSON *list = cJSON_AddArrayToObject(d, "embedding");
            for (int32_t p = 0; p < (t->kind == SRV_EMBED_TOKENS ? t->n_inputs[i] : 1);
                 p++, v += s->info.n_embd)
                cJSON_AddItemToArray(list, cJSON_CreateFloatArray(v, s->info.n_embd));
            cJSON_AddItemToArray(arr, d);
        }
        srv_conn_log_tokens(c, t->embed_tokens, 0, 0);
        rc = srv_reply_json(c, 200, arr);
    }
    srv_task_unref(t);
    return rc;
}

int oai_embeddings(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    srv_task *t;
    srv_error e;
    if (!oai_parse_embedding(s, body, &t, &e)) return refuse(c, &e);
    const cJSON *fmt = cJSON_GetObjectItem(body, "encoding_format");
    const bool b64out = cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "base64");
    int rc = srv_run_task(c, t);
    if (rc < 0) {
        const int E = s->info.n_embd;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "object", "list");
        cJSON *data = cJSON_AddArrayToObject(o, "data");
        for (int i = 0; i < t->n_in; i++) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "object", "embedding");
            cJSON_AddNumberToObject(d, "index", i);
            const float *v = t->embeddings + (size_t)i * E;
            if (b64out) {
                char *enc =
                    base64((const unsigned char *)v, (size_t)E * sizeof(float)); /* little-endian f32 */
                cJSON_AddStringToObject(d, "embedding", enc ? enc : "");
                free(enc);
            } else {
                cJSON_AddItemToObject(d, "embedding", cJSON_CreateFloatArray(v, E));
            }
            cJSON_AddItemToArray(data, d);
        }
        cJSON_AddStringToObject(o, "model", s->alias);
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", t->embed_tokens);
        cJSON_AddNumberToObject(u, "total_tokens", t->embed_tokens);
        srv_conn_log_tokens(c, t->embed_tokens, 0, 0);
        rc = srv_reply_json(c, 200, o);
    }
    srv_task_unref(t);
    return rc;
}
