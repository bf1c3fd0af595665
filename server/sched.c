/* sched.c - the scheduler: slots are sequences of one context; one thread
 * owns every forward pass and steps all busy slots at once, in one pass: one
 * token of each generating slot and the next chunk of new prompts (at most
 * n_batch tokens, -b), so no request waits for another to finish, a long
 * prompt does not stall the streams, and the weights are read once per step. */
#include "server.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct srv_slot {
    srv_sched *sched;
    srv_task *task; /* NULL: free */
    gemma8_gen *gen;
    int next_input;         /* SRV_EMBED: the input being embedded */
    gemma8_status failed;   /* SRV_EMBED: the next input could not begin (the message in the task) */
    uint64_t last_used;
    bool in_ram; /* what it holds is in the RAM prompt cache as it is */
} srv_slot;

struct srv_sched {
    gemma8_model *model;
    int n_vocab;
    int n_embd;
    gemma8_context *ctx;
    int n_slots;
    srv_slot *slots;
    pthread_mutex_t mu; /* the queue, the metrics, stopping */
    pthread_cond_t cv;
    srv_task **queue; /* a ring of queue_max */
    int q_head, q_len, q_max;
    bool stopping;
    uint64_t tick;
    double t_decode;     /* seconds a step of only decoding slots takes (moving average) */
    int32_t embed_chunk; /* embedding tokens a step beside streams takes (embedding_chunks) */
    srv_metrics m;
    srv_slot_info *info; /* under mu: each slot as last left (GET /slots) */
    bool unified;        /* the slots share one KV pool of gemma8_n_ctx positions */
    srv_ram_cache *ram;  /* --cache-ram, or NULL */
    bool cache_idle;     /* --cache-idle-slots */
    double sleep_after;  /* --sleep-idle-seconds (0: never) */
    gemma8_context_params cp;
    bool sleeping; /* under mu: ctx is freed */
    double t_idle; /* when the last work ended */
    pthread_t thread;
};

/* ---- tasks ---------------------------------------------------------------------- */

srv_task *srv_task_new(srv_kind kind) {
    srv_task *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->kind = kind;
    t->n_logprobs = -1;
    t->id_slot = -1;
    t->refs = 1;
    t->params = gemma8_generate_default_params();
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    return t;
}

