/* alloc.c - allocation that names what failed, and memory on huge pages for streamed data. */
#include "common.h"

#include <stdlib.h>
#include <sys/mman.h>

void *g8_malloc(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) g8_fail(GEMMA8_ERR_NOMEM, "out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *g8_alloc_huge(size_t bytes) {
    enum { HUGE = 2 << 20 };
    if (bytes < HUGE) return malloc(bytes ? bytes : 1);
    const size_t n = (bytes + HUGE - 1) / HUGE * HUGE;
    void *p = aligned_alloc(HUGE, n);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
}

void *g8_calloc(size_t count, size_t size, const char *what) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) g8_fail(GEMMA8_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}
