/* test-lora.c - LoRA adapters against PEFT's reference logits (tiny-a-lora),
 * llama.cpp's adapter file, the converter's output, and bad adapters. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A base fixture, its PEFT adapter, and the adapter as llama.cpp's tools wrote it. */
typedef struct lora_case {
    const char *base, *peft, *gguf;
} lora_case;

static const lora_case gemma2_case = {"tiny-a", "tiny-a-lora", "llamacpp-gguf/tiny-a-lora.gguf"};
/* gemma3-tiny-a-lora.gguf: llama.cpp's convert_lora_to_gguf.py (tests/data/llamacpp-gguf/README.md) */
static const lora_case gemma3_case = {"gemma3/tiny-a", "gemma3/tiny-a-lora",
                                      "llamacpp-gguf/gemma3-tiny-a-lora.gguf"};

static gemma8_model *load_base(const char *fixture, gemma8_type type) {
    const char *path = convert_fixture(fixture, type);
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    if (path) CHECKF(gemma8_model_load(path, &mp, &m) == GEMMA8_OK, "%s", gemma8_last_error());
    return m;
}

static gemma8_context *new_ctx(gemma8_model *m, int n_seq) {
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 64 * n_seq;
    cp.n_seq = n_seq;
    cp.n_batch = 7; /* several chunks */
    gemma8_context *ctx = NULL;
    CHECKF(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK, "%s", gemma8_last_error());
    return ctx;
}

/* logits of every position of tokens on sequence s (T x V, malloc'd) */
static float *eval_seq(gemma8_context *ctx, int s, const int32_t *tok, int T, int V) {
    float *out = malloc((size_t)T * V * sizeof(float));
    if (out && !CHECKF(t_eval(ctx, s, tok, T, out) == GEMMA8_OK, "%s", gemma8_last_error())) {
        free(out);
        return NULL;
    }
    return out;
}

typedef struct ref_seq {
    int32_t *tok;
    float *base, *lora; /* tiny-a's reference, and base + adapter's */
    int T;
} ref_seq;

static bool load_refs(const lora_case *lc, ref_seq *r) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/reference.safetensors", data_path(lc->base));
    snprintf(b, sizeof b, "%s/reference.safetensors", data_path(lc->peft));
    size_t T, n1, n2, T2;
    r->tok = ref_load(b, "seq0.tokens", &T);
    int32_t *tok_base = ref_load(a, "seq0.tokens", &T2);
    r->lora = ref_load(b, "seq0.logits", &n1);
    r->base = ref_load(a, "seq0.logits", &n2);
    r->T = (int)T;
    bool same = tok_base && r->tok && T == T2 && !memcmp(tok_base, r->tok, T * sizeof(int32_t));
    free(tok_base);
    return CHECKF(same && r->lora && r->base, "the two references hold different sequences");
}

static void free_refs(ref_seq *r) {
    free(r->tok);
    free(r->base);
    free(r->lora);
}

/* tiny-a of a type and both references; false (with nothing left to free) if any is missing */
static bool load_base_and_refs(const lora_case *lc, gemma8_type type, gemma8_model **m, ref_seq *r) {
    memset(r, 0, sizeof *r);
    *m = load_base(lc->base, type);
    if (*m && load_refs(lc, r)) return true;
    gemma8_model_free(*m);
    free_refs(r);
    return false;
}

/* The PEFT folder and llama.cpp's file, on an f32 base, give PEFT's logits
 * (1e-3); on a q8_0 base they stay within the w8a8 tolerance; scale 0 gives the
 * base bit for bit; a sequence with the adapter and one without, interleaved in
 * one context and batched together, each match their reference. */
