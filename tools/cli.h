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

#endif
