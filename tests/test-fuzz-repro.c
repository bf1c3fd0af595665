/* test-fuzz-repro.c - inputs the fuzzers once crashed on (tests/data/fuzz-repro):
 * each must now end in a clean error. Run under ASan by make test-asan. */
#include "testutil.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

TEST(fuzz_reproducers_fail_cleanly) {
    DIR *d = opendir(data_path("fuzz-repro"));
    if (!CHECK(d != NULL)) return;
    gemma8_model *tiny;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!CHECK(gemma8_model_load(data_path("llamacpp-gguf/tiny-a-f32.gguf"), &mp, &tiny) == GEMMA8_OK)) return;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 8;
    gemma8_context *ctx;
    CHECK(gemma8_context_new(tiny, &cp, &ctx) == GEMMA8_OK);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char rel[512];
        snprintf(rel, sizeof rel, "fuzz-repro/%s", e->d_name);
        const char *path = data_path(rel);
        gemma8_status st = GEMMA8_OK;
        if (!strncmp(e->d_name, "gguf-", 5)) {
            gemma8_model *m;
            st = gemma8_model_load(path, &mp, &m);
            if (!st) gemma8_model_free(m);
        } else if (!strncmp(e->d_name, "promptcache-", 12)) {
            st = gemma8_cache_load(ctx, 0, path);
        }
        CHECKF(st != GEMMA8_OK && gemma8_last_error()[0], "%s: status %d", e->d_name, st);
        harness_note("%s: %s", e->d_name, gemma8_last_error());
        n++;
    }
    closedir(d);
    CHECK(n >= 3);
    gemma8_context_free(ctx);
    gemma8_model_free(tiny);
}
