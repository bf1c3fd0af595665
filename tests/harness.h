/* harness.h - a minimal test harness: TEST() registers, CHECK() records. */
#ifndef G8_HARNESS_H
#define G8_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*test_fn)(void);
void harness_register(const char *name, test_fn fn);
bool harness_check(bool ok, const char *expr, const char *file, int line);
void harness_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Marks the running test skipped (what it needs is not here), with the reason;
 * the caller returns. A skipped test is counted as skipped, never as passed. */
void harness_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define TEST(name)                                                                    \
    static void name(void);                                                           \
    __attribute__((constructor)) static void reg_##name(void) { harness_register(#name, name); } \
    static void name(void)

#define CHECK(cond) harness_check((cond), #cond, __FILE__, __LINE__)
#define CHECKF(cond, ...) (harness_check((cond), #cond, __FILE__, __LINE__) ? true : (harness_note(__VA_ARGS__), false))

/* Test data directory (GEMMA8_TESTDATA, default tests/data) joined with rel. */
const char *data_path(const char *rel);
/* A fresh temporary directory for this run, joined with rel. */
const char *tmp_path(const char *rel);

#endif
