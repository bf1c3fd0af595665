/* grammar.c - GBNF (llama.cpp's grammar format) parsed and checked, and the
 * pushdown automaton that follows it byte by byte.
 *
 *   rule    ::= name "::=" alternatives       (a rule may span lines)
 *   item    ::= "literal" | [class] | [^class] | . | name | ( alternatives )
 *   postfix ::= * | + | ? | {m} | {m,} | {m,n}
 *   # comments to the end of the line; the start rule is "root".
 *
 * A grammar is refused (with the line or the rule named) when a rule is used
 * but not defined, is left-recursive, can never finish, or repeats something
 * that may be empty: the automaton below then cannot loop or dead-end. */
#include "grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ELEMS (1u << 22)

typedef struct elems {
    g8_gelem *v;
    size_t n, cap;
} elems;

typedef struct parser {
    const char *src, *p;
    elems *rules;
    char **names;
    bool *defined;
    uint32_t n_rules, cap_rules, n_synth;
    g8_gclass *cls;
    uint32_t n_cls, cap_cls;
    size_t total;
    bool failed;
} parser;

static int line_of(const parser *ps) {
    int line = 1;
    for (const char *q = ps->src; q < ps->p; q++) line += *q == '\n';
    return line;
}

static bool perr(parser *ps, const char *what) {
    if (!ps->failed) g8_fail(GEMMA8_ERR_INVALID_ARG, "grammar: line %d: %s", line_of(ps), what);
    ps->failed = true;
    return false;
}

static bool push(parser *ps, uint32_t r, g8_gelem e) {
    elems *v = &ps->rules[r];
    if (++ps->total > MAX_ELEMS) return perr(ps, "the grammar is too large");
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 16;
        g8_gelem *nv = realloc(v->v, cap * sizeof *nv);
        if (!nv) return perr(ps, "out of memory");
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = e;
    return true;
}

/* The id of a rule by name, created (undefined) if new. */
static int64_t rule_id(parser *ps, const char *name, size_t len) {
    for (uint32_t i = 0; i < ps->n_rules; i++)
        if (strlen(ps->names[i]) == len && !memcmp(ps->names[i], name, len)) return i;
    if (ps->n_rules == ps->cap_rules) {
        uint32_t cap = ps->cap_rules ? 2 * ps->cap_rules : 32;
        elems *r = realloc(ps->rules, cap * sizeof *r);
        if (r) ps->rules = r;
        char **nm = realloc(ps->names, cap * sizeof *nm);
        if (nm) ps->names = nm;
        bool *d = realloc(ps->defined, cap * sizeof *d);
        if (d) ps->defined = d;
        if (!r || !nm || !d) {
            perr(ps, "out of memory");
            return -1;
        }
        ps->cap_rules = cap;
    }
    char *s = malloc(len + 1);
    if (!s) {
        perr(ps, "out of memory");
        return -1;
    }
    memcpy(s, name, len);
    s[len] = 0;
    ps->names[ps->n_rules] = s;
    ps->rules[ps->n_rules] = (elems){0};
    ps->defined[ps->n_rules] = false;
    return ps->n_rules++;
}

/* A rule made for a group or a repeated item: "<parent> (group <n>)", a name no rule of the
 * text can have (llama.cpp's schema converter writes rules named "root-1" and the like). */
static int64_t synth_rule(parser *ps, uint32_t parent) {
    char name[112];
    snprintf(name, sizeof name, "%.60s (group %u)", ps->names[parent], ++ps->n_synth);
    int64_t id = rule_id(ps, name, strlen(name));
    if (id >= 0) ps->defined[id] = true;
    return id;
}

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void skip_space(parser *ps) {
    for (;;) {
        char c = *ps->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            ps->p++;
        } else if (c == '#') {
            while (*ps->p && *ps->p != '\n') ps->p++;
        } else {
            return;
        }
    }
}

/* After a name: is it the start of a rule definition? */
static bool at_definition(const char *q) {
    while (name_char(*q)) q++;
    while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n') q++;
    return !strncmp(q, "::=", 3);
}

static bool hex_value(parser *ps, int digits, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < digits; i++) {
        char c = *ps->p;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return perr(ps, "a hexadecimal escape is too short");
        v = v * 16 + (uint32_t)d;
        ps->p++;
    }
    *out = v;
    return true;
}

