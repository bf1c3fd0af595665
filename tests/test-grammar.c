/* test-grammar.c - constrained output: GBNF and JSON Schema compiled and
 * followed byte by byte, the trie walk's mask against a token-by-token check,
 * and sampled replies on the real 256000-token vocabulary that always parse. */
#include "grammar.h"
#include "model.h"
#include "testutil.h"
#include "tokmask.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* under a sanitizer or an emulator (qemu): fewer seeds and steps */
static bool sanitized(void) { return getenv("GEMMA8_SANITIZED") != NULL || getenv("GEMMA8_WRAPPER") != NULL; }

/* Does g match all of s (len bytes)? */
static bool matches(const gemma8_grammar *g, const char *s, size_t len) {
    g8_garena a = {0};
    g8_gstate cur, next;
    bool ok = g8_gstate_start(g, &a, &cur);
    for (size_t i = 0; ok && i < len; i++) {
        ok = g8_gstate_byte(g, &a, &cur, (uint8_t)s[i], &next);
        cur = next;
    }
    ok = ok && cur.accept && !cur.need;
    g8_garena_free(&a);
    return ok;
}

static gemma8_grammar *gbnf(const char *text) {
    gemma8_grammar *g = NULL;
    CHECKF(gemma8_grammar_from_gbnf(text, &g) == GEMMA8_OK, "%s: %s", text, gemma8_last_error());
    return g;
}

static gemma8_grammar *schema(const char *text) {
    gemma8_grammar *g = NULL;
    CHECKF(gemma8_grammar_from_json_schema(text, &g) == GEMMA8_OK, "%s: %s", text, gemma8_last_error());
    return g;
}

