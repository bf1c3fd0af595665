/* slow-json.c - LD_PRELOAD for the server under ThreadSanitizer (make test-tsan): every
 * cJSON_PrintUnformatted (the last step of writing a reply or a streamed chunk out) first
 * sleeps 20 ms. An HTTP thread then spends most of its time between reading a task's events
 * and taking the task's lock again, so any unsynchronized read of what the scheduler moves
 * meets the scheduler's write in ThreadSanitizer's view: the race of the event array that
 * grew under a reader (fixed in 0.4) is reported every time, not by luck. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>

typedef struct cJSON cJSON;
typedef char *(*print_fn)(const cJSON *);

char *cJSON_PrintUnformatted(const cJSON *item) {
    static print_fn real;
    if (!real) real = (print_fn)dlsym(RTLD_NEXT, "cJSON_PrintUnformatted");
    const struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    return real(item);
}
