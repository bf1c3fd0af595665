/* conn.h - a connection as the daemon (http.c) and the reply writers (reply.c) share it. */
#ifndef GEMMA8_SERVER_CONN_H
#define GEMMA8_SERVER_CONN_H

#include "server.h"

#include <microhttpd.h>

struct srv_conn {
    srv *s;
    struct MHD_Connection *mhd;
    char method[16];
    char url[256];
    char *body;
    size_t len, cap;
    bool too_big;
    bool replied;
    double t0;
    unsigned status; /* for the log line */
    int32_t n_prompt, n_reused, n_generated;
    bool has_tokens;
    bool capture;    /* a request inside another (Vertex AI's /predict): replies are kept, not sent */
    cJSON *captured; /* the reply's body (taken) */
};

/* Access-Control-Allow-* for the request's origin when --cors-origins allows it (http.c). */
void srv_cors_headers(srv_conn *c, struct MHD_Response *r);

#endif
