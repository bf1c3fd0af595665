/* http.c - the HTTP daemon: a request's body is read with limits (size, time), checked (API
 * key), routed through a table to an API handler (or a built-in endpoint), and logged in one
 * line. The replies themselves are reply.c's. */
#include "server.h"

#include <microhttpd.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

/* ---- built-in endpoints ------------------------------------------------------------------- */

static int health(srv_conn *c, cJSON *body) {
    (void)body;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "status", "ok");
    return srv_reply_json(c, 200, r);
}

static int metrics(srv_conn *c, cJSON *body) {
    (void)body;
    srv_metrics m = srv_sched_metrics(c->s->sched);
    char text[2048];
    snprintf(text, sizeof text,
             "# HELP gemma8_requests_total Generation and embedding requests served.\n"
             "# TYPE gemma8_requests_total counter\ngemma8_requests_total %llu\n"
             "# HELP gemma8_prompt_tokens_total Prompt tokens evaluated (reused ones not counted).\n"
             "# TYPE gemma8_prompt_tokens_total counter\ngemma8_prompt_tokens_total %llu\n"
             "# HELP gemma8_tokens_predicted_total Tokens generated for requests that were not aborted.\n"
             "# TYPE gemma8_tokens_predicted_total counter\ngemma8_tokens_predicted_total %llu\n"
             "# HELP gemma8_requests_rejected_total Requests refused because the queue was full.\n"
             "# TYPE gemma8_requests_rejected_total counter\ngemma8_requests_rejected_total %llu\n"
             "# HELP gemma8_predicted_tokens_seconds Generation speed of a slot, tokens per second.\n"
             "# TYPE gemma8_predicted_tokens_seconds gauge\ngemma8_predicted_tokens_seconds %.3f\n"
             "# HELP gemma8_requests_processing Busy slots.\n"
             "# TYPE gemma8_requests_processing gauge\ngemma8_requests_processing %d\n"
             "# HELP gemma8_requests_deferred Requests waiting in the queue.\n"
             "# TYPE gemma8_requests_deferred gauge\ngemma8_requests_deferred %d\n"
             "# HELP gemma8_slots Slots (parallel sequences).\n"
             "# TYPE gemma8_slots gauge\ngemma8_slots %d\n",
             (unsigned long long)m.requests, (unsigned long long)m.prompt_tokens,
             (unsigned long long)m.generated_tokens, (unsigned long long)m.rejected,
             m.gen_seconds > 0 ? m.generated_tokens / m.gen_seconds : 0.0, m.busy_slots, m.queued,
             c->s->n_slots);
    return srv_reply_text(c, 200, "text/plain; version=0.0.4", text);
}

static int tokenize(srv_conn *c, cJSON *body) {
    const cJSON *content = cJSON_GetObjectItem(body, "content");
    if (!cJSON_IsString(content))
        return srv_reply_error(c, 400, "invalid_request_error", NULL, "'content' must be a string");
    const cJSON *add = cJSON_GetObjectItem(body, "add_special");
    const cJSON *parse = cJSON_GetObjectItem(body, "parse_special");
    int32_t *ids;
    int32_t n;
    gemma8_status st =
        srv_text_tokens(c->s, content->valuestring, cJSON_IsTrue(add), !cJSON_IsFalse(parse), &ids, &n);
    if (st) return srv_reply_error(c, 400, "invalid_request_error", NULL, "%s", gemma8_last_error());
    cJSON *r = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(r, "tokens");
    for (int32_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    free(ids);
    return srv_reply_json(c, 200, r);
}

static int detokenize(srv_conn *c, cJSON *body) {
    const cJSON *tokens = cJSON_GetObjectItem(body, "tokens");
    if (!cJSON_IsArray(tokens))
        return srv_reply_error(c, 400, "invalid_request_error", NULL,
                               "'tokens' must be an array of token ids");
    const int n = cJSON_GetArraySize(tokens);
    const int V = c->s->info.n_vocab;
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    int k = 0;
    for (const cJSON *e = tokens->child; ids && e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= V ||
            e->valuedouble != (int32_t)e->valuedouble) {
            free(ids);
            return srv_reply_error(c, 400, "invalid_request_error", NULL,
                                   "token ids must be integers in 0..%d", V - 1);
        }
        ids[k++] = (int32_t)e->valuedouble;
    }
    size_t cap = (size_t)n * 64 + 16, len;
    char *text = malloc(cap);
    gemma8_status st =
        ids && text ? gemma8_detokenize(c->s->model, ids, k, false, text, cap, &len) : GEMMA8_ERR_NOMEM;
    free(ids);
    if (st) {
        free(text);
        return srv_reply_error(c, 500, "server_error", NULL, "%s", gemma8_last_error());
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "content", text);
    free(text);
    return srv_reply_json(c, 200, r);
}

/* ---- routing -------------------------------------------------------------------------------- */

typedef struct route {
    const char *method;
    const char *path;
    int (*fn)(srv_conn *c, cJSON *body);
} route;

