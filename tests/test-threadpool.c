/* test-threadpool.c - the thread pool's default size. */
#include "testutil.h"
#include "common.h"
#include "threadpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The default thread count: hyper-threads of one core counted once, read from a
 * sysfs tree (here a made-up one: 4 CPUs, 2 cores of 2 threads, and one that
 * names a missing CPU); on this machine, between 1 and the online CPUs. */
TEST(threads_physical_cores) {
    char root[512], dir[600];
    snprintf(root, sizeof root, "%s", tmp_path("sysfs-cpu"));
    const char *lists[] = {"0,2", "1,3", "0,2", "1,3"};
    for (int c = 0; c < 4; c++) {
        snprintf(dir, sizeof dir, "mkdir -p %s/cpu%d/topology", root, c);
        CHECK(system(dir) == 0);
        snprintf(dir, sizeof dir, "%s/cpu%d/topology/thread_siblings_list", root, c);
        FILE *f = fopen(dir, "w");
        if (!CHECK(f != NULL)) return;
        fprintf(f, "%s\n", lists[c]);
        fclose(f);
    }
    const int all[] = {0, 1, 2, 3}, one_core[] = {0, 2}, missing[] = {0, 7};
    CHECK(g8_count_cores(root, all, 4) == 2);
    CHECK(g8_count_cores(root, one_core, 2) == 1);
    CHECK(g8_count_cores(root, all, 1) == 1);
    CHECK(g8_count_cores(root, missing, 2) == 0);
    const int n = g8_physical_cores();
    CHECKF(n >= 1 && n <= sysconf(_SC_NPROCESSORS_ONLN), "%d physical cores", n);
    harness_note("physical cores here: %d (online CPUs %ld)", n, sysconf(_SC_NPROCESSORS_ONLN));
}

typedef struct take_run {
    g8_pool *pool;
    int64_t step;
    int streams;        /* shares a thread owns */
    int *hits;          /* per unit: how many threads took it */
    int64_t *first;     /* per share: the first unit its owner took of it */
    int *out_of_order;  /* per share: its owner's steps that did not follow the previous one */
    int *bad_size;      /* per thread: takes bigger than take_from allows */
    int64_t *own_start, *own_end; /* per share: as set out */
} take_run;

/* Takes from the thread's own shares in turn, as ops.c does with several streams. */
static void take_task(void *arg, int ith, int nth) {
    take_run *r = arg;
    int64_t u0, u1, next[G8_POOL_STREAMS];
    (void)nth;
    r->bad_size[ith] = 0;
    for (int k = 0; k < r->streams; k++) {
        const int sh = ith * r->streams + k;
        r->first[sh] = -1;
        r->out_of_order[sh] = 0;
        next[k] = -1;
    }
    for (int turn = 0; g8_pool_take(r->pool, ith, turn % r->streams, r->step, &u0, &u1); turn++) {
        int own = -1; /* which of the thread's own shares u0 lies in */
        for (int k = 0; k < r->streams; k++) {
            const int sh = ith * r->streams + k;
            if (u0 >= r->own_start[sh] && u0 < r->own_end[sh]) own = k;
        }
        if (own >= 0) {
            const int sh = ith * r->streams + own;
            if (r->first[sh] < 0) r->first[sh] = u0;
            if (next[own] >= 0 && u0 != next[own]) r->out_of_order[sh]++;
            next[own] = u1;
        }
        /* a step at most from another's share; from its own, at most an eighth of what was left
         * when that is more */
        const int64_t left = own >= 0 ? r->own_end[ith * r->streams + own] - u0 : 0;
        if (u1 - u0 > G8_MAX(r->step, left / 8)) r->bad_size[ith]++;
        for (int64_t u = u0; u < u1; u++) __atomic_fetch_add(&r->hits[u], 1, __ATOMIC_RELAXED);
        if ((u0 * 7 + ith) % 5 == 0) usleep(50); /* uneven speeds: some threads fall behind */
    }
}

/* Shared-out work (g8_pool_share/take): every unit is taken exactly once, whatever the counts of
 * units, threads, streams and the step, with threads of uneven speed; what a thread takes of each
 * of its own shares starts at the share's front and follows on take after take (others take from
 * the back), and no take is more than a step, or from the front an eighth of what was left. */
TEST(threads_shares_every_unit_once) {
    const int threads[] = {1, 2, 3, 5};
    const int64_t counts[] = {0, 1, 7, 64, 1000};
    const int64_t steps[] = {1, 4, 64};
    for (int a = 0; a < 4; a++) {
        g8_pool *pool = g8_pool_new(threads[a]);
        if (!CHECK(pool != NULL)) return;
        const int nth = g8_pool_size(pool);
        for (int streams = 1; streams <= G8_POOL_STREAMS; streams++)
            for (int b = 0; b < 5; b++)
                for (int c = 0; c < 3; c++) {
                    const int64_t n = counts[b];
                    const int ns = nth * streams;
                    int *hits = calloc((size_t)n + 1, sizeof *hits), out_of_order[32], bad_size[8];
                    int64_t first[32], own_start[32], own_end[32];
                    for (int i = 0; i < ns; i++) { /* the shares as g8_pool_share sets them out */
                        own_start[i] = i * (n / ns) + G8_MIN(i, n % ns);
                        own_end[i] = own_start[i] + n / ns + (i < n % ns);
                    }
                    take_run r = {pool, steps[c], streams, hits, first, out_of_order, bad_size,
                                  own_start, own_end};
                    g8_pool_share(pool, n, streams);
                    g8_pool_run(pool, take_task, &r);
                    int bad = 0;
                    for (int64_t u = 0; u < n; u++) bad += hits[u] != 1;
                    CHECKF(bad == 0, "%d threads, %d streams, %lld units, step %lld: %d units not taken once", nth,
                           streams, (long long)n, (long long)steps[c], bad);
                    for (int i = 0; i < ns; i++) {
                        CHECKF(first[i] < 0 || first[i] == own_start[i], "share %d began at %lld, not %lld", i,
                               (long long)first[i], (long long)own_start[i]);
                        CHECKF(out_of_order[i] == 0, "share %d taken out of order by its owner", i);
                    }
                    for (int i = 0; i < nth; i++)
                        CHECKF(bad_size[i] == 0, "thread %d: %d takes too big", i, bad_size[i]);
                    free(hits);
                }
        g8_pool_free(pool);
    }
}
