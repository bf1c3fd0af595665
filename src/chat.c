/* chat.c - the public tokenizer calls and Gemma's chat template. */
#include "model.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

static gemma8_status need_vocab(const gemma8_model *m) {
    if (!m) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no model given");
    if (!m->has_vocab) return g8_fail(GEMMA8_ERR_UNSUPPORTED, "this model file has no tokenizer");
    return GEMMA8_OK;
}

/* Copies ids to out (if they fit) and reports the count. */
static gemma8_status emit(const g8_ids *ids, int32_t *out, int32_t max, int32_t *n_out) {
    if (ids->n > INT32_MAX) return g8_fail(GEMMA8_ERR_INVALID_ARG, "too many tokens");
    *n_out = (int32_t)ids->n;
    if ((int64_t)ids->n > max || (!out && ids->n))
        return g8_fail(GEMMA8_ERR_BUFFER_TOO_SMALL, "%zu tokens do not fit in a buffer of %d", ids->n, max);
    if (ids->n) memcpy(out, ids->v, ids->n * sizeof(int32_t));
    return GEMMA8_OK;
}

gemma8_status gemma8_tokenize(const gemma8_model *model, const char *text, size_t len, bool add_bos,
                              bool parse_special, int32_t *out, int32_t max, int32_t *n_out) {
    *n_out = 0;
    gemma8_status st = need_vocab(model);
    if (st) return st;
    if (!text && len) return g8_fail(GEMMA8_ERR_INVALID_ARG, "no text given");
    g8_ids ids = {0};
    if (add_bos && model->vocab.bos >= 0 && !g8_ids_push(&ids, model->vocab.bos))
        st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    if (!st) st = g8_tokenize(&model->vocab, text, len, parse_special, &ids);
    if (!st) st = emit(&ids, out, max, n_out);
    free(ids.v);
    return st;
}

gemma8_status gemma8_detokenize(const gemma8_model *model, const int32_t *ids, int32_t n, bool skip_special,
                                char *buf, size_t cap, size_t *n_out) {
    *n_out = 0;
    gemma8_status st = need_vocab(model);
    if (st) return st;
    if (n < 0 || (!ids && n)) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid token list");
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= model->vocab.n)
            return g8_fail(GEMMA8_ERR_INVALID_ARG, "token id %d is outside the vocabulary (0..%d)", ids[i],
                           model->vocab.n - 1);
    size_t len;
    char *s = g8_detokenize(&model->vocab, ids, (size_t)n, skip_special, &len);
    if (!s) return GEMMA8_ERR_NOMEM;
    *n_out = len;
    if (len + 1 > cap || !buf) st = g8_fail(GEMMA8_ERR_BUFFER_TOO_SMALL, "%zu bytes of text do not fit in %zu", len, cap);
    else memcpy(buf, s, len + 1);
    free(s);
    return st;
}

int32_t gemma8_token_bos(const gemma8_model *m) { return m->has_vocab ? m->vocab.bos : -1; }
int32_t gemma8_token_eos(const gemma8_model *m) { return m->has_vocab ? m->vocab.eos : -1; }
int32_t gemma8_token_end_of_turn(const gemma8_model *m) { return m->has_vocab ? m->vocab.end_of_turn : -1; }

bool gemma8_token_is_eog(const gemma8_model *m, int32_t token) {
    return token >= 0 && (token == gemma8_token_eos(m) || token == gemma8_token_end_of_turn(m));
}

/* ---- chat template --------------------------------------------------------- */

/* Python's str.isspace (what Jinja's trim strips), for one code point. */
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Decodes the code point at s (n bytes left); returns its length, 0 if invalid. */
static size_t cp_at(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!k || k > n) return 0;
    uint32_t v = k == 1 ? c : c & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return k;
}

/* Trims Python whitespace from both ends of s[0..n). */
static void trim(const char *s, size_t n, size_t *b, size_t *e) {
    *b = 0;
    *e = n;
    uint32_t cp;
    size_t k;
    while (*b < n && (k = cp_at((const uint8_t *)s + *b, n - *b, &cp)) && py_space(cp)) *b += k;
    while (*e > *b) {
        size_t start = *e - 1; /* step back to the start of the last code point */
        while (start > *b && ((uint8_t)s[start] & 0xc0) == 0x80 && *e - start < 4) start--;
        if (!(k = cp_at((const uint8_t *)s + start, *e - start, &cp)) || start + k != *e || !py_space(cp)) break;
        *e = start;
    }
}

static bool is_gemma_template(const char *t) {
    return t && strstr(t, "<start_of_turn>") && strstr(t, "<end_of_turn>") && strstr(t, "model");
}

/* Gemma 3's template (first_user_prefix): the system text kept as it is, each part trimmed. A file
 * without a template follows its architecture's. */
static bool keeps_system_text(const gemma8_model *m) {
    const char *t = m->vocab.chat_template;
    return t ? strstr(t, "first_user_prefix") != NULL : m->hp.arch->template_keeps_system;
}

