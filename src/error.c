/* error.c - per-thread error messages, status names, the log callback, the version, the clock. */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Thread_local char g_errbuf[1024];

/* Set once by the application before use (see gemma8_log_set). */
static gemma8_log_fn g_log_fn;
static void *g_log_user;

const char *gemma8_version(void) { return GEMMA8_VERSION; }

double gemma8_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *gemma8_status_str(gemma8_status status) {
    switch (status) {
    case GEMMA8_OK: return "ok";
    case GEMMA8_ERR_IO: return "i/o error";
    case GEMMA8_ERR_FORMAT: return "bad file format";
    case GEMMA8_ERR_UNSUPPORTED: return "unsupported";
    case GEMMA8_ERR_NOMEM: return "out of memory";
    case GEMMA8_ERR_INVALID_ARG: return "invalid argument";
    case GEMMA8_ERR_CONTEXT_FULL: return "context full";
    case GEMMA8_ERR_ABORTED: return "aborted";
    case GEMMA8_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    }
    return "unknown status";
}

const char *gemma8_last_error(void) { return g_errbuf; }

void g8_clear_error(void) { g_errbuf[0] = 0; }

gemma8_status g8_fail(gemma8_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_errbuf, sizeof g_errbuf, fmt, ap);
    va_end(ap);
    return status;
}

void gemma8_log_set(gemma8_log_fn fn, void *user_data) {
    g_log_fn = fn;
    g_log_user = user_data;
}

void g8_log(int level, const char *fmt, ...) {
    if (!g_log_fn) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_log_fn(level, buf, g_log_user);
}
