/* cli.h - helpers shared by the subcommands of the gemma8 command. */
#ifndef GEMMA8_CLI_H
#define GEMMA8_CLI_H

#include "gemma8.h"

double cli_now(void);
int cli_parse_tokens(const char *s, int32_t **out, int32_t *n);
int cli_usage_error(const char *cmd, const char *arg);
/* Loads a model and a context; prints the error and returns 1 on failure. */
int cli_load(const char *path, int n_ctx, int n_threads, gemma8_model **model, gemma8_context **ctx);

int cmd_run(int argc, char **argv);
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
