/* common.h - internal helpers shared by the library: errors, logging, sizes. */
#ifndef G8_COMMON_H
#define G8_COMMON_H

#include "gemma8.h"
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <time.h>

#if defined(__GNUC__)
#define G8_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define G8_PRINTF(a, b)
#endif

/* Records a failure message for gemma8_last_error() and returns status. */
gemma8_status g8_fail(gemma8_status status, const char *fmt, ...) G8_PRINTF(2, 3);
void g8_clear_error(void);

void g8_log(int level, const char *fmt, ...) G8_PRINTF(2, 3);
#define G8_LOG_ERROR 0
#define G8_LOG_WARN 1
#define G8_LOG_INFO 2
#define G8_LOG_DEBUG 3

/* a * b, false on overflow of size_t. */
static inline bool g8_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

/* FNV-1a over n bytes, continuing from h (G8_FNV64_SEED to start): fingerprints
 * of models and adapters, not a cryptographic hash. */
#define G8_FNV64_SEED 0xcbf29ce484222325ull
static inline uint64_t g8_fnv64(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* malloc/calloc that record an out-of-memory message naming what was wanted. */
void *g8_malloc(size_t n, const char *what);
void *g8_calloc(size_t count, size_t size, const char *what);

/* Memory for what is streamed again and again (packed weights, KV cache): on 2 MiB pages where the
 * kernel gives them (transparent huge pages in "madvise" mode, as Debian sets them), so that a
 * stream does not walk the page tables every 4 KiB. Released with free(); NULL when out of memory. */
void *g8_alloc_huge(size_t bytes);

/* tokens in one forward pass when the caller does not say */
#define G8_DEFAULT_BATCH 256

#define G8_MIN(a, b) ((a) < (b) ? (a) : (b))
#define G8_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