static void check_runtime(const lora_case *lc, gemma8_type type) {
    gemma8_model *m;
    ref_seq r;
    if (!load_base_and_refs(lc, type, &m, &r)) return;
    const int V = gemma8_model_get_info(m).n_vocab, T = r.T;
    char peft[512], gguf[512];
    snprintf(peft, sizeof peft, "%s", data_path(lc->peft));
    snprintf(gguf, sizeof gguf, "%s", data_path(lc->gguf));
    const char *paths[2] = {peft, gguf};
    for (int p = 0; p < 2; p++) {
        gemma8_lora *lora = NULL;
        if (!CHECKF(gemma8_lora_load(m, paths[p], &lora) == GEMMA8_OK, "%s", gemma8_last_error())) continue;
        gemma8_context *ctx = new_ctx(m, 2);
        const gemma8_lora *set[1] = {lora};
        const float one = 1.0f, zero = 0.0f;
        float *base = ctx ? eval_seq(ctx, 1, r.tok, T, V) : NULL; /* sequence 1 has no adapter */
        CHECK(ctx && gemma8_seq_set_lora(ctx, 0, set, &one, 1) == GEMMA8_OK);
        float *got = ctx ? eval_seq(ctx, 0, r.tok, T, V) : NULL;
        if (got && base) {
            const float d = max_abs_diff(got, r.lora, (size_t)T * V);
            const double kl = mean_kl(r.lora, got, T, V);
            if (type == GEMMA8_TYPE_F32)
                CHECKF(d <= 1e-3f, "%s on f32: max |diff| %g from PEFT's logits", paths[p], d);
            else
                CHECKF(kl <= 1e-3 && argmax_agree(got, r.lora, T, V) * 100 >= 99 * T, "%s on q8_0: mean KL %g",
                       paths[p], kl);
            harness_note("%s on %s: max |diff| %.3g from PEFT (mean KL %.3g); without it %.3g from PEFT",
                         p ? "llama.cpp's file" : "the PEFT folder",
                         gemma8_type_name(type), d, kl,
                         max_abs_diff(base, r.lora, (size_t)T * V));
        }
        /* scale 0: the base, bit for bit (the set changed: the sequence starts over) */
        CHECK(ctx && gemma8_seq_set_lora(ctx, 0, set, &zero, 1) == GEMMA8_OK && gemma8_seq_n_past(ctx, 0) == 0);
        float *z = ctx ? eval_seq(ctx, 0, r.tok, T, V) : NULL;
        CHECK(z && base && !memcmp(z, base, (size_t)T * V * sizeof(float)));
        /* interleaved and batched: sequence 0 under the adapter, 1 without, one token each a step */
        float *rows = malloc((size_t)2 * V * sizeof(float));
        int diffs = 0;
        if (ctx && rows && got && base) {
            CHECK(gemma8_seq_set_lora(ctx, 0, set, &one, 1) == GEMMA8_OK);
            gemma8_seq_clear(ctx, 1);
            for (int t = 0; t < T; t++) {
                const int32_t seqs[2] = {t % 2, 1 - t % 2}, ids[2] = {r.tok[t], r.tok[t]};
                CHECK(t_decode_runs(ctx, seqs, ids, 2, rows) == GEMMA8_OK);
                const float *l0 = rows + (size_t)(t % 2) * V, *l1 = rows + (size_t)(1 - t % 2) * V;
                diffs += memcmp(l0, got + (size_t)t * V, V * 4) || memcmp(l1, base + (size_t)t * V, V * 4);
            }
            CHECKF(diffs == 0, "%d of %d batched steps differ from each sequence alone", diffs, T);
        }
        free(rows);
        free(z);
        free(got);
        free(base);
        gemma8_context_free(ctx);
        gemma8_lora_free(lora);
    }
    free_refs(&r);
    gemma8_model_free(m);
}

TEST(lora_runtime_f32_matches_peft) { check_runtime(&gemma2_case, GEMMA8_TYPE_F32); }
TEST(lora_runtime_q8_0_within_w8a8) { check_runtime(&gemma2_case, GEMMA8_TYPE_Q8_0); }
TEST(lora_gemma3_runtime_f32_matches_peft) { check_runtime(&gemma3_case, GEMMA8_TYPE_F32); }
TEST(lora_gemma3_runtime_q8_0_within_w8a8) { check_runtime(&gemma3_case, GEMMA8_TYPE_Q8_0); }

/* convert-lora writes, from the PEFT folder, the file llama.cpp's tools wrote
 * for the same adapter: same keys, names, shapes, values, bytes. */
