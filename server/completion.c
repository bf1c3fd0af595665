/* completion.c - llama-server's native POST /completion: a prompt as text, token ids or a mix of
 * both; llama-server's field names and defaults (n_predict, n_probs, ignore_eos, return_tokens,
 * cache_prompt, ...); the reply as one object or an SSE stream of {content, stop} objects, with
 * llama-server's closing fields (stop_type, tokens_predicted, timings, ...). */
#include "server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The prompt: a string, token ids, or a list mixing both (a string first gets <bos>), or a list
 * holding one such prompt. Several prompts in one request are refused by name. */
static gemma8_status prompt_tokens(srv *s, const cJSON *p, srv_task *t, srv_error *e) {
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && (cJSON_IsArray(p->child) || cJSON_IsString(p->child)))
        p = p->child;
    if (cJSON_IsString(p)) return srv_text_tokens(s, p->valuestring, true, true, &t->prompt, &t->n_prompt);
    if (!cJSON_IsArray(p) || !cJSON_GetArraySize(p)) {
        srv_fail(e, 400, NULL, "'prompt' must be a string, token ids, or a list of both");
        return GEMMA8_ERR_INVALID_ARG;
    }
    int32_t *ids = NULL, n = 0;
    size_t cap = 0;
    bool first = true;
    for (const cJSON *x = p->child; x; x = x->next, first = false) {
        int32_t *part = NULL, np = 0, one;
        if (cJSON_IsNumber(x)) {
            if (x->valuedouble != (int32_t)x->valuedouble || x->valuedouble < 0 || x->valuedouble >= s->info.n_vocab) {
                free(ids);
                srv_fail(e, 400, NULL, "token ids must be integers in 0..%d", s->info.n_vocab - 1);
                return GEMMA8_ERR_INVALID_ARG;
            }
            one = (int32_t)x->valuedouble;
            part = &one;
            np = 1;
        } else if (cJSON_IsString(x)) {
            gemma8_status st = srv_text_tokens(s, x->valuestring, first, true, &part, &np);
            if (st) {
                free(ids);
                if (st != GEMMA8_ERR_CONTEXT_FULL) srv_fail(e, 400, NULL, "%s", gemma8_last_error());
                t->n_prompt = n + np;
                return st;
            }
        } else {
            free(ids);
            srv_fail(e, 400, NULL, "'prompt': several prompts in one request are not supported; send one each");
            return GEMMA8_ERR_INVALID_ARG;
        }
        if ((size_t)(n + np) > cap) {
            cap = (size_t)(n + np) * 2;
            int32_t *ni = realloc(ids, cap * sizeof *ni);
            if (!ni) {
                if (part != &one) free(part);
                free(ids);
                srv_fail(e, 500, NULL, "out of memory");
                return GEMMA8_ERR_NOMEM;
            }
            ids = ni;
        }
        memcpy(ids + n, part, (size_t)np * sizeof *ids);
        n += np;
        if (part != &one) free(part);
    }
    t->prompt = ids;
    t->n_prompt = n;
    return n >= s->n_ctx_slot ? GEMMA8_ERR_CONTEXT_FULL : GEMMA8_OK;
}

