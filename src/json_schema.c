/* json_schema.c - JSON Schema compiled to GBNF, whose replies are JSON that the
 * schema accepts.
 *
 * Supported: type (one or a list, "null" among them for nullable), properties,
 * required, additionalProperties, items (a schema, or a list: a tuple, as prefixItems), minItems, maxItems,
 * enum, const, anyOf, allOf of one schema, $ref to #/$defs/... or #/definitions/..., string minLength /
 * maxLength / pattern (a regex subset: literals, ., classes,
 * ?, *, +, {m,n}, groups, |, anchors ^ $) / format (date, date-time, time,
 * uuid; others are warnings), minimum / maximum / exclusiveMinimum / exclusiveMaximum on
 * integers and numbers (exact, digit by digit). Annotations are ignored. Any other keyword is an error
 * naming it: a schema is never half enforced.
 *
 * Properties come in the schema's order; optional ones may be left out; extra
 * ones only where additionalProperties allows them (an object schema with no
 * properties and no additionalProperties: any object). Whitespace between
 * tokens is bounded as in llama.cpp's JSON grammar, numbers to 16 digits. */
#include "common.h"
#include "grammar.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define sb_str(b, s) g8_sb_put((b), (s), strlen(s))

typedef struct jsc {
    g8_sbuf out;             /* the rules */
    g8_sbuf warn;
    const cJSON *doc;     /* for $ref */
    char **refs;          /* $ref targets given a rule already */
    int n_refs;
    unsigned n_rules;
    unsigned have;        /* which shared rules are written (bit per PRIM_*) */
    int depth;
    bool failed;
    bool keys_checked;    /* a type list's keywords were checked as a whole */
    bool lenient;         /* an unsupported keyword is dropped with a warning (tool schemas) */
    const char *prefix;   /* of every rule name but the shared ones (several schemas in one grammar) */
} jsc;

static bool fail(jsc *c, const char *fmt, ...) G8_PRINTF(2, 3);
static bool fail(jsc *c, const char *fmt, ...) {
    if (c->failed) return false;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g8_fail(GEMMA8_ERR_INVALID_ARG, "JSON schema: %s", msg);
    c->failed = true;
    return false;
}

/* ---- the shared rules -------------------------------------------------------- */

enum { P_WS, P_CHAR, P_STRING, P_NUMBER, P_INTEGER, P_BOOLEAN, P_NULL, P_VALUE, P_OBJECT, P_ARRAY, P_DATE, P_TIME };

static const char *const prim_name[] = {"ws", "char", "string", "number", "integer", "boolean", "null", "value",
                                        "object", "array", "date", "time"};
static const char *const prim_body[] = {
    "| \" \" | \"\\n\" [ \\t]{0,20}",
    "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})",
    "\"\\\"\" char* \"\\\"\"",
    "\"-\"? (\"0\" | [1-9] [0-9]{0,15}) (\".\" [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?",
    "\"-\"? (\"0\" | [1-9] [0-9]{0,15})",
    "\"true\" | \"false\"",
    "\"null\"",
    "object | array | string | number | boolean | null",
    "\"{\" ws (string ws \":\" ws value ws (\",\" ws string ws \":\" ws value ws)*)? \"}\"",
    "\"[\" ws (value ws (\",\" ws value ws)*)? \"]\"",
    "[0-9]{4} \"-\" ((\"0\" [1-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]) | "
    "(\"0\" [13-9] | \"1\" [0-2]) \"-\" (\"29\" | \"30\") | (\"0\" [13578] | \"1\" [02]) \"-31\")",
    "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,6})? "
    "(\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])",
};
/* what each shared rule uses */
static const unsigned prim_uses[] = {
    0, 0, 1u << P_CHAR, 0, 0, 0, 0,
    1u << P_OBJECT | 1u << P_ARRAY | 1u << P_STRING | 1u << P_NUMBER | 1u << P_BOOLEAN | 1u << P_NULL,
    1u << P_WS | 1u << P_STRING | 1u << P_VALUE, 1u << P_WS | 1u << P_VALUE, 0, 0,
};

static const char *prim(jsc *c, int p) {
    if (!(c->have & (1u << p))) {
        c->have |= 1u << p;
        g8_sb_printf(&c->out, "%s ::= %s\n", prim_name[p], prim_body[p]);
        for (int q = 0; q <= P_TIME; q++)
            if (prim_uses[p] & (1u << q)) prim(c, q);
    }
    return prim_name[p];
}

/* ---- helpers ------------------------------------------------------------------- */

/* A new rule name from a hint: letters, digits and '-' only. */
static char *new_name(jsc *c, const char *hint) {
    char buf[96];
    size_t k = 0;
    for (const char *s = c->prefix; s && *s && k < 16; s++) buf[k++] = *s;
    for (const char *s = hint; *s && k < 56; s++) {
        char ch = *s;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        buf[k++] = ok ? ch : '-';
    }
    snprintf(buf + k, sizeof buf - k, "-%u", ++c->n_rules);
    char *s = strdup(buf);
    if (!s) c->out.oom = true;
    return s;
}

/* GBNF literal for the bytes s (quotes and backslashes escaped). */
void g8_gbnf_literal(g8_sbuf *b, const char *s) {
    sb_str(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') sb_str(b, "\\");
        if ((unsigned char)*s < 0x20) {
            g8_sb_printf(b, "\\x%02X", (unsigned char)*s);
            continue;
        }
        g8_sb_put(b, s, 1);
    }
    sb_str(b, "\"");
}

/* GBNF literal for a JSON value as it is written (a string with its quotes). */
static bool json_literal(jsc *c, g8_sbuf *b, const cJSON *v) {
    char *text = cJSON_PrintUnformatted(v);
    if (!text) return fail(c, "cannot print a value");
    g8_gbnf_literal(b, text);
    free(text);
    return true;
}

