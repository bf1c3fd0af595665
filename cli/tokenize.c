/* tokenize.c - `gemma8 tokenize` and `gemma8 detokenize`. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* All of stdin, NUL-terminated. */
char *cli_read_stdin(size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int print_ids(const int32_t *ids, int32_t n) {
    putchar('[');
    for (int32_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    printf("]\n");
    return 0;
}

/* Tokenizes text and prints the JSON array; returns an exit status. */
static int tokenize_one(const gemma8_model *m, const char *text, size_t len, bool bos, bool special) {
    int32_t n;
    size_t cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    gemma8_status st = ids ? gemma8_tokenize(m, text, len, bos, special, ids, (int32_t)cap, &n) : GEMMA8_ERR_NOMEM;
    if (st == GEMMA8_OK) print_ids(ids, n);
    else fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
    free(ids);
    return st ? 1 : 0;
}

/* Parses a JSON array of {"role","content"}; NULL with a message on error. */
gemma8_chat_message *cli_parse_messages(cJSON *arr, int32_t *n, char *err, size_t errlen) {
    if (!cJSON_IsArray(arr)) {
        snprintf(err, errlen, "messages must be a JSON array of {\"role\", \"content\"} objects");
        return NULL;
    }
    int count = cJSON_GetArraySize(arr);
    gemma8_chat_message *msgs = calloc((size_t)count + 1, sizeof *msgs);
    if (!msgs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int i = 0;
    for (cJSON *e = arr->child; e; e = e->next, i++) {
        cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            snprintf(err, errlen, "message %d needs string \"role\" and \"content\"", i);
            free(msgs);
            return NULL;
        }
        msgs[i] = (gemma8_chat_message){.role = role->valuestring, .content = content->valuestring};
    }
    *n = count;
    return msgs;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL;
    bool bos = false, special = false, jsonl = false, chat = false;
    const cli_opt opts[] = {
        {"-m|--model", CLI_STR, &model_path, "FILE", "the model (GGUF)", NULL},
        {"--bos", CLI_FLAG, &bos, NULL, "put <bos> first", NULL},
        {"--parse-special", CLI_FLAG, &special, NULL, "recognise control-token text such as <start_of_turn>", NULL},
        {"--jsonl", CLI_FLAG, &jsonl, NULL, "each input line is a JSON string; one JSON array per line out", NULL},
        {"--chat", CLI_FLAG, &chat, NULL, "input: a JSON array of {role, content}; out: the chat prompt's ids", NULL},
        {0},
    };
    const cli_opt *tables[] = {opts, NULL};
    const char *usage = "usage: gemma8 tokenize -m MODEL.gguf [--bos] [--parse-special] [--jsonl | --chat] < input\n\n"
                        "Reads UTF-8 text on stdin and prints its token ids as a JSON array.\n";
    int r = cli_parse("tokenize", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!model_path) {
        fprintf(stderr, "gemma8 tokenize: -m MODEL is required\n");
        return 2;
    }
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    gemma8_status st = gemma8_model_load(model_path, &mp, &m);
    if (st) {
        fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
        return 1;
    }
    size_t len;
    char *in = cli_read_stdin(&len);
    int rc = 0;
    if (!in) {
        fprintf(stderr, "gemma8: error: cannot read stdin\n");
        rc = 1;
    } else if (chat) {
        cJSON *arr = cJSON_ParseWithLength(in, len);
        char err[256];
        int32_t n = 0;
        gemma8_chat_message *msgs = arr ? cli_parse_messages(arr, &n, err, sizeof err) : NULL;
        if (!arr) snprintf(err, sizeof err, "the input is not valid JSON");
        if (!msgs) {
            fprintf(stderr, "gemma8: error: %s\n", err);
            rc = 1;
        } else {
            int32_t cap = 1024, nid;
            int32_t *ids = malloc((size_t)cap * sizeof *ids);
            st = gemma8_chat_tokenize(m, msgs, n, true, ids, cap, &nid);
            if (st == GEMMA8_ERR_BUFFER_TOO_SMALL) {
                free(ids);
                ids = malloc((size_t)(cap = nid) * sizeof *ids);
                st = gemma8_chat_tokenize(m, msgs, n, true, ids, cap, &nid);
            }
            if (st) {
                fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
                rc = 1;
            } else {
                print_ids(ids, nid);
            }
            free(ids);
        }
        free(msgs);
        cJSON_Delete(arr);
    } else if (jsonl) {
        char *line = in;
        for (int lineno = 1; *line; lineno++) {
            char *nl = strchr(line, '\n');
            size_t ll = nl ? (size_t)(nl - line) : strlen(line);
            cJSON *j = cJSON_ParseWithLength(line, ll);
            if (ll == 0) {
                /* blank line: skip */
            } else if (!cJSON_IsString(j)) {
                fprintf(stderr, "gemma8: error: line %d is not a JSON string\n", lineno);
                rc = 1;
            } else if (tokenize_one(m, j->valuestring, strlen(j->valuestring), bos, special)) {
                rc = 1;
            }
            cJSON_Delete(j);
            if (rc || !nl) break;
            line = nl + 1;
        }
    } else {
        rc = tokenize_one(m, in, len, bos, special);
    }
    fflush(stdout);
    free(in);
    gemma8_model_free(m);
    return rc;
}

int cmd_detokenize(int argc, char **argv) {
    const char *model_path = NULL;
    bool skip = false;
    const cli_opt opts[] = {
        {"-m|--model", CLI_STR, &model_path, "FILE", "the model (GGUF)", NULL},
        {"--skip-special", CLI_FLAG, &skip, NULL, "leave out control tokens", NULL},
        {0},
    };
    const cli_opt *tables[] = {opts, NULL};
    const char *usage = "usage: gemma8 detokenize -m MODEL.gguf [--skip-special] < ids.json\n\n"
                        "Reads a JSON array of token ids on stdin and prints the text.\n";
    int r = cli_parse("detokenize", usage, argc, argv, tables, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!model_path) {
        fprintf(stderr, "gemma8 detokenize: -m MODEL is required\n");
        return 2;
    }
    size_t len;
    char *in = cli_read_stdin(&len);
    cJSON *arr = in ? cJSON_ParseWithLength(in, len) : NULL;
    free(in);
    if (!cJSON_IsArray(arr)) {
        fprintf(stderr, "gemma8: error: the input is not a JSON array of token ids\n");
        cJSON_Delete(arr);
        return 1;
    }
    int32_t n = cJSON_GetArraySize(arr), i = 0;
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    for (cJSON *e = arr->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int32_t)e->valuedouble) {
            fprintf(stderr, "gemma8: error: element %d is not a token id\n", i);
            free(ids);
            cJSON_Delete(arr);
            return 1;
        }
        ids[i] = (int32_t)e->valuedouble;
    }
    cJSON_Delete(arr);
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    gemma8_status st = gemma8_model_load(model_path, &mp, &m);
    int rc = 0;
    if (!st) {
        size_t need;
        st = gemma8_detokenize(m, ids, n, skip, NULL, 0, &need);
        if (st == GEMMA8_ERR_BUFFER_TOO_SMALL) {
            char *text = malloc(need + 1);
            st = gemma8_detokenize(m, ids, n, skip, text, need + 1, &need);
            if (!st) fwrite(text, 1, need, stdout);
            free(text);
        }
        gemma8_model_free(m);
    }
    if (st) {
        fprintf(stderr, "gemma8: error: %s\n", gemma8_last_error());
        rc = 1;
    }
    free(ids);
    return rc;
}