/* llama-server's fields and defaults (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05) */
static bool read_fields(srv *s, const cJSON *b, srv_task *t, char *err, size_t cap) {
    gemma8_generate_params *p = &t->params;
    gemma8_sampler_params *sp = &p->sampling;
    sp->temperature = 0.8f;
    sp->top_k = 40;
    sp->top_p = 0.95f;
    sp->min_p = 0.05f;
    sp->repeat_penalty = 1.0f;
    sp->repeat_last_n = 64;
    sp->seed = srv_random_seed();
    srv_apply_defaults(s, sp);
    double temp = sp->temperature, top_k = sp->top_k, top_p = sp->top_p, min_p = sp->min_p, rep = 1, last_n = 64;
    double pres = 0, freq = 0, seed = -1, n_probs = 0;
    double n_predict = s->dflt.has_n_predict ? s->dflt.n_predict : -1;
    if (!srv_number(b, "temperature", 0, 100, &temp, err, cap) || !srv_number(b, "top_k", 0, 1e6, &top_k, err, cap) ||
        !srv_number(b, "top_p", 0, 1, &top_p, err, cap) || !srv_number(b, "min_p", 0, 1, &min_p, err, cap) ||
        !srv_number(b, "repeat_penalty", 0.01, 100, &rep, err, cap) ||
        !srv_number(b, "repeat_last_n", -1, 1 << 20, &last_n, err, cap) ||
        !srv_number(b, "presence_penalty", -100, 100, &pres, err, cap) ||
        !srv_number(b, "frequency_penalty", -100, 100, &freq, err, cap) ||
        !srv_number(b, "seed", -1, 4294967295.0, &seed, err, cap) ||
        !srv_number(b, "n_predict", -1, 2147483647.0, &n_predict, err, cap) ||
        !srv_number(b, "max_tokens", -1, 2147483647.0, &n_predict, err, cap) ||
        !srv_number(b, "n_probs", 0, SRV_MAX_TOP, &n_probs, err, cap))
        return false;
    if (!srv_stop(cJSON_GetObjectItem(b, "stop"), t, err, cap)) return false;
    if (!srv_logit_bias(s, cJSON_GetObjectItem(b, "logit_bias"), t, err, cap)) return false;
    sp->temperature = (float)temp;
    sp->top_k = (int32_t)top_k;
    sp->top_p = top_p > 0 ? (float)top_p : 1e-6f;
    sp->min_p = (float)min_p;
    sp->repeat_penalty = (float)rep;
    sp->repeat_last_n = last_n < 0 ? s->n_ctx_slot : (int32_t)last_n;
    sp->presence_penalty = (float)pres;
    sp->frequency_penalty = (float)freq;
    if (seed >= 0) sp->seed = (uint32_t)seed;
    p->max_new_tokens = n_predict < 0 || n_predict > s->n_ctx_slot ? s->n_ctx_slot : (int32_t)n_predict;
    p->ignore_eos = cJSON_IsTrue(cJSON_GetObjectItem(b, "ignore_eos"));
    t->n_logprobs = n_probs > 0 ? (int)n_probs : -1;
    const cJSON *js = cJSON_GetObjectItem(b, "json_schema"), *gr = cJSON_GetObjectItem(b, "grammar");
    if (js && !cJSON_IsNull(js) && !srv_constrain(t, js, NULL, err, cap)) return false;
    if (gr && !cJSON_IsNull(gr)) {
        if (!cJSON_IsString(gr)) {
            snprintf(err, cap, "'grammar' must be a string (GBNF)");
            return false;
        }
        if (gr->valuestring[0] && !srv_constrain(t, NULL, gr->valuestring, err, cap)) return false;
    }
    return true;
}

bool llama_parse_completion(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    *out = NULL;
    const cJSON *prompt = cJSON_GetObjectItem(body, "prompt");
    if (!prompt) prompt = cJSON_GetObjectItem(body, "content");
    srv_task *t = srv_task_new(SRV_GENERATE);
    if (!t) return srv_fail(e, 500, NULL, "out of memory");
    e->status = 0;
    gemma8_status gs = prompt_tokens(s, prompt, t, e);
    if (gs && gs != GEMMA8_ERR_CONTEXT_FULL) {
        srv_task_unref(t);
        return false;
    }
    return srv_parse_done(s, body, t, gs, read_fields, out, e);
}

typedef struct cstream {
    int seen;
    bool finished;
    bool return_tokens;
} cstream;

static const char *stop_type(const srv_task *t) {
    switch (t->res.stop_reason) {
    case GEMMA8_STOP_EOG:
        return "eos";
    case GEMMA8_STOP_STRING:
        return "word";
    case GEMMA8_STOP_LENGTH:
    case GEMMA8_STOP_CONTEXT:
        return "limit";
    default:
        return "none";
    }
}

