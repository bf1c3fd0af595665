/* tools.c - tool calling in the server: a request's tools and tool_choice read (OpenAI's and
 * Ollama's shapes), a conversation's calls and results written in the library's format
 * (gemma8.h: ```tool_call / ```tool_output blocks), and a reply read back into text and calls
 * as it streams. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the request ------------------------------------------------------------------------- */

static char *keep(srv_tools *tt, char *s) {
    if (!s) return NULL;
    char **ns = realloc(tt->store, ((size_t)tt->n_store + 1) * sizeof *ns);
    if (!ns) {
        free(s);
        return NULL;
    }
    tt->store = ns;
    tt->store[tt->n_store++] = s;
    return s;
}

void srv_tools_free(srv_tools *tt) {
    for (int i = 0; i < tt->n_store; i++) free(tt->store[i]);
    free(tt->store);
    free(tt->tools);
    memset(tt, 0, sizeof *tt);
}

/* tool_choice: "auto" | "none" | "required" | {type: "function", function: {name}} | {type: "function", name}
 * (the Responses API's) | {type: "tool", name} (Anthropic's) | {type: "any" | "auto" | "none"}. */
static bool read_choice(const cJSON *c, srv_tools *tt, char *err, size_t cap) {
    tt->choice = GEMMA8_TOOLS_AUTO;
    if (!c || cJSON_IsNull(c)) return true;
    const char *word = cJSON_IsString(c) ? c->valuestring : NULL;
    const cJSON *type = cJSON_GetObjectItem(c, "type");
    if (!word && cJSON_IsObject(c) && cJSON_IsString(type)) {
        const cJSON *fn = cJSON_GetObjectItem(c, "function");
        const cJSON *name = cJSON_GetObjectItem(fn ? fn : c, "name");
        if (cJSON_IsString(name) &&
            (!strcmp(type->valuestring, "function") || !strcmp(type->valuestring, "tool"))) {
            tt->choice = GEMMA8_TOOLS_REQUIRED;
            tt->only = keep(tt, strdup(name->valuestring));
            return tt->only != NULL || (snprintf(err, cap, "out of memory"), false);
        }
        word = !strcmp(type->valuestring, "any") ? "required" : type->valuestring;
    }
    if (word && !strcmp(word, "auto")) return true;
    if (word && !strcmp(word, "none")) {
        tt->choice = GEMMA8_TOOLS_NONE;
        return true;
    }
    if (word && !strcmp(word, "required")) {
        tt->choice = GEMMA8_TOOLS_REQUIRED;
        return true;
    }
    snprintf(err, cap, "'tool_choice' must be auto, none, required or a function by name");
    return false;
}