TEST(lora_convert_matches_llamacpp_file) {
    const char *out = tmp_path("tiny-a-lora.gguf");
    CHECKF(gemma8_lora_convert(data_path("tiny-a-lora"), out) == GEMMA8_OK, "%s", gemma8_last_error());
    char want[512];
    snprintf(want, sizeof want, "%s", data_path("llamacpp-gguf/tiny-a-lora.gguf"));
    FILE *a = fopen(out, "rb"), *b = fopen(want, "rb");
    size_t same = 0, total = 0;
    int ca = 0, cb = 0;
    while (a && b) {
        ca = fgetc(a);
        cb = fgetc(b);
        if (ca == EOF || cb == EOF) break;
        total++;
        same += ca == cb;
    }
    CHECKF(a && b && ca == EOF && cb == EOF && same == total && total > 0, "%zu of %zu bytes equal", same, total);
    if (a) fclose(a);
    if (b) fclose(b);
}

/* gemma3: convert-lora writes the tensors llama.cpp's convert_lora_to_gguf.py wrote (names, types,
 * shapes, bytes) and its adapter keys; llama.cpp's file also has general.name and
 * general.quantization_version, which no loader reads. */
TEST(lora_convert_gemma3_matches_llamacpp_tensors) {
    const char *out = tmp_path("gemma3-tiny-a-lora.gguf");
    CHECKF(gemma8_lora_convert(data_path("gemma3/tiny-a-lora"), out) == GEMMA8_OK, "%s", gemma8_last_error());
    gguf_file a, b;
    if (!CHECK(g8_gguf_open(out, &a) == GEMMA8_OK)) return;
    if (!CHECK(g8_gguf_open(data_path("llamacpp-gguf/gemma3-tiny-a-lora.gguf"), &b) == GEMMA8_OK)) {
        g8_gguf_close(&a);
        return;
    }
    CHECKF(a.n_tensors == b.n_tensors, "%llu tensors, llama.cpp's file %llu", (unsigned long long)a.n_tensors,
           (unsigned long long)b.n_tensors);
    const int same = same_tensors(&a, &b);
    const char *strs[] = {"general.architecture", "general.type", "adapter.type"};
    for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++) {
        gemma8_status st;
        gguf_str va = {0}, vb = {0};
        const bool both = g8_gguf_get_str(&a, strs[k], &va, &st) && g8_gguf_get_str(&b, strs[k], &vb, &st);
        CHECKF(both && va.len == vb.len && !memcmp(va.p, vb.p, va.len), "key %s", strs[k]);
    }
    gemma8_status st;
    float alpha_a = 0, alpha_b = 1;
    CHECK(g8_gguf_get_f32(&a, "adapter.lora.alpha", &alpha_a, &st) &&
          g8_gguf_get_f32(&b, "adapter.lora.alpha", &alpha_b, &st) && alpha_a == alpha_b);
    harness_note("%d of %llu tensors byte-identical to llama.cpp's convert_lora_to_gguf.py", same,
                 (unsigned long long)b.n_tensors);
    g8_gguf_close(&a);
    g8_gguf_close(&b);
}