/* n_probs: [{id, token, bytes, logprob, top_logprobs: [{id, token, bytes, logprob}]}] */
static cJSON *probs(srv *s, const srv_event *ev, int n) {
    cJSON *arr = cJSON_CreateArray();
    char tok[256];
    for (int i = 0; i < n; i++) {
        if (ev[i].token < 0) continue;
        cJSON *o = cJSON_CreateObject();
        for (int k = -1; k < ev[i].n_top; k++) {
            int32_t id = k < 0 ? ev[i].token : ev[i].top_id[k];
            cJSON *x = k < 0 ? o : cJSON_CreateObject();
            srv_token_text(s, id, tok, sizeof tok);
            cJSON_AddNumberToObject(x, "id", id);
            cJSON_AddStringToObject(x, "token", tok);
            cJSON *bytes = cJSON_AddArrayToObject(x, "bytes");
            for (const unsigned char *p = (const unsigned char *)tok; *p; p++)
                cJSON_AddItemToArray(bytes, cJSON_CreateNumber(*p));
            cJSON_AddNumberToObject(x, "logprob", k < 0 ? ev[i].logprob : ev[i].top_lp[k]);
            if (k < 0) cJSON_AddArrayToObject(o, "top_logprobs");
            else cJSON_AddItemToArray(cJSON_GetObjectItem(o, "top_logprobs"), x);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* {index, content, tokens?, stop, ...}: one piece of text, or (done) the whole reply's end */
static cJSON *piece(srv *s, const srv_task *t, const cstream *st, const srv_event *ev, int n, bool done) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", 0);
    char *text = srv_events_text(ev, n);
    cJSON_AddStringToObject(o, "content", text ? text : "");
    free(text);
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    for (int i = 0; st->return_tokens && i < n; i++)
        if (ev[i].token >= 0) cJSON_AddItemToArray(toks, cJSON_CreateNumber(ev[i].token));
    cJSON_AddNumberToObject(o, "id_slot", -1);
    cJSON_AddBoolToObject(o, "stop", done);
    if (t->n_logprobs > 0 && n) cJSON_AddItemToObject(o, "completion_probabilities", probs(s, ev, n));
    if (!done) return o;
    cJSON_AddStringToObject(o, "model", s->alias);
    cJSON_AddNumberToObject(o, "tokens_predicted", t->res.n_generated);
    cJSON_AddNumberToObject(o, "tokens_evaluated", t->res.n_prompt);
    cJSON_AddNumberToObject(o, "tokens_cached", t->res.n_reused);
    cJSON_AddBoolToObject(o, "truncated", false);
    cJSON_AddStringToObject(o, "stop_type", stop_type(t));
    /* which stop string ended it is known when there was one */
    cJSON_AddStringToObject(o, "stopping_word",
                            t->res.stop_reason == GEMMA8_STOP_STRING && t->params.n_stop == 1 ? t->stop[0] : "");
    cJSON *g = cJSON_AddObjectToObject(o, "generation_settings");
    cJSON_AddNumberToObject(g, "n_predict", t->params.max_new_tokens);
    cJSON_AddNumberToObject(g, "temperature", t->params.sampling.temperature);
    cJSON_AddNumberToObject(g, "top_k", t->params.sampling.top_k);
    cJSON_AddNumberToObject(g, "top_p", t->params.sampling.top_p);
    cJSON_AddNumberToObject(g, "min_p", t->params.sampling.min_p);
    cJSON_AddNumberToObject(g, "seed", t->params.sampling.seed);
    cJSON_AddBoolToObject(g, "ignore_eos", t->params.ignore_eos);
    cJSON_AddItemToObject(o, "timings", srv_timings(t));
    return o;
}

static long stream_next(srv_conn *c, srv_task *t, void *state, char **out) {
    srv *s = srv_of(c);
    cstream *st = state;
    size_t len = 0;
    *out = NULL;
    if (st->finished) return -1;
    if (!srv_task_wait(t, st->seen, 1.0)) return 0;
    bool done;
    srv_event *ev;
    const int n = srv_task_events(t, st->seen, &ev, &done);
    if (n > 0) {
        srv_buf_json(out, &len, "data: ", piece(s, t, st, ev, n, false), "\n\n");
        free(ev);
        st->seen += n;
    }
    if (done) {
        if (t->status) {
            cJSON *e = cJSON_CreateObject();
            cJSON *err = cJSON_AddObjectToObject(e, "error");
            cJSON_AddNumberToObject(err, "code", 500);
            cJSON_AddStringToObject(err, "message", t->error);
            cJSON_AddStringToObject(err, "type", "server_error");
            srv_buf_json(out, &len, "error: ", e, "\n\n");
        } else {
            srv_buf_json(out, &len, "data: ", piece(s, t, st, NULL, 0, true), "\n\n");
        }
        srv_conn_log_tokens(c, t->res.n_prompt, t->res.n_reused, t->res.n_generated);
        st->finished = true;
    }
    return (long)len;
}

/* Runs t and answers: an SSE stream (stream: true) or one object. */
static int answer(srv_conn *c, const cJSON *body, srv_task *t) {
    srv *s = srv_of(c);
    cstream *st = calloc(1, sizeof *st);
    if (!st) return SRV_FAIL;
    st->return_tokens = cJSON_IsTrue(cJSON_GetObjectItem(body, "return_tokens"));
    if (cJSON_IsTrue(cJSON_GetObjectItem(body, "stream"))) {
        if (srv_submit(s->sched, t)) return srv_reply_stream(c, "text/event-stream", t, stream_next, st, free);
        free(st);
        return srv_reply_error(c, 503, "server_error", "queue_full", "every slot is busy and the queue is full");
    }
    int rc;
    if (!srv_run_blocking(s, t)) {
        rc = srv_reply_error(c, 503, "server_error", "queue_full", "every slot is busy and the queue is full");
    } else if (t->status) {
        rc = srv_reply_error(c, 500, "server_error", NULL, "%s", t->error);
    } else {
        srv_event *ev;
        const int n = srv_task_events(t, 0, &ev, NULL);
        cJSON *o = piece(s, t, st, ev, n, true);
        free(ev);
        srv_conn_log_tokens(c, t->res.n_prompt, t->res.n_reused, t->res.n_generated);
        rc = srv_reply_json(c, 200, o);
    }
    free(st);
    return rc;
}

int llama_completion(srv_conn *c, cJSON *body) {
    srv_task *t;
    srv_error e;
    if (!llama_parse_completion(srv_of(c), body, &t, &e))
        return srv_reply_error(c, e.status, e.status >= 500 ? "server_error" : "invalid_request_error", e.code, "%s",
                               e.msg);
    int rc = answer(c, body, t);
    srv_task_unref(t);
    return rc;
}