/* One character of a literal or class: an escape or a UTF-8 character. */
static bool parse_char(parser *ps, uint32_t *cp) {
    const unsigned char *q = (const unsigned char *)ps->p;
    if (*q == '\\') {
        ps->p += 2;
        switch (q[1]) {
        case 'n': *cp = '\n'; return true;
        case 'r': *cp = '\r'; return true;
        case 't': *cp = '\t'; return true;
        case 'x': return hex_value(ps, 2, cp);
        case 'u': return hex_value(ps, 4, cp);
        case 'U': return hex_value(ps, 8, cp);
        case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': case '.':
            *cp = q[1];
            return true;
        default:
            ps->p -= 2;
            return perr(ps, "unknown escape");
        }
    }
    int len = *q < 0x80 ? 1 : (*q >> 5) == 6 ? 2 : (*q >> 4) == 14 ? 3 : (*q >> 3) == 30 ? 4 : 0;
    if (!len || !*q) return perr(ps, "invalid UTF-8 or an unterminated literal");
    uint32_t v = len == 1 ? *q : *q & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((q[i] & 0xC0) != 0x80) return perr(ps, "invalid UTF-8");
        v = v << 6 | (q[i] & 0x3F);
    }
    ps->p += len;
    *cp = v;
    return v <= 0x10FFFF || perr(ps, "a code point beyond U+10FFFF");
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Adds a class (ranges as lo << 32 | hi, n of them; negate: the complement),
 * sorted, merged, without surrogates; an equal class already there is reused. */
static int64_t add_class(parser *ps, uint64_t *rg, size_t n, bool negate) {
    if (n) qsort(rg, n, sizeof *rg, cmp_u64);
    uint32_t *r = malloc((2 * n + 6) * sizeof *r);
    if (!r) {
        perr(ps, "out of memory");
        return -1;
    }
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t lo = (uint32_t)(rg[i] >> 32), hi = (uint32_t)rg[i];
        if (lo > hi) continue;
        if (m && lo <= r[2 * m - 1] + 1) {
            if (hi > r[2 * m - 1]) r[2 * m - 1] = hi;
        } else {
            r[2 * m] = lo;
            r[2 * m + 1] = hi;
            m++;
        }
    }
    if (negate) {
        uint32_t *c = malloc((2 * m + 6) * sizeof *c), k = 0, next = 0;
        if (!c) {
            free(r);
            perr(ps, "out of memory");
            return -1;
        }
        for (uint32_t i = 0; i < m; i++) {
            if (r[2 * i] > next) c[2 * k] = next, c[2 * k + 1] = r[2 * i] - 1, k++;
            next = r[2 * i + 1] + 1;
        }
        if (next <= 0x10FFFF) c[2 * k] = next, c[2 * k + 1] = 0x10FFFF, k++;
        free(r);
        r = c;
        m = k;
    }
    /* no surrogates: UTF-8 cannot carry them */
    uint32_t k = 0;
    uint32_t *out = malloc((2 * m + 4) * sizeof *out);
    if (!out) {
        free(r);
        perr(ps, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < m; i++) {
        uint32_t lo = r[2 * i], hi = r[2 * i + 1] > 0x10FFFF ? 0x10FFFF : r[2 * i + 1];
        if (lo < 0xD800 && hi >= 0xD800) {
            out[2 * k] = lo, out[2 * k + 1] = 0xD7FF, k++;
            lo = 0xE000;
        }
        if (lo >= 0xD800 && lo <= 0xDFFF) lo = 0xE000;
        if (lo <= hi) out[2 * k] = lo, out[2 * k + 1] = hi, k++;
    }
    free(r);
    g8_gclass c = {.r = out, .n = k};
    c.hash = g8_fnv64(G8_FNV64_SEED, out, 2 * k * sizeof *out);
    for (uint32_t i = 0; i < k; i++)
        for (uint32_t cp = out[2 * i]; cp <= out[2 * i + 1] && cp < 128; cp++) c.ascii[cp >> 6] |= 1ull << (cp & 63);
    for (uint32_t i = 0; i < ps->n_cls; i++)
        if (ps->cls[i].hash == c.hash && ps->cls[i].n == k && !memcmp(ps->cls[i].r, out, 2 * k * sizeof *out)) {
            free(out);
            return i;
        }
    if (ps->n_cls == ps->cap_cls) {
        uint32_t cap = ps->cap_cls ? 2 * ps->cap_cls : 16;
        g8_gclass *nc = realloc(ps->cls, cap * sizeof *nc);
        if (!nc) {
            free(out);
            perr(ps, "out of memory");
            return -1;
        }
        ps->cls = nc;
        ps->cap_cls = cap;
    }
    ps->cls[ps->n_cls] = c;
    return ps->n_cls++;
}

static bool push_class(parser *ps, uint32_t r, uint64_t *rg, size_t n, bool negate) {
    int64_t c = add_class(ps, rg, n, negate);
    return c >= 0 && push(ps, r, (g8_gelem){.type = G8_G_CLASS, .v = (uint32_t)c, .min = 1, .max = 1});
}

