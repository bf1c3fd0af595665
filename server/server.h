/* server.h - the server behind `gemma8 serve`: what its parts share. Public API only.
 *
 *   http.c     the HTTP daemon (libmicrohttpd), routing, limits, authentication,
 *              the request log, streamed replies
 *   sched.c    slots (sequences of one context), the bounded queue and the
 *              scheduler thread that owns every forward pass
 *   openai.c   the OpenAI API (/v1/...)
 *   ollama.c   the Ollama API (/api/...)
 *   completion.c  llama-server's native /completion
 *   llama.c    llama-server's own endpoints (/props, /apply-template, /lora-adapters, /v1/models/ID)
 *   fields.c   request fields shared by both: messages, sampling, stop, UTF-8, errors
 *
 * The command that starts it (options, loading, a clean stop) is cli/serve.c.
 *
 * HTTP threads parse, queue and stream; only the scheduler thread runs the model. */
#ifndef GEMMA8_SERVE_H
#define GEMMA8_SERVE_H

#include "gemma8.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define SRV_MAX_STOP 8
#define SRV_MAX_PROMPTS 64 /* prompts of one /completion request */
#define SRV_MAX_TOP  20

/* One generated token (or, with token -1, text released at the end; with token SRV_PROGRESS, the
 * prompt's progress: processed tokens of it, cached ones among them). */
#define SRV_PROGRESS (-2)
typedef struct srv_event {
    char *text;
    size_t len;
    int32_t token;
    int32_t processed, cached; /* SRV_PROGRESS */
    double ms;                 /* SRV_PROGRESS: since the prompt began */
    float logprob; /* of token, when logprobs were asked for */
    int n_top;
    int32_t top_id[SRV_MAX_TOP];
    float top_lp[SRV_MAX_TOP];
} srv_event;

typedef enum srv_kind {
    SRV_GENERATE,
    SRV_EMBED,
    SRV_EMBED_TOKENS, /* --pooling none: each input's per-token vectors (run whole when a slot is free) */
    SRV_SLOT_SAVE,    /* the slot's cache to path (run by the scheduler when the slot is free) */
    SRV_SLOT_RESTORE, /* the slot's cache from path */
    SRV_SLOT_ERASE,   /* the slot's cache cleared */
} srv_kind;

/* A request as the scheduler sees it; shared by the HTTP thread (refs). */
typedef struct srv_task {
    srv_kind kind;
    int32_t *prompt; /* SRV_GENERATE: the prompt's ids */
    int32_t n_prompt;
    gemma8_generate_params params;
    char *stop[SRV_MAX_STOP]; /* owned copies behind params.stop */
    int n_logprobs;           /* alternatives to report a token; -1: no logprobs */
    int n_lora;               /* the adapters the request runs under, with their scales */
    const gemma8_lora *lora[GEMMA8_MAX_LORA];
    float lora_scale[GEMMA8_MAX_LORA];
    gemma8_grammar *grammar;  /* the reply's constraint (behind params.grammar), owned */
    gemma8_logit_bias *bias;  /* behind params.sampling.logit_bias, owned */
    int id_slot;              /* the slot it must run on (llama-server's id_slot); -1: any */
    bool no_cache;            /* cache_prompt: false: the slot's cache is not reused */
    bool progress;            /* return_progress: SRV_PROGRESS events while the prompt is evaluated */
    int32_t cached;           /* the prompt's tokens found in the slot's cache */
    bool progress_done;       /* the last SRV_PROGRESS (the whole prompt) is out */
    char *path;               /* SRV_SLOT_SAVE / RESTORE: the file (owned) */
    int32_t slot_tokens;      /* SRV_SLOT_*: the tokens saved, restored or erased */
    int32_t **inputs;         /* SRV_EMBED: each input's ids */
    int32_t *n_inputs;
    int n_in;
    /* results, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_event *ev;            /* grows (moves) as the scheduler adds events: read it only under mu,
                                 or through srv_task_events */
    int n_ev, cap_ev;
    bool started, done;
    gemma8_status status;
    char error[512];
    gemma8_generate_result res;
    float *embeddings; /* SRV_EMBED: n_in x n_embd, mean-pooled, L2-normalised; SRV_EMBED_TOKENS: a vector
                          per token of each input, one after the other (the last hidden layer) */
    int32_t embed_tokens;
    bool pool_full; /* ended to give its room in a full unified KV pool to the other slots (a 503) */
    bool tools;     /* the reply is text or a block of tool calls (tools.c reads it) */
    double t_queued, t_started, t_done; /* seconds (monotonic) */
    int refs;
    atomic_bool cancelled; /* the client went away */
} srv_task;