bool srv_tools_read(const cJSON *tools, const cJSON *choice, const cJSON *parallel, srv_tools *tt, char *err,
                    size_t cap) {
    memset(tt, 0, sizeof *tt);
    tt->parallel = !cJSON_IsFalse(parallel);
    if (!tools || cJSON_IsNull(tools)) return read_choice(NULL, tt, err, cap);
    if (!cJSON_IsArray(tools)) {
        snprintf(err, cap, "'tools' must be an array");
        return false;
    }
    tt->tools = calloc((size_t)cJSON_GetArraySize(tools) + 1, sizeof *tt->tools);
    if (!tt->tools) {
        snprintf(err, cap, "out of memory");
        return false;
    }
    int i = 0;
    for (const cJSON *t = tools->child; t; t = t->next, i++) {
        const cJSON *type = cJSON_GetObjectItem(t, "type");
        const cJSON *fn = cJSON_GetObjectItem(t, "function");
        if (!cJSON_IsObject(fn)) fn = t; /* the Responses API's and Anthropic's: the fields at the top */
        const cJSON *name = cJSON_GetObjectItem(fn, "name");
        const cJSON *desc = cJSON_GetObjectItem(fn, "description");
        const cJSON *params = cJSON_GetObjectItem(fn, "parameters");
        if (!params) params = cJSON_GetObjectItem(fn, "input_schema");
        /* Anthropic's client tools may say "custom" (with an input_schema); Codex's custom tools are
         * free-form (a format, no schema) */
        const bool function = !type || (cJSON_IsString(type) && !strcmp(type->valuestring, "function")) ||
                              (cJSON_IsString(type) && !strcmp(type->valuestring, "custom") &&
                               cJSON_IsObject(cJSON_GetObjectItem(fn, "input_schema")));
        if (!cJSON_IsObject(t) || !function || !cJSON_IsString(name)) {
            /* web_search, custom (free-form), a provider's own tools: not for this model */
            fprintf(stderr,
                    "gemma8 serve: tool %d (type %.40s%s%.60s) is not a function: left out of the prompt\n",
                    i, cJSON_IsString(type) ? type->valuestring : "?", cJSON_IsString(name) ? ", " : "",
                    cJSON_IsString(name) ? name->valuestring : "");
            continue;
        }
        if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params)) {
            snprintf(err, cap, "tool '%.60s': 'parameters' must be an object (a JSON Schema)",
                     name->valuestring);
            return false;
        }
        gemma8_tool *g = &tt->tools[tt->n++];
        g->name = name->valuestring;
        g->description = cJSON_IsString(desc) ? desc->valuestring : NULL;
        g->parameters = cJSON_IsObject(params) ? keep(tt, cJSON_PrintUnformatted(params)) : NULL;
        if (cJSON_IsObject(params) && !g->parameters) {
            snprintf(err, cap, "out of memory");
            return false;
        }
    }
    if (!read_choice(choice, tt, err, cap)) return false;
    if (tt->n == 0 && tt->choice == GEMMA8_TOOLS_REQUIRED) {
        snprintf(err, cap, "'tool_choice' asks for a call, but no function tools were given");
        return false;
    }
    size_t len = 0;
    if (tt->n && gemma8_tools_prompt(tt->tools, tt->n, NULL, 0, &len) != GEMMA8_ERR_BUFFER_TOO_SMALL) {
        snprintf(err, cap, "%s", gemma8_last_error());
        return false;
    }
    return true;
}

bool srv_tools_apply(const srv_tools *tt, srv_task *t, char *err, size_t cap) {
    if (!tt->n) return true;
    if (t->grammar) {
        snprintf(err, cap, "a response format or grammar cannot be combined with tools");
        return false;
    }
    if (gemma8_grammar_from_tools(tt->tools, tt->n, tt->choice, tt->only, tt->parallel, &t->grammar)) {
        snprintf(err, cap, "%s", gemma8_last_error());
        return false;
    }
    const char *warn = gemma8_grammar_warnings(t->grammar);
    if (warn) fprintf(stderr, "gemma8 serve: tools: %s", warn);
    t->params.grammar = t->grammar;
    t->tools = true;
    return true;
}

char *srv_tools_prompt(const srv_tools *tt, const char *system) {
    size_t len = 0;
    gemma8_tools_prompt(tt->tools, tt->n, NULL, 0, &len);
    char *p = malloc(len + 1);
    if (!p || gemma8_tools_prompt(tt->tools, tt->n, p, len + 1, &len)) {
        free(p);
        return NULL;
    }
    if (!system || !*system) return p;
    char *out = NULL;
    size_t n = 0;
    srv_buf_add(&out, &n, p, "\n\n", system);
    free(p);
    return out;
}

/* ---- a conversation's calls and results --------------------------------------------------- */

char *srv_tool_calls_text(const char *text, const cJSON *calls, char *err, size_t cap) {
    char *out = NULL;
    size_t len = 0;
    if (text && *text) srv_buf_add(&out, &len, "", text, "\n\n");
    srv_buf_add(&out, &len, "", GEMMA8_TOOL_CALL_OPEN, "");
    int i = 0;
    for (const cJSON *c = calls->child; c; c = c->next, i++) {
        const cJSON *fn = cJSON_GetObjectItem(c, "function");
        const cJSON *name = cJSON_GetObjectItem(fn ? fn : c, "name");
        const cJSON *args = cJSON_GetObjectItem(fn ? fn : c, "arguments");
        if (!args) args = cJSON_GetObjectItem(c, "input");
        if (!cJSON_IsString(name)) {
            snprintf(err, cap, "tool call %d has no function name", i);
            free(out);
            return NULL;
        }
        /* OpenAI's arguments are JSON text, Ollama's an object */
        cJSON *parsed = cJSON_IsString(args) ? cJSON_Parse(args->valuestring) : NULL;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name->valuestring);
        if (parsed)
            cJSON_AddItemToObject(o, "arguments", parsed);
        else if (args && !cJSON_IsString(args))
            cJSON_AddItemToObject(o, "arguments", cJSON_Duplicate(args, true));
        else
            cJSON_AddItemToObject(o, "arguments", cJSON_CreateObject());
        char *line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        srv_buf_add(&out, &len, i ? "\n" : "", line ? line : "{}", "");
        free(line);
    }
    srv_buf_add(&out, &len, "", GEMMA8_TOOL_BLOCK_CLOSE, "");
    if (!out) snprintf(err, cap, "out of memory");
    return out;
}