static bool parse_class(parser *ps, uint32_t r) {
    ps->p++; /* [ */
    bool negate = *ps->p == '^';
    if (negate) ps->p++;
    uint64_t *rg = NULL;
    size_t n = 0, cap = 0;
    while (*ps->p != ']') {
        uint32_t lo, hi;
        if (!*ps->p) {
            free(rg);
            return perr(ps, "unterminated character class");
        }
        if (!parse_char(ps, &lo)) {
            free(rg);
            return false;
        }
        hi = lo;
        if (ps->p[0] == '-' && ps->p[1] != ']' && ps->p[1]) {
            ps->p++;
            if (!parse_char(ps, &hi)) {
                free(rg);
                return false;
            }
            if (hi < lo) {
                free(rg);
                return perr(ps, "a class range runs backwards");
            }
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            uint64_t *nr = realloc(rg, cap * sizeof *nr);
            if (!nr) {
                free(rg);
                return perr(ps, "out of memory");
            }
            rg = nr;
        }
        rg[n++] = (uint64_t)lo << 32 | hi;
    }
    ps->p++;
    bool ok = push_class(ps, r, rg, n, negate);
    free(rg);
    return ok;
}

static bool parse_uint(parser *ps, uint32_t *v) {
    if (*ps->p < '0' || *ps->p > '9') return perr(ps, "expected a number in {m,n}");
    uint64_t x = 0;
    while (*ps->p >= '0' && *ps->p <= '9') {
        x = x * 10 + (uint64_t)(*ps->p++ - '0');
        if (x > 1000000) return perr(ps, "a repetition count over 1000000");
    }
    *v = (uint32_t)x;
    return true;
}

/* The postfix after an item (elements start.. of rule r): a lone element with
 * {1,1} takes the counts itself, anything else becomes a rule of its own. */
static bool postfix(parser *ps, uint32_t r, size_t start) {
    uint32_t mn, mx;
    char c = *ps->p;
    if (c == '*') mn = 0, mx = G8_G_INF;
    else if (c == '+') mn = 1, mx = G8_G_INF;
    else if (c == '?') mn = 0, mx = 1;
    else if (c != '{') return true;
    ps->p++;
    if (c == '{') {
        while (*ps->p == ' ') ps->p++;
        if (!parse_uint(ps, &mn)) return false;
        mx = mn;
        while (*ps->p == ' ') ps->p++;
        if (*ps->p == ',') {
            ps->p++;
            while (*ps->p == ' ') ps->p++;
            mx = G8_G_INF;
            if (*ps->p != '}' && !parse_uint(ps, &mx)) return false;
        }
        while (*ps->p == ' ') ps->p++;
        if (*ps->p++ != '}') return perr(ps, "expected } after a repetition");
        if (mx < mn) return perr(ps, "a repetition {m,n} with n < m");
    }
    elems *v = &ps->rules[r];
    if (v->n - start == 1 && v->v[start].min == 1 && v->v[start].max == 1) {
        v->v[start].min = mn;
        v->v[start].max = mx;
        return true;
    }
    int64_t s = synth_rule(ps, r);
    if (s < 0) return false;
    v = &ps->rules[r];
    for (size_t i = start; i < v->n; i++)
        if (!push(ps, (uint32_t)s, ps->rules[r].v[i])) return false;
    if (!push(ps, (uint32_t)s, (g8_gelem){.type = G8_G_END})) return false;
    ps->rules[r].n = start;
    return push(ps, r, (g8_gelem){.type = G8_G_RULE, .v = (uint32_t)s, .min = mn, .max = mx});
}

static bool parse_alternatives(parser *ps, uint32_t r, int depth);