srv_task *srv_task_new(srv_kind kind);
/* Drops a reference; the last one frees the task. */
void srv_task_unref(srv_task *t);
/* A copy of the task's events from index `from` on (malloc'd into *out, free it; NULL when
 * none): their count, and whether the task was done when they were taken. The array the
 * scheduler fills moves as it grows, so no other thread reads it outside the task's mutex;
 * the texts the events point to never move and live as long as the task. */
int srv_task_events(srv_task *t, int from, srv_event **out, bool *done);
/* Copies stop strings into the task (at most SRV_MAX_STOP). */
void srv_task_set_stop(srv_task *t, const char *const *stop, int n);

typedef struct srv_metrics {
    uint64_t requests;         /* generation and embedding requests served */
    uint64_t prompt_tokens;    /* evaluated (not reused) */
    uint64_t generated_tokens; /* of requests that were not aborted */
    uint64_t rejected;         /* queue full */
    double gen_seconds;
    int busy_slots;
    int queued;
} srv_metrics;

typedef struct srv_sched srv_sched;

/* The scheduler owns ctx (n_slots sequences) and runs on its own thread; kv_unified: ctx's
 * sequences share one pool (gemma8_context_params.kv_unified). */
srv_sched *srv_sched_start(gemma8_model *model, gemma8_context *ctx, int queue_max, bool kv_unified);
/* ---- tool calls (tools.c) ---- */

/* A request's function tools (others are left out with a log line), its tool_choice and
 * parallel_tool_calls; the strings they point to live in the request or in store. */
typedef struct srv_tools {
    gemma8_tool *tools;
    int n;
    gemma8_tool_choice choice;
    const char *only; /* a function forced by name */
    bool parallel;
    char **store;
    int n_store;
} srv_tools;
/* Reads OpenAI's, Ollama's, the Responses API's and Anthropic's forms; false and err on bad input. */
bool srv_tools_read(const cJSON *tools, const cJSON *choice, const cJSON *parallel, srv_tools *tt, char *err,
                    size_t cap);
void srv_tools_free(srv_tools *tt);
/* The tools' instructions, then the system message's text if any (malloc'd; NULL: out of memory). */
char *srv_tools_prompt(const srv_tools *tt, const char *system);
/* The reply's grammar (gemma8_grammar_from_tools) on the task; t->tools set. */
bool srv_tools_apply(const srv_tools *tt, srv_task *t, char *err, size_t cap);
/* An assistant message's calls after its text, as the model writes them; a tool's result, as it reads it
 * (malloc'd). */
char *srv_tool_calls_text(const char *text, const cJSON *calls, char *err, size_t cap);
char *srv_tool_result_text(const char *name, const char *content);

/* A reply read as it streams: text, or (once it has begun with the opening) calls. */
enum { SRV_REPLY_UNDECIDED, SRV_REPLY_TEXT, SRV_REPLY_CALLS, SRV_REPLY_CLOSED };
typedef struct srv_reply_parse {
    int mode;
    char *buf; /* held: a maybe-opening, or calls not complete yet */
    size_t n;
    int n_calls;
} srv_reply_parse;
/* Feeds n bytes of the reply: its text is appended to *text, each call completed to calls
 * ({name, arguments}). srv_reply_end gives what is still held (an opening never finished) as text. */
