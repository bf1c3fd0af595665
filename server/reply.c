/* reply.c - replies: JSON, text, OpenAI-shaped errors and streams (a task's events written
 * out as the scheduler adds them); waiting for a task. The handlers call these; the daemon
 * (http.c) routes to the handlers. */
#include "conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sys/socket.h>

srv *srv_of(srv_conn *c) { return c->s; }
const char *srv_conn_url(srv_conn *c) { return c->url; }
const char *srv_conn_arg(srv_conn *c, const char *name) {
    return MHD_lookup_connection_value(c->mhd, MHD_GET_ARGUMENT_KIND, name);
}

void srv_conn_log_tokens(srv_conn *c, int32_t prompt, int32_t reused, int32_t generated) {
    c->n_prompt = prompt;
    c->n_reused = reused;
    c->n_generated = generated;
    c->has_tokens = true;
}

/* ---- replies ----------------------------------------------------------------------------- */

static int queue(srv_conn *c, unsigned status, struct MHD_Response *r, const char *type) {
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    srv_cors_headers(c, r);
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    c->status = status;
    c->replied = true;
    enum MHD_Result ok = MHD_queue_response(c->mhd, status, r);
    MHD_destroy_response(r);
    return ok;
}

int srv_reply_text(srv_conn *c, unsigned status, const char *type, const char *text) {
    if (c->capture) {
        c->status = status;
        c->captured = cJSON_CreateString(text);
        return 1;
    }
    char *copy = strdup(text);
    if (!copy) return MHD_NO;
    return queue(c, status, MHD_create_response_from_buffer(strlen(copy), copy, MHD_RESPMEM_MUST_FREE), type);
}

int srv_reply_static(srv_conn *c, const char *type, const void *data, size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    /* the page runs only its own script and styles: text that reached the page as HTML could run nothing */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
                            "base-uri 'none'; frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    return queue(c, 200, r, type);
}

int srv_reply_json(srv_conn *c, unsigned status, cJSON *body) {
    if (c->capture) {
        c->status = status;
        c->captured = body;
        return 1;
    }
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!text) return MHD_NO;
    return queue(c, status, MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE),
                 "application/json");
}

int srv_reply_error(srv_conn *c, unsigned status, const char *type, const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *root = cJSON_CreateObject();
    if (!strncmp(c->url, "/api/", 5)) { /* Ollama's shape, which its clients show */
        cJSON_AddStringToObject(root, "error", msg);
        return srv_reply_json(c, status, root);
    }
    if (!strncmp(c->url, "/v1/messages", 12)) { /* Anthropic's, its type by the status */
        const char *at = status == 400   ? "invalid_request_error"
                         : status == 401 ? "authentication_error"
                         : status == 403 ? "permission_error"
                         : status == 404 ? "not_found_error"
                         : status == 413 ? "request_too_large"
                         : status == 429 ? "rate_limit_error"
                         : status >= 503 ? "overloaded_error"
                                         : "api_error";
        cJSON_AddStringToObject(root, "type", "error");
        cJSON *err = cJSON_AddObjectToObject(root, "error");
        cJSON_AddStringToObject(err, "type", at);
        cJSON_AddStringToObject(err, "message", msg);
        return srv_reply_json(c, status, root);
    }
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", msg);
    cJSON_AddStringToObject(err, "type", type);
    cJSON_AddNullToObject(err, "param");
    if (code)
        cJSON_AddStringToObject(err, "code", code);
    else
        cJSON_AddNullToObject(err, "code");
    return srv_reply_json(c, status, root);
}

int srv_reply_refusal(srv_conn *c, const srv_error *e) {
    const bool ctx = e->code && !strcmp(e->code, "context_length_exceeded");
    const char *type = e->status == 401   ? "authentication_error"
                       : e->status >= 500 ? "server_error"
                       : ctx              ? "exceed_context_size_error"
                                          : "invalid_request_error";
    if (!strncmp(c->url, "/api/", 5) || !strncmp(c->url, "/v1/messages", 12) || !e->n_ctx)
        return srv_reply_error(c, e->status, type, e->code, "%s", e->msg);
    cJSON *root = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(err, "message", e->msg);
    cJSON_AddStringToObject(err, "type", type);
    cJSON_AddNullToObject(err, "param");
    cJSON_AddStringToObject(err, "code", e->code);
    cJSON_AddNumberToObject(err, "n_prompt_tokens", e->n_prompt);
    cJSON_AddNumberToObject(err, "n_ctx", e->n_ctx);
    return srv_reply_json(c, e->status, root);
}

/* ---- streamed replies -------------------------------------------------------------------- */

typedef struct stream {
    srv *s;
    srv_conn *c; /* valid while MHD reads the stream */
    srv_task *t;
    srv_stream_fn next;
    void *state;
    void (*free_state)(void *);
    char *pend; /* a piece not yet sent in full */
    long pend_len, pend_off;
    bool ended;
} stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    while (st->pend_off == st->pend_len) {
        free(st->pend);
        st->pend = NULL;
        st->pend_len = st->pend_off = 0;
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        char *out = NULL;
        long n = st->next(st->c, st->t, st->state, &out);
        if (n < 0) {
            st->ended = true;
            free(out);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        st->pend = out;
        st->pend_len = n;
    }
    size_t n = (size_t)(st->pend_len - st->pend_off);
    if (n > max) n = max;
    memcpy(buf, st->pend + st->pend_off, n);
    st->pend_off += (long)n;
    return (ssize_t)n;
}