static bool parse_sequence(parser *ps, uint32_t r, int depth) {
    for (;;) {
        skip_space(ps);
        size_t start = ps->rules[r].n;
        char c = *ps->p;
        if (c == '"') {
            ps->p++;
            while (*ps->p != '"') {
                uint32_t cp;
                if (!*ps->p) return perr(ps, "unterminated literal");
                if (!parse_char(ps, &cp)) return false;
                uint64_t rg = (uint64_t)cp << 32 | cp;
                if (!push_class(ps, r, &rg, 1, false)) return false;
            }
            ps->p++;
            if (ps->rules[r].n == start) continue; /* "" matches nothing: no element */
        } else if (c == '[') {
            if (!parse_class(ps, r)) return false;
        } else if (c == '.') {
            ps->p++;
            uint64_t rg = 0x10FFFF;
            if (!push_class(ps, r, &rg, 1, false)) return false;
        } else if (c == '(') {
            ps->p++;
            if (depth > 100) return perr(ps, "groups nested too deeply");
            int64_t s = synth_rule(ps, r);
            if (s < 0 || !parse_alternatives(ps, (uint32_t)s, depth + 1)) return false;
            skip_space(ps);
            if (*ps->p != ')') return perr(ps, "expected )");
            ps->p++;
            if (!push(ps, r, (g8_gelem){.type = G8_G_RULE, .v = (uint32_t)s, .min = 1, .max = 1})) return false;
        } else if (name_char(c)) {
            if (at_definition(ps->p)) return true;
            const char *name = ps->p;
            while (name_char(*ps->p)) ps->p++;
            int64_t id = rule_id(ps, name, (size_t)(ps->p - name));
            if (id < 0) return false;
            if (!push(ps, r, (g8_gelem){.type = G8_G_RULE, .v = (uint32_t)id, .min = 1, .max = 1})) return false;
        } else if (c == '<' || (c == '!' && ps->p[1] == '<')) {
            return perr(ps, "llama.cpp's token syntax (<[id]>, <token>, !<...>) is not supported: gemma8's "
                            "grammars match text; write the token's text as a literal");
        } else {
            return true;
        }
        while (*ps->p == ' ' || *ps->p == '\t') ps->p++;
        if (!postfix(ps, r, start)) return false;
    }
}

static bool parse_alternatives(parser *ps, uint32_t r, int depth) {
    if (!parse_sequence(ps, r, depth)) return false;
    for (;;) {
        skip_space(ps);
        if (*ps->p != '|') break;
        ps->p++;
        if (!push(ps, r, (g8_gelem){.type = G8_G_ALT}) || !parse_sequence(ps, r, depth)) return false;
    }
    return push(ps, r, (g8_gelem){.type = G8_G_END});
}

static bool parse_rules(parser *ps) {
    skip_space(ps);
    if (!*ps->p) return perr(ps, "the grammar is empty");
    while (*ps->p) {
        const char *name = ps->p;
        while (name_char(*ps->p)) ps->p++;
        if (ps->p == name) return perr(ps, "expected a rule name");
        size_t len = (size_t)(ps->p - name);
        skip_space(ps);
        if (strncmp(ps->p, "::=", 3)) return perr(ps, "expected ::= after the rule name");
        ps->p += 3;
        int64_t id = rule_id(ps, name, len);
        if (id < 0) return false;
        if (ps->defined[id] || ps->rules[id].n) {
            char msg[160];
            snprintf(msg, sizeof msg, "rule '%.100s' is defined twice", ps->names[id]);
            return perr(ps, msg);
        }
        ps->defined[id] = true;
        if (!parse_alternatives(ps, (uint32_t)id, 0)) return false;
        skip_space(ps);
        if (*ps->p && !name_char(*ps->p)) return perr(ps, "unexpected character");
    }
    return true;
}

/* ---- checks ---------------------------------------------------------------- */

/* Fixpoints over the rules: may a rule match nothing (nullable), can it finish (productive). */
static void rule_props(const parser *ps, bool *nullable, bool *productive) {
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < ps->n_rules; r++) {
            const elems *v = &ps->rules[r];
            bool alt_null = true, alt_prod = true, any_null = false, any_prod = false;
            for (size_t i = 0; i < v->n; i++) {
                const g8_gelem *e = &v->v[i];
                if (e->type == G8_G_ALT || e->type == G8_G_END) {
                    any_null |= alt_null;
                    any_prod |= alt_prod;
                    alt_null = alt_prod = true;
                } else if (e->type == G8_G_CLASS) {
                    alt_null &= e->min == 0;
                    alt_prod &= e->min == 0 || ps->cls[e->v].n > 0;
                } else {
                    alt_null &= e->min == 0 || nullable[e->v];
                    alt_prod &= e->min == 0 || productive[e->v];
                }
            }
            if (any_null && !nullable[r]) nullable[r] = changed = true;
            if (any_prod && !productive[r]) productive[r] = changed = true;
        }
    }
}

/* Rules reachable from r at the left edge (before anything is consumed). */
static bool left_recursive(const parser *ps, const bool *nullable, uint32_t from, uint32_t r, uint8_t *seen) {
    const elems *v = &ps->rules[r];
    bool at_left = true;
    for (size_t i = 0; i < v->n; i++) {
        const g8_gelem *e = &v->v[i];
        if (e->type == G8_G_ALT || e->type == G8_G_END) {
            at_left = true;
            continue;
        }
        if (!at_left) continue;
        if (e->type == G8_G_RULE && e->max > 0) {
            if (e->v == from) return true;
            if (!seen[e->v]) {
                seen[e->v] = 1;
                if (left_recursive(ps, nullable, from, e->v, seen)) return true;
            }
            at_left = e->min == 0 || nullable[e->v];
        } else {
            at_left = e->min == 0;
        }
    }
    return false;
}

