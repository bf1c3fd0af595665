/* threadpool.c - workers spin briefly for the next task (decode issues many
 * small ones), then sleep on a condition variable: no busy-waiting when idle. */
#include "threadpool.h"
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPIN_LIMIT 20000

/* a thread's share of the work: units [lo, hi) left, lo in the low 32 bits, on a line of its own */
typedef struct share {
    _Alignas(64) _Atomic uint64_t range;
} share;

struct g8_pool {
    int n;
    share *shares;          /* n * G8_POOL_STREAMS */
    int n_shares;           /* of the current run */
    int streams;            /* shares a thread owns in the current run */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;        /* bumped for each task */
    atomic_int pending;     /* workers still running the current task */
    atomic_bool quit;
    g8_task_fn fn;
    void *arg;
};

typedef struct worker_arg {
    g8_pool *pool;
    int ith;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void *worker(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    g8_pool *pool = wa.pool;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool->gen, memory_order_acquire) == seen && !atomic_load(&pool->quit)) {
            if (++spins < SPIN_LIMIT) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->quit)) pthread_cond_wait(&pool->cv, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->quit)) return NULL;
        seen = atomic_load(&pool->gen);
        pool->fn(pool->arg, wa.ith, pool->n);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

g8_pool *g8_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    g8_pool *pool = g8_calloc(1, sizeof *pool, "thread pool");
    if (!pool) return NULL;
    pool->n = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->threads = g8_calloc((size_t)n_threads, sizeof(pthread_t), "thread pool");
    const size_t shares = (size_t)n_threads * G8_POOL_STREAMS;
    pool->shares = pool->threads ? aligned_alloc(_Alignof(share), shares * sizeof(share)) : NULL;
    if (!pool->shares) {
        if (pool->threads)
            g8_fail(GEMMA8_ERR_NOMEM, "out of memory for the work shares of %d threads", n_threads);
        free(pool->threads);
        free(pool);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa || (wa->pool = pool, wa->ith = i, pthread_create(&pool->threads[i], NULL, worker, wa) != 0)) {
            free(wa);
            pool->n = i; /* the threads started so far */
            g8_pool_free(pool);
            g8_fail(GEMMA8_ERR_NOMEM, "cannot start worker thread %d", i);
            return NULL;
        }
    }
    return pool;
}

void g8_pool_free(g8_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->quit, true);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool->shares);
    free(pool);
}

int g8_pool_size(const g8_pool *pool) { return pool->n; }

void g8_pool_run(g8_pool *pool, g8_task_fn fn, void *arg) {
    if (pool->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->pending, pool->n - 1);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add_explicit(&pool->gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    fn(arg, 0, pool->n);
    while (atomic_load_explicit(&pool->pending, memory_order_acquire) > 0) cpu_relax();
}

static inline uint64_t range_of(uint64_t lo, uint64_t hi) { return lo | hi << 32; }

void g8_split(int64_t n, int ith, int nth, int64_t align, int64_t *r0, int64_t *r1) {
    const int64_t units = (n + align - 1) / align;
    const int64_t per = units / nth, extra = units % nth;
    const int64_t u0 = ith * per + G8_MIN(ith, extra), u1 = u0 + per + (ith < extra);
    *r0 = G8_MIN(n, u0 * align);
    *r1 = G8_MIN(n, u1 * align);
}

void g8_pool_share(g8_pool *pool, int64_t n, int streams) {
    pool->streams = G8_MAX(1, G8_MIN(streams, G8_POOL_STREAMS));
    pool->n_shares = pool->n * pool->streams;
    for (int i = 0; i < pool->n_shares; i++) {
        int64_t lo, hi;
        g8_split(n, i, pool->n_shares, 1, &lo, &hi);
        atomic_store_explicit(&pool->shares[i].range, range_of((uint64_t)lo, (uint64_t)hi),
                              memory_order_relaxed);
    }
}

/* Takes from the front (own share) or the back (another's) of share s: step units from the back, and
 * from the front an eighth of what is left when that is more (at least step). A take is a locked
 * compare-and-swap, which waits for the thread's loads in flight: a GEMV that took 4 groups at a
 * time spent ~2% of decode there (1B q4_0). Taking big pieces while much is left makes a share of
 * n units a few dozen takes instead of n / step, and the ends still come in steps. */
static bool take_from(share *s, bool front, int64_t step, int64_t *u0, int64_t *u1) {
    uint64_t r = atomic_load_explicit(&s->range, memory_order_relaxed);
    for (;;) {
        const int64_t lo = (int64_t)(r & 0xffffffffu), hi = (int64_t)(r >> 32);
        if (lo >= hi) return false;
        const int64_t ahead = G8_MAX(step, (hi - lo) / 8);
        const int64_t a = front ? lo : G8_MAX(lo, hi - step), b = front ? G8_MIN(hi, lo + ahead) : hi;
        const uint64_t left = front ? range_of((uint64_t)b, (uint64_t)hi) : range_of((uint64_t)lo, (uint64_t)a);
        if (atomic_compare_exchange_weak_explicit(&s->range, &r, left, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *u0 = a;
            *u1 = b;
            return true;
        }
    }
}

bool g8_pool_take(g8_pool *pool, int ith, int stream, int64_t step, int64_t *u0, int64_t *u1) {
    if (stream < pool->streams && take_from(&pool->shares[ith * pool->streams + stream], true, step, u0, u1))
        return true;
    for (;;) { /* help the share with the most left */
        int most = -1;
        int64_t most_left = 0;
        for (int i = 0; i < pool->n_shares; i++) {
            const uint64_t r = atomic_load_explicit(&pool->shares[i].range, memory_order_relaxed);
            const int64_t left = (int64_t)(r >> 32) - (int64_t)(r & 0xffffffffu);
            if (left > most_left) most = i, most_left = left;
        }
        if (most < 0) return false;
        /* a share of the thread's own (another stream of it) still from the front: its owner's takes
         * of a share follow on from one another, whoever else takes from its back */
        if (take_from(&pool->shares[most], most / pool->streams == ith, step, u0, u1)) return true;
    }
}

int g8_count_cores(const char *root, const int *cpus, int n) {
    char (*seen)[64] = malloc((size_t)(n > 0 ? n : 1) * sizeof *seen); /* the sibling lists met: one per core */
    int cores = 0;
    for (int i = 0; seen && i < n; i++) {
        char path[512], list[64] = "";
        snprintf(path, sizeof path, "%s/cpu%d/topology/thread_siblings_list", root, cpus[i]);
        FILE *f = fopen(path, "r");
        const bool ok = f && fgets(list, sizeof list, f) != NULL;
        if (f) fclose(f);
        if (!ok) {
            cores = 0;
            break;
        }
        list[strcspn(list, "\n")] = 0;
        int j = 0;
        while (j < cores && strcmp(seen[j], list)) j++;
        if (j == cores) memcpy(seen[cores++], list, sizeof list);
    }
    free(seen);
    return cores;
}

int g8_physical_cores(void) {
    cpu_set_t set;
    int cpus[CPU_SETSIZE], n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set)) cpus[n++] = c;
    int cores = n ? g8_count_cores("/sys/devices/system/cpu", cpus, n) : 0;
    if (cores < 1) cores = n ? n : (int)G8_MAX(1, sysconf(_SC_NPROCESSORS_ONLN));
    return cores;
}
