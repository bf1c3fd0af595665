/* tools.c - tool calls for models without tool tokens (Gemma 2 and 3): the instructions that list
 * the tools, and the grammar of a reply that is text or a block of calls, each call's arguments
 * following its tool's schema (the format is gemma8.h's). */
#include "grammar.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool name_ok(const char *s) {
    size_t n = 0;
    for (; s && s[n]; n++) {
        const char c = s[n];
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '_' || c == '-' || c == '.' || c == ':';
        if (!ok) return false;
    }
    return n >= 1 && n <= 128;
}

/* Names, uniqueness and parameters (a JSON object when given). */
static gemma8_status check_tools(const gemma8_tool *tools, int32_t n) {
    if (!tools || n < 1) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no tools given");
    for (int32_t i = 0; i < n; i++) {
        if (!name_ok(tools[i].name))
            return g8_fail(GEMMA8_ERR_INVALID_ARG,
                           "tool %d: the name '%.60s' is not 1 to 128 letters, digits, '_', '-', '.' or ':'",
                           i, tools[i].name ? tools[i].name : "");
        for (int32_t j = 0; j < i; j++)
            if (!strcmp(tools[i].name, tools[j].name))
                return g8_fail(GEMMA8_ERR_INVALID_ARG, "two tools are named '%s'", tools[i].name);
        if (!tools[i].parameters) continue;
        cJSON *p = cJSON_Parse(tools[i].parameters);
        const bool obj = cJSON_IsObject(p);
        cJSON_Delete(p);
        if (!obj)
            return g8_fail(GEMMA8_ERR_INVALID_ARG,
                           "tool '%s': its parameters are not a JSON object (a schema)", tools[i].name);
    }
    return GEMMA8_OK;
}

gemma8_status gemma8_tools_prompt(const gemma8_tool *tools, int32_t n, char *out, size_t cap, size_t *len) {
    if (!len) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no place for the length");
    *len = 0;
    gemma8_status st = check_tools(tools, n);
    if (st) return st;
    g8_sbuf b = {0};
    g8_sb_printf(&b,
                 "You have access to functions. If you decide to call any of them, reply with only this "
                 "block, one line per call, and no other text:\n%s{\"name\": \"function_name\", "
                 "\"arguments\": {\"parameter\": \"value\"}}%s\nThe functions, with the JSON Schema of "
                 "their arguments:\n[\n",
                 GEMMA8_TOOL_CALL_OPEN, GEMMA8_TOOL_BLOCK_CLOSE);
    for (int32_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", tools[i].name);
        if (tools[i].description) cJSON_AddStringToObject(o, "description", tools[i].description);
        cJSON *p = tools[i].parameters ? cJSON_Parse(tools[i].parameters) : cJSON_CreateObject();
        cJSON_AddItemToObject(o, "parameters", p);
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!text) b.oom = true;
        if (text) g8_sb_printf(&b, "%s%s\n", text, i + 1 < n ? "," : "");
        free(text);
    }
    g8_sb_printf(&b, "]\nTheir results come back in %.14s blocks.", GEMMA8_TOOL_OUTPUT_OPEN);
    if (b.oom) {
        free(b.p);
        return g8_fail(GEMMA8_ERR_NOMEM, "out of memory writing the tools' instructions");
    }
    *len = b.n;
    if (out && cap > b.n) memcpy(out, b.p, b.n + 1);
    free(b.p);
    if (!out || cap <= *len)
        return g8_fail(GEMMA8_ERR_BUFFER_TOO_SMALL, "the tools' instructions take %zu bytes", *len + 1);
    return GEMMA8_OK;
}

static bool has_line(const g8_sbuf *b, const char *line, size_t n) {
    for (const char *p = b->p; p && *p;) {
        const char *e = strchr(p, '\n');
        const size_t m = e ? (size_t)(e - p) + 1 : strlen(p);
        if (m == n && !memcmp(p, line, n)) return true;
        p += m;
    }
    return false;
}

/* Appends the lines of rules that b does not hold yet (the schemas' shared rules are the same line in each).
 */
static void add_rules(g8_sbuf *b, const char *rules) {
    for (const char *line = rules; line && *line;) {
        const char *end = strchr(line, '\n');
        const size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
        if (!has_line(b, line, n)) g8_sb_put(b, line, n);
        line += n;
    }
}

/* Tool i's rules into b (its names begin "tool<i>-"): its schema, leniently if strictly it cannot, else
 * any object; the root expression of its arguments (malloc'd). */