/* writes text to dir/name */
static void write_file(const char *dir, const char *name, const void *data, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*n + 1);
    if (buf && fread(buf, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return buf;
}

/* A PEFT folder with tiny-a-lora's tensors and this config. */
static const char *peft_with_config(const char *name, const char *config) {
    const char *dir = tmp_path(name);
    mkdir(dir, 0755);
    size_t n = 0;
    char src[512];
    snprintf(src, sizeof src, "%s", data_path("tiny-a-lora/adapter_model.safetensors"));
    char *st = read_all(src, &n);
    write_file(dir, "adapter_model.safetensors", st, n);
    write_file(dir, "adapter_config.json", config, strlen(config));
    free(st);
    return dir;
}

/* Adapters that do not fit or are damaged get an error that names the problem. */
TEST(lora_bad_adapters) {
    gemma8_model *m = load_base("tiny-a", GEMMA8_TYPE_F32);
    const char *b_path = convert_fixture("tiny-b", GEMMA8_TYPE_F32);
    gemma8_model *other = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!m || !b_path || !CHECK(gemma8_model_load(b_path, &mp, &other) == GEMMA8_OK)) {
        gemma8_model_free(m);
        return;
    }
    gemma8_lora *l = NULL;
    /* made for another model (tiny-b has other shapes) */
    CHECK(gemma8_lora_load(other, data_path("tiny-a-lora"), &l) == GEMMA8_ERR_FORMAT && !l);
    CHECKF(strstr(gemma8_last_error(), "another model") != NULL, "%s", gemma8_last_error());
    /* PEFT variants gemma8 refuses */
    const char *cfg[][2] = {
        {"dora", "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"use_dora\":true,\"target_modules\":[\"q_proj\"]}"},
        {"embed", "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"embed_tokens\"]}"},
        {"save", "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\"],"
                 "\"modules_to_save\":[\"lm_head\"]}"},
        {"rank0", "{\"peft_type\":\"LORA\",\"r\":0,\"lora_alpha\":8,\"target_modules\":[\"q_proj\"]}"},
        {"bias", "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"bias\":\"all\",\"target_modules\":[\"q_proj\"]}"},
        {"notjson", "{\"peft_type\":"},
    };
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        l = NULL;
        gemma8_status st = gemma8_lora_load(m, peft_with_config(cfg[i][0], cfg[i][1]), &l);
        CHECKF(st != GEMMA8_OK && !l, "%s accepted", cfg[i][0]);
        harness_note("%s: %s", cfg[i][0], gemma8_last_error());
    }
    /* llama.cpp's file cut short, or with a byte of its header changed */
    size_t n = 0;
    char src[512];
    snprintf(src, sizeof src, "%s", data_path("llamacpp-gguf/tiny-a-lora.gguf"));
    char *g = read_all(src, &n);
    const char *dir = tmp_path("");
    for (size_t cut = 8; g && cut < n; cut = cut * 3 + 1) {
        write_file(dir, "cut.gguf", g, cut);
        l = NULL;
        CHECKF(gemma8_lora_load(m, tmp_path("cut.gguf"), &l) != GEMMA8_OK && !l, "cut at %zu accepted", cut);
    }
    /* the base model given where an adapter is expected */
    l = NULL;
    CHECK(gemma8_lora_load(m, b_path, &l) == GEMMA8_ERR_FORMAT && !l);
    CHECKF(strstr(gemma8_last_error(), "not a LoRA adapter") != NULL, "%s", gemma8_last_error());
    /* a set with an adapter of another model */
    gemma8_lora *ok = NULL;
    gemma8_context *ctx = new_ctx(other, 1);
    if (CHECK(gemma8_lora_load(m, data_path("tiny-a-lora"), &ok) == GEMMA8_OK) && ctx) {
        const gemma8_lora *set[1] = {ok};
        const float s = 1.0f;
        CHECK(gemma8_seq_set_lora(ctx, 0, set, &s, 1) == GEMMA8_ERR_INVALID_ARG);
    }
    gemma8_context_free(ctx);
    gemma8_lora_free(ok);
    free(g);
    gemma8_model_free(other);
    gemma8_model_free(m);
}

/* Merged at conversion (f32 and q8_0): PEFT's logits, as at run time. */
static void check_merged(const lora_case *lc) {
    ref_seq r = {0};
    if (!load_refs(lc, &r)) return;
    const gemma8_type types[2] = {GEMMA8_TYPE_F32, GEMMA8_TYPE_Q8_0};
    for (int k = 0; k < 2; k++) {
        gemma8_convert_params p = gemma8_convert_default_params();
        p.type = types[k];
        char out[512], adapter[512];
        snprintf(adapter, sizeof adapter, "%s", data_path(lc->peft));
        p.lora = adapter;
        snprintf(out, sizeof out, "%s", tmp_path(k ? "merged-q8_0.gguf" : "merged-f32.gguf"));
        if (!CHECKF(gemma8_convert_hf(data_path(lc->base), out, &p) == GEMMA8_OK, "%s", gemma8_last_error()))
            continue;
        gemma8_model *m = NULL;
        gemma8_model_params mp = gemma8_model_default_params();
        if (!CHECK(gemma8_model_load(out, &mp, &m) == GEMMA8_OK)) continue;
        const int V = gemma8_model_get_info(m).n_vocab;
        gemma8_context *ctx = new_ctx(m, 1);
        float *got = ctx ? eval_seq(ctx, 0, r.tok, r.T, V) : NULL;
        if (got) {
            const float d = max_abs_diff(got, r.lora, (size_t)r.T * V);
            const double kl = mean_kl(r.lora, got, r.T, V);
            CHECKF(k ? kl <= 1e-3 : d <= 1e-3f, "merged %s: max |diff| %g, mean KL %g", gemma8_type_name(types[k]), d,
                   kl);
            harness_note("merged into %s: max |diff| %.3g from PEFT, mean KL %.3g", gemma8_type_name(types[k]), d, kl);
        }
        free(got);
        gemma8_context_free(ctx);
        gemma8_model_free(m);
    }
    /* a bad adapter stops the conversion with nothing written */
    gemma8_convert_params p = gemma8_convert_default_params();
    p.lora = data_path("tiny-b");
    const char *out = tmp_path("merged-bad.gguf");
    CHECK(gemma8_convert_hf(data_path("tiny-a"), out, &p) != GEMMA8_OK);
    struct stat sb;
    CHECK(stat(out, &sb) != 0);
    free_refs(&r);
}