/* The stream is over: sent in full, or the client went away (its generation stops). */
static void stream_free(void *cls) {
    stream *st = cls;
    if (!st->ended && !atomic_load(&st->s->stopping)) atomic_fetch_add(&st->s->client_aborts, 1);
    atomic_store(&st->t->cancelled, true);
    srv_sched_wake(st->s->sched);
    atomic_fetch_sub(&st->s->open_streams, 1);
    srv_task_unref(st->t);
    if (st->free_state) st->free_state(st->state);
    free(st->pend);
    free(st);
}

int srv_reply_stream(srv_conn *c, const char *content_type, srv_task *t, srv_stream_fn next, void *state,
                     void (*free_state)(void *)) {
    if (c->capture) { /* /predict turns stream off before it gets here */
        atomic_store(&t->cancelled, true);
        srv_sched_wake(c->s->sched);
        if (free_state) free_state(state);
        return srv_reply_error(c, 400, "invalid_request_error", NULL, "a predict instance cannot stream");
    }
    stream *st = calloc(1, sizeof *st);
    if (!st) return MHD_NO;
    st->s = c->s;
    st->c = c;
    st->t = t;
    st->next = next;
    st->state = state;
    st->free_state = free_state;
    pthread_mutex_lock(&t->mu);
    t->refs++;
    pthread_mutex_unlock(&t->mu);
    atomic_fetch_add(&c->s->open_streams, 1);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    return queue(c, 200, r, content_type);
}

bool srv_task_wait(srv_task *t, int seen, double wait_s) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long long ns = until.tv_nsec + (long long)(wait_s * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    while (t->n_ev <= seen && !t->done && rc == 0) rc = pthread_cond_timedwait(&t->cv, &t->mu, &until);
    bool news = t->n_ev > seen || t->done;
    pthread_mutex_unlock(&t->mu);
    return news;
}

/* The client closed its side (a hang-up, or a read of 0 bytes), seen without taking its data. */
static bool client_gone(srv_conn *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP)) return true;
    char b;
    return recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

bool srv_wait_task(srv_conn *c, srv_task *t) {
    bool gone = false;
    pthread_mutex_lock(&t->mu);
    while (!t->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100000000; /* a look at the socket every 0.1 s */
        if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&t->cv, &t->mu, &until);
        if (t->done || gone) continue;
        pthread_mutex_unlock(&t->mu);
        gone = client_gone(c);
        if (gone) { /* its generation stops and its slot is free for others */
            atomic_store(&t->cancelled, true);
            srv_sched_wake(c->s->sched);
        }
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return !gone;
}

bool srv_run_blocking(srv_conn *c, srv_task *t) {
    if (!srv_submit(c->s->sched, t)) return false;
    if (!srv_wait_task(c, t)) atomic_fetch_add(&c->s->client_aborts, 1);
    return true;
}

bool srv_group_submit(srv_group *g) {
    int queued = 0;
    while (queued < g->n && srv_submit(g->s->sched, g->t[queued])) queued++;
    if (queued == g->n) return true;
    for (int i = 0; i < queued; i++) atomic_store(&g->t[i]->cancelled, true);
    srv_sched_wake(g->s->sched);
    return false;
}

int srv_group_run(srv_conn *c, srv_group *g, const cJSON *body, srv_stream_fn next, void *state,
                  void (*free_state)(void *), bool *streaming) {
    *streaming = false;
    if (!srv_group_submit(g))
        return srv_reply_error(c, 503, "server_error", "queue_full",
                               "every slot is busy and the queue is full");
    if (cJSON_IsTrue(cJSON_GetObjectItem(body, "stream"))) {
        *streaming = true;
        srv_task *t0 = g->t[0];
        int rc = srv_reply_stream(c, "text/event-stream", t0, next, state, free_state);
        srv_task_unref(t0); /* the stream holds it */
        return rc;
    }
    bool gone = false;
    for (int i = 0; i < g->n; i++) gone = !srv_wait_task(c, g->t[i]) || gone;
    if (gone) {
        atomic_fetch_add(&c->s->client_aborts, 1);
        return SRV_FAIL;
    }
    for (int i = 0; i < g->n; i++)
        if (g->t[i]->status) return srv_reply_task_error(c, g->t[i]);
    return -1;
}

void srv_group_release(srv_group *g, int from) {
    for (int i = from; i < g->n; i++) {
        atomic_store(&g->t[i]->cancelled, true);
        srv_sched_wake(g->s->sched);
        srv_task_unref(g->t[i]);
    }
}

int srv_run_task(srv_conn *c, srv_task *t) {
    if (!srv_run_blocking(c, t))
        return srv_reply_error(c, 503, "server_error", "queue_full",
                               "every slot is busy and the queue is full");
    if (!t->status) return -1;
    return srv_reply_task_error(c, t);
}

const char *srv_task_error_code(const srv *s, const srv_task *t) {
    if (atomic_load(&s->stopping)) return "shutting_down";
    return t->pool_full ? "kv_pool_full" : NULL;
}

int srv_reply_task_error(srv_conn *c, const srv_task *t) {
    const char *code = srv_task_error_code(c->s, t);
    return srv_reply_error(c, code ? 503 : 500, "server_error", code, "%s", t->error);
}

void srv_group_log(srv_conn *c, const srv_group *g) {
    int32_t gen = 0;
    for (int i = 0; i < g->n; i++) gen += g->t[i]->res.n_generated;
    srv_conn_log_tokens(c, g->t[0]->res.n_prompt, g->t[0]->res.n_reused, gen);
}
