/* http.c - the HTTP daemon: a request's body is read with limits (size, time), checked (API
 * key), routed through a table to an API handler (or a built-in endpoint), and logged in one
 * line. The replies themselves are reply.c's. */
#include "server.h"

#include <microhttpd.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <strings.h>
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
    char text[4096];
    snprintf(text, sizeof text,
             "# HELP gemma8_requests_total Generation and embedding requests served.\n"
             "# TYPE gemma8_requests_total counter\ngemma8_requests_total %llu\n"
             "# HELP gemma8_prompt_tokens_total Prompt tokens evaluated (reused ones not counted).\n"
             "# TYPE gemma8_prompt_tokens_total counter\ngemma8_prompt_tokens_total %llu\n"
             "# HELP gemma8_tokens_predicted_total Tokens generated for requests that were not aborted.\n"
             "# TYPE gemma8_tokens_predicted_total counter\ngemma8_tokens_predicted_total %llu\n"
             "# HELP gemma8_requests_rejected_total Requests refused because the queue was full.\n"
             "# TYPE gemma8_requests_rejected_total counter\ngemma8_requests_rejected_total %llu\n"
             "# HELP gemma8_requests_aborted_total Requests whose client went away before the reply ended.\n"
             "# TYPE gemma8_requests_aborted_total counter\ngemma8_requests_aborted_total %llu\n"
             "# HELP gemma8_predicted_tokens_seconds Generation speed of a slot, tokens per second.\n"
             "# TYPE gemma8_predicted_tokens_seconds gauge\ngemma8_predicted_tokens_seconds %.3f\n"
             "# HELP gemma8_requests_processing Busy slots.\n"
             "# TYPE gemma8_requests_processing gauge\ngemma8_requests_processing %d\n"
             "# HELP gemma8_requests_deferred Requests waiting in the queue.\n"
             "# TYPE gemma8_requests_deferred gauge\ngemma8_requests_deferred %d\n"
             "# HELP gemma8_slots Slots (parallel sequences).\n"
             "# TYPE gemma8_slots gauge\ngemma8_slots %d\n"
             /* the same figures under llama-server's names */
             "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
             "# TYPE llamacpp:prompt_tokens_total counter\nllamacpp:prompt_tokens_total %llu\n"
             "# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
             "# TYPE llamacpp:tokens_predicted_total counter\nllamacpp:tokens_predicted_total %llu\n"
             "# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s.\n"
             "# TYPE llamacpp:predicted_tokens_seconds gauge\nllamacpp:predicted_tokens_seconds %.3f\n"
             "# HELP llamacpp:requests_processing Number of requests processing.\n"
             "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing %d\n"
             "# HELP llamacpp:requests_deferred Number of requests deferred.\n"
             "# TYPE llamacpp:requests_deferred gauge\nllamacpp:requests_deferred %d\n",
             (unsigned long long)m.requests, (unsigned long long)m.prompt_tokens,
             (unsigned long long)m.generated_tokens, (unsigned long long)m.rejected,
             (unsigned long long)atomic_load(&c->s->client_aborts),
             m.gen_seconds > 0 ? m.generated_tokens / m.gen_seconds : 0.0, m.busy_slots, m.queued,
             c->s->n_slots, (unsigned long long)m.prompt_tokens, (unsigned long long)m.generated_tokens,
             m.gen_seconds > 0 ? m.generated_tokens / m.gen_seconds : 0.0, m.busy_slots, m.queued);
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
    const cJSON *pieces = cJSON_GetObjectItem(body, "with_pieces");
    cJSON *r = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(r, "tokens");
    for (int32_t i = 0; i < n; i++) {
        if (!cJSON_IsTrue(pieces)) {
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
            continue;
        }
        /* {id, piece}: the piece as text, or as its bytes when it is not whole UTF-8 (llama-server's form) */
        char piece[256];
        srv_token_text(c->s, ids[i], piece, sizeof piece);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", ids[i]);
        if (srv_valid_utf8(piece, strlen(piece))) {
            cJSON_AddStringToObject(t, "piece", piece);
        } else {
            cJSON *bytes = cJSON_AddArrayToObject(t, "piece");
            for (const char *p = piece; *p; p++)
                cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)*p));
        }
        cJSON_AddItemToArray(arr, t);
    }
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
    const char *path; /* ending in '/': a prefix (the rest is the handler's) */
    int (*fn)(srv_conn *c, cJSON *body);
    bool list_body; /* the body is a JSON array, not an object */
} route;

/* llama-server's paths (its un-prefixed /completions and /embeddings are its native forms, as there),
 * then Ollama's */