static bool check_rules(parser *ps) {
    char msg[200];
    for (uint32_t r = 0; r < ps->n_rules; r++)
        if (!ps->defined[r]) {
            snprintf(msg, sizeof msg, "rule '%.100s' is used but not defined", ps->names[r]);
            g8_fail(GEMMA8_ERR_INVALID_ARG, "grammar: %s", msg);
            return false;
        }
    bool *nullable = calloc(ps->n_rules, 1), *productive = calloc(ps->n_rules, 1);
    uint8_t *seen = calloc(ps->n_rules, 1);
    bool ok = nullable && productive && seen;
    if (!ok) g8_fail(GEMMA8_ERR_NOMEM, "out of memory checking a grammar");
    if (ok) rule_props(ps, nullable, productive);
    for (uint32_t r = 0; ok && r < ps->n_rules; r++) {
        memset(seen, 0, ps->n_rules);
        if (!productive[r]) {
            g8_fail(GEMMA8_ERR_INVALID_ARG, "grammar: rule '%.100s' can never finish", ps->names[r]);
            ok = false;
        } else if (left_recursive(ps, nullable, r, r, seen)) {
            g8_fail(GEMMA8_ERR_INVALID_ARG, "grammar: rule '%.100s' is left-recursive (it can reach itself without "
                    "consuming input)", ps->names[r]);
            ok = false;
        }
        const elems *v = &ps->rules[r];
        for (size_t i = 0; ok && i < v->n; i++)
            if (v->v[i].type == G8_G_RULE && v->v[i].max > 1 && nullable[v->v[i].v]) {
                g8_fail(GEMMA8_ERR_INVALID_ARG, "grammar: rule '%.100s' repeats '%.100s', which can be empty",
                        ps->names[r], ps->names[v->v[i].v]);
                ok = false;
            }
    }
    free(nullable);
    free(productive);
    free(seen);
    return ok;
}

/* ---- the compiled grammar ------------------------------------------------- */

void gemma8_grammar_free(gemma8_grammar *g) {
    if (!g) return;
    for (uint32_t i = 0; i < g->n_rules; i++) free(g->name[i]);
    for (uint32_t i = 0; i < g->n_cls; i++) free(g->cls[i].r);
    free(g->name);
    free(g->cls);
    free(g->e);
    free(g->rule);
    free(g->alt);
    free(g->alt_off);
    free(g->rule_min);
    free(g->rest);
    free(g->gbnf);
    free(g->warnings);
    free(g);
}

#define FAR (1u << 30) /* "never": sums saturate here */

static uint32_t sat_add(uint32_t a, uint32_t b) { return a + b > FAR ? FAR : a + b; }
static uint32_t sat_mul(uint32_t a, uint32_t b) { return (uint64_t)a * b > FAR ? FAR : a * b; }

/* The fewest bytes of a character of class c. */
static uint32_t class_min_bytes(const g8_gclass *c) {
    uint32_t cp = c->n ? c->r[0] : 0;
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static uint32_t elem_min(const gemma8_grammar *g, const g8_gelem *e) {
    if (e->type == G8_G_CLASS) return sat_mul(e->min, class_min_bytes(&g->cls[e->v]));
    if (e->type == G8_G_RULE) return sat_mul(e->min, g->rule_min[e->v]);
    return 0;
}

/* Shortest matches, to a fixpoint: rule_min, then rest (for the budget of a reply). */
static bool shortest(gemma8_grammar *g) {
    g->rule_min = malloc(g->n_rules * sizeof *g->rule_min);
    g->rest = malloc((g->n_e + 1) * sizeof *g->rest);
    if (!g->rule_min || !g->rest) return false;
    for (uint32_t r = 0; r < g->n_rules; r++) g->rule_min[r] = FAR;
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < g->n_rules; r++) {
            uint32_t best = FAR, sum = 0;
            for (uint32_t i = g->rule[r];; i++) {
                const g8_gelem *e = &g->e[i];
                if (e->type <= G8_G_ALT) {
                    if (sum < best) best = sum;
                    sum = 0;
                    if (e->type == G8_G_END) break;
                    continue;
                }
                sum = sat_add(sum, elem_min(g, e));
            }
            if (best < g->rule_min[r]) g->rule_min[r] = best, changed = true;
        }
    }
    g->rest[g->n_e] = 0;
    for (size_t i = g->n_e; i-- > 0;) {
        const g8_gelem *e = &g->e[i];
        g->rest[i] = e->type <= G8_G_ALT ? 0 : sat_add(elem_min(g, e), g->rest[i + 1]);
    }
    return true;
}