static const route routes[] = {
    {"GET", "/health", health},
    {"GET", "/metrics", metrics},
    {"POST", "/tokenize", tokenize},
    {"POST", "/detokenize", detokenize},
    {"GET", "/v1/models", oai_models},
    {"GET", "/models", oai_models},
    {"POST", "/v1/chat/completions", oai_chat},
    {"POST", "/v1/completions", oai_completions},
    {"POST", "/v1/embeddings", oai_embeddings},
    {"POST", "/api/chat", ollama_chat},
    {"POST", "/api/generate", ollama_generate},
    {"GET", "/api/tags", ollama_tags},
    {"POST", "/api/show", ollama_show},
    {"GET", "/api/version", ollama_version},
    {"GET", "/api/ps", ollama_ps},
    {"GET", "/lora-adapters", srv_lora_adapters},
    {"POST", "/api/embed", ollama_embed},
};

/* constant-time comparison of the request's bearer token with the key */
static bool authorized(srv_conn *c) {
    const char *key = c->s->api_key;
    if (!key || !strcmp(c->url, "/health")) return true;
    const char *h = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    h += 7;
    const size_t n = strlen(key), m = strlen(h);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < m ? h[i] : 0);
    return diff == 0;
}

static int dispatch(srv_conn *c) {
    /* the request is in: no inactivity timeout while it is answered (a prefill, a queue
     * or a slow model may keep a stream silent for long); on_completed restores it */
    MHD_set_connection_option(c->mhd, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)0);
    if (!authorized(c))
        return srv_reply_error(c, 401, "authentication_error", "invalid_api_key", "invalid API key");
    const route *r = NULL;
    bool path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, c->url)) continue;
        path_known = true;
        if (!strcmp(routes[i].method, c->method)) r = &routes[i];
    }
    if (!path_known)
        return srv_reply_error(c, 404, "invalid_request_error", "not_found", "no endpoint %s", c->url);
    if (!r)
        return srv_reply_error(c, 405, "invalid_request_error", "method_not_allowed",
                               "%s is not allowed on %s", c->method, c->url);
    if (atomic_load(&c->s->stopping))
        return srv_reply_error(c, 503, "server_error", "shutting_down", "the server is shutting down");
    cJSON *body = NULL;
    if (!strcmp(c->method, "POST")) {
        if (!srv_valid_utf8(c->body ? c->body : "", c->len))
            return srv_reply_error(c, 400, "invalid_request_error", NULL, "the body is not valid UTF-8");
        body = c->len ? cJSON_ParseWithLength(c->body, c->len) : NULL;
        if (!cJSON_IsObject(body)) {
            cJSON_Delete(body);
            return srv_reply_error(c, 400, "invalid_request_error", NULL, "the body must be a JSON object");
        }
    }
    int rc = r->fn(c, body);
    cJSON_Delete(body);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size,
                                  void **con_cls) {
    (void)version;
    srv *s = cls;
    srv_conn *c = *con_cls;
    if (!c) { /* the headers: check the declared size before reading the body */
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->s = s;
        c->mhd = mc;
        c->t0 = gemma8_time();
        snprintf(c->method, sizeof c->method, "%s", method);
        snprintf(c->url, sizeof c->url, "%s", url);
        *con_cls = c;
        /* a body past the limit is read and dropped (within the read deadline), then refused */
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->max_body) c->too_big = true;
        return MHD_YES;
    }
    if (*upload_size) {
        if (gemma8_time() - c->t0 > s->read_timeout) return MHD_NO; /* a client too slow to send its request */
        if (!c->too_big && c->len + *upload_size > s->max_body) {
            c->too_big = true;
            free(c->body);
            c->body = NULL;
        }
        if (!c->too_big) {
            if (c->len + *upload_size + 1 > c->cap) {
                size_t cap = (c->len + *upload_size + 1) * 2;
                char *nb = realloc(c->body, cap);
                if (!nb) return MHD_NO;
                c->body = nb;
                c->cap = cap;
            }
            memcpy(c->body + c->len, upload, *upload_size);
            c->len += *upload_size;
            c->body[c->len] = 0;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->replied) return MHD_YES;
    if (c->too_big)
        return (enum MHD_Result)srv_reply_error(c, 413, "invalid_request_error", "body_too_large",
                                                "the body is larger than %zu bytes", s->max_body);
    return (enum MHD_Result)dispatch(c);
}

/* The request is over: its log line, and its memory. */
static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode tc) {
    srv *s = cls;
    srv_conn *c = *con_cls;
    if (!c) return;
    /* an idle keep-alive connection, or the next request, has read_timeout again */
    MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->read_timeout);
    char tokens[96] = "";
    if (c->has_tokens)
        snprintf(tokens, sizeof tokens, " prompt %d (%d reused) generated %d", c->n_prompt, c->n_reused,
                 c->n_generated);
    fprintf(stderr, "gemma8 serve: %s %s %u%s %.0f ms%s\n", c->method, c->url, c->status, tokens,
            (gemma8_time() - c->t0) * 1e3,
            tc == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed)");
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- the daemon ------------------------------------------------------------------------------ */

void *srv_http_start(srv *s, const char *host, int port) {
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return NULL;
    return MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, (uint16_t)port,
        NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->read_timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_END);
}

void srv_http_stop(srv *s, void *daemon) {
    atomic_store(&s->stopping, true);
    MHD_quiesce_daemon(daemon); /* no new connections */
    srv_sched_stop(s->sched);   /* every request ends, with an error if it was running */
    /* open streams write their error event and end (2 s at most) before connections are closed */
    for (int i = 0; i < 200 && atomic_load(&s->open_streams) > 0; i++) usleep(10000);
    MHD_stop_daemon(daemon);
}
