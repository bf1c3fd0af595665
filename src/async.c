/* async.c - gemma8_generate on a thread of its own. The run is the caller's
 * handle; the context only records that one holds it. */
#include "context.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gemma8_async {
    pthread_t thread;
    gemma8_context *ctx;
    int32_t *prompt;
    int32_t n_prompt;
    gemma8_generate_params params;
    gemma8_generate_result result;
    gemma8_status status;
    char error[1024];        /* the run thread's last error, handed to the waiting one */
};

static void *async_main(void *arg) {
    gemma8_async *job = arg;
    /* the flag was cleared by gemma8_generate_async: an abort right after it returned is not lost */
    job->status = g8_generate(job->ctx, job->prompt, job->n_prompt, &job->params, false, &job->result);
    snprintf(job->error, sizeof job->error, "%s", gemma8_last_error());
    return NULL;
}

gemma8_status gemma8_generate_async(gemma8_context *ctx, const int32_t *prompt, int32_t n_prompt,
                                    const gemma8_generate_params *params, gemma8_async **out) {
    if (!out) return g8_fail(GEMMA8_ERR_INVALID_ARG, "gemma8_generate_async needs somewhere to put the run");
    *out = NULL;
    if (!ctx || !params || n_prompt <= 0 || !prompt)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "gemma8_generate_async needs a context, a prompt and parameters");
    if (atomic_exchange(&ctx->async_running, true))
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "a generation is already running on this context");
    gemma8_async *job = g8_calloc(1, sizeof *job, "an asynchronous run");
    int32_t *copy = job ? g8_malloc((size_t)n_prompt * sizeof(int32_t), "an asynchronous run") : NULL;
    if (!copy) {
        free(job);
        atomic_store(&ctx->async_running, false);
        return GEMMA8_ERR_NOMEM;
    }
    memcpy(copy, prompt, (size_t)n_prompt * sizeof(int32_t));
    job->prompt = copy;
    job->ctx = ctx;
    job->n_prompt = n_prompt;
    job->params = *params;
    atomic_store(&ctx->abort, false);
    if (pthread_create(&job->thread, NULL, async_main, job) != 0) {
        free(job->prompt);
        free(job);
        atomic_store(&ctx->async_running, false);
        return g8_fail(GEMMA8_ERR_NOMEM, "cannot start a thread");
    }
    *out = job;
    return GEMMA8_OK;
}

gemma8_status gemma8_wait(gemma8_async *job, gemma8_generate_result *result) {
    if (!job) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no asynchronous run to wait for");
    pthread_join(job->thread, NULL);
    atomic_store(&job->ctx->async_running, false);
    const gemma8_status st = job->status;
    if (result) *result = job->result;
    if (st) g8_fail(st, "%s", job->error);
    free(job->prompt);
    free(job);
    return st;
}