static gemma8_status link_grammar(parser *ps, gemma8_grammar *g) {
    size_t total = 0, n_alt = 0;
    for (uint32_t r = 0; r < ps->n_rules; r++) {
        total += ps->rules[r].n;
        for (size_t i = 0; i < ps->rules[r].n; i++) n_alt += ps->rules[r].v[i].type <= G8_G_ALT;
    }
    g->e = malloc(total * sizeof *g->e);
    g->rule = malloc(ps->n_rules * sizeof *g->rule);
    g->alt = malloc(n_alt * sizeof *g->alt);
    g->alt_off = malloc((ps->n_rules + 1) * sizeof *g->alt_off);
    if (!g->e || !g->rule || !g->alt || !g->alt_off) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for a grammar");
    size_t k = 0, a = 0;
    for (uint32_t r = 0; r < ps->n_rules; r++) {
        g->rule[r] = (uint32_t)k;
        g->alt_off[r] = (uint32_t)a;
        g->alt[a++] = (uint32_t)k;
        for (size_t i = 0; i < ps->rules[r].n; i++) {
            g->e[k] = ps->rules[r].v[i];
            if (g->e[k].type == G8_G_ALT) g->alt[a++] = (uint32_t)k + 1;
            k++;
        }
    }
    g->alt_off[ps->n_rules] = (uint32_t)a;
    for (size_t i = 0; i < total; i++)
        if (g->e[i].type == G8_G_CLASS)
            g->e[i].solo = (i == 0 || g->e[i - 1].type <= G8_G_ALT) && g->e[i + 1].type <= G8_G_ALT;
    g->n_e = total;
    g->n_rules = ps->n_rules;
    g->name = ps->names;
    ps->names = NULL;
    g->cls = ps->cls;
    g->n_cls = ps->n_cls;
    ps->cls = NULL;
    ps->n_cls = 0;
    if (!shortest(g)) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory for a grammar");
    return GEMMA8_OK;
}

gemma8_status gemma8_grammar_from_gbnf(const char *gbnf, gemma8_grammar **out) {
    if (!out) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no place for the grammar");
    *out = NULL;
    if (!gbnf) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no grammar text");
    parser ps = {.src = gbnf, .p = gbnf};
    gemma8_status st = GEMMA8_OK;
    if (!parse_rules(&ps) || !check_rules(&ps)) st = GEMMA8_ERR_INVALID_ARG;
    int64_t root = -1;
    for (uint32_t i = 0; !st && i < ps.n_rules; i++)
        if (!strcmp(ps.names[i], "root")) root = i;
    if (!st && root < 0) st = g8_fail(GEMMA8_ERR_INVALID_ARG, "grammar: no rule named 'root'");
    gemma8_grammar *g = NULL;
    if (!st && !(g = g8_calloc(1, sizeof *g, "a grammar"))) st = GEMMA8_ERR_NOMEM;
    if (!st && !(g->gbnf = strdup(gbnf))) st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory for a grammar");
    if (!st) st = link_grammar(&ps, g);
    if (!st) g->root = (uint32_t)root;
    for (uint32_t i = 0; i < ps.n_rules; i++) {
        free(ps.rules[i].v);
        if (ps.names) free(ps.names[i]);
    }
    for (uint32_t i = 0; i < ps.n_cls; i++) free(ps.cls[i].r);
    free(ps.rules);
    free(ps.names);
    free(ps.defined);
    free(ps.cls);
    if (st) {
        if (g && !g->name) g->n_rules = 0;
        gemma8_grammar_free(g);
        if (st != GEMMA8_ERR_NOMEM && st != GEMMA8_ERR_INVALID_ARG) st = GEMMA8_ERR_INVALID_ARG;
        return st;
    }
    *out = g;
    return GEMMA8_OK;
}

const char *gemma8_grammar_gbnf(const gemma8_grammar *g) { return g ? g->gbnf : NULL; }
const char *gemma8_grammar_warnings(const gemma8_grammar *g) { return g ? g->warnings : NULL; }

/* ---- the automaton -------------------------------------------------------- */

void g8_garena_free(g8_garena *a) {
    free(a->f);
    free(a->t);
    *a = (g8_garena){0};
}

static int32_t new_frame(g8_garena *a, uint32_t pos, uint32_t count, int32_t parent) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 1024;
        g8_gframe *nf = cap <= INT32_MAX ? realloc(a->f, cap * sizeof *nf) : NULL;
        if (!nf) {
            a->oom = true;
            return -1;
        }
        a->f = nf;
        a->cap = cap;
    }
    a->f[a->n] = (g8_gframe){pos, count, parent};
    return (int32_t)a->n++;
}