void srv_reply_feed(srv_reply_parse *p, const char *s, size_t n, char **text, size_t *text_len, cJSON *calls);
void srv_reply_end(srv_reply_parse *p, char **text, size_t *text_len);
/* A task's events (progress ones skipped) read as above when tools is set, else all text; end: the
 * reply is over (what is held goes to the text). */
void srv_reply_read(srv_reply_parse *p, bool tools, const srv_event *ev, int n, bool end, char **text,
                    size_t *len, cJSON *calls);

/* The prompt cache in RAM (ramcache.c; only the scheduler thread uses it). */
typedef struct srv_ram_cache srv_ram_cache;
srv_ram_cache *srv_ram_new(size_t limit_bytes);
void srv_ram_free(srv_ram_cache *r);
void srv_ram_clear(srv_ram_cache *r); /* every entry goes */
/* Keeps sequence seq's cache (its tokens the key); an entry it holds the whole of goes; the least
 * recently used go while the limit is passed. Whether it is kept. */
bool srv_ram_save(srv_ram_cache *r, gemma8_context *ctx, int seq);
/* The entry sharing the longest prefix with the prompt, if longer than `than`, into sequence seq:
 * that prefix's length (0: none, seq as it was). */
int32_t srv_ram_restore(srv_ram_cache *r, gemma8_context *ctx, int seq, const int32_t *prompt, int32_t n,
                        int32_t than);
/* --cache-ram: a RAM prompt cache of that many bytes (0: none); idle: with a unified pool, the free
 * slots' caches move there when a request starts (--cache-idle-slots, llama-server's default). */
void srv_sched_set_ram_cache(srv_sched *s, size_t bytes, bool idle);

/* Queues t (taking a reference); false when the queue is full. */
bool srv_submit(srv_sched *s, srv_task *t);
/* Wakes the scheduler (a task was cancelled). */
void srv_sched_wake(srv_sched *s);
srv_metrics srv_sched_metrics(srv_sched *s);
/* A slot as the scheduler last left it (for GET /slots). */
typedef struct srv_slot_info {
    bool busy;
    int32_t n_past;
} srv_slot_info;
/* Fills info[0 .. n_slots). */
void srv_sched_slots(srv_sched *s, srv_slot_info *info);
/* --sleep-idle-seconds: after `seconds` without work the scheduler frees its context (the KV cache and
 * the slots' prompt caches; the weights stay) and makes it again with cp for the next task. */
void srv_sched_set_sleep(srv_sched *s, double seconds, const gemma8_context_params *cp);
bool srv_sched_sleeping(srv_sched *s);
/* The context the scheduler holds now (NULL while asleep): its owner frees it after srv_sched_stop. */
gemma8_context *srv_sched_context(srv_sched *s);
/* Ends every task with an error, stops the thread; srv_sched_free then frees it. */
void srv_sched_stop(srv_sched *s);
void srv_sched_free(srv_sched *s);

/* ---- the server and its replies (http.c) ---------------------------------------------- */

typedef struct srv_conn srv_conn;

/* An adapter loaded at start (--lora NAME=FILE:SCALE): id = its index. */
typedef struct srv_adapter {
    const gemma8_lora *a;
    const char *name;
    _Atomic float scale; /* for requests that name no adapter (POST /lora-adapters sets it) */
} srv_adapter;

/* Sampling defaults given at start (--temp ...): they replace each API's own; requests override them. */
typedef struct srv_defaults {
    bool has_temp, has_top_k, has_top_p, has_seed, has_n_predict;
    float temp, top_p;
    int32_t top_k, n_predict;
    uint32_t seed;
} srv_defaults;