static const route routes[] = {
    {"GET", "/", srv_webui, false},
    {"GET", "/index.html", srv_webui, false},
    {"GET", "/webui/", srv_webui, false},
    {"GET", "/health", health, false},
    {"GET", "/v1/health", health, false},
    {"GET", "/metrics", metrics, false},
    {"GET", "/props", srv_props, false},
    {"GET", "/slots", srv_slots, false},
    {"POST", "/slots/", srv_slot_action, false},
    {"POST", "/tokenize", tokenize, false},
    {"POST", "/detokenize", detokenize, false},
    {"POST", "/apply-template", srv_apply_template, false},
    {"GET", "/v1/models", oai_models, false},
    {"GET", "/models", oai_models, false},
    {"GET", "/v1/models/", oai_model_one, false},
    {"GET", "/models/", oai_model_one, false},
    {"POST", "/v1/chat/completions", oai_chat, false},
    {"POST", "/chat/completions", oai_chat, false},
    {"POST", "/v1/chat/completions/input_tokens", oai_input_tokens, false},
    {"POST", "/chat/completions/input_tokens", oai_input_tokens, false},
    {"POST", "/completion", llama_completion, false},
    {"POST", "/v1/completions", oai_completions, false},
    {"POST", "/completions", llama_completion, false},
    {"POST", "/v1/embeddings", oai_embeddings, false},
    {"POST", "/embeddings", llama_embeddings, false},
    {"POST", "/embedding", llama_embeddings, false},
    {"GET", "/lora-adapters", srv_lora_adapters, false},
    {"POST", "/lora-adapters", srv_lora_adapters_set, true},
    {"POST", "/v1/responses", responses_create, false},
    {"POST", "/responses", responses_create, false},
    {"POST", "/v1/messages", anthropic_messages, false},
    {"POST", "/v1/messages/count_tokens", anthropic_count_tokens, false},
    {"POST", "/api/chat", ollama_chat, false},
    {"POST", "/api/generate", ollama_generate, false},
    {"GET", "/api/tags", ollama_tags, false},
    {"POST", "/api/show", ollama_show, false},
    {"GET", "/api/version", ollama_version, false},
    {"GET", "/api/ps", ollama_ps, false},
    {"POST", "/api/embed", ollama_embed, false},
    {"POST", "/api/embeddings", ollama_embeddings, false},
    {"POST", "/api/pull", ollama_pull, false},
};

static bool route_matches(const route *r, const char *url) {
    size_t n = strlen(r->path);
    if (n > 1 && r->path[n - 1] == '/') return !strncmp(url, r->path, n) && url[n];
    return !strcmp(url, r->path);
}

/* Paths open without the key (as in llama-server): health, the model list and the chat page (which
 * asks for the key before it calls the API). */
static bool open_path(const srv *s, const char *url) {
    static const char *const open[] = {"/health", "/v1/health", "/models", "/v1/models", "/", "/index.html"};
    if (!strncmp(url, "/webui/", 7)) return true;
    if (s->aip_health && !strcmp(url, s->aip_health)) return true; /* Vertex AI's */
    for (size_t i = 0; i < sizeof open / sizeof *open; i++)
        if (!strcmp(url, open[i])) return true;
    return false;
}

/* constant-time comparison of the request's key (Authorization: Bearer KEY, or X-Api-Key) with ours */
static bool authorized(srv_conn *c) {
    const char *key = c->s->api_key;
    if (!key || open_path(c->s, c->url)) return true;
    const char *h = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Authorization");
    if (h && !strncmp(h, "Bearer ", 7))
        h += 7;
    else
        h = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "X-Api-Key");
    if (!h) return false;
    const size_t n = strlen(key), m = strlen(h);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < m ? h[i] : 0);
    return diff == 0;
}

/* ---- Vertex AI's prediction protocol (AIP_MODE=PREDICTION) ---------------------------------- */

/* The route's name in an instance's @requestFormat: "/v1/chat/completions" -> "chatCompletions" */
static void format_of(const char *path, char *out, size_t cap) {
    if (!strncmp(path, "/v1/", 4)) path += 3;
    if (*path == '/') path++;
    size_t k = 0;
    bool up = false;
    for (; *path && k + 1 < cap; path++) {
        if (*path == '/' || *path == '-' || *path == '_') {
            up = true;
            continue;
        }
        out[k++] = up && *path >= 'a' && *path <= 'z' ? (char)(*path - 32) : *path;
        up = false;
    }
    out[k] = 0;
}

static const route *route_for_format(const char *fmt) {
    char name[96];
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].method, "POST") || routes[i].path[strlen(routes[i].path) - 1] == '/') continue;
        format_of(routes[i].path, name, sizeof name);
        if (!strcmp(name, fmt) || !strcmp(routes[i].path, fmt)) return &routes[i];
    }
    return NULL;
}

/* Vertex AI's routes when AIP_MODE is PREDICTION: AIP_PREDICT_ROUTE (default /predict) and
 * AIP_HEALTH_ROUTE (if set), read once at start. */
