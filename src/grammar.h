/* grammar.h - constrained output: a grammar in llama.cpp's GBNF compiled to a
 * pushdown automaton over UTF-8 bytes (this file), and the tokens of a
 * vocabulary it allows next (tokmask.h). JSON Schema compiles to GBNF first
 * (json_schema.c), so one engine serves --grammar, --json and --json-schema.
 *
 * Rules are sequences of elements; alternatives are separated by G8_G_ALT and
 * a rule ends with G8_G_END. Repetition is native: a class or a rule reference
 * carries {min, max} and the automaton counts, so `x{0,500}` costs no more than
 * `x*` and a group is a rule of its own. */
#ifndef G8_GRAMMAR_H
#define G8_GRAMMAR_H

#include "common.h"

#define G8_G_INF UINT32_MAX  /* no upper bound on a repetition */

enum g8_gelem_type { G8_G_END = 0, G8_G_ALT = 1, G8_G_RULE = 2, G8_G_CLASS = 3 };

typedef struct g8_gelem {
    uint8_t type;
    bool solo;            /* CLASS: the only element of its alternative */
    uint32_t v;           /* RULE: rule id; CLASS: class id */
    uint32_t min, max;    /* repetition; {1, 1} when none */
} g8_gelem;

/* A set of code points: sorted, disjoint ranges [r[2i], r[2i+1]]. */
typedef struct g8_gclass {
    uint32_t *r;
    uint32_t n;           /* ranges */
    uint64_t ascii[2];    /* bit c: code point c < 128 in the set */
    uint64_t hash;        /* of the ranges: the vocabulary's summaries are shared by it */
} g8_gclass;

struct gemma8_grammar {
    g8_gelem *e;          /* every rule's elements, one after another */
    size_t n_e;
    uint32_t *rule;       /* (n_rules) index in e of each rule's first element */
    uint32_t *alt;        /* the first element of each alternative, rule after rule */
    uint32_t *alt_off;    /* (n_rules + 1) rule r's alternatives: alt[alt_off[r] .. alt_off[r + 1]) */
    char **name;          /* (n_rules) */
    uint32_t n_rules, root;
    g8_gclass *cls;
    uint32_t n_cls;
    uint32_t *rule_min;   /* (n_rules) fewest bytes a rule matches */
    uint32_t *rest;       /* (n_e) fewest bytes from an element to the end of its alternative */
    char *gbnf;           /* the source text */
    char *warnings;       /* NULL if none */
};

static inline bool g8_gclass_has(const g8_gclass *c, uint32_t cp) {
    if (cp < 128) return (c->ascii[cp >> 6] >> (cp & 63)) & 1;
    uint32_t lo = 0, hi = c->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (cp < c->r[2 * mid]) hi = mid;
        else if (cp > c->r[2 * mid + 1]) lo = mid + 1;
        else return true;
    }
    return false;
}

/* ---- the automaton -------------------------------------------------------- */

/* One level of a parse stack; stacks share their lower levels. pos: a CLASS
 * element being matched (the top), or the RULE element whose rule is being
 * matched (below); count: repetitions done. */
typedef struct g8_gframe {
    uint32_t pos, count;
    int32_t parent;       /* index of the frame below, -1 at the bottom */
} g8_gframe;

/* Frames and stack tops of the states in use; states are walked depth first, so a walk
 * allocates above a mark and gives it all back with g8_garena_reset. */
typedef struct g8_garena {
    g8_gframe *f;
    size_t n, cap;
    int32_t *t; /* the states' stack tops: each state's are contiguous */
    size_t nt, capt;
    bool oom;
    bool too_many; /* a state held more than G8_G_MAX_STACKS parses */
} g8_garena;

typedef struct g8_gmark {
    size_t f, t;
} g8_gmark;

/* A grammar's state: the parse stacks alive (their top frames, a->t[off .. off + n)), whether
 * the grammar may end here, and the bytes of a character begun but not complete. An ambiguous
 * grammar may hold many parses at once: all are kept, up to a limit that is an error, not a cut. */
#define G8_G_MAX_STACKS 65536
typedef struct g8_gstate {
    size_t off;
    int n;
    bool accept;
    uint8_t need;         /* continuation bytes still to come (0: at a character boundary) */
    uint8_t len;          /* bytes of the character so far */
    uint32_t cp;          /* its bits so far */
} g8_gstate;

static inline int32_t g8_gstate_top(const g8_garena *a, const g8_gstate *s, int i) {
    return a->t[s->off + i];
}
static inline g8_gmark g8_garena_mark(const g8_garena *a) { return (g8_gmark){a->n, a->nt}; }
static inline void g8_garena_reset(g8_garena *a, g8_gmark m) {
    a->n = m.f;
    a->nt = m.t;
}
void g8_garena_free(g8_garena *a);

/* The state before any output. */
bool g8_gstate_start(const gemma8_grammar *g, g8_garena *a, g8_gstate *s);
/* Advances by one byte; false (out left dead) if the byte cannot follow. */
bool g8_gstate_byte(const gemma8_grammar *g, g8_garena *a, const g8_gstate *in, uint8_t b, g8_gstate *out);
/* Live: some stack can continue, or the grammar can end here. */
static inline bool g8_gstate_live(const g8_gstate *s) { return s->n > 0 || (s->accept && !s->need); }
/* Copies the frames and tops s uses to the front of a (compacting it); s is rewritten. */
bool g8_gstate_compact(g8_garena *a, g8_gstate *s);
/* The fewest bytes that complete the grammar from s (0 if it may end here). */
uint32_t g8_gstate_distance(const gemma8_grammar *g, const g8_garena *a, const g8_gstate *s);
/* The same through one stack (top frame t). */
uint32_t g8_gstack_distance(const gemma8_grammar *g, const g8_garena *a, int32_t t);

/* A JSON schema's rules in GBNF (json_schema.c) for a larger grammar: rules (their names begin
 * with prefix, but the shared ones: ws, string, value, ..., each written as one line that is the
 * same in every schema's rules), the expression of the schema's root, warnings (NULL if none).
 * lenient: an unsupported keyword is dropped from the constraint with a warning instead of an
 * error. Free the three strings. */
typedef struct g8_schema_gbnf {
    char *rules, *root, *warnings;
} g8_schema_gbnf;
gemma8_status g8_schema_rules(const char *schema, const char *prefix, bool lenient, g8_schema_gbnf *out);
/* The GBNF literal of the bytes s (quotes, backslashes and control bytes escaped), appended to b. */
struct g8_sbuf;
void g8_gbnf_literal(struct g8_sbuf *b, const char *s);

#endif