static char *tool_rules(const gemma8_tool *t, int32_t i, g8_sbuf *b, g8_sbuf *warn) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "tool%d-", i);
    g8_schema_gbnf r;
    gemma8_status st = g8_schema_rules(t->parameters, prefix, false, &r);
    if (st && st != GEMMA8_ERR_NOMEM) st = g8_schema_rules(t->parameters, prefix, true, &r);
    if (st && st != GEMMA8_ERR_NOMEM) {
        g8_sb_printf(warn, "tool '%s': its schema cannot be enforced (%s): its arguments are any object\n",
                     t->name, gemma8_last_error());
        st = g8_schema_rules("{\"type\": \"object\"}", prefix, false, &r);
    }
    if (st) return NULL;
    add_rules(b, r.rules);
    for (const char *w = r.warnings; w && *w;) {
        const char *e = strchr(w, '\n');
        const int n = e ? (int)(e - w) : (int)strlen(w);
        g8_sb_printf(warn, "tool '%s': %.*s\n", t->name, n, w);
        w += n + (e != NULL);
    }
    free(r.rules);
    free(r.warnings);
    return r.root;
}

/* One character of the opening in a GBNF literal or class. */
static void put_char(g8_sbuf *b, char c) {
    if (c == '\n')
        g8_sb_put(b, "\\n", 2);
    else
        g8_sb_put(b, &c, 1);
}

/* "text not starting the block": each prefix of the opening, alone or followed by a character that
 * leaves it, then anything (the opening's characters are ASCII without quotes or backslashes). */
static void text_rule(g8_sbuf *b) {
    const char *open = GEMMA8_TOOL_CALL_OPEN;
    g8_sb_put(b, "tools-text ::= ", 15);
    for (size_t i = 0; open[i]; i++) {
        g8_sb_put(b, i ? " | \"" : "\"", i ? 4 : 1);
        for (size_t k = 0; k < i; k++) put_char(b, open[k]);
        g8_sb_put(b, "\" ([^", 5);
        put_char(b, open[i]);
        g8_sb_put(b, "] .*)?", 6);
    }
    g8_sb_put(b, "\n", 1);
}

gemma8_status gemma8_grammar_from_tools(const gemma8_tool *tools, int32_t n, gemma8_tool_choice choice,
                                        const char *only, bool parallel, gemma8_grammar **out) {
    if (!out) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no place for the grammar");
    *out = NULL;
    gemma8_status st = check_tools(tools, n);
    if (st) return st;
    if (choice != GEMMA8_TOOLS_AUTO && choice != GEMMA8_TOOLS_NONE && choice != GEMMA8_TOOLS_REQUIRED)
        return g8_fail(GEMMA8_ERR_INVALID_ARG, "tool choice %d is not auto, none or required", (int)choice);
    int32_t found = -1;
    for (int32_t i = 0; only && i < n; i++)
        if (!strcmp(tools[i].name, only)) found = i;
    if (only && found < 0) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no tool is named '%.60s'", only);
    g8_sbuf b = {0}, warn = {0}, calls = {0};
    for (int32_t i = 0; i < n && !st; i++) {
        if (only && i != found) continue;
        char *args = tool_rules(&tools[i], i, &b, &warn);
        if (!args) {
            st = GEMMA8_ERR_NOMEM;
            break;
        }
        g8_sb_printf(&calls, "%s\"{\" tools-ws \"\\\"name\\\"\" tools-ws \":\" tools-ws ",
                     calls.n ? " | " : "");
        g8_sbuf name = {0};
        g8_sb_printf(&name, "\"%s\"", tools[i].name); /* a valid name needs no escape in JSON */
        g8_gbnf_literal(&calls, name.p);
        free(name.p);
        g8_sb_printf(
            &calls,
            " tools-ws \",\" tools-ws \"\\\"arguments\\\"\" tools-ws \":\" tools-ws %s tools-ws \"}\"", args);
        free(args);
    }
    if (!st) {
        g8_sb_printf(&b, "tools-ws ::= \" \"?\ntools-call ::= %s\n", calls.p);
        g8_sb_put(&b, "tools-block ::= ", 16);
        g8_gbnf_literal(&b, GEMMA8_TOOL_CALL_OPEN);
        g8_sb_printf(&b, " tools-call%s ", parallel ? " (\"\\n\" tools-call)*" : "");
        g8_gbnf_literal(&b, GEMMA8_TOOL_BLOCK_CLOSE);
        g8_sb_put(&b, "\n", 1);
        text_rule(&b);
        g8_sb_printf(&b, "root ::= %s\n",
                     choice == GEMMA8_TOOLS_AUTO   ? "tools-block | tools-text"
                     : choice == GEMMA8_TOOLS_NONE ? "tools-text"
                                                   : "tools-block");
        if (b.oom || warn.oom || calls.oom)
            st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory building the tools' grammar");
    }
    gemma8_grammar *g = NULL;
    if (!st) st = gemma8_grammar_from_gbnf(b.p, &g);
    if (!st && warn.n) g->warnings = strdup(warn.p);
    free(b.p);
    free(warn.p);
    free(calls.p);
    if (st) return st;
    *out = g;
    return GEMMA8_OK;
}