static void aip_routes(srv *s) {
    const char *mode = getenv("AIP_MODE"), *path = getenv("AIP_PREDICT_ROUTE"),
               *health = getenv("AIP_HEALTH_ROUTE");
    if (!mode || strcmp(mode, "PREDICTION")) return;
    s->aip_predict = path && path[0] == '/' ? path : "/predict";
    s->aip_health = health && health[0] == '/' ? health : NULL;
}

typedef struct instance {
    srv_conn c; /* the request's, replies captured */
    const route *r;
    cJSON *payload;
} instance;

static void *run_instance(void *arg) {
    instance *in = arg;
    in->r->fn(&in->c, in->payload);
    return NULL;
}

#define MAX_INSTANCES 128

/* {instances: [{@requestFormat, ...a request of that route}]}: {predictions: [each reply]}, the
 * instances run at once (each a request of its own, streaming off); a bad instance's prediction is
 * its error object. */
static int predict(srv_conn *c, cJSON *body) {
    const cJSON *list = cJSON_GetObjectItem(body, "instances");
    const int n = cJSON_GetArraySize(list);
    if (!cJSON_IsArray(list) || n > MAX_INSTANCES)
        return srv_reply_error(c, 400, "invalid_request_error", NULL,
                               "the body must hold 'instances', a list of at most %d requests",
                               MAX_INSTANCES);
    instance *in = calloc((size_t)(n ? n : 1), sizeof *in);
    pthread_t *th = calloc((size_t)(n ? n : 1), sizeof *th);
    bool *started = calloc((size_t)(n ? n : 1), 1);
    if (!in || !th || !started) {
        free(in);
        free(th);
        free(started);
        return SRV_FAIL;
    }
    int i = 0;
    for (const cJSON *x = list->child; x; x = x->next, i++) {
        in[i].c = *c;
        in[i].c.capture = true;
        in[i].c.captured = NULL;
        const cJSON *fmt = cJSON_GetObjectItem(x, "@requestFormat");
        in[i].r = cJSON_IsString(fmt) && cJSON_IsObject(x) ? route_for_format(fmt->valuestring) : NULL;
        if (!in[i].r) {
            srv_reply_error(&in[i].c, 400, "invalid_request_error", NULL,
                            "each instance must be an object with the @requestFormat of a POST route");
            continue;
        }
        snprintf(in[i].c.url, sizeof in[i].c.url, "%s", in[i].r->path);
        in[i].payload = cJSON_Duplicate(x, true);
        cJSON_DeleteItemFromObject(in[i].payload, "@requestFormat");
        cJSON_ReplaceItemInObject(in[i].payload, "stream", cJSON_CreateFalse());
        started[i] = !pthread_create(&th[i], NULL, run_instance, &in[i]);
        if (!started[i]) srv_reply_error(&in[i].c, 503, "server_error", NULL, "no thread for the instance");
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *preds = cJSON_AddArrayToObject(o, "predictions");
    for (i = 0; i < n; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        cJSON_AddItemToArray(preds, in[i].c.captured ? in[i].c.captured : cJSON_CreateNull());
        cJSON_Delete(in[i].payload);
        if (in[i].c.has_tokens) c->has_tokens = true, c->n_generated += in[i].c.n_generated;
    }
    free(in);
    free(th);
    free(started);
    return srv_reply_json(c, 200, o);
}

/* ---- CORS ---------------------------------------------------------------------------------- */

/* An origin on this machine: http(s)://localhost, 127.x.x.x or [::1], any port. */
static bool loopback_origin(const char *o) {
    const char *h = strstr(o, "://");
    if (!h) return false;
    h += 3;
    size_t n = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/");
    bool ok = (n == 9 && !strncasecmp(h, "localhost", 9)) || (n == 5 && !strncmp(h, "[::1]", 5));
    unsigned a, b, c, d;
    char end;
    if (!ok && n < 16 && sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &end) >= 4)
        ok = a == 127 && b < 256 && c < 256 && d < 256;
    return ok && (h[n] == 0 || h[n] == ':' || h[n] == '/');
}

/* --cors-origins: "*", "localhost" (the default: pages on this machine) or a comma-separated list of
 * origins, which may hold "localhost". The server's own pages (same origin) are always allowed. */
static bool origin_allowed(srv_conn *c, const char *origin) {
    const char *host = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Host");
    if (host && !strncmp(origin, "http://", 7) && !strcasecmp(origin + 7, host)) return true;
    const char *list = c->s->cors ? c->s->cors : "localhost";
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '/')) m--;
        if (m == 1 && *p == '*') return true;
        if (m == 9 && !strncasecmp(p, "localhost", 9) && loopback_origin(origin)) return true;
        if (m && strlen(origin) == m && !strncasecmp(origin, p, m)) return true;
        p += n;
    }
    return false;
}