static bool is_annotation(const char *k) {
    static const char *const ann[] = {"$schema", "$id", "title", "description", "default", "examples", "$comment",
                                      "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
    for (size_t i = 0; i < sizeof ann / sizeof *ann; i++)
        if (!strcmp(k, ann[i])) return true;
    return false;
}

static const char *visit(jsc *c, const cJSON *s, const char *hint);
static const char *emit(jsc *c, const char *hint, g8_sbuf *body);

/* ---- numbers in a range ----------------------------------------------------------- */

/* A bound as a decimal: the shortest digits that read back as the same double (what the
 * schema's author wrote, for any number a double holds), integer and fraction apart:
 * int "0" for zero, no leading zeros, frac without trailing zeros. */
#define DEC_MAX 400
typedef struct dec {
    bool neg;
    char in[DEC_MAX], frac[DEC_MAX];
} dec;

static void dec_of(double v, dec *d) {
    char e[40];
    for (int prec = 0; prec < 17; prec++) { /* %.{prec}e: prec + 1 significant digits */
        snprintf(e, sizeof e, "%.*e", prec, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e is [-]D[.DDD]e[+-]X: the digits, then the point moved by X */
    d->neg = e[0] == '-';
    const char *p = e + d->neg;
    char digits[24];
    size_t n = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[n++] = *p;
    int x = atoi(p + 1);
    while (n > 1 && digits[n - 1] == '0') n--;
    /* the value is 0.digits * 10^(x + 1) */
    int point = x + 1;
    size_t ki = 0, kf = 0;
    for (int i = 0; i < point; i++) d->in[ki++] = i < (int)n ? digits[i] : '0';
    for (int i = point; i < 0; i++) d->frac[kf++] = '0';
    for (int i = point > 0 ? point : 0; i < (int)n; i++) d->frac[kf++] = digits[i];
    if (n == 1 && digits[0] == '0') { /* zero (and -0) */
        ki = kf = 0;
        d->neg = false;
    }
    if (!ki) d->in[ki++] = '0';
    d->in[ki] = 0;
    while (kf && d->frac[kf - 1] == '0') kf--;
    d->frac[kf] = 0;
}

/* Compares magnitudes. */
static int dec_cmp(const dec *a, const dec *b) {
    size_t la = strlen(a->in), lb = strlen(b->in);
    if (la != lb) return la < lb ? -1 : 1;
    int c = strcmp(a->in, b->in);
    if (c) return c < 0 ? -1 : 1;
    c = strcmp(a->frac, b->frac); /* no trailing zeros: as strings */
    return c < 0 ? -1 : c > 0;
}

/* Digit string +1 / -1 in place (s has room for one more digit); -1 of "0" gives false. */
static void digits_inc(char *s) {
    size_t n = strlen(s), i = n;
    while (i > 0 && s[i - 1] == '9') s[--i] = '0';
    if (i > 0) {
        s[i - 1]++;
        return;
    }
    memmove(s + 1, s, n + 1);
    s[0] = '1';
}

static bool digits_dec(char *s) {
    size_t n = strlen(s), i = n;
    if (n == 1 && s[0] == '0') return false;
    while (i > 0 && s[i - 1] == '0') s[--i] = '9';
    s[i - 1]--;
    if (s[0] == '0' && n > 1) memmove(s, s + 1, n);
    return true;
}

static bool digits_le(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    return la != lb ? la < lb : strcmp(a, b) <= 0;
}

/* Digit strings lo..hi of equal length n, as GBNF (a rule per digit below the first). */
static const char *same_len(jsc *c, const char *lo, const char *hi, size_t n) {
    g8_sbuf b = {0};
    if (!n) {
        sb_str(&b, "\"\"");
        return emit(c, "digits", &b);
    }
    char all[DEC_MAX];
    if (lo[0] == hi[0]) {
        const char *rest = n > 1 ? same_len(c, lo + 1, hi + 1, n - 1) : "";
        if (!rest) return NULL;
        g8_sb_printf(&b, "\"%c\" %s", lo[0], rest);
        return emit(c, "digits", &b);
    }
    bool lo_zeros = strspn(lo + 1, "0") == n - 1, hi_nines = strspn(hi + 1, "9") == n - 1;
    char a = lo[0], z = hi[0];
    bool first = true;
    if (!lo_zeros) {
        memset(all, '9', n - 1);
        all[n - 1] = 0;
        const char *rest = same_len(c, lo + 1, all, n - 1);
        if (!rest) return NULL;
        g8_sb_printf(&b, "\"%c\" %s", a, rest);
        a++;
        first = false;
    }
    char zmid = hi_nines ? z : (char)(z - 1);
    if (a <= zmid) {
        g8_sb_printf(&b, "%s[%c-%c]", first ? "" : " | ", a, zmid);
        if (n > 1) g8_sb_printf(&b, " [0-9]{%zu}", n - 1);
        first = false;
    }
    if (!hi_nines) {
        memset(all, '0', n - 1);
        all[n - 1] = 0;
        const char *rest = same_len(c, all, hi + 1, n - 1);
        if (!rest) return NULL;
        g8_sb_printf(&b, "%s\"%c\" %s", first ? "" : " | ", z, rest);
    }
    return emit(c, "digits", &b);
}

/* Digit strings for the integers lo..hi (lo <= hi), without leading zeros, as alternatives. */
static bool int_digits(jsc *c, g8_sbuf *b, const char *lo, const char *hi) {
    size_t nlo = strlen(lo), nhi = strlen(hi);
    char a[DEC_MAX], z[DEC_MAX];
    sb_str(b, "(");
    for (size_t d = nlo; d <= nhi; d++) {
        if (d == nlo)
            snprintf(a, sizeof a, "%s", lo);
        else
            a[0] = '1', memset(a + 1, '0', d - 1), a[d] = 0;
        if (d == nhi)
            snprintf(z, sizeof z, "%s", hi);
        else
            memset(z, '9', d), z[d] = 0;
        const char *r = same_len(c, a, z, d);
        if (!r) return false;
        g8_sb_printf(b, "%s%s", d == nlo ? "" : " | ", r);
    }
    sb_str(b, ")");
    return true;
}

/* The digits of a fraction after position i, while they equal lo's so far (tlo) or hi's (thi):
 * what may follow (at least one digit, at most `left`) so that 0.digits stays within the range;
 * "" when no digit may. *stop: whether the fraction may end at i. hi is read only when thi. */
typedef struct frange {
    const char *lo, *hi;
    bool lo_x, hi_x; /* the ends excluded */
} frange;

static const char *frac_more(jsc *c, const frange *f, size_t i, bool tlo, bool thi, size_t left, bool *stop) {
    size_t nlo = strlen(f->lo), nhi = thi ? strlen(f->hi) : 0;
    bool ge = !tlo || (i >= nlo && !f->lo_x); /* the digits so far, lo's other digits all zero */
    bool le = !thi || i < nhi || !f->hi_x;
    *stop = ge && le;
    if (!left) return "";
    g8_sbuf b = {0};
    if (!tlo && !thi) {
        g8_sb_printf(&b, "[0-9]{1,%zu}", left);
        return emit(c, "frac", &b);
    }
    char lo_d = tlo && i < nlo ? f->lo[i] : '0';
    char hi_d = thi ? (i < nhi ? f->hi[i] : '0') : '9';
    if (lo_d > hi_d) return "";
    for (int part = 0; part < 3; part++) { /* the digit lo_d, the digits between, hi_d */
        if (part == 1) {
            if (lo_d + 1 > hi_d - 1) continue;
            g8_sb_printf(&b, "%s[%c-%c]", b.n ? " | " : "", lo_d + 1, hi_d - 1); /* then anything */
            if (left > 1) g8_sb_printf(&b, " [0-9]{0,%zu}", left - 1);
            continue;
        }
        char d = part ? hi_d : lo_d;
        if (part == 2 && hi_d == lo_d) break;
        bool st;
        const char *sub = frac_more(c, f, i + 1, !part && tlo, thi && d == hi_d, left - 1, &st);
        if (!sub) {
            free(b.p);
            return NULL;
        }
        if (!*sub && !st) continue;
        g8_sb_printf(&b, "%s\"%c\"", b.n ? " | " : "", d);
        if (*sub) g8_sb_printf(&b, " %s%s", sub, st ? "?" : "");
    }
    if (!b.n) return "";
    return emit(c, "frac", &b);
}

/* Integer part `in` (a literal), then a fraction within f: one alternative appended to b. */
static bool with_fraction(jsc *c, g8_sbuf *b, const char *in, const frange *f, bool thi, size_t left) {
    bool stop;
    const char *more = frac_more(c, f, 0, true, thi, left, &stop);
    if (!more) return false;
    if (!*more && !stop) return true;
    g8_sb_printf(b, "%s\"%s\"", b->n ? " | " : "", in);
    if (*more) g8_sb_printf(b, " (\".\" %s)%s", more, stop ? "?" : "");
    return true;
}

/* Magnitudes m with A <= m <= B (ends excluded as asked; B NULL: up to `digits` integer digits),
 * written without leading zeros, integers only or with a fraction of up to `left` digits: the
 * alternatives appended to b (none when no value fits). */
static bool mag_range(jsc *c, g8_sbuf *b, const dec *A, bool ax, const dec *B, bool bx, bool integer,
                      size_t digits, size_t left) {
    char lo[DEC_MAX + 1], hi[DEC_MAX + 1];
    snprintf(lo, sizeof lo, "%s", A->in);
    if (B)
        snprintf(hi, sizeof hi, "%s", B->in);
    else
        memset(hi, '9', digits), hi[digits] = 0;
    if (integer) {
        if (A->frac[0] || ax) digits_inc(lo);
        if (B && !B->frac[0] && bx && !digits_dec(hi)) return true;
        if (!digits_le(lo, hi)) return true;
        g8_sbuf r = {0};
        if (!int_digits(c, &r, lo, hi)) {
            free(r.p);
            return false;
        }
        g8_sb_printf(b, "%s%s", b->n ? " | " : "", r.p);
        free(r.p);
        return true;
    }
    bool one = B && !strcmp(A->in, B->in);
    frange f = {A->frac, one ? B->frac : NULL, ax, bx};
    if (!with_fraction(c, b, A->in, &f, one, left)) return false;
    if (one) return true;
    char mid_lo[DEC_MAX + 1], mid_hi[DEC_MAX + 1];
    snprintf(mid_lo, sizeof mid_lo, "%s", lo);
    digits_inc(mid_lo);
    snprintf(mid_hi, sizeof mid_hi, "%s", hi);
    bool mid = !B || digits_dec(mid_hi);
    if (mid && digits_le(mid_lo, mid_hi)) {
        g8_sbuf r = {0};
        if (!int_digits(c, &r, mid_lo, mid_hi)) {
            free(r.p);
            return false;
        }
        g8_sb_printf(b, "%s%s (\".\" [0-9]{1,%zu})?", b->n ? " | " : "", r.p, left);
        free(r.p);
    }
    if (!B) return true;
    frange fb = {"", B->frac, false, bx};
    bool stop;
    const char *more = frac_more(c, &fb, 0, false, true, left, &stop);
    if (!more) return false;
    if (!*more && !stop) return true;
    g8_sb_printf(b, "%s\"%s\"", b->n ? " | " : "", B->in);
    if (*more) g8_sb_printf(b, " (\".\" %s)%s", more, stop ? "?" : "");
    return true;
}

/* One end of a range: the tighter of `minimum` and `exclusiveMinimum` (or the maxima); draft 4's
 * boolean exclusiveMinimum marks `minimum` itself as excluded. */
static bool range_end(jsc *c, const cJSON *s, bool upper, bool *has, double *v, bool *x) {
    const cJSON *in = cJSON_GetObjectItem(s, upper ? "maximum" : "minimum");
    const cJSON *ex = cJSON_GetObjectItem(s, upper ? "exclusiveMaximum" : "exclusiveMinimum");
    const char *kin = upper ? "maximum" : "minimum", *kex = upper ? "exclusiveMaximum" : "exclusiveMinimum";
    *has = false;
    *x = false;
    if (in && (!cJSON_IsNumber(in) || !isfinite(in->valuedouble)))
        return fail(c, "'%s' must be a number", kin);
    if (ex && !cJSON_IsNumber(ex) && !cJSON_IsBool(ex)) return fail(c, "'%s' must be a number", kex);
    if (ex && cJSON_IsNumber(ex) && !isfinite(ex->valuedouble)) return fail(c, "'%s' must be a number", kex);
    if (in) *has = true, *v = in->valuedouble, *x = cJSON_IsTrue(ex);
    if (ex && cJSON_IsBool(ex) && !in && cJSON_IsTrue(ex))
        return fail(c, "'%s': true without '%s'", kex, kin);
    if (ex && cJSON_IsNumber(ex)) {
        double e = ex->valuedouble;
        bool tighter = !*has || (upper ? e <= *v : e >= *v);
        if (tighter) *has = true, *v = e, *x = true;
    }
    if (*has && fabs(*v) >= 1e300) return fail(c, "'%s' is too large a bound", *x ? kex : kin);
    return true;
}

/* JSON numbers (integers: no fraction) within minimum/maximum/exclusive*, exactly, on the decimal
 * value written: no exponent; integer parts up to 16 digits (or as many as a bound has), fractions
 * up to 16 (or a bound's). */
static bool num_range(jsc *c, const cJSON *s, g8_sbuf *b, bool integer) {
    bool has_lo, has_hi, lo_x, hi_x;
    double vlo = 0, vhi = 0;
    if (!range_end(c, s, false, &has_lo, &vlo, &lo_x) || !range_end(c, s, true, &has_hi, &vhi, &hi_x))
        return false;
    dec lo = {0}, hi = {0}, zero = {.in = "0"};
    if (has_lo) dec_of(vlo, &lo);
    if (has_hi) dec_of(vhi, &hi);
    size_t digits = 16, left = 16;
    const dec *ends[2] = {has_lo ? &lo : NULL, has_hi ? &hi : NULL};
    for (int i = 0; i < 2; i++) {
        if (!ends[i]) continue;
        if (strlen(ends[i]->in) > digits) digits = strlen(ends[i]->in);
        if (strlen(ends[i]->frac) + 1 > left) left = strlen(ends[i]->frac) + 1;
    }
    g8_sbuf pos = {0}, neg = {0};
    bool ok = true;
    /* x >= 0: from max(lo, 0) to hi */
    bool nonneg = !has_hi || !hi.neg;
    if (nonneg && has_hi && !hi.neg && dec_cmp(&hi, &zero) == 0 && hi_x) nonneg = false;
    if (nonneg) {
        bool from_lo = has_lo && !lo.neg;
        ok = mag_range(c, &pos, from_lo ? &lo : &zero, from_lo && lo_x, has_hi ? &hi : NULL, hi_x, integer,
                       digits, left);
    }
    /* x < 0: magnitudes from max(-hi, 0) (0 itself excluded) to -lo */
    if (ok && (!has_lo || lo.neg)) {
        bool from_hi = has_hi && hi.neg;
        dec mlo = from_hi ? hi : zero, mhi = lo;
        mlo.neg = mhi.neg = false;
        ok = mag_range(c, &neg, &mlo, from_hi ? hi_x : true, has_lo ? &mhi : NULL, lo_x, integer, digits,
                       left);
    }
    if (ok && !pos.n && !neg.n) {
        char l[40] = "-inf", h[40] = "inf";
        if (has_lo) snprintf(l, sizeof l, "%.17g", vlo);
        if (has_hi) snprintf(h, sizeof h, "%.17g", vhi);
        ok = fail(c, "no %s lies between %s %s and %s %s", integer ? "integer" : "number",
                  lo_x ? "exclusiveMinimum" : "minimum", l, hi_x ? "exclusiveMaximum" : "maximum", h);
    }
    if (ok) {
        sb_str(b, "(");
        if (pos.n) g8_sb_put(b, pos.p, pos.n);
        if (neg.n) g8_sb_printf(b, "%s\"-\" (%s)", pos.n ? " | " : "", neg.p);
        sb_str(b, ")");
    }
    free(pos.p);
    free(neg.p);
    return ok;
}

/* ---- pattern: a regex subset ---------------------------------------------------- */

typedef struct rx {
    jsc *c;
    const char *p;
    g8_sbuf *b;
} rx;

static bool rx_alt(rx *r, int depth);

/* One code point of the pattern (after a backslash if escaped) as JSON string text. */
static void rx_char_json(g8_sbuf *b, uint32_t cp, const char *raw, size_t rawlen) {
    if (cp == '"') sb_str(b, "\"\\\\\\\"\"");
    else if (cp == '\\') sb_str(b, "\"\\\\\\\\\"");
    else if (cp < 0x20) g8_sb_printf(b, "\"\\\\u%04X\"", cp);
    else {
        sb_str(b, "\"");
        g8_sb_put(b, raw, rawlen);
        sb_str(b, "\"");
    }
}

static bool rx_class_body(rx *r, g8_sbuf *b) {
    /* [ ... ]: members kept as GBNF class text, minus what JSON must escape */
    r->p++;
    bool neg = *r->p == '^';
    if (neg) r->p++;
    sb_str(b, neg ? "[^\"\\\\\\x00-\\x1F" : "[");
    bool any = false;
    while (*r->p && *r->p != ']') {
        const char *q = r->p;
        if (*q == '\\') {
            char e = q[1];
            if (e == 'd') sb_str(b, "0-9");
            else if (e == 'w') sb_str(b, "a-zA-Z0-9_");
            else if (e == 's') sb_str(b, " ");
            else if (e && strchr(".-^$[]()|*+?{}/", e)) g8_sb_printf(b, "\\%c", e);
            else return fail(r->c, "pattern: the escape \\%c is not supported", e ? e : ' ');
            r->p += 2;
        } else if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20) {
            r->p++; /* left out: the string would need an escape */
            continue;
        } else {
            if (*q == '[') sb_str(b, "\\");
            g8_sb_put(b, q, 1);
            r->p++;
        }
        any = true;
    }
    if (*r->p != ']') return fail(r->c, "pattern: unterminated [");
    r->p++;
    sb_str(b, "]");
    if (!any && !neg) return fail(r->c, "pattern: an empty class");
    return true;
}

static bool rx_atom(rx *r, int depth) {
    g8_sbuf *b = r->b;
    const char *q = r->p;
    if (*q == '(') {
        r->p++;
        if (r->p[0] == '?' && r->p[1] == ':') r->p += 2;
        else if (r->p[0] == '?') return fail(r->c, "pattern: (?...) groups other than (?:...) are not supported");
        sb_str(b, "(");
        if (!rx_alt(r, depth + 1)) return false;
        if (*r->p != ')') return fail(r->c, "pattern: unbalanced (");
        r->p++;
        sb_str(b, ")");
        return true;
    }
    if (*q == '[') return rx_class_body(r, b);
    if (*q == '.') {
        r->p++;
        sb_str(b, prim(r->c, P_CHAR));
        return true;
    }
    if (*q == '\\') {
        char e = q[1];
        r->p += 2;
        if (e == 'd') sb_str(b, "[0-9]");
        else if (e == 'w') sb_str(b, "[a-zA-Z0-9_]");
        else if (e == 's') sb_str(b, "\" \"");
        else if (e == 'n') sb_str(b, "\"\\\\n\"");
        else if (e == 't') sb_str(b, "\"\\\\t\"");
        else if (e && strchr(".-^$[]()|*+?{}/\\\"", e)) rx_char_json(b, (uint32_t)e, q + 1, 1);
        else return fail(r->c, "pattern: the escape \\%c is not supported", e ? e : ' ');
        return true;
    }
    if (strchr("*+?{", *q)) return fail(r->c, "pattern: a quantifier with nothing before it");
    size_t len = (*q & 0x80) == 0 ? 1 : (*q & 0xE0) == 0xC0 ? 2 : (*q & 0xF0) == 0xE0 ? 3 : 4;
    for (size_t i = 1; i < len; i++)
        if (!q[i]) return fail(r->c, "pattern: invalid UTF-8");
    rx_char_json(b, (unsigned char)*q, q, len);
    r->p += len;
    return true;
}

static bool rx_seq(rx *r, int depth) {
    bool empty = true;
    while (*r->p && *r->p != '|' && *r->p != ')') {
        if (*r->p == '^' || *r->p == '$') {
            r->p++; /* anchors: the whole string is matched anyway */
            continue;
        }
        sb_str(r->b, " (");
        if (!rx_atom(r, depth)) return false;
        sb_str(r->b, ")");
        char q = *r->p;
        if (q == '*' || q == '+' || q == '?') {
            g8_sb_put(r->b, &q, 1);
            r->p++;
        } else if (q == '{') {
            const char *e = strchr(r->p, '}');
            if (!e || e - r->p > 20) return fail(r->c, "pattern: a bad {m,n}");
            for (const char *k = r->p + 1; k < e; k++)
                if (!strchr("0123456789,", *k)) return fail(r->c, "pattern: a bad {m,n}");
            g8_sb_put(r->b, r->p, (size_t)(e - r->p + 1));
            r->p = e + 1;
        }
        if (*r->p == '?' || *r->p == '+') return fail(r->c, "pattern: lazy or possessive quantifiers are not supported");
        empty = false;
    }
    if (empty) sb_str(r->b, " \"\"");
    return true;
}

static bool rx_alt(rx *r, int depth) {
    if (depth > 50) return fail(r->c, "pattern: groups nested too deeply");
    if (!rx_seq(r, depth)) return false;
    while (*r->p == '|') {
        r->p++;
        sb_str(r->b, " |");
        if (!rx_seq(r, depth)) return false;
    }
    return true;
}

/* ---- the schema ------------------------------------------------------------------ */

static const char *emit(jsc *c, const char *hint, g8_sbuf *body) {
    char *name = new_name(c, hint);
    if (!name || body->oom) {
        free(name);
        free(body->p);
        c->out.oom = true;
        fail(c, "out of memory");
        return NULL;
    }
    g8_sb_printf(&c->out, "%s ::= %s\n", name, body->p ? body->p : "\"\"");
    free(body->p);
    /* names live until the compile ends: kept in refs' list */
    char **nr = realloc(c->refs, ((size_t)c->n_refs + 2) * sizeof *nr);
    if (!nr) {
        free(name);
        fail(c, "out of memory");
        return NULL;
    }
    c->refs = nr;
    c->refs[c->n_refs++] = name;
    c->refs[c->n_refs++] = NULL;
    return name;
}

/* The first keyword of s that is neither an annotation nor allowed (NULL: none). */
static const char *other_key(const cJSON *s, const char *const *allowed) {
    for (const cJSON *k = s->child; k; k = k->next) {
        if (is_annotation(k->string)) continue;
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, k->string);
        if (!ok) return k->string;
    }
    return NULL;
}

static bool check_keys(jsc *c, const cJSON *s, const char *const *allowed) {
    if (c->keys_checked) return true;
    const char *k = other_key(s, allowed);
    if (k && c->lenient) { /* every one it drops, named */
        for (const cJSON *e = s->child; e; e = e->next) {
            if (is_annotation(e->string)) continue;
            bool ok = false;
            for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, e->string);
            if (!ok) g8_sb_printf(&c->warn, "the keyword '%.60s' is not enforced (dropped)\n", e->string);
        }
        return true;
    }
    return k ? fail(c, "the keyword '%.60s' is not supported here", k) : true;
}