TEST(grammar_gbnf_errors_name_the_problem) {
    static const char *const bad[][2] = {
        {"root ::= foo", "'foo' is used but not defined"},
        {"a ::= \"x\"", "no rule named 'root'"},
        {"root ::= root \"x\" | \"y\"", "left-recursive"},
        {"root ::= a | \"z\"\na ::= \"\" root", "left-recursive"},
        {"root ::= (\"x\"?)*", "can be empty"},
        {"root ::= \"\\q\"", "unknown escape"},
        {"root ::= [b-a]", "backwards"},
        {"root ::= x\nx ::= \"a\" x", "can never finish"},
        {"root ::= \"a\"{3,2}", "n < m"},
        {"root ::= \"abc", "unterminated"},
        {"root ::= [abc", "unterminated"},
        {"root ::= \"a\"\nroot ::= \"b\"", "defined twice"},
        {"root ::= (\"a\"", "expected )"},
        {"", "empty"},
        {"root ::= <[10]> \"x\"", "token syntax"},
        {"root ::= \"a\" <think>", "token syntax"},
        {"root ::= !<[5]>", "token syntax"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gemma8_grammar *g = NULL;
        gemma8_status st = gemma8_grammar_from_gbnf(bad[i][0], &g);
        CHECKF(st == GEMMA8_ERR_INVALID_ARG && !g, "'%s' compiled", bad[i][0]);
        CHECKF(strstr(gemma8_last_error(), bad[i][1]) != NULL, "'%s': '%s' lacks '%s'", bad[i][0],
               gemma8_last_error(), bad[i][1]);
    }
}

TEST(grammar_follows_strings_byte_by_byte) {
    gemma8_grammar *g = gbnf("root ::= \"a\" [0-9]{2,3} (\"x\" | \"yz\")*  # a comment\n");
    static const char *const yes[] = {"a12", "a123", "a12x", "a123yzxx", "a99yz"};
    static const char *const no[] = {"a1", "a1234", "a12y", "b12", "a12xy", ""};
    for (size_t i = 0; g && i < sizeof yes / sizeof *yes; i++) CHECKF(matches(g, yes[i], strlen(yes[i])), "%s", yes[i]);
    for (size_t i = 0; g && i < sizeof no / sizeof *no; i++) CHECKF(!matches(g, no[i], strlen(no[i])), "%s", no[i]);
    gemma8_grammar_free(g);
    /* code points, not bytes; multi-line rules; a rule repeated a counted number of times */
    g = gbnf("root ::= [α-ω]+\n   \"✓\"? pair{0,1}\npair ::= (\"ab\"){2}");
    CHECK(g && matches(g, "αβ", strlen("αβ")));
    CHECK(g && matches(g, "αβ✓", strlen("αβ✓")));
    CHECK(g && matches(g, "ωabab", strlen("ωabab")));
    CHECK(g && !matches(g, "ωab", 3 + 2));
    CHECK(g && !matches(g, "a", 1));
    CHECK(g && !matches(g, "\xce", 1));        /* half a character: not complete */
    CHECK(g && !matches(g, "\xce\xb1\xff", 3)); /* never UTF-8 */
    gemma8_grammar_free(g);
    g = gbnf("root ::= \"\"");
    CHECK(g && matches(g, "", 0) && !matches(g, " ", 1));
    gemma8_grammar_free(g);
    g = gbnf("root ::= [^a]* . [\\x41-\\x43\\u00e9]");
    CHECK(g && matches(g, "xyzaB", 5) && matches(g, "q\xc3\xa9", 3) && !matches(g, "aaD", 3));
    gemma8_grammar_free(g);
}

/* Every integer from lo to hi in text, and around them: matched exactly when inside. */
static void check_int_range(const char *schema_text, long lo, long hi, long from, long to) {
    gemma8_grammar *g = schema(schema_text);
    int wrong = 0;
    for (long v = from; g && v <= to && wrong < 5; v++) {
        char s[32];
        int n = snprintf(s, sizeof s, "%ld", v);
        bool want = v >= lo && v <= hi;
        if (matches(g, s, (size_t)n) != want) wrong++, harness_note("%s: %ld", schema_text, v);
    }
    CHECKF(wrong == 0, "%s", schema_text);
    CHECK(!g || (!matches(g, "007", 3) && !matches(g, "-0", 2) && !matches(g, "1.0", 3)));
    gemma8_grammar_free(g);
}

TEST(grammar_schema_integer_ranges_exact) {
    check_int_range("{\"type\":\"integer\",\"minimum\":-250,\"maximum\":-17}", -250, -17, -3000, 3000);
    check_int_range("{\"type\":\"integer\",\"minimum\":-9,\"maximum\":1234}", -9, 1234, -3000, 3000);
    check_int_range("{\"type\":\"integer\",\"minimum\":7,\"maximum\":1234}", 7, 1234, -100, 13000);
    check_int_range("{\"type\":\"integer\",\"minimum\":0,\"maximum\":0}", 0, 0, -50, 50);
    check_int_range("{\"type\":\"integer\",\"exclusiveMinimum\":99,\"exclusiveMaximum\":1001}", 100, 1000, -5, 20000);
    check_int_range("{\"type\":\"integer\",\"minimum\":1000000,\"maximum\":1000500}", 1000000, 1000500, 999000,
                    1001600);
    check_int_range("{\"type\":\"integer\",\"minimum\":-5}", -5, 9999999999999999L, -1000, 1000);
    check_int_range("{\"type\":\"integer\",\"maximum\":12}", -9999999999999999L, 12, -1000, 1000);
    check_int_range("{\"type\":\"integer\",\"minimum\":1.5,\"exclusiveMaximum\":20.0}", 2, 19, -30, 30);
    check_int_range("{\"type\":\"integer\",\"maximum\":5,\"exclusiveMaximum\":true}", -9999, 4, -30, 30);
}

static void check_texts(const char *schema_text, const char *const *yes, const char *const *no) {
    gemma8_grammar *g = schema(schema_text);
    for (; g && *yes; yes++) CHECKF(matches(g, *yes, strlen(*yes)), "%s: %s refused", schema_text, *yes);
    for (; g && *no; no++) CHECKF(!matches(g, *no, strlen(*no)), "%s: %s accepted", schema_text, *no);
    gemma8_grammar_free(g);
}

/* zod's z.number().int() is +-(2^53 - 1); any JSON integer may be a bound; one bound leaves the other
   side as long as a plain integer (16 digits) */
TEST(grammar_schema_integer_ranges_any_size) {
    check_texts(
        "{\"type\":\"integer\",\"minimum\":-9007199254740991,\"maximum\":9007199254740991}",
        (const char *const[]){"9007199254740991", "-9007199254740991", "0", "-1", "9007199254740990", NULL},
        (const char *const[]){"9007199254740992", "-9007199254740992", "10000000000000000", "1.5", NULL});
    check_texts("{\"type\":\"integer\",\"minimum\":0}",
                (const char *const[]){"9999999999999999", "0", "1234567890123456", NULL},
                (const char *const[]){"-1", "99999999999999999", NULL});
    check_texts("{\"type\":\"integer\"}",
                (const char *const[]){"9999999999999999", "-9999999999999999", NULL},
                (const char *const[]){"99999999999999999", NULL});
    check_texts("{\"type\":\"integer\",\"minimum\":1e20}",
                (const char *const[]){"100000000000000000000", "999999999999999999999", NULL},
                (const char *const[]){"99999999999999999999", "1000000000000000000000",
                                      "-100000000000000000000", NULL});
    /* past 2^53 a bound is the double JSON readers make of it (ajv's too), read as its shortest decimal */
    check_texts(
        "{\"type\":\"integer\",\"exclusiveMaximum\":-1e29}",
        (const char *const[]){"-100000000000000000000000000001", "-999999999999999999999999999999", NULL},
        (const char *const[]){"-100000000000000000000000000000", "0", "-99999999999999999999999999999",
                              NULL});
}

/* A JSON number's value, read exactly enough for these short texts. */
static void check_num_range(const char *schema_text, double lo, bool lo_x, double hi, bool hi_x) {
    gemma8_grammar *g = schema(schema_text);
    static const char *const fracs[] = {"",   ".0",  ".5",    ".25", ".001", ".999",
                                        ".1", ".05", ".0001", ".75", ".2500"};
    int wrong = 0, tried = 0;
    for (int in = -13; g && in <= 13 && wrong < 5; in++)
        for (size_t f = 0; f < sizeof fracs / sizeof *fracs; f++)
            for (int sign = 0; sign < 2; sign++) {
                char t[48];
                if (sign && in) continue; /* "-0.5": sign with a zero integer part */
                snprintf(t, sizeof t, "%s%d%s", sign ? "-" : "", in, fracs[f]);
                double v = strtod(t, NULL);
                if (v == 0 && t[0] == '-') continue; /* -0 is never written */
                bool want = (lo_x ? v > lo : v >= lo) && (hi_x ? v < hi : v <= hi);
                tried++;
                if (matches(g, t, strlen(t)) != want && wrong++ < 5) harness_note("%s: %s", schema_text, t);
            }
    CHECKF(wrong == 0 && (!g || tried > 250), "%s", schema_text);
    CHECK(!g || (!matches(g, "1e2", 3) && !matches(g, "01", 2) && !matches(g, "1.", 2)));
    gemma8_grammar_free(g);
}

/* zod's z.number().min()/.max()/.gt()/.lt(): exact on the value written */
TEST(grammar_schema_number_ranges_exact) {
    check_num_range("{\"type\":\"number\",\"minimum\":0.5}", 0.5, false, INFINITY, false);
    check_num_range("{\"type\":\"number\",\"maximum\":2.25}", -INFINITY, false, 2.25, false);
    check_num_range("{\"type\":\"number\",\"exclusiveMinimum\":-1.5,\"exclusiveMaximum\":1}", -1.5, true, 1,
                    true);
    check_num_range("{\"type\":\"number\",\"minimum\":0,\"maximum\":0}", 0, false, 0, false);
    check_num_range("{\"type\":\"number\",\"minimum\":-0.001,\"maximum\":10}", -0.001, false, 10, false);
    check_num_range("{\"type\":\"number\",\"exclusiveMinimum\":0}", 0, true, INFINITY, false);
    check_num_range("{\"type\":\"number\",\"minimum\":3.25,\"maximum\":3.75}", 3.25, false, 3.75, false);
    check_num_range("{\"type\":\"number\",\"exclusiveMinimum\":3.25,\"exclusiveMaximum\":3.75}", 3.25, true,
                    3.75, true);
    check_num_range("{\"type\":\"number\",\"minimum\":-12.999,\"exclusiveMaximum\":-0.05}", -12.999, false,
                    -0.05, true);
    check_num_range("{\"type\":\"number\",\"minimum\":0.1,\"maximum\":0.1}", 0.1, false, 0.1, false);
    check_texts("{\"type\":\"number\",\"exclusiveMinimum\":0.1234567890123456}",
                (const char *const[]){"0.12345678901234561", "0.1234567890123457", "1", NULL},
                (const char *const[]){"0.1234567890123456", "0.12345678901234560", "0.1", NULL});
    check_texts("{\"type\":[\"number\",\"null\"],\"minimum\":1}",
                (const char *const[]){"null", "1", "1.5", NULL}, (const char *const[]){"0.999", NULL});
}

/* tuples: items as a list (draft 7) or prefixItems (2020-12): exactly those items, in order */
TEST(grammar_schema_tuples) {
    const char *const forms[] = {
        "{\"items\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}",
        "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}"};
    for (int i = 0; i < 2; i++)
        check_texts(forms[i], (const char *const[]){"[1,\"a\"]", "[ -3000 , \"\" ]", NULL},
                    (const char *const[]){"[1]", "[\"a\",1]", "[1,\"a\",2]", "[]", NULL});
    check_texts("{\"items\":[]}", (const char *const[]){"[]", NULL}, (const char *const[]){"[1]", NULL});
}

/* llama.cpp's schema converter names rules root-1, root-2...: gemma8's own names for groups never meet them
 */
TEST(grammar_gbnf_group_names_never_collide) {
    static const char *const texts[] = {"root-1 ::= \"b\"\nroot ::= (\"a\")? root-1",
                                        "root ::= (\"a\")? root-1\nroot-1 ::= \"b\"",
                                        "root ::= (\"a\")? root-1\nroot-1 ::= \"b\"\nroot-2 ::= (\"z\")"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        gemma8_grammar *g = gbnf(texts[i]);
        CHECKF(g && matches(g, "ab", 2) && matches(g, "b", 1), "%s", texts[i]);
        CHECKF(g && !matches(g, "bb", 2) && !matches(g, "a", 1), "%s", texts[i]);
        gemma8_grammar_free(g);
    }
}

/* every parse alive is kept: "a"* "a"{65} "b" holds 66 at once after 70 a's */
TEST(grammar_ambiguous_grammar_keeps_every_parse) {
    gemma8_grammar *g = gbnf("root ::= \"a\"* \"a\"{65} \"b\"");
    char t[400];
    for (int n = 60; g && n <= 300; n += 30) {
        memset(t, 'a', (size_t)n);
        t[n] = 'b';
        CHECKF(matches(g, t, (size_t)n + 1) == (n >= 65), "%d a's then b", n);
    }
    gemma8_grammar_free(g);
    g = gbnf("root ::= x*\nx ::= \"a\" | \"a\" \"a\" | [a-z]{1,40}");
    memset(t, 'a', 300);
    CHECK(g && matches(g, t, 300));
    gemma8_grammar_free(g);
}

TEST(grammar_schema_strings_formats_patterns) {
    struct {
        const char *schema, *yes[4], *no[4];
    } cases[] = {
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", {"\"ab\"", "\"a\\\"b\"", "\"é✓x\""},
         {"\"a\"", "\"abcd\"", "\"a\nb\"", "\"ab"}},
        {"{\"type\":\"string\",\"format\":\"date\"}", {"\"2023-05-31\"", "\"0001-01-01\"", "\"2024-12-30\""},
         {"\"2023-04-31\"", "\"2023-13-01\"", "\"2023-02-30\"", "\"2023-5-1\""}},
        {"{\"type\":\"string\",\"format\":\"date-time\"}", {"\"2023-05-31T23:59:59Z\"", "\"2023-05-31T00:00:00.5+01:30\""},
         {"\"2023-05-31T24:00:00Z\"", "\"2023-05-31 10:00:00Z\"", "\"2023-05-31T10:00:00\""}},
        {"{\"type\":\"string\",\"format\":\"uuid\"}", {"\"123e4567-e89b-12d3-a456-426614174000\""},
         {"\"123e4567e89b12d3a456426614174000\"", "\"123E4567-e89b-12d3-a456-42661417400\""}},
        {"{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-[0-9]{3,4}$\"}", {"\"AB-123\"", "\"ZZ-0000\""},
         {"\"AB-12\"", "\"ab-123\"", "\"AB-12345\""}},
        {"{\"type\":\"string\",\"pattern\":\"^(yes|no)\\\"?\\\\.?$\"}", {"\"yes\"", "\"no\\\"\"", "\"no\\\".\""},
         {"\"maybe\"", "\"yes\"\""}},
        {"{\"enum\":[\"a\\\"b\",1.5,null,[1,{\"k\":true}]]}", {"\"a\\\"b\"", "1.5", "null", "[1,{\"k\":true}]"},
         {"\"ab\"", "1", "[1]"}},
        {"{\"type\":\"number\"}", {"-0.5e-12", "12", "3.25E+7", "0"}, {"01", "1.", ".5", "1e"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        gemma8_grammar *g = schema(cases[i].schema);
        for (int k = 0; g && k < 4 && cases[i].yes[k]; k++)
            CHECKF(matches(g, cases[i].yes[k], strlen(cases[i].yes[k])), "%s: %s", cases[i].schema, cases[i].yes[k]);
        for (int k = 0; g && k < 4 && cases[i].no[k]; k++)
            CHECKF(!matches(g, cases[i].no[k], strlen(cases[i].no[k])), "%s: %s", cases[i].schema, cases[i].no[k]);
        gemma8_grammar_free(g);
    }
    /* objects: properties in order, optional ones left out, no others unless allowed, and those never a known key */
    gemma8_grammar *g = schema("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":"
                               "\"boolean\"}},\"required\":[\"b\"],\"additionalProperties\":{\"type\":\"null\"}}");
    static const char *const yes[] = {"{\"b\":true}", "{ \"a\":1, \"b\":false }", "{\"b\":true,\"c\":null}",
                                      "{\"b\":true,\"ab\":null}"};
    static const char *const no[] = {"{}", "{\"a\":1}", "{\"b\":true,\"a\":null}", "{\"b\":true,\"c\":1}",
                                     "{\"b\":true,\"b\":null}"};
    for (size_t k = 0; g && k < sizeof yes / sizeof *yes; k++) CHECKF(matches(g, yes[k], strlen(yes[k])), "%s", yes[k]);
    for (size_t k = 0; g && k < sizeof no / sizeof *no; k++) CHECKF(!matches(g, no[k], strlen(no[k])), "%s", no[k]);
    gemma8_grammar_free(g);
}

TEST(grammar_schema_unsupported_keywords_refused) {
    static const char *const bad[][2] = {
        {"{\"oneOf\":[{\"type\":\"string\"}]}", "oneOf"},
        {"{\"not\":{\"type\":\"string\"}}", "not"},
        {"{\"type\":\"integer\",\"multipleOf\":3}", "multipleOf"},
        {"{\"type\":\"object\",\"minProperties\":1}", "minProperties"},
        {"{\"type\":\"object\",\"patternProperties\":{}}", "patternProperties"},
        {"{\"type\":\"array\",\"uniqueItems\":true}", "uniqueItems"},
        {"{\"if\":{},\"then\":{}}", "if"},
        {"{\"$ref\":\"http://example.com/s.json\"}", "$ref"},
        {"{\"$ref\":\"#/$defs/Missing\"}", "points to nothing"},
        {"{\"type\":\"number\",\"minimum\":0.5,\"maximum\":0.25}", "no number"},
        {"{\"type\":\"number\",\"exclusiveMinimum\":1,\"maximum\":1}", "no number"},
        {"{\"type\":\"number\",\"minimum\":\"3\"}", "'minimum'"},
        {"{\"type\":\"integer\",\"exclusiveMinimum\":2.5,\"exclusiveMaximum\":3}", "no integer"},
        {"{\"type\":\"array\",\"items\":[{\"type\":\"string\"}],\"minItems\":2}", "tuple of 1 items"},
        {"{\"prefixItems\":[{}],\"items\":{\"type\":\"string\"}}", "no 'items' schema beside it"},
        {"{\"type\":\"object\",\"anyOf\":[{\"required\":[\"a\"]}]}", "'anyOf' beside 'type'"},
        {"{\"const\":\"a\\u0000b\"}", "U+0000"},
        {"{\"type\":\"object\",\"properties\":{\"k\\u0000\":{}}}", "U+0000"},
        {"{\"type\":\"string\",\"pattern\":\"^a(?=b)$\"}", "(?"},
        {"{\"type\":\"string\",\"pattern\":\"\\\\bword\"}", "\\b"},
        {"{\"type\":\"string\",\"maxLength\":-1}", "maxLength"},
        {"{\"type\":\"integer\",\"minimum\":5,\"maximum\":4}", "no integer"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "'b'"},
        {"{\"type\":\"quaternion\"}", "quaternion"},
        {"{\"type\":[\"string\",\"null\"],\"items\":{}}", "items"},
        {"[1,2]", "schema"},
        {"{\"type\":", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gemma8_grammar *g = NULL;
        gemma8_status st = gemma8_grammar_from_json_schema(bad[i][0], &g);
        CHECKF(st == GEMMA8_ERR_INVALID_ARG && !g, "'%s' compiled", bad[i][0]);
        CHECKF(strstr(gemma8_last_error(), bad[i][1]) != NULL, "'%s': '%s' does not name '%s'", bad[i][0],
               gemma8_last_error(), bad[i][1]);
    }
    /* a format it cannot enforce: a warning, and any string */
    gemma8_grammar *g = schema("{\"type\":\"string\",\"format\":\"email\",\"title\":\"x\",\"$comment\":\"y\"}");
    CHECK(g && gemma8_grammar_warnings(g) && strstr(gemma8_grammar_warnings(g), "email"));
    CHECK(g && matches(g, "\"not an address\"", 16));
    gemma8_grammar_free(g);
}

/* ---- on the real vocabulary --------------------------------------------------- */

/* the real vocabulary on a tiny model (f32: long generations run faster than in f16) */
static gemma8_model *fullvocab(void) {
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    const char *path = fullvocab_gguf_f32();
    CHECKF(path && gemma8_model_load(path, &mp, &m) == GEMMA8_OK, "%s", gemma8_last_error());
    return m;
}

static bool bit(const uint8_t *mask, int32_t id) { return (mask[id >> 3] >> (id & 7)) & 1; }

/* The matcher's mask, along a random path, equals each token tried on its own:
 * its bytes through the automaton from the same state (kept here, apart from
 * the matcher's), the end tokens where the grammar is complete, nothing else. */
static void check_mask(gemma8_model *m, const gemma8_grammar *g, int steps, uint32_t seed) {
    const g8_vindex *vx = g8_vindex_get(m);
    gemma8_matcher *mt = NULL;
    CHECK(gemma8_matcher_new(m, g, &mt) == GEMMA8_OK);
    if (!vx || !mt) return;
    int32_t n = vx->n_vocab, *allowed = malloc((size_t)n * sizeof *allowed);
    uint8_t *mask = malloc(((size_t)n + 7) / 8);
    g8_garena a = {0};
    g8_gstate st, cur, next;
    g8_gstate_start(g, &a, &st);
    int wrong = 0;
    for (int step = 0; step < steps && !wrong; step++) {
        /* every third step with a budget that binds: 1 to 4 tokens */
        uint32_t budget = step % 3 == 2 ? 1 + (seed >> 3) % 4 : 0;
        gemma8_matcher_set_budget(mt, (int32_t)budget);
        if (gemma8_matcher_mask(mt, mask) != GEMMA8_OK) {
            CHECKF(0, "%s", gemma8_last_error());
            break;
        }
        uint32_t d0 = g8_gstate_distance(g, &a, &st);
        bool binds = budget && d0 <= budget;
        int n_allowed = 0;
        for (int32_t id = 0; id < n; id++) {
            bool want;
            if (id == m->vocab.eos || id == m->vocab.end_of_turn) {
                want = st.accept && !st.need;
            } else {
                uint32_t len = vx->text_off[id + 1] - vx->text_off[id];
                want = len > 0;
                g8_gmark mark = g8_garena_mark(&a);
                cur = st;
                for (uint32_t k = 0; want && k < len; k++) {
                    want = g8_gstate_byte(g, &a, &cur, vx->text[vx->text_off[id] + k], &next);
                    cur = next;
                }
                if (want && binds) want = g8_gstate_distance(g, &a, &cur) + 1 <= budget;
                g8_garena_reset(&a, mark);
            }
            if (want != bit(mask, id) && wrong++ < 5)
                harness_note("step %d token %d (%s): mask %d, alone %d", step, id, m->vocab.text[id], bit(mask, id),
                             want);
            if (want && !(id == m->vocab.eos || id == m->vocab.end_of_turn)) allowed[n_allowed++] = id;
        }
        if (!n_allowed) break;
        seed = seed * 1664525u + 1013904223u;
        int32_t pick = allowed[(seed >> 8) % (uint32_t)n_allowed];
        CHECK(gemma8_matcher_accept(mt, pick) == GEMMA8_OK);
        cur = st;
        for (uint32_t k = vx->text_off[pick]; k < vx->text_off[pick + 1]; k++) {
            g8_gstate_byte(g, &a, &cur, vx->text[k], &next);
            cur = next;
        }
        st = cur;
        g8_gstate_compact(&a, &st);
    }
    CHECKF(wrong == 0, "%d tokens disagree", wrong);
    g8_garena_free(&a);
    free(mask);
    free(allowed);
    gemma8_matcher_free(mt);
}

TEST(grammar_mask_equals_each_token_alone) {
    gemma8_model *m = fullvocab();
    if (!m) return;
    int steps = sanitized() ? 4 : 14;
    static const char *const schemas[] = {
        "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":6},\"n\":{\"type\":"
        "\"integer\",\"minimum\":-20,\"maximum\":300}},\"required\":[\"name\",\"n\"]}",
        NULL, /* any JSON object */
        "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"pattern\":\"^[a-f0-9]+( [a-z]{2})?$\"}}",
    };
    for (size_t i = 0; i < sizeof schemas / sizeof *schemas; i++) {
        gemma8_grammar *g = schema(schemas[i]);
        for (uint32_t seed = 1; g && seed <= 3; seed++) check_mask(m, g, steps, seed * 7919u);
        gemma8_grammar_free(g);
    }
    gemma8_grammar *g = gbnf("root ::= (\"«\" [^»\\n]{0,12} \"»\" | [0-9]+ | \" \"{1,3} \"x\")+");
    for (uint32_t seed = 1; g && seed <= 3; seed++) check_mask(m, g, steps, seed * 104729u);
    gemma8_grammar_free(g);
    gemma8_model_free(m);
}

/* A reply under the chat template, sampled at temperature 1 (no top-k/top-p). */
static char *constrained_reply(gemma8_model *m, gemma8_context *ctx, const gemma8_grammar *g, float temp,
                               uint32_t seed, gemma8_generate_result *res);

typedef struct text_buf {
    char *p;
    size_t n;
} text_buf;

static bool append_text(int32_t token, const char *text, size_t len, gemma8_run_state st, void *user) {
    (void)token, (void)st;
    text_buf *b = user;
    char *np = realloc(b->p, b->n + len + 1);
    if (!np) return false;
    memcpy(np + b->n, text, len);
    b->n += len;
    np[b->n] = 0;
    b->p = np;
    return true;
}

static char *constrained_reply(gemma8_model *m, gemma8_context *ctx, const gemma8_grammar *g, float temp,
                               uint32_t seed, gemma8_generate_result *res) {
    (void)m;
    gemma8_generate_params p = gemma8_generate_default_params();
    p.sampling.temperature = temp;
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.sampling.repeat_penalty = 1.0f;
    p.sampling.seed = seed;
    p.max_new_tokens = 300;
    p.grammar = g;
    text_buf b = {calloc(1, 1), 0};
    p.on_token = append_text;
    p.user_data = &b;
    gemma8_chat_message msg = {.role = "user", .content = "Answer in JSON."};
    gemma8_seq_clear(ctx, 0);
    CHECKF(gemma8_chat(ctx, &msg, 1, &p, res) == GEMMA8_OK, "%s", gemma8_last_error());
    return b.p;
}

/* Every schema of tests/data/json-schemas.jsonl, 20 seeds each at temperature 1
 * (no top-k/top-p), the seeds batched as sequences of one context: every reply
 * parses, and ended complete (or at the length limit, which the budget made it
 * fit). GEMMA8_GRAMMAR_OUT: the replies as JSON lines, for the JS test's ajv. */
TEST(grammar_schemas_sampled_replies_parse) {
    enum { SEEDS = 20 };
    int seeds = sanitized() ? 3 : SEEDS;
    gemma8_model *m = fullvocab();
    gemma8_context *ctx = NULL;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_seq = seeds;
    cp.n_ctx = seeds * 384;
    CHECK(m && gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK);
    FILE *f = fopen(data_path("json-schemas.jsonl"), "r");
    CHECK(f != NULL);
    const char *out_path = getenv("GEMMA8_GRAMMAR_OUT");
    FILE *out = out_path ? fopen(out_path, "w") : NULL;
    int32_t prompt[64], n_prompt = 0;
    const char *chat = "<start_of_turn>user\nAnswer in JSON.<end_of_turn>\n<start_of_turn>model\n";
    CHECK(m && gemma8_tokenize(m, chat, strlen(chat), true, true, prompt, 64, &n_prompt) == GEMMA8_OK);
    int n_schemas = 0, bad = 0, runs = 0;
    long tokens = 0;
    char line[8192];
    while (ctx && f && fgets(line, sizeof line, f)) {
        cJSON *c = cJSON_Parse(line);
        const cJSON *sch = cJSON_GetObjectItem(c, "schema"), *name = cJSON_GetObjectItem(c, "name");
        char *text = sch ? cJSON_PrintUnformatted(sch) : NULL;
        gemma8_grammar *g = text ? schema(text) : NULL;
        n_schemas += g != NULL;
        gemma8_gen *gens[SEEDS];
        bool done[SEEDS] = {0};
        text_buf reply[SEEDS] = {0};
        int made = 0;
        for (int s = 0; g && s < seeds; s++, made++) {
            gemma8_generate_params p = gemma8_generate_default_params();
            p.sampling.temperature = 1.0f;
            p.sampling.top_k = 0;
            p.sampling.top_p = 1.0f;
            p.sampling.repeat_penalty = 1.0f;
            p.sampling.seed = (uint32_t)s + 1;
            p.max_new_tokens = 300;
            p.grammar = g;
            p.seq = s;
            p.on_token = append_text;
            p.user_data = &reply[s];
            reply[s].p = calloc(1, 1);
            gemma8_seq_clear(ctx, s);
            if (gemma8_gen_begin(ctx, prompt, n_prompt, &p, &gens[s]) != GEMMA8_OK) {
                CHECKF(0, "%s", gemma8_last_error());
                break;
            }
        }
        for (bool all = made == 0; !all;) {
            if (gemma8_gen_step_many(gens, made, done) != GEMMA8_OK) {
                CHECKF(0, "%s", gemma8_last_error());
                break;
            }
            all = true;
            for (int s = 0; s < made; s++) all &= done[s];
        }
        for (int s = 0; s < made; s++) {
            gemma8_generate_result res;
            CHECK(gemma8_gen_end(gens[s], &res) == GEMMA8_OK);
            cJSON *v = cJSON_Parse(reply[s].p);
            runs++;
            tokens += res.n_generated;
            bool ended = res.stop_reason == GEMMA8_STOP_EOG || res.stop_reason == GEMMA8_STOP_LENGTH;
            if ((!v || !ended) && bad++ < 5)
                harness_note("%s seed %d: stop %d, %s", name->valuestring, s + 1, res.stop_reason, reply[s].p);
            if (out) {
                cJSON *rec = cJSON_CreateObject();
                cJSON_AddStringToObject(rec, "name", name->valuestring);
                cJSON_AddNumberToObject(rec, "seed", s + 1);
                cJSON_AddStringToObject(rec, "reply", reply[s].p);
                char *line_out = cJSON_PrintUnformatted(rec);
                fprintf(out, "%s\n", line_out);
                free(line_out);
                cJSON_Delete(rec);
            }
            cJSON_Delete(v);
            free(reply[s].p);
        }
        gemma8_grammar_free(g);
        free(text);
        cJSON_Delete(c);
    }
    if (f) fclose(f);
    if (out) fclose(out);
    CHECKF(n_schemas >= 20, "%d schemas", n_schemas);
    CHECKF(bad == 0, "%d of %d replies did not parse or did not end complete", bad, runs);
    harness_note("%d replies (%d schemas x %d seeds), %.1f tokens each", runs, n_schemas, seeds,
                 runs ? (double)tokens / runs : 0);
    gemma8_context_free(ctx);
    gemma8_model_free(m);
}

TEST(grammar_json_object_greedy_parses_and_ends) {
    gemma8_model *m = fullvocab();
    gemma8_context *ctx = NULL;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 512;
    CHECK(m && gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK);
    gemma8_grammar *g = schema(NULL);
    if (ctx && g) {
        gemma8_generate_result res;
        char *reply = constrained_reply(m, ctx, g, 0.0f, 1, &res);
        cJSON *v = reply ? cJSON_Parse(reply) : NULL;
        CHECKF(v && cJSON_IsObject(v), "%s", reply);
        /* the reply ran into its budget: the budget closed it in time */
        CHECKF(res.n_generated <= 300, "%d", res.n_generated);
        cJSON_Delete(v);
        free(reply);
    }
    gemma8_grammar_free(g);
    gemma8_context_free(ctx);
    gemma8_model_free(m);
}

/* Control and unused tokens never; the end tokens only where complete, and then
 * nothing else when nothing else can follow. */
TEST(grammar_control_tokens_never_allowed) {
    gemma8_model *m = fullvocab();
    gemma8_grammar *g = gbnf("root ::= \"{\" [^}]* \"}\"");
    gemma8_matcher *mt = NULL;
    CHECK(m && g && gemma8_matcher_new(m, g, &mt) == GEMMA8_OK);
    if (!mt) goto done;
    int32_t n = m->vocab.n;
    uint8_t *mask = malloc(((size_t)n + 7) / 8);
    int32_t open = g8_vocab_find(&m->vocab, "{", 1), close = g8_vocab_find(&m->vocab, "}", 1);
    CHECK(open >= 0 && close >= 0);
    for (int step = 0; step < 3; step++) {
        CHECK(gemma8_matcher_mask(mt, mask) == GEMMA8_OK);
        int controls = 0;
        for (int32_t id = 0; id < n; id++) {
            int t = m->vocab.type[id];
            bool never = t == G8_TOKEN_CONTROL || t == G8_TOKEN_UNUSED || t == G8_TOKEN_UNKNOWN ||
                         (t == G8_TOKEN_USER_DEFINED && m->vocab.special[id]);
            if (never && bit(mask, id) && id != m->vocab.eos && id != m->vocab.end_of_turn) controls++;
        }
        CHECKF(controls == 0, "step %d: %d control/unused tokens allowed", step, controls);
        bool done = step == 2;
        CHECK(bit(mask, m->vocab.end_of_turn) == done && bit(mask, m->vocab.eos) == done);
        /* inside the braces <start_of_turn>'s text would fit; it stays out */
        CHECK(!bit(mask, m->vocab.start_of_turn));
        if (step == 0) CHECK(gemma8_matcher_accept(mt, open) == GEMMA8_OK);
        if (step == 1) CHECK(gemma8_matcher_accept(mt, close) == GEMMA8_OK);
    }
    CHECK(gemma8_matcher_done(mt));
    CHECK(gemma8_matcher_accept(mt, open) == GEMMA8_ERR_INVALID_ARG);
    CHECK(gemma8_matcher_accept(mt, m->vocab.end_of_turn) == GEMMA8_OK);
    free(mask);
done:
    gemma8_matcher_free(mt);
    gemma8_grammar_free(g);
    gemma8_model_free(m);
}

/* Four streams in one batched step, each with its own schema: each equals itself alone. */
TEST(grammar_per_sequence_in_batched_steps) {
    gemma8_model *m = fullvocab();
    gemma8_context *ctx = NULL;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 2048;
    cp.n_seq = 4;
    CHECK(m && gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK);
    static const char *const schemas[4] = {
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"]}",
        "{\"type\":\"array\",\"items\":{\"enum\":[\"x\",\"y\"]},\"maxItems\":5}",
        "{\"type\":\"string\",\"maxLength\":10}",
        NULL,
    };
    gemma8_grammar *g[4] = {0};
    text_buf together[4] = {0}, alone[4] = {0};
    int32_t prompt[3] = {2, 106, 1645};
    for (int q = 0; q < 4; q++) g[q] = schema(schemas[q]);
    gemma8_gen *gens[4] = {0};
    bool done[4] = {0};
    for (int round = 0; ctx && round < 2; round++) {
        text_buf *out = round ? alone : together;
        for (int q = 0; q < 4; q++) {
            gemma8_generate_params p = gemma8_generate_default_params();
            p.sampling.temperature = 1.0f;
            p.sampling.seed = 11u + (uint32_t)q;
            p.max_new_tokens = 60;
            p.grammar = g[q];
            p.seq = q;
            p.on_token = append_text;
            p.user_data = &out[q];
            out[q].p = calloc(1, 1);
            gemma8_seq_clear(ctx, q);
            CHECK(gemma8_gen_begin(ctx, prompt, 3, &p, &gens[q]) == GEMMA8_OK);
            if (round) { /* alone: one at a time */
                bool d = false;
                while (!d) CHECK(gemma8_gen_step(gens[q], &d) == GEMMA8_OK);
                gemma8_gen_end(gens[q], NULL);
            }
        }
        if (!round) {
            for (bool all = false; !all;) {
                CHECK(gemma8_gen_step_many(gens, 4, done) == GEMMA8_OK);
                all = done[0] && done[1] && done[2] && done[3];
            }
            for (int q = 0; q < 4; q++) gemma8_gen_end(gens[q], NULL);
        }
    }
    for (int q = 0; ctx && q < 4; q++) {
        CHECKF(!strcmp(together[q].p, alone[q].p), "stream %d: '%s' vs '%s'", q, together[q].p, alone[q].p);
        cJSON *v = cJSON_Parse(together[q].p);
        CHECKF(v != NULL, "stream %d: %s", q, together[q].p);
        cJSON_Delete(v);
    }
    for (int q = 0; q < 4; q++) {
        free(together[q].p);
        free(alone[q].p);
        gemma8_grammar_free(g[q]);
    }
    gemma8_context_free(ctx);
    gemma8_model_free(m);
}

/* ---- tool calls --------------------------------------------------------------------------- */

static const gemma8_tool weather_tools[] = {
    {"get_weather", "The weather in a city",
     "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": "
     "\"integer\", "
     "\"minimum\": 1, \"maximum\": 7}}, \"required\": [\"city\"], \"additionalProperties\": false}"},
    {"now", NULL, NULL},
};

#define M(s) matches(g, s, strlen(s))

/* The instructions, as a golden string; the grammar under each choice: text only where text may be,
 * calls only to the tools given, with arguments of their schema, one or several as asked. */
TEST(tools_prompt_and_grammar) {
    size_t len = 0;
    CHECK(gemma8_tools_prompt(weather_tools, 2, NULL, 0, &len) == GEMMA8_ERR_BUFFER_TOO_SMALL && len > 0);
    char *text = malloc(len + 1);
    CHECK(gemma8_tools_prompt(weather_tools, 2, text, len + 1, &len) == GEMMA8_OK);
    const char *want =
        "You have access to functions. If you decide to call any of them, reply with only this block, one "
        "line "
        "per call, and no other text:\n```tool_call\n{\"name\": \"function_name\", \"arguments\": "
        "{\"parameter\": "
        "\"value\"}}\n```\nThe functions, with the JSON Schema of their arguments:\n[\n"
        "{\"name\":\"get_weather\",\"description\":\"The weather in a "
        "city\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\",\"minimum\":1,"
        "\"maximum\":7}},"
        "\"required\":[\"city\"],\"additionalProperties\":false}},\n"
        "{\"name\":\"now\",\"parameters\":{}}\n]\nTheir results come back in ```tool_output blocks.";
    CHECKF(!strcmp(text, want), "got:\n%s", text);
    free(text);
    const char *call =
        "```tool_call\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n```";
    const char *call2 = "```tool_call\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n"
                        "{\"name\":\"now\",\"arguments\":{}}\n```";
    gemma8_grammar *g = NULL;
    CHECK(gemma8_grammar_from_tools(weather_tools, 2, GEMMA8_TOOLS_AUTO, NULL, true, &g) == GEMMA8_OK);
    if (g) {
        CHECK(M("Hello there.") && M("") && M("`x`") && M("```python\nprint(1)\n```") && M("```tool_call"));
        CHECK(M(call) && M(call2));
        CHECK(!M("```tool_call\n{\"name\": \"get_weather\", \"arguments\": {\"city\": 5}}\n```"));
        CHECK(!M(
            "```tool_call\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a\", \"days\": 9}}\n```"));
        CHECK(!M("```tool_call\n{\"name\": \"get_weather\", \"arguments\": {}}\n```")); /* city is required */
        CHECK(!M("```tool_call\n{\"name\": \"fly\", \"arguments\": {}}\n```"));
        CHECK(!M("```tool_call\nHello\n```") && !M("```tool_call\n"));
    }
    gemma8_grammar_free(g);
    CHECK(gemma8_grammar_from_tools(weather_tools, 2, GEMMA8_TOOLS_REQUIRED, NULL, false, &g) == GEMMA8_OK);
    if (g) CHECK(M(call) && !M(call2) && !M("Hello") && !M(""));
    gemma8_grammar_free(g);
    CHECK(gemma8_grammar_from_tools(weather_tools, 2, GEMMA8_TOOLS_NONE, NULL, true, &g) == GEMMA8_OK);
    if (g) CHECK(!M(call) && M("Hello"));
    gemma8_grammar_free(g);
    CHECK(gemma8_grammar_from_tools(weather_tools, 2, GEMMA8_TOOLS_REQUIRED, "now", false, &g) == GEMMA8_OK);
    if (g) CHECK(!M(call) && M("```tool_call\n{\"name\": \"now\", \"arguments\": {}}\n```"));
    gemma8_grammar_free(g);
    /* bad input names the problem */
    const gemma8_tool bad_name[] = {{"get weather", NULL, NULL}};
    const gemma8_tool twice[] = {{"a", NULL, NULL}, {"a", NULL, NULL}};
    const gemma8_tool not_object[] = {{"a", NULL, "[1]"}};
    CHECK(gemma8_grammar_from_tools(bad_name, 1, GEMMA8_TOOLS_AUTO, NULL, true, &g) ==
          GEMMA8_ERR_INVALID_ARG);
    CHECK(strstr(gemma8_last_error(), "'get weather'") != NULL);
    CHECK(gemma8_tools_prompt(twice, 2, NULL, 0, &len) == GEMMA8_ERR_INVALID_ARG);
    CHECK(gemma8_tools_prompt(not_object, 1, NULL, 0, &len) == GEMMA8_ERR_INVALID_ARG);
    CHECK(gemma8_grammar_from_tools(weather_tools, 2, GEMMA8_TOOLS_AUTO, "fly", true, &g) ==
          GEMMA8_ERR_INVALID_ARG);
}

/* Schemas agents send with keywords the engine does not enforce: never an error; what is dropped is
 * named, and what is enforced still is ($ref, required, types). */
TEST(tools_schema_keywords_dropped_not_refused) {
    const gemma8_tool tools[] = {
        {"edit", NULL,
         "{\"$schema\": \"http://json-schema.org/draft-07/schema#\", \"type\": \"object\", \"properties\": "
         "{\"path\": {\"type\": \"string\"}, \"opts\": {\"$ref\": \"#/definitions/Opts\"}}, \"required\": "
         "[\"path\"], "
         "\"propertyNames\": {\"pattern\": \"^[a-z]+$\"}, \"definitions\": {\"Opts\": {\"type\": \"object\", "
         "\"properties\": {\"n\": {\"type\": \"integer\"}}, \"minProperties\": 1}}}"},
        {"odd", NULL,
         "{\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"(?<=a)b\"}}}"},
    };
    gemma8_grammar *g = NULL;
    CHECKF(gemma8_grammar_from_tools(tools, 2, GEMMA8_TOOLS_REQUIRED, NULL, true, &g) == GEMMA8_OK, "%s",
           gemma8_last_error());
    if (!g) return;
    const char *w = gemma8_grammar_warnings(g);
    CHECKF(w && strstr(w, "tool 'edit'") && strstr(w, "'propertyNames'") && strstr(w, "'minProperties'"),
           "%s", w ? w : "(none)");
    CHECKF(w && strstr(w, "tool 'odd': its schema cannot be enforced"), "%s", w ? w : "(none)");
    CHECK(
        M("```tool_call\n{\"name\": \"edit\", \"arguments\": {\"path\": \"a\", \"opts\": {\"n\": 2}}}\n```"));
    CHECK(!M("```tool_call\n{\"name\": \"edit\", \"arguments\": {\"opts\": {\"n\": 2}}}\n```"));
    CHECK(!M("```tool_call\n{\"name\": \"edit\", \"arguments\": {\"path\": \"a\", \"opts\": {\"n\": "
             "\"2\"}}}\n```"));
    CHECK(M("```tool_call\n{\"name\": \"odd\", \"arguments\": {\"anything\": [1]}}\n```"));
    gemma8_grammar_free(g);
}
#undef M

/* A sampler with a logit_bias keeps it when a grammar is set, replaced and removed (it freed the bias
 * list once: a use after free under the server's tools + logit_bias). */
TEST(grammar_with_logit_bias) {
    gemma8_model *m = fullvocab();
    if (!m) return;
    int32_t a, b, n;
    CHECK(gemma8_tokenize(m, "a", 1, false, false, &a, 1, &n) == GEMMA8_OK && n == 1);
    CHECK(gemma8_tokenize(m, "b", 1, false, false, &b, 1, &n) == GEMMA8_OK && n == 1);
    gemma8_logit_bias bias[1] = {{b, 50.0f}};
    gemma8_sampler_params p = gemma8_sampler_default_params();
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    gemma8_sampler *s = NULL;
    gemma8_grammar *g = gbnf("root ::= \"a\" | \"b\"");
    const int V = gemma8_model_get_info(m).n_vocab;
    float *lg = calloc((size_t)V, sizeof *lg);
    if (g && lg && CHECK(gemma8_sampler_new(&p, &s) == GEMMA8_OK)) {
        for (int round = 0; round < 3; round++) {
            CHECK(gemma8_sampler_set_grammar(s, m, round == 2 ? NULL : g) == GEMMA8_OK);
            lg[a] = 10.0f; /* a is far more likely, but b's bias wins */
            int32_t tok = -1;
            CHECK(gemma8_sampler_sample(s, lg, V, &tok) == GEMMA8_OK && tok == b);
            gemma8_sampler_reset(s);
        }
    }
    gemma8_sampler_free(s);
    gemma8_grammar_free(g);
    free(lg);
    gemma8_model_free(m);
}