void srv_cors_headers(srv_conn *c, struct MHD_Response *r) {
    const char *origin = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Origin");
    if (!origin || !origin_allowed(c, origin)) return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
    MHD_add_response_header(r, "Vary", "Origin");
    if (!strcmp(c->method, "OPTIONS")) {
        /* the headers asked for, named (a "*" would not cover Authorization for a page with credentials) */
        const char *want =
            MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Access-Control-Request-Headers");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                want ? want : "Authorization, Content-Type, X-Api-Key");
        MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
    }
}

/* A preflight: 200 and the Access-Control-Allow-* headers (srv_cors_headers). */
static int preflight(srv_conn *c) { return srv_reply_text(c, 200, "text/plain", ""); }

static int dispatch(srv_conn *c) {
    /* the request is in: no inactivity timeout while it is answered (a prefill, a queue
     * or a slow model may keep a stream silent for long); on_completed restores it */
    MHD_set_connection_option(c->mhd, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)0);
    /* a preflight is answered 200 (as llama-server does), with the Access-Control-Allow-* headers only
       for an origin allowed; a request itself from another page is refused before it does anything */
    if (!strcmp(c->method, "OPTIONS")) return preflight(c);
    const char *origin = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND, "Origin");
    if (origin && !origin_allowed(c, origin))
        return srv_reply_error(c, 403, "permission_error", "origin_not_allowed",
                               "pages from %.200s may not use this server (gemma8 serve --cors-origins)",
                               origin);
    if (!authorized(c))
        return srv_reply_error(c, 401, "authentication_error", "invalid_api_key", "invalid API key");
    const route *r = NULL;
    bool path_known = false;
    /* Vertex AI's routes (AIP_MODE=PREDICTION), named by its environment */
    static const route predict_route = {"POST", "", predict, false},
                       health_route = {"GET", "", health, false};
    const char *pp = c->s->aip_predict, *hp = c->s->aip_health;
    const route *aip = pp && !strcmp(c->url, pp)   ? &predict_route
                       : hp && !strcmp(c->url, hp) ? &health_route
                                                   : NULL;
    if (aip) path_known = true, r = strcmp(c->method, aip->method) ? NULL : aip;
    for (size_t i = 0; !aip && i < sizeof routes / sizeof routes[0]; i++) {
        if (!route_matches(&routes[i], c->url)) continue;
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
        if (srv_has_nul_escape(c->body ? c->body : "", c->len))
            return srv_reply_error(
                c, 400, "invalid_request_error", NULL,
                "a string in the body holds U+0000 (\\u0000), which gemma8 does not accept");
        body = c->len ? cJSON_ParseWithLength(c->body, c->len) : NULL;
        if (r->list_body ? !cJSON_IsArray(body) : !cJSON_IsObject(body)) {
            cJSON_Delete(body);
            return srv_reply_error(c, 400, "invalid_request_error", NULL, "the body must be a JSON %s",
                                   r->list_body ? "array" : "object");
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
    bool quiet = !s->log_health && (!strcmp(c->url, "/health") || !strcmp(c->url, "/v1/health")) &&
                 c->status == 200 && tc == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    char tokens[96] = "";
    if (c->has_tokens)
        snprintf(tokens, sizeof tokens, " prompt %d (%d reused) generated %d", c->n_prompt, c->n_reused,
                 c->n_generated);
    if (!quiet)
        fprintf(stderr, "gemma8 serve: %s %s %u%s %.0f ms%s\n", c->method, c->url, c->status, tokens,
                (gemma8_time() - c->t0) * 1e3,
                tc == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed)");
    free(c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- the daemon ------------------------------------------------------------------------------ */

void *srv_http_start(srv *s, const char *host, int port) {
    aip_routes(s);
    struct sockaddr_in addr = {0};
    struct sockaddr_in6 addr6 = {0};
    struct sockaddr *sa = (struct sockaddr *)&addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
    if (strchr(host, ':')) { /* IPv6 */
        addr6.sin6_family = AF_INET6;
        addr6.sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &addr6.sin6_addr) != 1) return NULL;
        sa = (struct sockaddr *)&addr6;
        flags |= MHD_USE_IPv6;
    } else {
        addr.sin_family = AF_INET;
        addr.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return NULL;
    }
    return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)s->read_timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
                            MHD_OPTION_END);
}

void srv_http_stop(srv *s, void *daemon) {
    atomic_store(&s->stopping, true);
    MHD_quiesce_daemon(daemon); /* no new connections */
    srv_sched_stop(s->sched);   /* every request ends, with an error if it was running */
    /* open streams write their error event and end (2 s at most) before connections are closed */
    for (int i = 0; i < 200 && atomic_load(&s->open_streams) > 0; i++) usleep(10000);
    MHD_stop_daemon(daemon);
}