static bool same_stack(const g8_garena *a, int32_t x, int32_t y) {
    while (x != y) {
        if (x < 0 || y < 0) return false;
        const g8_gframe *fx = &a->f[x], *fy = &a->f[y];
        if (fx->pos != fy->pos || fx->count != fy->count) return false;
        x = fx->parent;
        y = fy->parent;
    }
    return true;
}

/* Adds stack t to s, whose tops are the last in a->t (s is the state being built). */
static void push_top(g8_garena *a, g8_gstate *s, int32_t t) {
    if (t < 0) return;
    for (int i = 0; i < s->n; i++)
        if (same_stack(a, g8_gstate_top(a, s, i), t)) return;
    if (s->n >= G8_G_MAX_STACKS) {
        a->too_many = true;
        return;
    }
    if (a->nt == a->capt) {
        size_t cap = a->capt ? 2 * a->capt : 256;
        int32_t *nt = realloc(a->t, cap * sizeof *nt);
        if (!nt) {
            a->oom = true;
            return;
        }
        a->t = nt;
        a->capt = cap;
    }
    a->t[a->nt++] = t;
    s->n++;
}

/* One more repetition done; an unbounded count stops at min (all it is compared with). */
static uint32_t bump(uint32_t count, const g8_gelem *e) {
    count++;
    if (e->max == G8_G_INF && count > e->min) count = e->min;
    return count;
}

static void expand(const gemma8_grammar *g, g8_garena *a, g8_gstate *s, uint32_t pos, int32_t parent);

static void enter_rule(const gemma8_grammar *g, g8_garena *a, g8_gstate *s, uint32_t r, int32_t frame) {
    for (uint32_t k = g->alt_off[r]; k < g->alt_off[r + 1]; k++) expand(g, a, s, g->alt[k], frame);
}

/* The rule of frame `parent` matched once more. */
static void pop(const gemma8_grammar *g, g8_garena *a, g8_gstate *s, int32_t parent) {
    if (parent < 0) {
        s->accept = true;
        return;
    }
    g8_gframe p = a->f[parent];
    const g8_gelem *e = &g->e[p.pos];
    uint32_t c = bump(p.count, e);
    if (c < e->max) {
        int32_t again = c == p.count ? parent : new_frame(a, p.pos, c, p.parent);
        if (again >= 0) enter_rule(g, a, s, e->v, again);
    }
    if (c >= e->min) expand(g, a, s, p.pos + 1, p.parent);
}

/* The stacks that begin matching at element pos. */
static void expand(const gemma8_grammar *g, g8_garena *a, g8_gstate *s, uint32_t pos, int32_t parent) {
    const g8_gelem *e = &g->e[pos];
    if (e->type <= G8_G_ALT) {
        pop(g, a, s, parent);
        return;
    }
    if (e->max > 0) {
        int32_t f = new_frame(a, pos, 0, parent);
        if (f >= 0 && e->type == G8_G_CLASS) push_top(a, s, f);
        else if (f >= 0) enter_rule(g, a, s, e->v, f);
    }
    if (e->min == 0) expand(g, a, s, pos + 1, parent);
}

bool g8_gstate_start(const gemma8_grammar *g, g8_garena *a, g8_gstate *s) {
    memset(s, 0, sizeof *s);
    s->off = a->nt;
    enter_rule(g, a, s, g->root, -1); /* the root's end pops to the bottom: accept */
    return !a->oom && !a->too_many;
}

/* Code point cp, complete: every stack whose top class holds it moves on. */
static void step_cp(const gemma8_grammar *g, g8_garena *a, const g8_gstate *in, uint32_t cp, g8_gstate *out) {
    for (int i = 0; i < in->n; i++) {
        int32_t t = g8_gstate_top(a, in, i);
        g8_gframe f = a->f[t];
        const g8_gelem *e = &g->e[f.pos];
        if (f.count >= e->max || !g8_gclass_has(&g->cls[e->v], cp)) continue;
        uint32_t c = bump(f.count, e);
        if (c < e->max) push_top(a, out, c == f.count ? t : new_frame(a, f.pos, c, f.parent));
        if (c >= e->min) expand(g, a, out, f.pos + 1, f.parent);
    }
}

static bool class_meets(const g8_gclass *c, uint32_t lo, uint32_t hi) {
    uint32_t l = 0, h = c->n;
    while (l < h) { /* the first range ending at or after lo */
        uint32_t mid = (l + h) / 2;
        if (c->r[2 * mid + 1] < lo) l = mid + 1;
        else h = mid;
    }
    return l < c->n && c->r[2 * l] <= hi;
}

