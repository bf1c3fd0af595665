/* cli.h - helpers shared by the subcommands of the gemma8 command. */
#ifndef GEMMA8_CLI_H
#define GEMMA8_CLI_H

#include "gemma8.h"

double cli_now(void);
int cli_parse_tokens(const char *s, int32_t **out, int32_t *n);
int cli_usage_error(const char *cmd, const char *arg);
/* Loads a model and a context; prints the error and returns 1 on failure. */
/* Loads a model and makes its context; kv_type: "f32", "f16", "q8_0", "auto" or NULL (auto). */
int cli_load(const char *path, int n_ctx, int n_threads, const char *kv_type, gemma8_model **model, gemma8_context **ctx);

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* generation options shared by run and chat */
typedef struct cli_gen_extra {
    const char *stop[16];
    int n_stop;
    bool repeat_penalty_set;
    int n_threads, n_ctx;
    const char *kv_type; /* --kv-type, NULL: auto */
} cli_gen_extra;
extern const char *cli_sampling_help;
int cli_generation_option(int argc, char **argv, int *i, gemma8_generate_params *p, cli_gen_extra *x);
void cli_generation_finish(gemma8_generate_params *p, cli_gen_extra *x);
/* Prints llama.cpp-style timings to stderr. */
void cli_print_timings(double load_s, const gemma8_generate_result *r);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
double cli_membw(int n_threads, int reps);

#define G8_MAX_INT(a, b) ((a) > (b) ? (a) : (b))
int cmd_detokenize(int argc, char **argv);

char *cli_read_stdin(size_t *len);
struct cJSON;
/* Parses a JSON array of {"role","content"} (pointers into arr). */
gemma8_chat_message *cli_parse_messages(struct cJSON *arr, int32_t *n, char *err, size_t errlen);

#endif
