/* threadpool.h - a fixed pool of pthreads running one parallel task at a time. */
#ifndef G8_THREADPOOL_H
#define G8_THREADPOOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct g8_pool g8_pool;

/* fn(arg, ith, nth) runs once for each ith in [0, nth). */
typedef void (*g8_task_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (the caller counts as one). NULL on failure. */
g8_pool *g8_pool_new(int n_threads);
void g8_pool_free(g8_pool *pool);
int g8_pool_size(const g8_pool *pool);
/* Runs fn on every thread (the caller is thread 0) and returns when all are done. */
void g8_pool_run(g8_pool *pool, g8_task_fn fn, void *arg);

/* Splits [0, n) in nth contiguous parts aligned to `align` (the first ones one unit longer when
 * they do not come out even): the part [*r0, *r1) of thread ith. */
void g8_split(int64_t n, int ith, int nth, int64_t align, int64_t *r0, int64_t *r1);

/* Work of n units shared out for the next run: thread ith owns `streams` contiguous shares (the
 * shares ith * streams .. ith * streams + streams - 1 of n cut in nth * streams parts) and takes
 * each front to back (one stream through memory per share), an eighth of what is left at a time
 * (at least `step` units); a thread whose share is done takes steps from the back of the share with
 * the most left, so no thread waits for long. A thread reading shares far apart side by side keeps
 * more of memory busy than one reading one share (ops.c). g8_pool_take(pool, ith, k, ...) takes
 * from the front of thread ith's share k, or once that is done from the back of the share with the
 * most left. Call g8_pool_share before g8_pool_run; g8_pool_take returns false when every unit is
 * taken. streams <= G8_POOL_STREAMS. */
enum { G8_POOL_STREAMS = 4 };
void g8_pool_share(g8_pool *pool, int64_t n, int streams);
bool g8_pool_take(g8_pool *pool, int ith, int stream, int64_t step, int64_t *u0, int64_t *u1);

/* The default thread count: physical cores this process may run on (the CPUs
 * of its affinity mask, hyper-threads of one core counted once). */
int g8_physical_cores(void);
/* The count for the CPUs cpus[0..n) of a sysfs tree at root (each
 * cpuN/topology/thread_siblings_list read); 0 when a file is missing. */
int g8_count_cores(const char *root, const int *cpus, int n);

#endif