TEST(lora_merged_at_conversion) { check_merged(&gemma2_case); }
TEST(lora_gemma3_merged_at_conversion) { check_merged(&gemma3_case); }

/* rsLoRA (alpha / sqrt(r)) and alpha_pattern: read from PEFT, and as convert-lora
 * writes them for llama.cpp's alpha / r rule (alpha * sqrt(r), per-module factors
 * folded into lora_b): the same logits both ways. */
TEST(lora_rslora_and_patterns_convert) {
    gemma8_model *m;
    ref_seq r;
    if (!load_base_and_refs(&gemma2_case, GEMMA8_TYPE_F32, &m, &r)) return;
    const int V = gemma8_model_get_info(m).n_vocab, T = r.T;
    const char *targets = "\"target_modules\":[\"q_proj\",\"k_proj\",\"v_proj\",\"o_proj\",\"gate_proj\",\"up_proj\","
                          "\"down_proj\"]";
    char cfg[3][512];
    /* r = 4: rsLoRA with alpha 8 scales by 4, as plain LoRA with alpha 16 does */
    snprintf(cfg[0], sizeof cfg[0], "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"use_rslora\":true,%s}", targets);
    snprintf(cfg[1], sizeof cfg[1], "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":16,%s}", targets);
    snprintf(cfg[2], sizeof cfg[2], "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"alpha_pattern\":{\"q_proj\":32,"
             "\"model.layers.1.mlp.down_proj\":2},%s}", targets);
    const char *names[3] = {"rslora", "alpha16", "pattern"};
    float *logits[3][2] = {{NULL}};
    for (int k = 0; k < 3; k++)
        for (int way = 0; way < 2; way++) { /* 0: the PEFT folder, 1: convert-lora's file */
            char dir[512], gguf[600];
            snprintf(dir, sizeof dir, "%s", peft_with_config(names[k], cfg[k]));
            snprintf(gguf, sizeof gguf, "%s.gguf", dir);
            if (way && !CHECKF(gemma8_lora_convert(dir, gguf) == GEMMA8_OK, "%s", gemma8_last_error())) continue;
            gemma8_lora *l = NULL;
            if (!CHECKF(gemma8_lora_load(m, way ? gguf : dir, &l) == GEMMA8_OK, "%s", gemma8_last_error())) continue;
            gemma8_context *ctx = new_ctx(m, 1);
            const gemma8_lora *set[1] = {l};
            const float one = 1.0f;
            if (ctx && CHECK(gemma8_seq_set_lora(ctx, 0, set, &one, 1) == GEMMA8_OK))
                logits[k][way] = eval_seq(ctx, 0, r.tok, T, V);
            gemma8_context_free(ctx);
            gemma8_lora_free(l);
        }
    const size_t n = (size_t)T * V;
    if (logits[0][0] && logits[1][0])
        CHECKF(!memcmp(logits[0][0], logits[1][0], n * sizeof(float)), "rsLoRA alpha 8 differs from alpha 16");
    for (int k = 0; k < 3; k++)
        if (logits[k][0] && logits[k][1])
            CHECKF(max_abs_diff(logits[k][0], logits[k][1], n) <= 1e-4f, "%s: PEFT and converted differ by %g",
                   names[k], max_abs_diff(logits[k][0], logits[k][1], n));
    if (logits[2][0] && logits[1][0])
        CHECKF(max_abs_diff(logits[2][0], r.lora, n) > 1e-2f, "the pattern changed nothing");
    for (int k = 0; k < 3; k++) free(logits[k][0]), free(logits[k][1]);
    free_refs(&r);
    gemma8_model_free(m);
}
