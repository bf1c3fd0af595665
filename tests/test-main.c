/* test-main.c - runs the registered tests and prints "N passed, N failed, N skipped". */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_TESTS 512

typedef struct test_entry {
    const char *name;
    test_fn fn;
} test_entry;
static test_entry tests[MAX_TESTS];
static int n_tests, cur_failures;
static bool cur_skipped;

void harness_register(const char *name, test_fn fn) {
    if (n_tests < MAX_TESTS) tests[n_tests].name = name, tests[n_tests++].fn = fn;
}

bool harness_check(bool ok, const char *expr, const char *file, int line) {
    if (!ok) {
        cur_failures++;
        if (cur_failures <= 10) printf("    %s:%d: check failed: %s\n", file, line, expr);
    }
    return ok;
}

void harness_note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("      ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

const char *data_path(const char *rel) {
    static char buf[8][1024];
    static int k;
    const char *d = getenv("GEMMA8_TESTDATA");
    char *b = buf[k++ % 8];
    snprintf(b, 1024, "%s/%s", d ? d : "tests/data", rel);
    return b;
}

void harness_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("      skipped: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    cur_skipped = true;
}

static char tmpdir[256];

const char *tmp_path(const char *rel) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 1024, "%s/%s", tmpdir, rel);
    return b;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const test_entry *)a)->name, ((const test_entry *)b)->name);
}

int main(int argc, char **argv) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gemma8-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    qsort(tests, (size_t)n_tests, sizeof tests[0], cmp_name);
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < n_tests; i++) {
        /* arguments: run the tests whose names contain any of them (all if none is given), less
         * those whose names contain an argument given as -TEXT */
        bool any_include = false;
        bool picked = false;
        bool dropped = false;
        for (int a = 1; a < argc; a++) {
            const bool exclude = argv[a][0] == '-';
            any_include = any_include || !exclude;
            if (exclude) dropped = dropped || strstr(tests[i].name, argv[a] + 1);
            else picked = picked || strstr(tests[i].name, argv[a]);
        }
        if ((any_include && !picked) || dropped) continue;
        cur_failures = 0;
        cur_skipped = false;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        const double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        const char *mark = cur_failures ? "FAIL" : cur_skipped ? "skip" : "ok  ";
        printf("  %s %s (%.2f s)\n", mark, tests[i].name, secs);
        fflush(stdout);
        if (cur_failures) failed++;
        else if (cur_skipped) skipped++;
        else passed++;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
