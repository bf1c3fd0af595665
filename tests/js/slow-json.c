/* slow-json.c - LD_PRELOAD for the server under ThreadSanitizer (make test-tsan): every
 * cJSON_PrintUnformatted (the last step of writing a reply or a streamed chunk out) first
 * sleeps SLOW_JSON_MS milliseconds (300). An HTTP thread then spends most of its time between
 * reading a task's events and taking the task's lock again, longer than the scheduler takes
 * for a step, so any unsynchronized read of what the scheduler moves meets the scheduler's
 * write in ThreadSanitizer's view: the race of the event array that grew under a reader
 * (fixed in 0.4) is reported every run, not by luck. (With 20 ms, shorter than a step under
 * ThreadSanitizer, the reader was back waiting on the task before each write: no report.) */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

typedef struct cJSON cJSON;
typedef char *(*print_fn)(const cJSON *);

char *cJSON_PrintUnformatted(const cJSON *item) {
    static print_fn real;
    if (!real) real = (print_fn)dlsym(RTLD_NEXT, "cJSON_PrintUnformatted");
    const char *ms_s = getenv("SLOW_JSON_MS");
    const long ms = ms_s ? atol(ms_s) : 300;
    const struct timespec pause = {ms / 1000, ms % 1000 * 1000000};
    nanosleep(&pause, NULL);
    return real(item);
}