typedef struct srv {
    gemma8_model *model;
    int n_lora;
    srv_adapter lora[GEMMA8_MAX_LORA];
    gemma8_model_info info;
    srv_sched *sched;
    const char *alias; /* the model's name in the APIs */
    const char *aliases; /* --alias A,B,C: every name it answers to (alias is the first in order) */
    const char *tags;    /* --tags: a comma-separated list shown in /v1/models */
    const char *api_key;
    const char *model_path;
    const char *slot_save_path; /* --slot-save-path: where POST /slots/ID?action=save|restore work */
    bool no_slots;              /* --no-slots: GET /slots is a 501 */
    bool pooling_none;          /* --pooling none: the native /embeddings gives a vector per token */
    const char *aip_predict;    /* Vertex AI's routes with AIP_MODE=PREDICTION (read at start), else NULL */
    const char *aip_health;
    const char *cors;  /* --cors-origins: "*", "localhost" or a comma-separated list (may hold localhost) */
    bool strict_names; /* --strict-model-names: an unknown model name is a 404 on the OpenAI API too */
    bool log_health;   /* --log-health: a log line for /health requests */
    bool no_webui;     /* --no-webui: no chat page at / */
    srv_defaults dflt;
    int n_slots, n_ctx_slot;
    bool kv_unified; /* --kv-unified: the slots share one pool of n_ctx_slot positions */
    double t_loaded, load_seconds;
    size_t max_body;
    double read_timeout; /* seconds a client has to send its request */
    atomic_bool stopping;
    atomic_int open_streams; /* streamed replies not yet over */
    atomic_ullong client_aborts; /* requests whose client went away before their reply was complete */
} srv;

/* Replies (each queues one response on the connection) return libmicrohttpd's
 * result: 1, or SRV_FAIL to drop the connection. */
