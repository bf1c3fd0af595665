/* serve.c - the `gemma8 serve` command: options, the model and its
 * context, the scheduler and the HTTP daemon, and a clean stop on SIGINT/SIGTERM. */
#include "cli.h"
#include "server.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

int cmd_serve(int argc, char **argv) {
    cli_common c = cli_common_defaults();
    const char *host = "127.0.0.1", *alias = NULL, *api_key = NULL, *tags = NULL;
    int32_t port = 8080, parallel = 4, queue_max = 64, max_body_mb = 8, read_timeout = 10;
    const char *cors = "localhost";
    bool strict_names = false, log_health = false, no_slots = false, no_webui = false;
    bool parallel_set = false, kvu = false, no_kvu = false, cache_idle = false, no_cache_idle = false;
    int32_t cache_ram = 8192;
    const char *pooling = "mean";
    int32_t sleep_idle = 0;
    const char *slot_save_path = NULL;
    srv_defaults dflt = {.temp = 1.0f, .top_p = 1.0f, .n_predict = -1};
    int32_t seed = -1;
    cli_opt common[8];
    cli_common_table(&c, common, true);
    const cli_opt opts[] = {
        {"--host", CLI_STR, &host, "ADDR", "address to listen on (IPv4 or IPv6, e.g. ::1)", NULL},
        {"--port", CLI_INT, &port, "N", "port", NULL},
        {"-np|--parallel", CLI_INT, &parallel, "N",
         "slots: requests generated at once, each with -c / N tokens (not given: 4 sharing -c, --kv-unified)",
         &parallel_set},
        {"-kvu|--kv-unified", CLI_FLAG, &kvu, NULL,
         "one KV pool of -c tokens for all slots, each may fill it (default when --parallel is not given)",
         NULL},
        {"-no-kvu|--no-kv-unified", CLI_FLAG, &no_kvu, NULL, "each slot owns -c / N tokens", NULL},
        {"-cram|--cache-ram", CLI_INT, &cache_ram, "MIB",
         "a prompt cache in RAM of at most MIB: slots' caches that would be lost wait there for a request "
         "that shares their prompt (-1 no limit, 0 none)",
         NULL},
        {"--cache-idle-slots", CLI_FLAG, &cache_idle, NULL,
         "with --kv-unified, the free slots' caches move to the RAM cache when a request starts (default)",
         NULL},
        {"--no-cache-idle-slots", CLI_FLAG, &no_cache_idle, NULL, "they stay in the pool until it is full",
         NULL},
        {"--queue", CLI_INT, &queue_max, "N", "requests that may wait for a slot; past it, 503", NULL},
        {"--api-key", CLI_STR, &api_key, "KEY", "require Authorization: Bearer KEY (or X-Api-Key: KEY)",
         NULL},
        {"--cors-origins", CLI_STR, &cors, "LIST",
         "web pages that may call the API: '*', 'localhost' (pages on this machine) or origins, "
         "comma-separated",
         NULL},
        {"--strict-model-names", CLI_FLAG, &strict_names, NULL,
         "a request naming another model is a 404 (default: the loaded model serves it)", NULL},
        {"--log-health", CLI_FLAG, &log_health, NULL, "log /health requests too", NULL},
        {"--no-webui", CLI_FLAG, &no_webui, NULL, "no chat page at / (404)", NULL},
        {"--slot-save-path", CLI_STR, &slot_save_path, "DIR",
         "where POST /slots/ID?action=save|restore keep slots' caches", NULL},
        {"--no-slots", CLI_FLAG, &no_slots, NULL, "no GET /slots (501)", NULL},
        {"--sleep-idle-seconds", CLI_INT, &sleep_idle, "S",
         "after S seconds without requests free the context (KV cache, prompt caches) until the next", NULL},
        {"--pooling", CLI_STR, &pooling, "P",
         "embeddings: mean (one vector per input) or none (/embeddings: a vector per token)", NULL},
        {"--temp", CLI_FLOAT, &dflt.temp, "T", "default temperature (requests override)", &dflt.has_temp},
        {"--top-k", CLI_INT, &dflt.top_k, "K", "default top-k, 0 off (requests override)", &dflt.has_top_k},
        {"--top-p", CLI_FLOAT, &dflt.top_p, "P", "default top-p (requests override)", &dflt.has_top_p},
        {"-s|--seed", CLI_INT, &seed, "N", "default seed (requests override; default: a random one each)",
         &dflt.has_seed},
        {"-n|--n-predict", CLI_INT, &dflt.n_predict, "N",
         "default reply length in tokens, -1 the slot's room", &dflt.has_n_predict},
        {"-a|--alias", CLI_STR, &alias, "NAME",
         "the model's name in the APIs (default: its general.name); A,B,C: several, the first in order its "
         "id",
         NULL},
        {"--tags", CLI_STR, &tags, "LIST", "tags shown in /v1/models (comma-separated)", NULL},
        {"--max-body-mb", CLI_INT, &max_body_mb, "N", "largest request body, MiB (413 past it)", NULL},
        {"--read-timeout", CLI_INT, &read_timeout, "S", "seconds a client has to send its request", NULL},
        {0},
    };
    const cli_opt *tables[] = {common, opts, NULL};
    const char *usage =
        "usage: gemma8 serve -m MODEL.gguf [--host 127.0.0.1] [--port 8080] [--parallel N] [-c CTX] "
        "[options]\n\n"
        "An HTTP server with the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models,\n"
        "/v1/embeddings) and Ollama's (/api/chat, /api/generate, /api/tags, /api/show, /api/embed, ...),\n"
        "llama-server's (/completion, /props, /slots, /apply-template, /lora-adapters, /tokenize, ...),\n"
        "plus /health and /metrics. -c is the total context: each of the --parallel slots gets -c / N\n"
        "tokens (default: the model's context for each), or with --kv-unified the slots share one pool\n"
        "of -c tokens (default: the model's context) and each may fill it. Without --parallel, 4 slots\n"
        "share one pool, as llama-server's defaults.\n";
    int r = cli_parse("serve", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if ((r = cli_common_check("serve", &c))) return r;
    unsigned char probe[16];
    if (port < 0 || port > 65535 || inet_pton(strchr(host, ':') ? AF_INET6 : AF_INET, host, probe) != 1) {
        fprintf(stderr,
                "gemma8 serve: --host expects an IPv4 or IPv6 address and --port 0..65535, got %s:%d\n", host,
                port);
        return 2;
    }
    if (sleep_idle < 0) {
        fprintf(stderr, "gemma8 serve: --sleep-idle-seconds must be >= 0\n");
        return 2;
    }
    if (strcmp(pooling, "mean") && strcmp(pooling, "none")) {
        fprintf(stderr, "gemma8 serve: --pooling is mean or none, got %s\n", pooling);
        return 2;
    }
    const char *bad = !(dflt.temp >= 0)                      ? "--temp must be >= 0"
                      : dflt.top_k < 0                       ? "--top-k must be >= 0"
                      : !(dflt.top_p > 0 && dflt.top_p <= 1) ? "--top-p must be in (0, 1]"
                      : dflt.n_predict < -1                  ? "-n must be >= -1"
                      : !cors[0]                             ? "--cors-origins must not be empty"
                                                             : NULL;
    if (bad) {
        fprintf(stderr, "gemma8 serve: %s (--temp %g --top-k %d --top-p %g -n %d)\n", bad, dflt.temp,
                dflt.top_k, dflt.top_p, dflt.n_predict);
        return 2;
    }
    dflt.seed = (uint32_t)seed;
    struct stat dir;
    if (slot_save_path && (stat(slot_save_path, &dir) || !S_ISDIR(dir.st_mode))) {
        fprintf(stderr, "gemma8 serve: --slot-save-path %s is not a folder\n", slot_save_path);
        return 2;
    }
    if (parallel < 1 || parallel > 256 || queue_max < 0 || max_body_mb < 1 || read_timeout < 1) {
        fprintf(stderr,
                "gemma8 serve: --parallel 1..256, --queue >= 0, --max-body-mb and --read-timeout >= 1\n");
        return 2;
    }
    const char *both = kvu && no_kvu                 ? "--kv-unified and --no-kv-unified"
                       : cache_idle && no_cache_idle ? "--cache-idle-slots and --no-cache-idle-slots"
                                                     : NULL;
    if (both) {
        fprintf(stderr, "gemma8 serve: %s are both given\n", both);
        return 2;
    }
    if (cache_ram < -1) {
        fprintf(stderr, "gemma8 serve: --cache-ram is MiB, -1 (no limit) or 0 (none), got %d\n", cache_ram);
        return 2;
    }
    c.kv_unified = kvu || (!parallel_set && !no_kvu);
    srv s = {0};
    double t0 = gemma8_time();
    cli_loaded loaded;
    if (cli_load(&c, parallel, &loaded)) return 1;
    gemma8_context *ctx = loaded.ctx;
    s.model = loaded.model;
    s.load_seconds = gemma8_time() - t0;
    s.info = gemma8_model_get_info(s.model);
    for (int i = 0; i < loaded.n_lora; i++) {
        s.lora[i].a = loaded.lora[i];
        s.lora[i].name = loaded.lora_name[i];
        s.lora[i].scale = loaded.lora_scale[i];
    }
    s.n_lora = loaded.n_lora;
    s.alias = alias ? alias : s.info.name;
    char first[256];
    if (alias && strchr(alias, ',')) { /* several names: the id is the first in order, as llama-server's */
        first[0] = 0;
        for (const char *p = alias; *p;) {
            size_t n = strcspn(p, ",");
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(n < 255 ? n : 255), p);
            if (name[0] && (!first[0] || strcmp(name, first) < 0)) snprintf(first, sizeof first, "%s", name);
            p += n + (p[n] == ',');
        }
        s.alias = first;
        s.aliases = alias;
    }
    s.tags = tags;
    s.api_key = api_key;
    s.model_path = c.model;
    s.cors = cors;
    s.strict_names = strict_names;
    s.log_health = log_health;
    s.no_webui = no_webui;
    s.no_slots = no_slots;
    s.pooling_none = !strcmp(pooling, "none");
    s.slot_save_path = slot_save_path;
    s.dflt = dflt;
    s.n_slots = parallel;
    s.n_ctx_slot = gemma8_n_ctx(ctx);
    s.kv_unified = c.kv_unified;
    s.max_body = (size_t)max_body_mb << 20;
    s.read_timeout = read_timeout;
    s.t_loaded = (double)time(NULL);
    s.sched = srv_sched_start(s.model, ctx, queue_max, s.kv_unified);
    if (s.sched && sleep_idle > 0) srv_sched_set_sleep(s.sched, sleep_idle, &loaded.cp);
    if (s.sched && cache_ram)
        srv_sched_set_ram_cache(s.sched, cache_ram < 0 ? SIZE_MAX : (size_t)cache_ram << 20, !no_cache_idle);
    void *d = s.sched ? srv_http_start(&s, host, port) : NULL;
    if (!d) {
        fprintf(stderr, "gemma8 serve: error: cannot listen on %s:%d (in use?)\n", host, port);
        srv_sched_free(s.sched);
        cli_unload(&loaded);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    bool v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "gemma8 serve: %s (%s) on http://%s%s%s:%d, %d slots of %d tokens%s, queue %d\n", s.alias,
            gemma8_type_name(s.info.matrix_type), v6 ? "[" : "", host, v6 ? "]" : "", port, parallel,
            s.n_ctx_slot, s.kv_unified ? " (one pool they share)" : "", queue_max);
    while (!g_stop) pause();
    /* stop accepting, end open requests with an error, wait for their threads */
    fprintf(stderr, "gemma8 serve: stopping\n");
    srv_http_stop(&s, d);
    loaded.ctx = srv_sched_context(s.sched); /* another than at start after a sleep, or none */
    srv_sched_free(s.sched);
    cli_unload(&loaded);
    fprintf(stderr, "gemma8 serve: stopped\n");
    return 0;
}
