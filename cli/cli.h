/* cli.h - what the subcommands of the gemma8 command share. Public API only. */
#ifndef GEMMA8_CLI_H
#define GEMMA8_CLI_H

#include "gemma8.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- option parsing (options.c) ----------------------------------------------------- */

typedef enum cli_kind {
    CLI_FLAG,     /* bool, no value */
    CLI_INT,      /* int32_t */
    CLI_FLOAT,    /* float */
    CLI_SEED,     /* uint32_t; -1: a random seed */
    CLI_STR,      /* const char * */
    CLI_LIST,     /* cli_list: repeatable */
} cli_kind;

typedef struct cli_list {
    const char *v[16];
    int n;
} cli_list;

typedef struct cli_opt {
    const char *names;     /* spellings separated by '|': "-n|--n-predict"; NULL ends a table */
    cli_kind kind;
    void *dst;             /* holds the default before parsing (shown in --help) */
    const char *arg;       /* the value's name in --help */
    const char *help;      /* one line */
    bool *given;           /* set when the option appears; may be NULL */
} cli_opt;

/* Parses argv[1..] against NULL-terminated lists of tables; other arguments go
 * to pos (max_pos at most). Returns 0 to go on, 1 after printing --help (exit
 * 0), 2 after printing an error that names the option and the bad value. */
int cli_parse(const char *cmd, const char *usage, int argc, char **argv, const cli_opt *const *tables,
              const char **pos, int max_pos, int *n_pos);

/* model, threads, context */
typedef struct cli_common {
    const char *model;
    int32_t n_threads;
    int32_t n_ctx;
    int32_t n_batch;
    const char *kv_type;
    cli_list lora;         /* --lora [NAME=]FILE[:SCALE], applied to every sequence */
    bool kv_unified;       /* serve's --kv-unified: the sequences share one pool of n_ctx positions */
} cli_common;
cli_common cli_common_defaults(void);
/* t: room for 7 entries */
void cli_common_table(cli_common *c, cli_opt *t, bool with_ctx);
int cli_common_check(const char *cmd, const cli_common *c);

/* generation options of run, chat and demo */
typedef struct cli_gen_extra {
    cli_list stop;
    bool repeat_penalty_set;
    bool json;                 /* --json: any JSON object */
    const char *json_schema;   /* --json-schema FILE (or the schema itself, if it starts with '{') */
    const char *grammar_file;  /* --grammar FILE (GBNF) */
    gemma8_grammar *grammar;   /* compiled from one of them by cli_generation_finish */
} cli_gen_extra;
extern const char *cli_sampling_note;
/* t: room for 19 entries */
void cli_generation_table(gemma8_generate_params *p, cli_gen_extra *x, cli_opt *t);
/* Checks the options and compiles a grammar: 0, or 2 after printing the error. */
int cli_generation_finish(const char *cmd, gemma8_generate_params *p, cli_gen_extra *x);
void cli_generation_free(cli_gen_extra *x);

/* ---- shared helpers (common.c) ------------------------------------------------------ */

/* The whole of a file, NUL-terminated (*len bytes if len); NULL if it cannot be read. */
char *cli_read_file(const char *path, size_t *len);
int cli_parse_tokens(const char *s, int32_t **out, int32_t *n);
/* Prints gemma8_last_error() (or the status) and returns 1. */
int cli_fail(gemma8_status st);

/* A model, its context and the --lora adapters set on every sequence of it, in order. */
typedef struct cli_loaded {
    gemma8_model *model;
    gemma8_context *ctx;
    gemma8_context_params cp; /* what ctx was made with */
    int n_lora;
    gemma8_lora *lora[GEMMA8_MAX_LORA];
    char lora_name[GEMMA8_MAX_LORA][64]; /* "NAME=FILE[:SCALE]" names one; else the file's name */
    float lora_scale[GEMMA8_MAX_LORA];
} cli_loaded;
/* Loads c's model and makes its context of c's sizes (n_seq sequences) with c's adapters; warns
 * when the context exceeds the model's training length; prints the error and returns 1 on failure. */
int cli_load(const cli_common *c, int32_t n_seq, cli_loaded *out);
/* Frees what cli_load made, in order (context, adapters, model). */
void cli_unload(cli_loaded *l);

/* bench --json-schema: sampled decode of n_streams with and without the grammars, and each mask's time. */
int cli_bench_grammar(gemma8_model *model, gemma8_context *ctx, const cli_list *schemas, bool json, int n_streams,
                      int n_gen, int reps);

/* llama.cpp-style timings on stderr: load (when load_s >= 0), prompt, generation, total. */
void cli_print_timings(double load_s, const gemma8_generate_result *r);

char *cli_read_stdin(size_t *len);
struct cJSON;
/* Parses a JSON array of {"role","content"} (pointers into arr). */
gemma8_chat_message *cli_parse_messages(struct cJSON *arr, int32_t *n, char *err, size_t errlen);

double cli_membw(int n_threads, int reps);

/* ---- the subcommands ----------------------------------------------------------------- */

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_convert_lora(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_info(int argc, char **argv);

#endif
