/* strbuf.h - a growing buffer of bytes, kept NUL-terminated so that text in it reads as a string;
 * out of memory is sticky (checked once at the end). */
#ifndef G8_STRBUF_H
#define G8_STRBUF_H

#include "common.h"

typedef struct g8_sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} g8_sbuf;

void g8_sb_put(g8_sbuf *b, const char *s, size_t n);
void g8_sb_printf(g8_sbuf *b, const char *fmt, ...) G8_PRINTF(2, 3);

#endif
