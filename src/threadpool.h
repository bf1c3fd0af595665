/* threadpool.h - a fixed pool of pthreads running one parallel task at a time. */
#ifndef G8_THREADPOOL_H
#define G8_THREADPOOL_H

typedef struct g8_pool g8_pool;

/* fn(arg, ith, nth) runs once for each ith in [0, nth). */
typedef void (*g8_task_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 (the caller counts as one). NULL on failure. */
g8_pool *g8_pool_new(int n_threads);
void g8_pool_free(g8_pool *pool);
int g8_pool_size(const g8_pool *pool);
/* Runs fn on every thread (the caller is thread 0) and returns when all are done. */
void g8_pool_run(g8_pool *pool, g8_task_fn fn, void *arg);

/* The default thread count: physical cores this process may run on (the CPUs
 * of its affinity mask, hyper-threads of one core counted once). */
int g8_physical_cores(void);
/* The count for the CPUs cpus[0..n) of a sysfs tree at root (each
 * cpuN/topology/thread_siblings_list read); 0 when a file is missing. */
int g8_count_cores(const char *root, const int *cpus, int n);

#endif