char *srv_tool_result_text(const char *name, const char *content) {
    cJSON *o = cJSON_CreateObject();
    if (name) cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "content", content ? content : "");
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = NULL;
    size_t len = 0;
    if (json) srv_buf_add(&out, &len, GEMMA8_TOOL_OUTPUT_OPEN, json, GEMMA8_TOOL_BLOCK_CLOSE);
    free(json);
    return out;
}

/* ---- a reply: text or calls ---------------------------------------------------------------- */

void srv_reply_feed(srv_reply_parse *p, const char *s, size_t n, char **text, size_t *text_len,
                    cJSON *calls) {
    const char *open = GEMMA8_TOOL_CALL_OPEN;
    const size_t n_open = strlen(open);
    if (p->mode == SRV_REPLY_TEXT) {
        char *piece = strndup(s, n);
        if (piece) srv_buf_add(text, text_len, "", piece, "");
        free(piece);
        return;
    }
    char *nb = realloc(p->buf, p->n + n + 1);
    if (!nb) return;
    p->buf = nb;
    memcpy(p->buf + p->n, s, n);
    p->n += n;
    p->buf[p->n] = 0;
    if (p->mode == SRV_REPLY_UNDECIDED) {
        const size_t k = p->n < n_open ? p->n : n_open;
        if (memcmp(p->buf, open, k)) { /* text: what was held, then the rest as it comes */
            p->mode = SRV_REPLY_TEXT;
            srv_buf_add(text, text_len, "", p->buf, "");
            p->n = 0;
            return;
        }
        if (p->n < n_open) return; /* maybe the opening: held */
        p->mode = SRV_REPLY_CALLS;
        memmove(p->buf, p->buf + n_open, p->n - n_open + 1);
        p->n -= n_open;
    }
    while (p->mode == SRV_REPLY_CALLS) { /* every call complete in the buffer */
        size_t at = 0;
        while (at < p->n && p->buf[at] == '\n') at++;
        if (at < p->n && p->buf[at] == '`') { /* the closing line: nothing follows (the grammar) */
            p->mode = SRV_REPLY_CLOSED;
            break;
        }
        const char *end = NULL;
        cJSON *call = cJSON_ParseWithOpts(p->buf + at, &end, false);
        if (!call) break; /* not complete yet */
        if (cJSON_IsObject(call)) {
            cJSON_AddItemToArray(calls, call);
            p->n_calls++;
        } else {
            cJSON_Delete(call);
        }
        const size_t used = (size_t)(end - p->buf);
        memmove(p->buf, p->buf + used, p->n - used + 1);
        p->n -= used;
    }
}

void srv_reply_end(srv_reply_parse *p, char **text, size_t *text_len) {
    if (p->mode == SRV_REPLY_UNDECIDED && p->n) srv_buf_add(text, text_len, "", p->buf, "");
    free(p->buf);
    p->buf = NULL;
    p->n = 0;
}

void srv_reply_read(srv_reply_parse *p, bool tools, const srv_event *ev, int n, bool end, char **text,
                    size_t *len, cJSON *calls) {
    for (int k = 0; k < n; k++) {
        if (ev[k].token == SRV_PROGRESS || !ev[k].len) continue;
        if (tools)
            srv_reply_feed(p, ev[k].text, ev[k].len, text, len, calls);
        else
            srv_buf_add(text, len, "", ev[k].text, "");
    }
    if (end && tools) srv_reply_end(p, text, len);
}