static bool get_count(jsc *c, const cJSON *s, const char *key, uint32_t *out, uint32_t dflt) {
    const cJSON *v = cJSON_GetObjectItem(s, key);
    *out = dflt;
    if (!v) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 100000 || v->valuedouble != floor(v->valuedouble))
        return fail(c, "'%s' must be a whole number from 0 to 100000", key);
    *out = (uint32_t)v->valuedouble;
    return true;
}

static const char *const STRING_KEYS[] = {"type", "minLength", "maxLength", "pattern", "format", NULL};
static const char *const NUMBER_KEYS[] = {"type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};
static const char *const ARRAY_KEYS[] = {"type",     "items",       "prefixItems", "minItems",
                                         "maxItems", "uniqueItems", NULL};
static const char *const OBJECT_KEYS[] = {"type", "properties", "required", "additionalProperties", NULL};

static bool type_has_key(const char *type, const char *key) {
    const char *const *keys = !strcmp(type, "string") ? STRING_KEYS
                              : !strcmp(type, "number") || !strcmp(type, "integer") ? NUMBER_KEYS
                              : !strcmp(type, "array") ? ARRAY_KEYS
                              : !strcmp(type, "object") ? OBJECT_KEYS : NULL;
    for (; keys && *keys; keys++)
        if (!strcmp(*keys, key)) return true;
    return false;
}

static const char *visit_string(jsc *c, const cJSON *s, const char *hint) {
    if (!check_keys(c, s, STRING_KEYS)) return NULL;
    uint32_t mn, mx;
    if (!get_count(c, s, "minLength", &mn, 0) || !get_count(c, s, "maxLength", &mx, G8_G_INF)) return NULL;
    if (mx < mn) {
        fail(c, "maxLength %u is below minLength %u", mx, mn);
        return NULL;
    }
    const cJSON *pat = cJSON_GetObjectItem(s, "pattern"), *fmt = cJSON_GetObjectItem(s, "format");
    bool bounded = mn > 0 || mx != G8_G_INF;
    g8_sbuf b = {0};
    if (pat) {
        if (!cJSON_IsString(pat)) {
            fail(c, "'pattern' must be a string");
            return NULL;
        }
        if (bounded) {
            fail(c, "'pattern' together with minLength/maxLength is not supported");
            return NULL;
        }
        sb_str(&b, "\"\\\"\" (");
        rx r = {c, pat->valuestring, &b};
        if (!rx_alt(&r, 0)) {
            free(b.p);
            return NULL;
        }
        if (*r.p) {
            free(b.p);
            fail(c, "pattern: unbalanced )");
            return NULL;
        }
        sb_str(&b, " ) \"\\\"\"");
        return emit(c, hint, &b);
    }
    if (fmt) {
        const char *f = cJSON_IsString(fmt) ? fmt->valuestring : "";
        if (bounded && (!strcmp(f, "date") || !strcmp(f, "date-time") || !strcmp(f, "time") || !strcmp(f, "uuid"))) {
            fail(c, "'format' together with minLength/maxLength is not supported");
            return NULL;
        }
        if (!strcmp(f, "date")) g8_sb_printf(&b, "\"\\\"\" %s \"\\\"\"", prim(c, P_DATE));
        else if (!strcmp(f, "time")) g8_sb_printf(&b, "\"\\\"\" %s \"\\\"\"", prim(c, P_TIME));
        else if (!strcmp(f, "date-time"))
            g8_sb_printf(&b, "\"\\\"\" %s \"T\" %s \"\\\"\"", prim(c, P_DATE), prim(c, P_TIME));
        else if (!strcmp(f, "uuid"))
            sb_str(&b, "\"\\\"\" [0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12} "
                       "\"\\\"\"");
        else
            g8_sb_printf(&c->warn, "format '%.60s' is not enforced\n", f);
        if (b.n) return emit(c, hint, &b);
    }
    if (!bounded) return prim(c, P_STRING);
    if (mx == G8_G_INF) g8_sb_printf(&b, "\"\\\"\" %s{%u,} \"\\\"\"", prim(c, P_CHAR), mn);
    else g8_sb_printf(&b, "\"\\\"\" %s{%u,%u} \"\\\"\"", prim(c, P_CHAR), mn, mx);
    return emit(c, hint, &b);
}

static const char *visit_number(jsc *c, const cJSON *s, const char *hint, bool integer) {
    if (!check_keys(c, s, NUMBER_KEYS)) return NULL;
    bool ranged = cJSON_GetObjectItem(s, "minimum") || cJSON_GetObjectItem(s, "maximum") ||
                  cJSON_GetObjectItem(s, "exclusiveMinimum") || cJSON_GetObjectItem(s, "exclusiveMaximum");
    if (!ranged) return prim(c, integer ? P_INTEGER : P_NUMBER);
    g8_sbuf b = {0};
    if (!num_range(c, s, &b, integer)) {
        free(b.p);
        return NULL;
    }
    return emit(c, hint, &b);
}

static const char *visit_array(jsc *c, const cJSON *s, const char *hint) {
    if (!check_keys(c, s, ARRAY_KEYS)) return NULL;
    const cJSON *uq = cJSON_GetObjectItem(s, "uniqueItems");
    if (uq && !cJSON_IsFalse(uq)) {
        fail(c, "uniqueItems is not supported");
        return NULL;
    }
    uint32_t mn, mx;
    if (!get_count(c, s, "minItems", &mn, 0) || !get_count(c, s, "maxItems", &mx, G8_G_INF)) return NULL;
    if (mx < mn) {
        fail(c, "maxItems %u is below minItems %u", mx, mn);
        return NULL;
    }
    const cJSON *items = cJSON_GetObjectItem(s, "items"), *prefix = cJSON_GetObjectItem(s, "prefixItems");
    if (prefix || cJSON_IsArray(items)) { /* a tuple: exactly these items, in order (llama.cpp's reading) */
        const cJSON *list = prefix ? prefix : items;
        if (!cJSON_IsArray(list) || (prefix && items && !cJSON_IsFalse(items))) {
            fail(c, "'prefixItems' must be a list, with no 'items' schema beside it");
            return NULL;
        }
        uint32_t n = (uint32_t)cJSON_GetArraySize(list);
        if (n < mn || n > mx) {
            fail(c, "a tuple of %u items against minItems %u / maxItems %u", n, mn, mx);
            return NULL;
        }
        const char *ws = prim(c, P_WS);
        g8_sbuf b = {0};
        g8_sb_printf(&b, "\"[\" %s", ws);
        uint32_t i = 0;
        for (const cJSON *x = list->child; x; x = x->next, i++) {
            char th[64];
            snprintf(th, sizeof th, "%.40s-%u", hint, i);
            const char *item = visit(c, x, th);
            if (!item) {
                free(b.p);
                return NULL;
            }
            g8_sb_printf(&b, "%s %s %s", i ? " \",\" " : "", i ? ws : "", item);
            g8_sb_printf(&b, " %s", ws);
        }
        sb_str(&b, " \"]\"");
        return emit(c, hint, &b);
    }
    char ih[64];
    snprintf(ih, sizeof ih, "%.40s-item", hint);
    const char *item = items ? visit(c, items, ih) : prim(c, P_VALUE);
    if (!item) return NULL;
    const char *ws = prim(c, P_WS);
    g8_sbuf b = {0};
    if (mx == 0) {
        g8_sb_printf(&b, "\"[\" %s \"]\"", ws);
        return emit(c, hint, &b);
    }
    g8_sb_printf(&b, "\"[\" %s %s(%s %s (\",\" %s %s %s)", ws, mn ? "" : "(", item, ws, ws, item, ws);
    if (mx == G8_G_INF) g8_sb_printf(&b, "{%u,}", mn ? mn - 1 : 0);
    else g8_sb_printf(&b, "{%u,%u}", mn ? mn - 1 : 0, mx - 1);
    g8_sb_printf(&b, ")%s \"]\"", mn ? "" : ")?");
    return emit(c, hint, &b);
}

/* Extra property names: letters, digits and '_' (fewer than JSON allows, never
 * wrong), and none of the schema's own keys: a trie of those keys, where at
 * each prefix the name goes on with a character no key has there, follows a
 * key, or ends if the prefix is not a key. */
static const char KEY_CHARS[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";

static const char *not_keys_node(jsc *c, char **k, int from, int to, size_t depth) {
    g8_sbuf b = {0};
    bool is_key = false;
    char taken[sizeof KEY_CHARS] = {0};
    size_t n_taken = 0;
    for (int i = from; i < to && !c->failed;) {
        if (strlen(k[i]) == depth) {
            is_key = true;
            i++;
            continue;
        }
        char x = k[i][depth];
        int j = i;
        while (j < to && strlen(k[j]) > depth && k[j][depth] == x) j++;
        const char *child = not_keys_node(c, k, i, j, depth + 1);
        if (child) g8_sb_printf(&b, "\"%c\" %s | ", x, child);
        taken[n_taken++] = x;
        i = j;
    }
    sb_str(&b, "[");
    for (const char *a = KEY_CHARS; *a; a++)
        if (!memchr(taken, *a, n_taken)) g8_sb_put(&b, a, 1);
    sb_str(&b, "] [a-zA-Z0-9_]{0,20}");
    if (!is_key) sb_str(&b, " | \"\"");
    if (c->failed) {
        free(b.p);
        return NULL;
    }
    return emit(c, "key", &b);
}

static const char *not_keys(jsc *c, const cJSON *props) {
    int n = cJSON_GetArraySize(props), m = 0;
    char **k = calloc((size_t)n + 1, sizeof *k);
    if (!k) {
        fail(c, "out of memory");
        return NULL;
    }
    for (const cJSON *p = props->child; p; p = p->next) {
        size_t len = strlen(p->string);
        if (strspn(p->string, KEY_CHARS) != len) continue; /* never generated anyway */
        if (len > 200) continue;                             /* longer than any generated name */
        k[m++] = p->string;
    }
    for (int a = 0; a < m; a++)
        for (int z = a + 1; z < m; z++)
            if (strcmp(k[a], k[z]) > 0) {
                char *t = k[a];
                k[a] = k[z];
                k[z] = t;
            }
    const char *node = not_keys_node(c, k, 0, m, 0);
    free(k);
    if (!node) return NULL;
    g8_sbuf b = {0};
    g8_sb_printf(&b, "\"\\\"\" %s \"\\\"\"", node);
    return emit(c, "extra-key", &b);
}

static const char *visit_object(jsc *c, const cJSON *s, const char *hint) {
    if (!check_keys(c, s, OBJECT_KEYS)) return NULL;
    const cJSON *props = cJSON_GetObjectItem(s, "properties"), *req = cJSON_GetObjectItem(s, "required");
    const cJSON *add = cJSON_GetObjectItem(s, "additionalProperties");
    if (props && !cJSON_IsObject(props)) {
        fail(c, "'properties' must be an object");
        return NULL;
    }
    if (req && !cJSON_IsArray(req)) {
        fail(c, "'required' must be an array");
        return NULL;
    }
    if (add && !cJSON_IsBool(add) && !cJSON_IsObject(add)) {
        fail(c, "'additionalProperties' must be a boolean or a schema");
        return NULL;
    }
    int n = props ? cJSON_GetArraySize(props) : 0;
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
        if (!cJSON_IsString(r)) {
            fail(c, "'required' must list strings");
            return NULL;
        }
        if (!props || !cJSON_GetObjectItemCaseSensitive(props, r->valuestring)) {
            fail(c, "required property '%.60s' is not among the properties", r->valuestring);
            return NULL;
        }
    }
    bool extra = add ? !cJSON_IsFalse(add) : n == 0;
    if (!n && extra && (!add || cJSON_IsTrue(add))) return prim(c, P_OBJECT);
    const char *ws = prim(c, P_WS);
    const char *extra_kv = NULL;
    if (extra) {
        const char *key = n ? not_keys(c, props) : prim(c, P_STRING);
        if (!key) return NULL;
        char vh[64];
        snprintf(vh, sizeof vh, "%.40s-extra", hint);
        const char *val = cJSON_IsObject(add) ? visit(c, add, vh) : prim(c, P_VALUE);
        if (!val) return NULL;
        g8_sbuf kb = {0};
        g8_sb_printf(&kb, "%s %s \":\" %s %s %s", key, ws, ws, val, ws);
        snprintf(vh, sizeof vh, "%.40s-kv", hint);
        if (!(extra_kv = emit(c, vh, &kb))) return NULL;
    }
    /* kv_i, then after_i (something came before: a comma first) and from_i (nothing yet) */
    const char **kv = calloc((size_t)n + 1, sizeof *kv);
    bool *required = calloc((size_t)n + 1, 1);
    if (!kv || !required) {
        free(kv);
        free(required);
        fail(c, "out of memory");
        return NULL;
    }
    int i = 0;
    for (const cJSON *p = props ? props->child : NULL; p && !c->failed; p = p->next, i++) {
        char ph[80];
        snprintf(ph, sizeof ph, "%.30s-%.30s", hint, p->string);
        const char *val = visit(c, p, ph);
        if (!val) break;
        g8_sbuf kb = {0};
        cJSON *key = cJSON_CreateString(p->string);
        if (!key || !json_literal(c, &kb, key)) {
            cJSON_Delete(key);
            free(kb.p);
            break;
        }
        cJSON_Delete(key);
        g8_sb_printf(&kb, " %s \":\" %s %s %s", ws, ws, val, ws);
        snprintf(ph, sizeof ph, "%.30s-%.30s-kv", hint, p->string);
        kv[i] = emit(c, ph, &kb);
        for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
            if (!strcmp(r->valuestring, p->string)) required[i] = true;
    }
    const char *result = NULL;
    if (!c->failed) {
        /* written from the last property back */
        const char *after = NULL, *from = NULL;
        g8_sbuf b = {0};
        if (extra_kv) g8_sb_printf(&b, "(\",\" %s %s)*", ws, extra_kv);
        else sb_str(&b, "\"\"");
        after = emit(c, hint, &b);
        b = (g8_sbuf){0};
        if (extra_kv) g8_sb_printf(&b, "(%s (\",\" %s %s)*)?", extra_kv, ws, extra_kv);
        else sb_str(&b, "\"\"");
        from = emit(c, hint, &b);
        for (int k = n - 1; k >= 0 && after && from; k--) {
            g8_sbuf a = {0}, f = {0};
            if (required[k]) {
                g8_sb_printf(&a, "\",\" %s %s %s", ws, kv[k], after);
                g8_sb_printf(&f, "%s %s", kv[k], after);
            } else {
                g8_sb_printf(&a, "\",\" %s %s %s | %s", ws, kv[k], after, after);
                g8_sb_printf(&f, "%s %s | %s", kv[k], after, from);
            }
            after = emit(c, hint, &a);
            from = emit(c, hint, &f);
        }
        if (after && from) {
            g8_sbuf o = {0};
            g8_sb_printf(&o, "\"{\" %s %s \"}\"", ws, from);
            result = emit(c, hint, &o);
        }
    }
    free(kv);
    free(required);
    return result;
}

static const char *visit_ref(jsc *c, const char *ref) {
    const char *name = NULL;
    if (!strncmp(ref, "#/$defs/", 8)) name = ref + 8;
    else if (!strncmp(ref, "#/definitions/", 14)) name = ref + 14;
    if (!name || strchr(name, '/')) {
        fail(c, "$ref '%.80s': only #/$defs/NAME and #/definitions/NAME", ref);
        return NULL;
    }
    const cJSON *defs = cJSON_GetObjectItem(c->doc, ref[2] == '$' ? "$defs" : "definitions");
    const cJSON *target = defs ? cJSON_GetObjectItemCaseSensitive(defs, name) : NULL;
    if (!target) {
        fail(c, "$ref '%.80s' points to nothing", ref);
        return NULL;
    }
    /* one rule per target, named before it is written so that it may refer to itself */
    for (int i = 0; i + 1 < c->n_refs; i += 2)
        if (c->refs[i + 1] && !strcmp(c->refs[i + 1], ref)) return c->refs[i];
    char *rule = new_name(c, name), *key = strdup(ref);
    char **nr = rule && key ? realloc(c->refs, ((size_t)c->n_refs + 2) * sizeof *nr) : NULL;
    if (!nr) {
        free(rule);
        free(key);
        fail(c, "out of memory");
        return NULL;
    }
    c->refs = nr;
    c->refs[c->n_refs++] = rule;
    c->refs[c->n_refs++] = key;
    const char *body = visit(c, target, name);
    if (!body) return NULL;
    g8_sb_printf(&c->out, "%s ::= %s\n", rule, body);
    return rule;
}

/* One alternative per type of a type list. */
static const char *visit_typed(jsc *c, const cJSON *s, const char *type, const char *hint) {
    if (!strcmp(type, "string")) return visit_string(c, s, hint);
    if (!strcmp(type, "number")) return visit_number(c, s, hint, false);
    if (!strcmp(type, "integer")) return visit_number(c, s, hint, true);
    if (!strcmp(type, "object")) return visit_object(c, s, hint);
    if (!strcmp(type, "array")) return visit_array(c, s, hint);
    static const char *const keys[] = {"type", NULL};
    if (!check_keys(c, s, keys)) return NULL;
    if (!strcmp(type, "boolean")) return prim(c, P_BOOLEAN);
    if (!strcmp(type, "null")) return prim(c, P_NULL);
    fail(c, "unknown type '%.40s'", type);
    return NULL;
}

static const char *visit(jsc *c, const cJSON *s, const char *hint) {
    if (c->failed) return NULL;
    if (++c->depth > 64) {
        fail(c, "nested too deeply");
        return NULL;
    }
    bool checked = c->keys_checked;
    c->keys_checked = false;
    const char *r = NULL;
    g8_sbuf b = {0};
    const cJSON *t = cJSON_GetObjectItem(s, "type"), *any = cJSON_GetObjectItem(s, "anyOf");
    const cJSON *all = cJSON_GetObjectItem(s, "allOf"), *en = cJSON_GetObjectItem(s, "enum");
    const cJSON *cn = cJSON_GetObjectItem(s, "const"), *ref = cJSON_GetObjectItem(s, "$ref");
    if (cJSON_IsTrue(s)) {
        r = prim(c, P_VALUE);
    } else if (!cJSON_IsObject(s)) {
        fail(c, "a schema must be an object or true");
    } else if (ref) {
        static const char *const keys[] = {"$ref", NULL};
        if (!cJSON_IsString(ref)) fail(c, "'$ref' must be a string");
        else if (check_keys(c, s, keys)) r = visit_ref(c, ref->valuestring);
    } else if (en || cn) {
        static const char *const keys[] = {"enum", "const", "type", NULL};
        if (en && (!cJSON_IsArray(en) || !cJSON_GetArraySize(en))) fail(c, "'enum' must be a non-empty array");
        else if (en && cn) fail(c, "'enum' and 'const' together are not supported");
        else if (check_keys(c, s, keys)) {
            /* values as written; a type beside them must agree (checked by the reader) */
            const cJSON *v = en ? en->child : cn;
            for (bool first = true; v && !c->failed; v = en ? v->next : NULL, first = false) {
                if (!first) sb_str(&b, " | ");
                json_literal(c, &b, v);
            }
            if (!c->failed) {
                r = emit(c, hint, &b); /* it frees b */
                b = (g8_sbuf){0};
            }
        }
    } else if (any || all) {
        static const char *const keys[] = {"anyOf", "allOf", NULL};
        const cJSON *list = any ? any : all;
        if (any && all) fail(c, "'anyOf' and 'allOf' together are not supported");
        else if (!cJSON_IsArray(list) || !cJSON_GetArraySize(list)) fail(c, "'%s' must be a non-empty array", any ? "anyOf" : "allOf");
        else if (all && cJSON_GetArraySize(all) != 1) fail(c, "'allOf' is supported with one schema only");
        else if (other_key(s, keys) && !c->lenient)
            fail(c, "'%s' beside '%.40s' is not supported: move '%.40s' into each alternative",
                 any ? "anyOf" : "allOf", other_key(s, keys), other_key(s, keys));
        else {
            int i = 0;
            for (const cJSON *v = list->child; v && !c->failed; v = v->next, i++) {
                char h[64];
                snprintf(h, sizeof h, "%.40s-%d", hint, i);
                const char *alt = visit(c, v, h);
                if (alt) g8_sb_printf(&b, "%s%s", i ? " | " : "", alt);
            }
            if (!c->failed) {
                r = emit(c, hint, &b); /* it frees b */
                b = (g8_sbuf){0};
            }
        }
    } else if (cJSON_IsString(t)) {
        r = visit_typed(c, s, t->valuestring, hint);
    } else if (cJSON_IsArray(t) && cJSON_GetArraySize(t) > 0) {
        /* each keyword must belong to one of the types; each type then takes its own */
        for (const cJSON *k = s->child; k && !c->failed; k = k->next) {
            bool known = is_annotation(k->string) || !strcmp(k->string, "type");
            for (const cJSON *v = t->child; v && !known; v = v->next)
                known = cJSON_IsString(v) && type_has_key(v->valuestring, k->string);
            if (!known) fail(c, "the keyword '%.60s' is not supported here", k->string);
        }
        int i = 0;
        for (const cJSON *v = t->child; v && !c->failed; v = v->next, i++) {
            if (!cJSON_IsString(v)) {
                fail(c, "'type' must list strings");
                break;
            }
            c->keys_checked = true;
            const char *alt = visit_typed(c, s, v->valuestring, hint);
            c->keys_checked = false;
            if (alt) g8_sb_printf(&b, "%s%s", i ? " | " : "", alt);
        }
        if (!c->failed) {
            r = emit(c, hint, &b); /* it frees b */
            b = (g8_sbuf){0};
        }
    } else if (t) {
        fail(c, "'type' must be a string or a list of strings");
    } else {
        /* no type: what the keywords say, else anything */
        if (cJSON_GetObjectItem(s, "properties") || cJSON_GetObjectItem(s, "additionalProperties") ||
            cJSON_GetObjectItem(s, "required"))
            r = visit_object(c, s, hint);
        else if (cJSON_GetObjectItem(s, "items") || cJSON_GetObjectItem(s, "prefixItems") ||
                 cJSON_GetObjectItem(s, "minItems") || cJSON_GetObjectItem(s, "maxItems"))
            r = visit_array(c, s, hint);
        else if (cJSON_GetObjectItem(s, "minLength") || cJSON_GetObjectItem(s, "maxLength") ||
                 cJSON_GetObjectItem(s, "pattern") || cJSON_GetObjectItem(s, "format"))
            r = visit_string(c, s, hint);
        else {
            static const char *const keys[] = {NULL};
            if (check_keys(c, s, keys)) r = prim(c, P_VALUE);
        }
    }
    free(b.p);
    c->depth--;
    c->keys_checked = checked;
    if (c->out.oom || c->warn.oom) {
        fail(c, "out of memory");
        return NULL;
    }
    return c->failed ? NULL : r;
}

/* Whether a JSON text writes U+0000 in a string (\u0000), which cJSON's strings end at: a key,
 * const or enum value cut there would be enforced only in part. */
static bool has_nul_escape(const char *t) {
    bool in_str = false;
    for (; *t; t++) {
        if (*t == '"')
            in_str = !in_str;
        else if (in_str && *t == '\\') {
            if (t[1] == 'u' && !strncmp(t + 2, "0000", 4)) return true;
            if (t[1]) t++;
        }
    }
    return false;
}

gemma8_status g8_schema_rules(const char *schema, const char *prefix, bool lenient, g8_schema_gbnf *out) {
    memset(out, 0, sizeof *out);
    if (schema && has_nul_escape(schema))
        return g8_fail(GEMMA8_ERR_INVALID_ARG,
                       "JSON schema: a string holds U+0000 (\\u0000), which gemma8 cannot enforce");
    cJSON *doc = cJSON_Parse(schema ? schema : "{\"type\": \"object\"}");
    if (!doc) return g8_fail(GEMMA8_ERR_INVALID_ARG, "JSON schema: not valid JSON");
    jsc c = {.doc = doc, .lenient = lenient, .prefix = prefix};
    const char *root = visit(&c, doc, "root");
    gemma8_status st = root ? GEMMA8_OK : GEMMA8_ERR_INVALID_ARG;
    if (!st && (c.out.oom || !(out->root = strdup(root)))) st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c.n_refs; i++) free(c.refs[i]);
    free(c.refs);
    cJSON_Delete(doc);
    if (st) {
        free(c.out.p);
        free(c.warn.p);
        return st;
    }
    out->rules = c.out.p;
    out->warnings = c.warn.p;
    return GEMMA8_OK;
}

