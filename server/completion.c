/* completion.c - llama-server's native POST /completion: a prompt as text, token ids or a mix of
 * both; llama-server's field names and defaults (n_predict, n_probs, ignore_eos, return_tokens,
 * cache_prompt, ...); several prompts in one request (a list of them) run as a batch, each its own
 * sequence; the reply as one object (a list of them for several prompts) or an SSE stream of
 * {index, content, stop} objects, with llama-server's closing fields (stop_type, timings, ...). */
#include "server.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    double temp = sp->temperature, top_k = sp->top_k, top_p = sp->top_p, min_p = sp->min_p, rep = 1,
           last_n = 64;
    double pres = 0, freq = 0, seed = -1, n_probs = 0;
    double n_predict = s->dflt.has_n_predict ? s->dflt.n_predict : -1;
    if (!srv_number(b, "temperature", 0, 100, &temp, err, cap) ||
        !srv_number(b, "top_k", 0, 1e6, &top_k, err, cap) ||
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
    const cJSON *rf = cJSON_GetObjectItem(b, "response_fields");
    if (rf && !cJSON_IsNull(rf)) {
        bool ok = cJSON_IsArray(rf);
        for (const cJSON *x = ok ? rf->child : NULL; x; x = x->next) ok = ok && cJSON_IsString(x);
        if (!ok) {
            snprintf(err, cap, "'response_fields' must be a list of field names");
            return false;
        }
    }
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

/* The request's i-th prompt as a task. */
static bool parse_at(srv *s, const cJSON *body, int i, srv_task **out, srv_error *e) {
    *out = NULL;
    const cJSON *prompt = cJSON_GetObjectItem(body, "prompt");
    if (!prompt) prompt = cJSON_GetObjectItem(body, "content");
    if (cJSON_IsObject(prompt) &&
        cJSON_GetObjectItem(prompt, "multimodal_data")) /* llama-server's media form */
        return srv_fail(e, 400, NULL, "'multimodal_data': gemma8 reads text only");
    const int n = srv_prompt_count(prompt);
    if (n == 0 || n > SRV_MAX_PROMPTS)
        return srv_fail(e, 400, NULL,
                        "'prompt' must be a text, token ids, a list of both, or up to %d of those",
                        SRV_MAX_PROMPTS);
    srv_task *t = srv_task_new(SRV_GENERATE);
    if (!t) return srv_fail(e, 500, NULL, "out of memory");
    char err[256] = "";
    gemma8_status gs =
        srv_prompt_tokens(s, srv_prompt_at(prompt, i), true, &t->prompt, &t->n_prompt, err, sizeof err);
    if (gs && gs != GEMMA8_ERR_CONTEXT_FULL) {
        srv_task_unref(t);
        return srv_fail(e, gs == GEMMA8_ERR_NOMEM ? 500 : 400, NULL, "%s", err);
    }
    return srv_parse_done(s, body, t, gs, read_fields, out, e);
}

bool llama_parse_completion(srv *s, const cJSON *body, srv_task **out, srv_error *e) {
    return parse_at(s, body, 0, out, e);
}

/* the prompts of one request, each a task; their streams */
typedef struct creply {
    srv_group g;
    int seen[SRV_MAX_PROMPTS];
    bool finished[SRV_MAX_PROMPTS];
    bool return_tokens;
    bool post_sampling; /* post_sampling_probs: probabilities rather than log-probabilities */
    bool ended;
} creply;

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

/* n_probs: [{id, token, bytes, logprob, top_logprobs: [...]}]; post_sampling_probs: prob, top_probs
 * (the model's probabilities, before the sampler's cuts) */
static cJSON *probs(srv *s, const srv_event *ev, int n, bool as_prob) {
    cJSON *arr = cJSON_CreateArray();
    char tok[256];
    for (int i = 0; i < n; i++) {
        if (ev[i].token < 0) continue;
        cJSON *o = cJSON_CreateObject();
        for (int k = -1; k < ev[i].n_top; k++) {
            int32_t id = k < 0 ? ev[i].token : ev[i].top_id[k];
            float lp = k < 0 ? ev[i].logprob : ev[i].top_lp[k];
            cJSON *x = k < 0 ? o : cJSON_CreateObject();
            srv_token_text(s, id, tok, sizeof tok);
            cJSON_AddNumberToObject(x, "id", id);
            cJSON_AddStringToObject(x, "token", tok);
            cJSON *bytes = cJSON_AddArrayToObject(x, "bytes");
            for (const unsigned char *p = (const unsigned char *)tok; *p; p++)
                cJSON_AddItemToArray(bytes, cJSON_CreateNumber(*p));
            if (as_prob)
                cJSON_AddNumberToObject(x, "prob", exp(lp));
            else
                cJSON_AddNumberToObject(x, "logprob", lp);
            if (k < 0)
                cJSON_AddArrayToObject(o, as_prob ? "top_probs" : "top_logprobs");
            else
                cJSON_AddItemToArray(cJSON_GetObjectItem(o, as_prob ? "top_probs" : "top_logprobs"), x);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* generation_settings: the request's parameters as they ran */
static cJSON *settings(srv *s, const srv_task *t) {
    const gemma8_sampler_params *sp = &t->params.sampling;
    cJSON *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(g, "n_predict", t->params.max_new_tokens);
    cJSON_AddNumberToObject(g, "temperature", sp->temperature);
    cJSON_AddNumberToObject(g, "top_k", sp->top_k);
    cJSON_AddNumberToObject(g, "top_p", sp->top_p);
    cJSON_AddNumberToObject(g, "min_p", sp->min_p);
    cJSON_AddNumberToObject(g, "repeat_penalty", sp->repeat_penalty);
    cJSON_AddNumberToObject(g, "seed", sp->seed);
    cJSON_AddBoolToObject(g, "ignore_eos", t->params.ignore_eos);
    cJSON *stop = cJSON_AddArrayToObject(g, "stop");
    for (int i = 0; i < t->params.n_stop; i++) cJSON_AddItemToArray(stop, cJSON_CreateString(t->stop[i]));
    /* the biases, null for -inf (JSON has none), and the end tokens' when ignore_eos keeps going */
    cJSON *bias = cJSON_AddArrayToObject(g, "logit_bias");
    for (int i = 0; i < sp->n_logit_bias + (t->params.ignore_eos ? 2 : 0); i++) {
        bool eog = i >= sp->n_logit_bias;
        int32_t id = !eog                    ? sp->logit_bias[i].token
                     : i == sp->n_logit_bias ? gemma8_token_eos(s->model)
                                             : gemma8_token_end_of_turn(s->model);
        float b = eog ? -INFINITY : sp->logit_bias[i].bias;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "token", id);
        if (isinf(b))
            cJSON_AddNullToObject(e, "bias");
        else
            cJSON_AddNumberToObject(e, "bias", b);
        cJSON_AddItemToArray(bias, e);
    }
    return g;
}

/* {index, content, tokens, stop, ...}: one piece of text, or (done) the whole reply's end */
static cJSON *piece(const creply *r, int i, const srv_event *ev, int n, bool done) {
    srv *s = r->g.s;
    const srv_task *t = r->g.t[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", i);
    char *text = srv_events_text(ev, n);
    cJSON_AddStringToObject(o, "content", text ? text : "");
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    for (int k = 0; (r->return_tokens || !done) && k < n;
         k++) /* a streamed piece has its ids (llama-server) */
        if (ev[k].token >= 0) cJSON_AddItemToArray(toks, cJSON_CreateNumber(ev[k].token));
    cJSON_AddNumberToObject(o, "id_slot", t->id_slot);
    cJSON_AddBoolToObject(o, "stop", done);
    if (t->n_logprobs > 0 && n)
        cJSON_AddItemToObject(o, "completion_probabilities", probs(s, ev, n, r->post_sampling));
    if (!done) {
        free(text);
        return o;
    }
    cJSON_AddStringToObject(o, "model", s->alias);
    cJSON_AddNumberToObject(o, "tokens_predicted", t->res.n_generated);
    cJSON_AddNumberToObject(o, "tokens_evaluated", t->res.n_prompt);
    cJSON_AddNumberToObject(o, "tokens_cached", t->res.n_reused);
    cJSON_AddBoolToObject(o, "truncated", false);
    cJSON_AddBoolToObject(o, "has_new_line", text && strchr(text, '\n'));
    free(text);
    cJSON_AddStringToObject(o, "stop_type", stop_type(t));
    cJSON_AddStringToObject(o, "stopping_word",
                            t->res.stop_reason == GEMMA8_STOP_STRING ? t->stop[t->res.stop_index] : "");
    char *prompt = srv_prompt_text(s, t);
    cJSON_AddStringToObject(o, "prompt", prompt ? prompt : "");
    free(prompt);
    cJSON_AddItemToObject(o, "generation_settings", settings(s, t));
    cJSON_AddItemToObject(o, "timings", srv_timings(t));
    return o;
}

/* response_fields: only those, "a/b" read inside a (llama-server's) */
static cJSON *only_fields(cJSON *o, const cJSON *fields) {
    if (!cJSON_IsArray(fields) || !fields->child) return o;
    cJSON *out = cJSON_CreateObject();
    for (const cJSON *f = fields->child; f; f = f->next) {
        char path[256];
        snprintf(path, sizeof path, "%s", f->valuestring);
        const cJSON *v = o;
        for (char *part = strtok(path, "/"); v && part; part = strtok(NULL, "/"))
            v = cJSON_GetObjectItem(v, part);
        if (v) cJSON_AddItemToObject(out, f->valuestring, cJSON_Duplicate(v, true));
    }
    cJSON_Delete(o);
    return out;
}

static long stream_next(srv_conn *c, srv_task *t0, void *state, char **out) {
    (void)t0; /* r->g.t[0] */
    creply *r = state;
    size_t len = 0;
    *out = NULL;
    if (r->ended) return -1;
    int open = 0;
    while (open < r->g.n && r->finished[open]) open++;
    if (!srv_task_wait(r->g.t[open], r->seen[open], r->g.n == 1 ? 1.0 : 0.05) && r->g.n == 1) return 0;
    bool failed = false, all = true;
    for (int i = 0; i < r->g.n && !failed; i++) {
        if (r->finished[i]) continue;
        srv_task *t = r->g.t[i];
        bool done;
        srv_event *ev;
        const int n = srv_task_events(t, r->seen[i], &ev, &done);
        int texts = 0;
        for (int k = 0; k < n; k++) {
            texts += ev[k].token != SRV_PROGRESS;
            if (ev[k].token != SRV_PROGRESS) continue;
            cJSON *p = cJSON_CreateObject(); /* return_progress */
            cJSON_AddNumberToObject(p, "index", i);
            cJSON_AddItemToObject(p, "prompt_progress", srv_progress_of(t, &ev[k]));
            srv_buf_json(out, &len, "data: ", p, "\n\n");
        }
        if (texts > 0) srv_buf_json(out, &len, "data: ", piece(r, i, ev, n, false), "\n\n");
        free(ev);
        r->seen[i] += n;
        if (!done) {
            all = false;
            continue;
        }
        r->finished[i] = true;
        if (t->status) {
            cJSON *e = cJSON_CreateObject();
            cJSON *err = cJSON_AddObjectToObject(e, "error");
            cJSON_AddNumberToObject(err, "code", srv_task_error_code(r->g.s, t) ? 503 : 500);
            cJSON_AddStringToObject(err, "message", t->error);
            cJSON_AddStringToObject(err, "type", "server_error");
            srv_buf_json(out, &len, "error: ", e, "\n\n");
            failed = true;
        } else {
            srv_buf_json(out, &len, "data: ", piece(r, i, NULL, 0, true), "\n\n");
        }
    }
    if (failed || all) {
        srv_group_log(c, &r->g);
        r->ended = true;
    }
    return (long)len;
}

/* The reply is over: the prompts past the first (the stream holds the first) end and go. */
static void reply_free(void *state) {
    creply *r = state;
    srv_group_release(&r->g, 1);
    free(r);
}

/* Runs the prompts (r owns their tasks) and answers: an SSE stream, one object, or a list of them. */
static int answer(srv_conn *c, const cJSON *body, creply *r, bool several) {
    r->return_tokens = cJSON_IsTrue(cJSON_GetObjectItem(body, "return_tokens"));
    r->post_sampling = cJSON_IsTrue(cJSON_GetObjectItem(body, "post_sampling_probs"));
    bool streaming;
    int rc = srv_group_run(c, &r->g, body, stream_next, r, reply_free, &streaming);
    if (streaming) return rc;
    if (rc < 0) {
        cJSON *list = cJSON_CreateArray();
        for (int i = 0; i < r->g.n; i++) {
            srv_event *ev;
            const int n = srv_task_events(r->g.t[i], 0, &ev, NULL);
            cJSON_AddItemToArray(
                list, only_fields(piece(r, i, ev, n, true), cJSON_GetObjectItem(body, "response_fields")));
            free(ev);
        }
        srv_group_log(c, &r->g);
        rc = srv_reply_json(c, 200, several ? list : cJSON_DetachItemFromArray(list, 0));
        if (!several) cJSON_Delete(list);
    }
    for (int i = 0; i < r->g.n; i++) srv_task_unref(r->g.t[i]);
    free(r);
    return rc;
}

int llama_completion(srv_conn *c, cJSON *body) {
    srv *s = srv_of(c);
    const cJSON *prompt = cJSON_GetObjectItem(body, "prompt");
    if (!prompt) prompt = cJSON_GetObjectItem(body, "content");
    const int n = srv_prompt_count(prompt);
    creply *r = calloc(1, sizeof *r);
    if (!r) return SRV_FAIL;
    r->g.s = s;
    srv_error e;
    for (r->g.n = 0; r->g.n < (n > 0 ? n : 1); r->g.n++) {
        if (!parse_at(s, body, r->g.n, &r->g.t[r->g.n], &e)) {
            for (int i = 0; i < r->g.n; i++) srv_task_unref(r->g.t[i]);
            free(r);
            return srv_reply_refusal(c, &e);
        }
    }
    return answer(c, body, r, n > 1);
}