/* With part of a character read: can some stack still take a character it may become? */
static bool partial_fits(const gemma8_grammar *g, const g8_garena *a, const g8_gstate *s) {
    static const uint32_t min_of_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t lo = s->cp << (6 * s->need), hi = lo | ((1u << (6 * s->need)) - 1);
    if (lo < min_of_len[s->len + s->need]) lo = min_of_len[s->len + s->need];
    if (hi > 0x10FFFF) hi = 0x10FFFF;
    if (lo > hi) return false;
    for (int i = 0; i < s->n; i++) {
        const g8_gframe *f = &a->f[g8_gstate_top(a, s, i)];
        const g8_gelem *e = &g->e[f->pos];
        if (f->count < e->max && class_meets(&g->cls[e->v], lo, hi)) return true;
    }
    return false;
}

bool g8_gstate_byte(const gemma8_grammar *g, g8_garena *a, const g8_gstate *in, uint8_t b, g8_gstate *out) {
    out->off = a->nt;
    out->n = 0;
    out->accept = false;
    out->need = out->len = 0;
    out->cp = 0;
    if (in->need == 0) {
        if (b < 0x80) {
            step_cp(g, a, in, b, out);
            return g8_gstate_live(out);
        }
        uint8_t need = b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xF0 && b <= 0xF4 ? 3 : 0;
        if (!need) return false;
        out->off = in->off; /* the same stacks, waiting for the rest of the character */
        out->n = in->n;
        out->need = need;
        out->len = 1;
        out->cp = b & (0x3F >> need);
        if (partial_fits(g, a, out)) return true;
        out->n = 0;
        return false;
    }
    if ((b & 0xC0) != 0x80) return false;
    uint32_t cp = in->cp << 6 | (b & 0x3F);
    if (in->need > 1) {
        out->off = in->off;
        out->n = in->n;
        out->need = (uint8_t)(in->need - 1);
        out->len = (uint8_t)(in->len + 1);
        out->cp = cp;
        if (partial_fits(g, a, out)) return true;
        out->n = 0;
        return false;
    }
    static const uint32_t min_of_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_of_len[in->len + 1] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    step_cp(g, a, in, cp, out);
    return g8_gstate_live(out);
}

bool g8_gstate_compact(g8_garena *a, g8_gstate *s) {
    /* parents always precede their children: mark, then renumber in order */
    size_t n = a->n;
    int32_t *map = malloc((n ? n : 1) * sizeof *map);
    if (!map) return false;
    for (size_t i = 0; i < n; i++) map[i] = -1;
    for (int i = 0; i < s->n; i++)
        for (int32_t f = g8_gstate_top(a, s, i); f >= 0 && map[f] == -1; f = a->f[f].parent) map[f] = 0;
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (map[i] < 0) continue;
        g8_gframe f = a->f[i];
        if (f.parent >= 0) f.parent = map[f.parent];
        map[i] = k;
        a->f[k++] = f;
    }
    for (int i = 0; i < s->n; i++) a->t[i] = map[a->t[s->off + i]]; /* off >= i: front to back is safe */
    s->off = 0;
    a->nt = (size_t)s->n;
    a->n = (size_t)k;
    free(map);
    return true;
}

uint32_t g8_gstack_distance(const gemma8_grammar *g, const g8_garena *a, int32_t t) {
    const g8_gframe *f = &a->f[t];
    const g8_gelem *e = &g->e[f->pos];
    uint32_t d = e->min > f->count ? sat_mul(e->min - f->count, class_min_bytes(&g->cls[e->v])) : 0;
    d = sat_add(d, g->rest[f->pos + 1]);
    /* each rule below: the iterations still owed after the one under way, then what follows it */
    for (int32_t p = f->parent; p >= 0; p = a->f[p].parent) {
        const g8_gframe *pf = &a->f[p];
        const g8_gelem *pe = &g->e[pf->pos];
        if (pe->min > pf->count + 1) d = sat_add(d, sat_mul(pe->min - pf->count - 1, g->rule_min[pe->v]));
        d = sat_add(d, g->rest[pf->pos + 1]);
    }
    return d;
}

uint32_t g8_gstate_distance(const gemma8_grammar *g, const g8_garena *a, const g8_gstate *s) {
    if (s->accept && !s->need) return 0;
    uint32_t best = FAR;
    for (int i = 0; i < s->n; i++) {
        uint32_t d = g8_gstack_distance(g, a, g8_gstate_top(a, s, i));
        if (d < best) best = d;
    }
    return sat_add(best, s->need); /* a character under way: its last bytes, at most */
}