gemma8_status gemma8_grammar_from_json_schema(const char *schema, gemma8_grammar **out) {
    if (!out) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no place for the grammar");
    *out = NULL;
    if (schema && has_nul_escape(schema))
        return g8_fail(GEMMA8_ERR_INVALID_ARG,
                       "JSON schema: a string holds U+0000 (\\u0000), which gemma8 cannot "
                       "enforce");
    cJSON *doc = cJSON_Parse(schema ? schema : "{\"type\": \"object\"}");
    if (!doc) return g8_fail(GEMMA8_ERR_INVALID_ARG, "JSON schema: not valid JSON");
    jsc c = {.doc = doc};
    const char *root = visit(&c, doc, "root");
    gemma8_status st = root ? GEMMA8_OK : GEMMA8_ERR_INVALID_ARG;
    if (!st) g8_sb_printf(&c.out, "root ::= %s\n", root);
    if (!st && c.out.oom) st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory compiling a JSON schema");
    gemma8_grammar *g = NULL;
    if (!st) st = gemma8_grammar_from_gbnf(c.out.p, &g);
    if (!st && c.warn.n) g->warnings = strdup(c.warn.p);
    for (int i = 0; i < c.n_refs; i++) free(c.refs[i]);
    free(c.refs);
    free(c.out.p);
    free(c.warn.p);
    cJSON_Delete(doc);
    if (st) return st;
    *out = g;
    return GEMMA8_OK;
}
