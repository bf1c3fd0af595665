/* test-threadpool.c - the thread pool's default size. */
#include "testutil.h"
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