#define SRV_FAIL 0
int srv_reply_json(srv_conn *c, unsigned status, cJSON *body); /* takes body */
int srv_reply_text(srv_conn *c, unsigned status, const char *type, const char *text);
/* A file of the program's own (the chat page): 200, data kept as it is (static). */
int srv_reply_static(srv_conn *c, const char *type, const void *data, size_t len);
/* GET / and /webui/...: the chat page (webui.c); 404 with --no-webui. */
int srv_webui(srv_conn *c, cJSON *body);
/* OpenAI's error shape {error: {message, type, param, code}}. */
int srv_reply_error(srv_conn *c, unsigned status, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* A streamed reply: next() is called on the HTTP thread while the task runs and
 * writes the next piece into a buffer it mallocs; it returns its length, 0 when
 * there is nothing yet (it is called again), -1 at the end. */
typedef long (*srv_stream_fn)(srv_conn *c, srv_task *t, void *state, char **out);
int srv_reply_stream(srv_conn *c, const char *content_type, srv_task *t, srv_stream_fn next, void *state,
                     void (*free_state)(void *));

srv *srv_of(srv_conn *c);
/* The daemon on host:port (IPv4), NULL if it cannot listen; stopping ends every
 * request (open streams with an error event) and waits for their threads. */
void *srv_http_start(srv *s, const char *host, int port);
void srv_http_stop(srv *s, void *daemon);
/* The request's tokens, for the log line. */
void srv_conn_log_tokens(srv_conn *c, int32_t prompt, int32_t reused, int32_t generated);

/* The tasks of one request answered together (n choices, several prompts). */
#define SRV_MAX_GROUP SRV_MAX_PROMPTS
typedef struct srv_group {
    srv *s;
    int n;
    srv_task *t[SRV_MAX_GROUP];
} srv_group;
/* Queues every task, or none (false: the queue is full; those queued are cancelled). */
bool srv_group_submit(srv_group *g);
/* Cancels and drops the tasks from index `from` on. */
void srv_group_release(srv_group *g, int from);
/* Runs the group: queued all or none (503), then streamed (stream: true in body; *streaming set: the
 * stream owns state, freed by free_state, and the first task) or waited for. Returns -1 when every task
 * succeeded and the caller answers; else the reply already sent (a failure, or the client gone). */
int srv_group_run(srv_conn *c, srv_group *g, const cJSON *body, srv_stream_fn next, void *state,
                  void (*free_state)(void *), bool *streaming);
/* The request's log line: the first task's prompt, the tokens of all. */
void srv_group_log(srv_conn *c, const srv_group *g);

/* Queues t and waits for it to finish (non-streamed replies); false if the queue was full. A client
 * that goes away meanwhile cancels it (its slot is freed at once). */
bool srv_run_blocking(srv_conn *c, srv_task *t);
/* Runs t to its end: -1 when it succeeded, else the reply sent for its failure (503 when the queue is
 * full or the server stopping, 500 otherwise; Ollama's shape on /api/ paths). */
int srv_run_task(srv_conn *c, srv_task *t);
/* A task that failed while it ran: 503 if the server is stopping or a full unified KV pool ended it
 * (it may succeed later: this code says which), otherwise 500; its message. */
const char *srv_task_error_code(const srv *s, const srv_task *t);
int srv_reply_task_error(srv_conn *c, const srv_task *t);
/* Waits for a queued task to finish; false when the client went away (the task is cancelled). */
bool srv_wait_task(srv_conn *c, srv_task *t);
/* Waits until t has events past *seen, or is done; true when something is new.
 * A wait longer than wait_s returns false. */
bool srv_task_wait(srv_task *t, int seen, double wait_s);

/* ---- request fields (fields.c) -------------------------------------------------------- */

/* Messages of {role, content}: content a string or [{type: "text", text}] (parts that point into
 * arr: use the messages while it lives); "developer" read as "system". What they own is in *store
 * (free with srv_messages_free). NULL and err set on a bad request. */
gemma8_chat_message *srv_messages(const cJSON *arr, const char *system, int32_t *n, char ***store, char *err,
                                  size_t cap);
void srv_messages_free(gemma8_chat_message *m, int32_t n, char **store);
/* "stop": a string or an array of strings; false with err on a bad value. */
bool srv_stop(const cJSON *v, srv_task *t, char *err, size_t cap);
/* Constrains the reply: a JSON Schema (json_schema: its JSON, NULL for any JSON
 * object) or GBNF text (gbnf); false with the reason in err (a 400). */
bool srv_constrain(srv_task *t, const cJSON *json_schema, const char *gbnf, char *err, size_t cap);
/* A number field in [lo, hi] if present; false with err otherwise. */
bool srv_number(const cJSON *obj, const char *name, double lo, double hi, double *out, char *err, size_t cap);
bool srv_valid_utf8(const char *s, size_t n);
/* v is a whole number in [lo, hi] (checked before any cast: a huge double never reaches one). */
bool srv_whole(double v, double lo, double hi);
/* Whether JSON text writes U+0000 in a string (\u0000): cJSON's strings would end there, so a
 * field would be read in part; such a request is refused. */
bool srv_has_nul_escape(const char *s, size_t n);
/* The tokens of a chat (a last assistant message is continued: a prefill); GEMMA8_ERR_CONTEXT_FULL (with
 * *n_out the count) when they do not fit in a slot. */
gemma8_status srv_chat_tokens(srv *s, const gemma8_chat_message *m, int32_t n, int32_t **out, int32_t *n_out);
/* The tokens of a raw prompt; GEMMA8_ERR_CONTEXT_FULL as srv_chat_tokens. */
gemma8_status srv_text_tokens(srv *s, const char *text, bool add_bos, bool special, int32_t **out,
                              int32_t *n_out);
/* llama-server's prompts: a text, token ids, or a list mixing both is one prompt; a list of those is
 * several. The count (0: not a prompt), the i-th, and its tokens (a text first gets <bos> if asked;
 * control-token text recognised): GEMMA8_ERR_CONTEXT_FULL as srv_text_tokens, other errors in err. */
int srv_prompt_count(const cJSON *p);
const cJSON *srv_prompt_at(const cJSON *p, int i);
gemma8_status srv_prompt_tokens(srv *s, const cJSON *p, bool add_bos, int32_t **out, int32_t *n_out,
                                char *err, size_t cap);
/* The model name a request gave is ours, "<ours>:<adapter name>", or absent (a ":latest" tag is
 * the plain name, as in Ollama). */
bool srv_model_ok(srv *s, const cJSON *body);
/* Whether a name is ours (as srv_model_ok). */
bool srv_model_name_ok(srv *s, const char *name);
/* The adapters a request runs under, into t: llama.cpp's "lora": [{"id", "scale"}] (others
 * at 0) or "lora": "NAME", or the model "<ours>:NAME" (that one at scale 1); else those given
 * at start at their scales. false with err on a bad value. */
bool srv_lora_set(srv *s, const cJSON *body, srv_task *t, char *err, size_t cap);
/* The text of one token, for logprobs. */
void srv_token_text(srv *s, int32_t token, char *buf, size_t cap);
/* The text of n events, NUL-terminated (malloc'd; NULL if out of memory). */
char *srv_events_text(const srv_event *e, int n);
/* Appends prefix + text + suffix (NUL-terminated) to a growing buffer; the JSON form takes j. */
void srv_buf_add(char **out, size_t *len, const char *prefix, const char *text, const char *suffix);
void srv_buf_json(char **out, size_t *len, const char *prefix, cJSON *j, const char *suffix);
/* logit_bias into t: OpenAI's {"token id": bias} and llama.cpp's forms ({"text": bias},
 * [[id or text, bias or false]]; false: never); a text stands for each of its tokens. false with err. */
bool srv_logit_bias(srv *s, const cJSON *v, srv_task *t, char *err, size_t cap);
/* llama-server's prompt_progress object {total, cache, processed, time_ms} of an SRV_PROGRESS event. */
cJSON *srv_progress_of(const srv_task *t, const srv_event *e);
/* The prompt of a task as text, control tokens written out (malloc'd; NULL if out of memory). */
char *srv_prompt_text(srv *s, const srv_task *t);
/* llama-server's timings object: prompt and predicted tokens, ms, per token, per second. */
cJSON *srv_timings(const srv_task *t);
/* The server's sampling defaults (--temp, --top-k, --top-p, --seed) over an API's own. */
void srv_apply_defaults(const srv *s, gemma8_sampler_params *sp);
/* A seed for a request that gives none (both APIs draw one then). */
uint32_t srv_random_seed(void);

/* ---- the APIs ------------------------------------------------------------------------------ */

/* Why a request was refused: an HTTP status, OpenAI's error code (or NULL), a message. */
typedef struct srv_error {
    unsigned status;
    const char *code;
    char msg[512];
    int32_t n_prompt, n_ctx; /* a prompt too long for a slot: both sizes (else 0) */
} srv_error;

/* OpenAI's error object for a refused request (llama-server's "exceed_context_size_error" type and
 * sizes for a prompt too long). */
int srv_reply_refusal(srv_conn *c, const srv_error *e);

/* Fills e and returns false (a request refused). */
bool srv_fail(srv_error *e, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The request names our model (or none); else false with a 404 in e. On the OpenAI API (lenient)
 * any other name is served by the loaded model, as llama-server does, unless --strict-model-names. */
bool srv_model_known(srv *s, const cJSON *body, srv_error *e);
bool srv_model_known_lenient(srv *s, const cJSON *body, srv_error *e);
/* Reads an API's own request fields into t; false with the reason in err. */
typedef bool (*srv_read_fn)(srv *s, const cJSON *body, srv_task *t, char *err, size_t cap);
/* The end of parsing a generation request whose prompt was tokenized with status gs: the
 * prompt fits, the API's fields (read) and the adapters are valid: true with *out = t, or
 * false with e filled and t freed. */
bool srv_parse_done(srv *s, const cJSON *body, srv_task *t, gemma8_status gs, srv_read_fn read, srv_task **out,
                    srv_error *e);
/* A chat request (OpenAI's or Ollama's): its messages (with tool calls and results), its tools'
 * instructions first and their grammar (tools, tool_choice, parallel_tool_calls), then as
 * srv_parse_done. */
bool srv_chat_task(srv *s, const cJSON *body, const cJSON *messages, srv_read_fn read, srv_task **out,
                   srv_error *e);
/* An API whose requests are rewritten into the chat shape first (Anthropic's, the Responses API):
 * convert makes the chat body (messages, tools, ...) or NULL with err; then srv_chat_task. */
typedef cJSON *(*srv_convert_fn)(const cJSON *body, char *err, size_t cap);
bool srv_converted_chat_task(srv *s, const cJSON *body, srv_convert_fn convert, srv_read_fn read,
                             srv_task **out, srv_error *e);
/* One log line for each of the keys present in body (fields an API accepts and ignores). */
void srv_log_ignored(const cJSON *body, const char *api, const char *const *keys, size_t n);

/* Requests to tasks (no reply: the handlers answer; the fuzz harness checks
 * that any body gives a valid task or an error). true with *out set, or false
 * with e filled. */
bool oai_parse_chat(srv *s, const cJSON *body, srv_task **out, srv_error *e);
bool oai_parse_completion(srv *s, const cJSON *body, srv_task **out, srv_error *e);
bool oai_parse_embedding(srv *s, const cJSON *body, srv_task **out, srv_error *e);
bool ollama_parse_chat(srv *s, const cJSON *body, srv_task **out, srv_error *e);
bool anthropic_parse(srv *s, const cJSON *body, srv_task **out, srv_error *e);
bool responses_parse(srv *s, const cJSON *body, srv_task **out, srv_error *e);
bool ollama_parse_generate(srv *s, const cJSON *body, srv_task **out, srv_error *e);
bool ollama_parse_embed(srv *s, const cJSON *body, srv_task **out, srv_error *e);
bool llama_parse_completion(srv *s, const cJSON *body, srv_task **out, srv_error *e);

/* ---- the handlers ------------------------------------------------------------------------------- */

int oai_chat(srv_conn *c, cJSON *body);
/* Anthropic's Messages API (anthropic.c) */
int anthropic_messages(srv_conn *c, cJSON *body);
int anthropic_count_tokens(srv_conn *c, cJSON *body);
/* OpenAI's Responses API (responses.c) */
int responses_create(srv_conn *c, cJSON *body);
int oai_input_tokens(srv_conn *c, cJSON *body);
int oai_completions(srv_conn *c, cJSON *body);
int oai_models(srv_conn *c, cJSON *body);
int oai_embeddings(srv_conn *c, cJSON *body);
int ollama_chat(srv_conn *c, cJSON *body);
int ollama_generate(srv_conn *c, cJSON *body);
int ollama_tags(srv_conn *c, cJSON *body);
int ollama_show(srv_conn *c, cJSON *body);
int ollama_version(srv_conn *c, cJSON *body);
int ollama_ps(srv_conn *c, cJSON *body);
int ollama_embed(srv_conn *c, cJSON *body);
int llama_completion(srv_conn *c, cJSON *body);
int llama_embeddings(srv_conn *c, cJSON *body);
int ollama_embeddings(srv_conn *c, cJSON *body);
int ollama_pull(srv_conn *c, cJSON *body);
int srv_lora_adapters(srv_conn *c, cJSON *body);
int srv_lora_adapters_set(srv_conn *c, cJSON *body);
int srv_props(srv_conn *c, cJSON *body);
int srv_slots(srv_conn *c, cJSON *body);
int srv_slot_action(srv_conn *c, cJSON *body);
/* A query argument of the request (NULL: absent). */
const char *srv_conn_arg(srv_conn *c, const char *name);
int srv_apply_template(srv_conn *c, cJSON *body);
int oai_model_one(srv_conn *c, cJSON *body);
/* The OpenAI model object of a name we serve (the model or "<model>:<adapter>"). */
cJSON *oai_model_object(srv *s, const char *id);
/* The request's path (for handlers of a path prefix). */
const char *srv_conn_url(srv_conn *c);

#endif