/* Appends s, trimmed if asked. */
static void put(g8_sbuf *sb, const char *s, bool trimmed) {
    size_t b = 0, e = strlen(s);
    if (trimmed) trim(s, e, &b, &e);
    g8_sb_put(sb, s + b, e - b);
}

/* A message's text parts (or its content) */
static int32_t n_parts(const gemma8_chat_message *m) { return m->n_parts > 0 ? m->n_parts : 1; }
static const char *part(const gemma8_chat_message *m, int32_t i) {
    const char *p = m->n_parts > 0 ? m->parts[i] : m->content;
    return p ? p : "";
}

/* The text of a turn: role ("user\n" or "model\n") and its content, the system text folded into the first. */
static void turn_text(g8_sbuf *sb, const char *role, const gemma8_chat_message *sys, const gemma8_chat_message *m,
                      bool keep_system) {
    g8_sb_put(sb, role, strlen(role));
    if (keep_system) { /* "{system}\n\n" + each part trimmed */
        if (sys) {
            put(sb, part(sys, 0), false);
            g8_sb_put(sb, "\n\n", 2);
        }
        for (int32_t i = 0; i < n_parts(m); i++) put(sb, part(m, i), true);
        return;
    }
    g8_sbuf whole = {0}; /* trim("{system}\n\n" + the parts joined) */
    for (int32_t i = 0; sys && i < n_parts(sys); i++) put(&whole, part(sys, i), false);
    if (sys) g8_sb_put(&whole, "\n\n", 2);
    for (int32_t i = 0; i < n_parts(m); i++) put(&whole, part(m, i), false);
    if (whole.oom) sb->oom = true;
    else put(sb, whole.p ? whole.p : "", true);
    free(whole.p);
}

gemma8_status gemma8_chat_tokenize(const gemma8_model *model, const gemma8_chat_message *msgs, int32_t n_msgs,
                                   bool add_generation_prompt, int32_t *out, int32_t max, int32_t *n_out) {
    *n_out = 0;
    gemma8_status st = need_vocab(model);
    if (st) return st;
    const g8_vocab *v = &model->vocab;
    if (v->chat_template && !is_gemma_template(v->chat_template))
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "the model's chat template is not Gemma's; gemma8 only renders Gemma's");
    if (v->start_of_turn < 0 || v->end_of_turn < 0)
        return g8_fail(GEMMA8_ERR_UNSUPPORTED, "the vocabulary has no <start_of_turn>/<end_of_turn> tokens");
    if (n_msgs < 0 || (!msgs && n_msgs)) return g8_fail(GEMMA8_ERR_INVALID_ARG, "invalid message list");
    const bool keep_system = keeps_system_text(model);
    const gemma8_chat_message *system = NULL;
    int32_t first = 0;
    if (n_msgs > 0 && msgs[0].role && !strcmp(msgs[0].role, "system")) {
        system = &msgs[0];
        first = 1;
    }
    g8_ids ids = {0};
    g8_sbuf text = {0};
    if (v->bos >= 0 && !g8_ids_push(&ids, v->bos)) goto oom;
    for (int32_t i = first; i < n_msgs; i++) {
        const char *role = msgs[i].role;
        if (!role) {
            st = g8_fail(GEMMA8_ERR_INVALID_ARG, "message %d has no role", i);
            goto done;
        }
        bool user = !strcmp(role, "user");
        bool model_role = !strcmp(role, "assistant") || !strcmp(role, "model");
        if (!user && !model_role) {
            st = g8_fail(GEMMA8_ERR_INVALID_ARG, "message %d has role '%s' (user, assistant, or a first system)", i, role);
            goto done;
        }
        if (user != ((i - first) % 2 == 0)) {
            st = g8_fail(GEMMA8_ERR_INVALID_ARG, "conversation roles must alternate user/assistant/user/... (message %d)", i);
            goto done;
        }
        if (msgs[i].n_parts < 0 || (msgs[i].n_parts > 0 && !msgs[i].parts)) {
            st = g8_fail(GEMMA8_ERR_INVALID_ARG, "message %d has an invalid list of parts", i);
            goto done;
        }
        text.n = 0;
        turn_text(&text, user ? "user\n" : "model\n", i == first ? system : NULL, &msgs[i], keep_system);
        if (text.oom || !g8_ids_push(&ids, v->start_of_turn)) goto oom;
        if ((st = g8_tokenize(v, text.p, text.n, false, &ids))) goto done;
        if (!g8_ids_push(&ids, v->end_of_turn)) goto oom;
        if ((st = g8_tokenize(v, "\n", 1, false, &ids))) goto done;
    }
    if (system && n_msgs == 1) {
        st = g8_fail(GEMMA8_ERR_INVALID_ARG, "a system message needs a user message after it");
        goto done;
    }
    if (add_generation_prompt) {
        if (!g8_ids_push(&ids, v->start_of_turn)) goto oom;
        if ((st = g8_tokenize(v, "model\n", 6, false, &ids))) goto done;
    }
    st = emit(&ids, out, max, n_out);
    goto done;
oom:
    st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory building the chat prompt");
done:
    free(text.p);
    free(ids.v);
    return st;
}