void srv_task_unref(srv_task *t) {
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    const int left = --t->refs;
    pthread_mutex_unlock(&t->mu);
    if (left) return;
    for (int i = 0; i < t->n_ev; i++) free(t->ev[i].text);
    free(t->ev);
    for (int i = 0; i < SRV_MAX_STOP; i++) free(t->stop[i]);
    for (int i = 0; i < t->n_in; i++) free(t->inputs[i]);
    free(t->inputs);
    free(t->n_inputs);
    free(t->prompt);
    free(t->embeddings);
    free(t->path);
    free(t->bias);
    gemma8_grammar_free(t->grammar);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

void srv_task_set_stop(srv_task *t, const char *const *stop, int n) {
    int k = 0;
    for (int i = 0; i < n && k < SRV_MAX_STOP; i++)
        if (stop[i][0]) t->stop[k++] = strdup(stop[i]);
    t->params.stop = (const char *const *)t->stop;
    t->params.n_stop = k;
}

static void task_push(srv_task *t, srv_event *e) {
    pthread_mutex_lock(&t->mu);
    if (t->n_ev == t->cap_ev) {
        int cap = t->cap_ev ? 2 * t->cap_ev : 64;
        srv_event *ne = realloc(t->ev, (size_t)cap * sizeof *ne);
        if (ne) {
            t->ev = ne;
            t->cap_ev = cap;
        }
    }
    if (t->n_ev < t->cap_ev)
        t->ev[t->n_ev++] = *e;
    else
        free(e->text);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

int srv_task_events(srv_task *t, int from, srv_event **out, bool *done) {
    *out = NULL;
    pthread_mutex_lock(&t->mu);
    const int n = t->n_ev > from ? t->n_ev - from : 0;
    if (done) *done = t->done;
    if (n) *out = malloc((size_t)n * sizeof **out);
    if (*out) memcpy(*out, t->ev + from, (size_t)n * sizeof **out);
    pthread_mutex_unlock(&t->mu);
    if (n && !*out) {
        if (done) *done = false; /* out of memory: nothing taken, the caller asks again */
        return 0;
    }
    return n;
}

static void task_finish(srv_task *t, gemma8_status st, const char *error) {
    pthread_mutex_lock(&t->mu);
    t->status = st;
    if (st) snprintf(t->error, sizeof t->error, "%s", error);
    t->done = true;
    t->t_done = gemma8_time();
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* ---- token events (the scheduler thread, inside gemma8_gen_step) ------------------- */

/* log-softmax of the logits the token was drawn from, and the n_top best */
static void logprobs(const float *logits, int n_vocab, srv_event *e, int n_top) {
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)(logits[i] - mx));
    const float lse = mx + (float)log(sum);
    e->logprob = logits[e->token] - lse;
    e->n_top = 0;
    for (int i = 0; i < n_vocab && n_top > 0; i++) {
        const float lp = logits[i] - lse;
        if (e->n_top == n_top && lp <= e->top_lp[n_top - 1]) continue;
        int k = e->n_top < n_top ? e->n_top++ : n_top - 1; /* the last place, then move up */
        while (k > 0 && e->top_lp[k - 1] < lp) {
            e->top_lp[k] = e->top_lp[k - 1];
            e->top_id[k] = e->top_id[k - 1];
            k--;
        }
        e->top_lp[k] = lp;
        e->top_id[k] = i;
    }
}

/* return_progress: how far the prompt is (the tokens in the slot's cache of it); i < 0: all of it */
static void progress(srv_sched *s, int i, srv_task *t) {
    if (t->progress_done) return;
    srv_event e = {.token = SRV_PROGRESS, .cached = t->cached};
    e.processed = i < 0 ? t->n_prompt : gemma8_seq_n_past(s->ctx, i);
    if (e.processed >= t->n_prompt) {
        e.processed = t->n_prompt;
        t->progress_done = true;
    }
    e.ms = (gemma8_time() - t->t_started) * 1e3;
    e.text = calloc(1, 1);
    task_push(t, &e);
}

static bool on_token(int32_t token, const char *text, size_t len, gemma8_run_state st, void *user) {
    srv_slot *slot = user;
    srv_task *t = slot->task;
    if (st == GEMMA8_RUN_FINISH || st == GEMMA8_RUN_ERROR) return true;
    if (t->progress && token >= 0)
        progress(slot->sched, -1, t); /* the prompt is done: said before the reply */
    srv_event e = {0};
    e.token = token;
    e.len = len;
    e.text = malloc(len + 1);
    if (e.text) {
        memcpy(e.text, text, len);
        e.text[len] = 0;
    }
    if (token >= 0 && t->n_logprobs >= 0) {
        logprobs(gemma8_gen_logits(slot->gen), slot->sched->n_vocab, &e,
                 t->n_logprobs < SRV_MAX_TOP ? t->n_logprobs : SRV_MAX_TOP);
    }
    task_push(t, &e);
    return !atomic_load(&t->cancelled);
}

/* ---- slots ------------------------------------------------------------------------------ */

/* The free slot whose cached tokens share the longest prefix with the prompt
 * (the least recently used among equals). */
static int pick_slot(srv_sched *s, const srv_task *t) {
    if (t->id_slot >= 0) return s->slots[t->id_slot].task ? -1 : t->id_slot; /* it waits for that slot */
    int best = -1;
    int32_t best_len = -1;
    for (int i = 0; i < s->n_slots; i++) {
        if (s->slots[i].task) continue;
        int32_t n, k = 0;
        const int32_t *h = gemma8_seq_history(s->ctx, i, &n);
        while (t->kind == SRV_GENERATE && k < n && k < t->n_prompt && h[k] == t->prompt[k]) k++;
        if (k > best_len || (k == best_len && s->slots[i].last_used < s->slots[best].last_used)) {
            best = i;
            best_len = k;
        }
    }
    return best;
}

/* Begins the slot's next piece of work: the generation, or the embedding of the next input (each
 * input an embedding generation of its own: its chunks run in the same steps as the streams). */
static gemma8_status begin_work(srv_sched *s, int i) {
    srv_slot *slot = &s->slots[i];
    srv_task *t = slot->task;
    t->params.seq = i;
    t->params.on_token = on_token;
    t->params.user_data = slot;
    if (t->kind == SRV_GENERATE) return gemma8_gen_begin(s->ctx, t->prompt, t->n_prompt, &t->params, &slot->gen);
    t->params.embed = true;
    const int k = slot->next_input;
    return gemma8_gen_begin(s->ctx, t->inputs[k], t->n_inputs[k], &t->params, &slot->gen);
}

/* The slot's state for GET /slots. */
static void slot_info(srv_sched *s, int i) {
    pthread_mutex_lock(&s->mu);
    s->info[i].busy = s->slots[i].task != NULL;
    s->info[i].n_past = gemma8_seq_n_past(s->ctx, i);
    pthread_mutex_unlock(&s->mu);
}

/* Saves, restores or erases the slot's cache, at once (the slot is free). */
static void slot_action(srv_sched *s, int i, srv_task *t) {
    gemma8_status st = GEMMA8_OK;
    int32_t n = gemma8_seq_n_past(s->ctx, i);
    if (t->kind == SRV_SLOT_SAVE)
        st = gemma8_cache_save(s->ctx, i, t->path);
    else if (t->kind == SRV_SLOT_RESTORE)
        st = gemma8_cache_load(s->ctx, i, t->path);
    else
        gemma8_seq_clear(s->ctx, i);
    if (t->kind == SRV_SLOT_RESTORE) n = gemma8_seq_n_past(s->ctx, i);
    t->slot_tokens = n;
    slot_info(s, i);
    task_finish(t, st, st ? gemma8_last_error() : "");
    srv_task_unref(t);
}

/* ---- a unified KV pool, the RAM prompt cache ------------------------------------------------ */

/* Slot i's cache into the RAM prompt cache (once for what it holds). */
static void to_ram(srv_sched *s, int i) {
    if (!s->ram || s->slots[i].in_ram || !gemma8_seq_n_past(s->ctx, i)) return;
    s->slots[i].in_ram = srv_ram_save(s->ram, s->ctx, i);
}

/* A free slot's cache leaves the KV pool (for the RAM cache, if there is one). */
static void evict(srv_sched *s, int i) {
    to_ram(s, i);
    gemma8_seq_clear(s->ctx, i);
    slot_info(s, i);
}

/* A generation starts on slot i: what the other free slots hold moves to RAM (a unified pool's room
 * to the busy slots), what slot i holds that the prompt does not share too, and the RAM's entry that
 * shares more of the prompt than slot i does comes in. */
static void ram_before_start(srv_sched *s, int i, const srv_task *t) {
    if (!s->ram) return;
    for (int j = 0; s->cache_idle && s->unified && j < s->n_slots; j++) {
        if (j != i && !s->slots[j].task && gemma8_seq_n_past(s->ctx, j)) evict(s, j);
    }
    int32_t n, k = 0;
    const int32_t *h = gemma8_seq_history(s->ctx, i, &n);
    while (k < n && k < t->n_prompt && h[k] == t->prompt[k]) k++;
    if (k < n) to_ram(s, i);
    if (k >= t->n_prompt - 1) return; /* the slot has all of it that can be reused */
    if (srv_ram_restore(s->ram, s->ctx, i, t->prompt, t->n_prompt, k)) s->slots[i].in_ram = true;
}

static int32_t pool_free(srv_sched *s) {
    int32_t held = 0;
    for (int i = 0; i < s->n_slots; i++) held += gemma8_seq_n_past(s->ctx, i);
    return gemma8_n_ctx(s->ctx) - held;
}

/* Empties the free slots' cached prompts, the least recently used first, until the pool has room for
 * need positions (or none is left); whether it has. */
static bool purge_idle(srv_sched *s, int32_t need) {
    while (s->unified && pool_free(s) < need) {
        int v = -1;
        for (int i = 0; i < s->n_slots; i++) {
            if (s->slots[i].task || !gemma8_seq_n_past(s->ctx, i)) continue;
            if (v < 0 || s->slots[i].last_used < s->slots[v].last_used) v = i;
        }
        if (v < 0) return false;
        fprintf(stderr,
                "gemma8 serve: slot %d's cached prompt (%d tokens) leaves the KV pool for the busy slots\n",
                v, gemma8_seq_n_past(s->ctx, v));
        evict(s, v);
    }
    return true;
}

static void end_task(srv_sched *s, srv_slot *slot);

/* Before a step on a unified pool: room for one token of each decoding slot and one of the prompts
 * being evaluated. Idle slots' caches go first; if that is not enough, the busy slot holding the most
 * positions (the latest started among equals) ends with an error and its room goes to the others,
 * which go on (llama-server ends every busy slot then). Returns the generations left in gens/idx. */
static int make_room(srv_sched *s, gemma8_gen **gens, int *idx, int n) {
    for (;;) {
        int32_t need = 0;
        bool prompt = false;
        for (int k = 0; k < n; k++) {
            if (gemma8_gen_prefilled(gens[k]))
                need++;
            else
                prompt = true;
        }
        if (!s->unified || purge_idle(s, need + prompt) || n == 0) return n;
        int v = 0;
        for (int k = 1; k < n; k++) {
            const int32_t a = gemma8_seq_n_past(s->ctx, idx[k]);
            const int32_t b = gemma8_seq_n_past(s->ctx, idx[v]);
            if (a > b || (a == b && s->slots[idx[k]].last_used > s->slots[idx[v]].last_used)) v = k;
        }
        srv_slot *slot = &s->slots[idx[v]];
        srv_task *t = slot->task;
        const int32_t held = gemma8_seq_n_past(s->ctx, idx[v]);
        snprintf(
            t->error, sizeof t->error,
            "the KV pool of %d positions that the %d slots share is full (this request held %d of them): "
            "it ended so that the others go on; try again, or with fewer requests at once",
            gemma8_n_ctx(s->ctx), s->n_slots, held);
        fprintf(stderr, "gemma8 serve: slot %d: %s\n", idx[v], t->error);
        t->pool_full = true;
        slot->failed = GEMMA8_ERR_CONTEXT_FULL;
        end_task(s, slot);
        gemma8_seq_clear(s->ctx, idx[v]);
        slot_info(s, idx[v]);
        for (int k = v; k + 1 < n; k++) {
            gens[k] = gens[k + 1];
            idx[k] = idx[k + 1];
        }
        n--;
    }
}

/* --pooling none: each input through the forward pass whole on slot i, every position's last hidden
 * layer kept (the other slots wait for it, as for a long prefill). */
static void embed_tokens(srv_sched *s, int i, srv_task *t) {
    size_t total = 0;
    int32_t longest = 1;
    for (int k = 0; k < t->n_in; k++) {
        total += (size_t)t->n_inputs[k];
        if (t->n_inputs[k] > longest) longest = t->n_inputs[k];
    }
    t->embeddings = malloc((total ? total : 1) * s->n_embd * sizeof(float));
    uint8_t *out = malloc((size_t)longest);
    gemma8_status st = t->embeddings && out ? GEMMA8_OK : GEMMA8_ERR_NOMEM;
    if (out) memset(out, GEMMA8_OUTPUT_HIDDEN, (size_t)longest);
    float *dst = t->embeddings;
    for (int k = 0; !st && k < t->n_in; k++) {
        gemma8_seq_clear(s->ctx, i);
        purge_idle(s, t->n_inputs[k]);
        gemma8_batch b = gemma8_batch_tokens(i, t->inputs[k], t->n_inputs[k]);
        b.output = out;
        st = gemma8_decode(s->ctx, &b);
        for (int32_t e = 0; !st && e < b.n; e++, dst += s->n_embd)
            memcpy(dst, gemma8_get_hidden(s->ctx, e), (size_t)s->n_embd * sizeof(float));
        t->embed_tokens += t->n_inputs[k];
    }
    gemma8_seq_clear(s->ctx, i);
    free(out);
    slot_info(s, i);
    task_finish(t, st, st ? gemma8_last_error() : "");
    srv_task_unref(t);
}

/* Starts a queued task on a free slot. */
static void start_task(srv_sched *s, int i, srv_task *t) {
    srv_slot *slot = &s->slots[i];
    slot->last_used = ++s->tick;
    pthread_mutex_lock(&t->mu);
    t->started = true;
    t->t_started = gemma8_time();
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    if (t->kind >= SRV_SLOT_SAVE) {
        slot_action(s, i, t);
        return;
    }
    if (t->kind == SRV_EMBED_TOKENS) {
        to_ram(s, i);
        embed_tokens(s, i, t);
        return;
    }

    /* the request's adapters (a different set than the slot had clears the slot's cache) */
    if (t->kind != SRV_GENERATE || t->no_cache) to_ram(s, i); /* what it holds would be lost */
    gemma8_status lst = gemma8_seq_set_lora(s->ctx, i, t->lora, t->lora_scale, t->n_lora);
    if (lst) {
        task_finish(t, lst, gemma8_last_error());
        srv_task_unref(t);
        return;
    }
    if (t->no_cache) gemma8_seq_clear(s->ctx, i); /* cache_prompt: false */
    if (t->kind == SRV_GENERATE && !t->no_cache) ram_before_start(s, i, t);
    slot->in_ram = false; /* what it holds changes from here */
    if (t->kind == SRV_EMBED) {
        t->embeddings = calloc((size_t)t->n_in * s->n_embd, sizeof(float));
        if (!t->embeddings) {
            task_finish(t, GEMMA8_ERR_NOMEM, "out of memory for the embeddings");
            srv_task_unref(t);
            return;
        }
    }
    slot->task = t;
    slot->next_input = 0;
    pthread_mutex_lock(&s->mu);
    s->m.busy_slots++;
    s->info[i].busy = true;
    pthread_mutex_unlock(&s->mu);
    gemma8_status st = begin_work(s, i);
    if (!st && t->kind == SRV_GENERATE && t->progress) {
        t->cached = gemma8_seq_n_past(s->ctx, i); /* the prefix kept */
        progress(s, i, t);
    }
    if (st) {
        task_finish(t, st, gemma8_last_error());
        slot->task = NULL;
        pthread_mutex_lock(&s->mu);
        s->m.busy_slots--;
        s->info[i].busy = false;
        pthread_mutex_unlock(&s->mu);
        srv_task_unref(t);
    }
}

/* An embedding input is done: its vector is kept and the next input begins; false when the
 * task has no more (or failed): then it ends. */
static bool embedding_next(srv_sched *s, int i) {
    srv_slot *slot = &s->slots[i];
    srv_task *t = slot->task;
    const float *v = gemma8_gen_embedding(slot->gen);
    if (!v) return false;
    memcpy(t->embeddings + (size_t)slot->next_input * s->n_embd, v, (size_t)s->n_embd * sizeof(float));
    t->embed_tokens += t->n_inputs[slot->next_input];
    if (slot->next_input + 1 == t->n_in) return false;
    gemma8_gen_end(slot->gen, NULL);
    slot->gen = NULL;
    slot->next_input++;
    gemma8_status st = begin_work(s, i);
    if (st) {
        slot->failed = st;
        snprintf(t->error, sizeof t->error, "%s", gemma8_last_error());
        return false;
    }
    return true;
}

/* Ends the generation of a slot and frees it. */
static void end_task(srv_sched *s, srv_slot *slot) {
    srv_task *t = slot->task;
    gemma8_status st = slot->gen ? gemma8_gen_end(slot->gen, &t->res) : GEMMA8_OK;
    const char *error = slot->failed ? t->error : gemma8_last_error();
    if (slot->failed) st = slot->failed;
    slot->failed = GEMMA8_OK;
    const bool aborted = atomic_load(&t->cancelled) || t->res.stop_reason == GEMMA8_STOP_ABORTED;
    pthread_mutex_lock(&s->mu);
    s->m.busy_slots--;
    if (t->kind == SRV_EMBED) {
        s->m.prompt_tokens += (uint64_t)t->embed_tokens;
        s->m.requests += !st && !aborted;
    } else {
        s->m.prompt_tokens += (uint64_t)(t->res.n_prompt - t->res.n_reused);
    }
    if (t->kind == SRV_GENERATE && !aborted && !st) {
        s->m.requests++;
        s->m.generated_tokens += (uint64_t)t->res.n_generated;
        s->m.gen_seconds += t->res.gen_seconds;
    }
    pthread_mutex_unlock(&s->mu);
    char msg[sizeof t->error];
    snprintf(msg, sizeof msg, "%s", st ? error : "");
    slot->gen = NULL;
    slot->task = NULL;
    slot_info(s, (int)(slot - s->slots)); /* before the reply: a client that asks GET /slots next sees it */
    task_finish(t, st, msg);
    srv_task_unref(t);
}

/* Embeddings beside streams: while a slot streams a reply, one embedding at a time (the oldest)
 * enters a step, in a chunk that keeps the step within EMBED_SHARE more than a step of the
 * streams alone (their tokens keep coming at an even pace); the others wait for later steps.
 * The chunk is found by feedback: one token more after a step within the bound, half after one
 * past it (a first token costs more than the next: the matmuls leave the one-token path). With
 * no stream, every embedding takes chunks of n_batch. Returns the generations left in gens/idx. */
#define EMBED_SHARE 0.2

static int embedding_chunks(srv_sched *s, gemma8_gen **gens, int *idx, int n) {
    bool streaming = false;
    int oldest = -1;
    for (int k = 0; k < n; k++) {
        const srv_slot *slot = &s->slots[idx[k]];
        streaming = streaming || (slot->task->kind == SRV_GENERATE && gemma8_gen_prefilled(gens[k]));
        if (slot->task->kind == SRV_EMBED && (oldest < 0 || slot->last_used < s->slots[idx[oldest]].last_used))
            oldest = k;
    }
    int kept = 0;
    for (int k = 0; k < n; k++) {
        const bool embed = s->slots[idx[k]].task->kind == SRV_EMBED;
        if (embed && streaming && k != oldest) continue;
        if (embed) gemma8_gen_set_max_chunk(gens[k], streaming ? s->embed_chunk : 0);
        gens[kept] = gens[k];
        idx[kept++] = idx[k];
    }
    return kept;
}

/* After a step: a step of streams alone teaches what it takes (t_decode, a moving average); a step
 * of streams with embedding tokens moves the embedding chunk (see above). */
static void step_timed(srv_sched *s, gemma8_gen **gens, const int *idx, const int32_t *past, int n,
                       double secs) {
    int decoded = 0;
    int prompts = 0;
    int embedded = 0;
    for (int k = 0; k < n; k++) {
        const srv_slot *slot = &s->slots[idx[k]];
        const bool decoding = slot->task->kind == SRV_GENERATE && past[k] > 0 && gemma8_gen_prefilled(gens[k]);
        if (decoding && gemma8_seq_n_past(s->ctx, idx[k]) - past[k] <= 1) decoded++;
        else if (slot->task->kind == SRV_EMBED) embedded++;
        else prompts++;
    }
    if (!decoded) return;
    if (!prompts && !embedded) {
        const double a = 0.2; /* the weight of the newest step */
        s->t_decode = s->t_decode > 0 ? (1 - a) * s->t_decode + a * secs : secs;
    } else if (embedded && s->t_decode > 0) {
        const bool within = secs <= (1 + EMBED_SHARE) * s->t_decode;
        s->embed_chunk = within ? s->embed_chunk + 1 : (s->embed_chunk + 1) / 2;
    }
}

/* Idle: waits for work; with --sleep-idle-seconds, frees the context once idle that long (under mu). */
static void wait_for_work(srv_sched *s) {
    while (!s->stopping && !s->q_len) {
        if (s->sleep_after <= 0 || !s->ctx) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double left = s->t_idle + s->sleep_after - gemma8_time();
        if (left > 0) {
            long long ns = until.tv_nsec + (long long)(left * 1e9);
            until.tv_sec += (time_t)(ns / 1000000000);
            until.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
            continue;
        }
        gemma8_context_free(s->ctx); /* asleep: no task holds it, no other thread reads it */
        s->ctx = NULL;
        srv_ram_clear(s->ram);
        for (int i = 0; i < s->n_slots; i++) s->slots[i].in_ram = false;
        s->sleeping = true;
        for (int i = 0; i < s->n_slots; i++) s->info[i].n_past = 0;
        fprintf(stderr, "gemma8 serve: asleep after %.0f s idle (the context is freed)\n", s->sleep_after);
    }
}

/* A task came while asleep: the context again (under mu); false if it cannot be made. */
static bool wake(srv_sched *s) {
    if (s->ctx) return true;
    if (gemma8_context_new(s->model, &s->cp, &s->ctx)) return false;
    s->sleeping = false;
    fprintf(stderr, "gemma8 serve: awake\n");
    return true;
}

static void *sched_main(void *arg) {
    srv_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int busy = 0;
        for (int i = 0; i < s->n_slots; i++) busy += s->slots[i].task != NULL;
        if (!busy) wait_for_work(s);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (s->q_len && !wake(s)) { /* every waiting task ends with the reason */
            char why[256];
            snprintf(why, sizeof why, "cannot make the context again after sleeping: %s",
                     gemma8_last_error());
            while (s->q_len) {
                srv_task *t = s->queue[s->q_head];
                s->q_head = (s->q_head + 1) % s->q_max;
                s->q_len--;
                task_finish(t, GEMMA8_ERR_NOMEM, why);
                srv_task_unref(t);
            }
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        /* queued tasks to free slots; a cancelled one is dropped */
        while (s->q_len) {
            srv_task *t = s->queue[s->q_head];
            int i = atomic_load(&t->cancelled) ? -2 : pick_slot(s, t);
            if (i == -1) break;
            s->q_head = (s->q_head + 1) % s->q_max;
            s->q_len--;
            pthread_mutex_unlock(&s->mu);
            if (i >= 0)
                start_task(s, i, t);
            else {
                task_finish(t, GEMMA8_ERR_ABORTED, "the client went away");
                srv_task_unref(t);
            }
            pthread_mutex_lock(&s->mu);
        }
        s->m.queued = s->q_len;
        pthread_mutex_unlock(&s->mu);
        /* one step of every busy slot in one forward pass (each bit-identical to its slot alone) */
        gemma8_gen *gens[s->n_slots];
        int idx[s->n_slots], n = 0;
        bool done[s->n_slots];
        for (int i = 0; i < s->n_slots; i++) {
            srv_slot *slot = &s->slots[i];
            if (!slot->task) continue;
            if (atomic_load(&slot->task->cancelled)) {
                end_task(s, slot);
                continue;
            }
            idx[n] = i;
            gens[n++] = slot->gen;
        }
        n = embedding_chunks(s, gens, idx, n);
        n = make_room(s, gens, idx, n);
        int32_t past[s->n_slots];
        bool prefilling[s->n_slots];
        for (int k = 0; k < n; k++) {
            past[k] = gemma8_seq_n_past(s->ctx, idx[k]);
            prefilling[k] = s->slots[idx[k]].task->progress && !gemma8_gen_prefilled(gens[k]);
        }
        const double t0 = gemma8_time();
        gemma8_gen_step_many(gens, n, done);
        step_timed(s, gens, idx, past, n, gemma8_time() - t0);
        for (int k = 0; k < n; k++)
            if (prefilling[k]) progress(s, idx[k], s->slots[idx[k]].task);
        for (int k = 0; k < n; k++) {
            srv_slot *slot = &s->slots[idx[k]];
            if (!done[k]) continue;
            if (slot->task->kind == SRV_EMBED && embedding_next(s, idx[k])) continue;
            end_task(s, slot);
        }
        s->t_idle = gemma8_time();
    }
    /* shutting down: every task ends with an error */
    for (int i = 0; i < s->n_slots; i++)
        if (s->slots[i].task) {
            atomic_store(&s->slots[i].task->cancelled, true);
            gemma8_gen_end(s->slots[i].gen, NULL);
            task_finish(s->slots[i].task, GEMMA8_ERR_ABORTED, "the server is shutting down");
            srv_task_unref(s->slots[i].task);
            s->slots[i].task = NULL;
        }
    pthread_mutex_lock(&s->mu);
    while (s->q_len) {
        srv_task *t = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % s->q_max;
        s->q_len--;
        task_finish(t, GEMMA8_ERR_ABORTED, "the server is shutting down");
        srv_task_unref(t);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

srv_sched *srv_sched_start(gemma8_model *model, gemma8_context *ctx, int queue_max, bool kv_unified) {
    srv_sched *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->model = model;
    s->n_vocab = gemma8_model_get_info(model).n_vocab;
    s->n_embd = gemma8_model_get_info(model).n_embd;
    s->embed_chunk = 1;
    s->ctx = ctx;
    s->unified = kv_unified;
    s->n_slots = gemma8_n_seq(ctx);
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    s->info = calloc((size_t)s->n_slots, sizeof *s->info);
    s->q_max = queue_max + s->n_slots; /* tasks wait here until a slot takes them */
    s->queue = calloc((size_t)s->q_max, sizeof *s->queue);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    for (int i = 0; s->slots && i < s->n_slots; i++) s->slots[i].sched = s;
    if (!s->slots || !s->queue || !s->info || pthread_create(&s->thread, NULL, sched_main, s)) {
        free(s->info);
        free(s->slots);
        free(s->queue);
        free(s);
        return NULL;
    }
    return s;
}

bool srv_submit(srv_sched *s, srv_task *t) {
    pthread_mutex_lock(&s->mu);
    /* the slots that are free take tasks at once; beyond them, queue_max may wait (busy_slots
     * changes under mu; the slots themselves belong to the scheduler thread) */
    const bool full = s->stopping || s->q_len >= s->q_max - s->m.busy_slots;
    if (!full) {
        pthread_mutex_lock(&t->mu);
        t->refs++;
        t->t_queued = gemma8_time();
        pthread_mutex_unlock(&t->mu);
        s->queue[(s->q_head + s->q_len) % s->q_max] = t;
        s->q_len++;
        s->m.queued = s->q_len;
        pthread_cond_signal(&s->cv);
    } else {
        s->m.rejected++;
    }
    pthread_mutex_unlock(&s->mu);
    return !full;
}

void srv_sched_wake(srv_sched *s) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void srv_sched_set_sleep(srv_sched *s, double seconds, const gemma8_context_params *cp) {
    pthread_mutex_lock(&s->mu);
    s->sleep_after = seconds;
    s->cp = *cp;
    s->t_idle = gemma8_time();
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool srv_sched_sleeping(srv_sched *s) {
    pthread_mutex_lock(&s->mu);
    bool z = s->sleeping;
    pthread_mutex_unlock(&s->mu);
    return z;
}

gemma8_context *srv_sched_context(srv_sched *s) { return s->ctx; }

void srv_sched_slots(srv_sched *s, srv_slot_info *info) {
    pthread_mutex_lock(&s->mu);
    memcpy(info, s->info, (size_t)s->n_slots * sizeof *info);
    pthread_mutex_unlock(&s->mu);
}

srv_metrics srv_sched_metrics(srv_sched *s) {
    pthread_mutex_lock(&s->mu);
    srv_metrics m = s->m;
    pthread_mutex_unlock(&s->mu);
    return m;
}

void srv_sched_stop(srv_sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    const bool was = s->stopping;
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (!was) pthread_join(s->thread, NULL);
}

void srv_sched_set_ram_cache(srv_sched *s, size_t bytes, bool idle) {
    pthread_mutex_lock(&s->mu); /* before any task: the scheduler thread reads them when one starts */
    s->ram = bytes ? srv_ram_new(bytes) : NULL;
    s->cache_idle = idle;
    pthread_mutex_unlock(&s->mu);
}

void srv_sched_free(srv_sched *s) {
    if (!s) return;
    srv_sched_stop(s);
    srv_ram_free(s->ram);
    free(s->info);
    free(s->slots);
    free(s->queue);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
