/* test-gguf.c - GGUF interoperability with llama.cpp's files, and bad input. */
#include "gguf.h"
#include "quant.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static float *ref_logits(const char *fixture, const char *seq, int32_t **tokens, size_t *T) {
    char ref[512], name[64];
    size_t n;
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path(fixture));
    snprintf(name, sizeof name, "%s.tokens", seq);
    *tokens = ref_load(ref, name, T);
    snprintf(name, sizeof name, "%s.logits", seq);
    return ref_load(ref, name, &n);
}

/* A gemma2 file written by llama.cpp's converter runs with the same logits. */
TEST(gguf_llamacpp_f32_logits) {
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!CHECKF(gemma8_model_load(data_path("llamacpp-gguf/tiny-a-f32.gguf"), &mp, &m) == GEMMA8_OK, "%s",
                gemma8_last_error()))
        return;
    const char *seqs[] = {"seq0", "seq1"};
    for (int s = 0; s < 2; s++) {
        int32_t *tok;
        size_t T;
        float *want = ref_logits("tiny-a", seqs[s], &tok, &T);
        float *got = eval_all(m, tok, (int)T, 256, 2);
        if (want && got) {
            float d = max_abs_diff(got, want, T * 512);
            CHECKF(d <= 1e-3f, "llama.cpp f32 file: %g", d);
            CHECK(argmax_agree(got, want, (int)T, 512) == (int)T);
            harness_note("llama.cpp tiny-a-f32.gguf %s: max |diff| %.3g", seqs[s], d);
        }
        free(tok);
        free(want);
        free(got);
    }
    gemma8_model_free(m);
}

TEST(gguf_llamacpp_q8_0_logits) {
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!CHECKF(gemma8_model_load(data_path("llamacpp-gguf/tiny-a-q8_0.gguf"), &mp, &m) == GEMMA8_OK, "%s",
                gemma8_last_error()))
        return;
    CHECK(gemma8_model_get_info(m).matrix_type == GEMMA8_TYPE_Q8_0);
    int32_t *tok;
    size_t T;
    float *want = ref_logits("tiny-a", "seq0", &tok, &T);
    float *got = eval_all(m, tok, (int)T, 256, 2);
    if (want && got) {
        double kl = mean_kl(want, got, (int)T, 512);
        int agree = argmax_agree(got, want, (int)T, 512);
        CHECKF(kl <= 1e-3, "mean KL %g", kl);
        CHECKF(agree * 100 >= 99 * (int)T, "argmax %d/%zu", agree, T);
        harness_note("llama.cpp tiny-a-q8_0.gguf seq0: mean KL %.3g, argmax %d/%zu", kl, agree, T);
    }
    free(tok);
    free(want);
    free(got);
    gemma8_model_free(m);
}

/* gemma8's converter writes the same tensors as llama.cpp's, byte for byte, and the same keys. */
static void compare_tensors(const char *fixture, gemma8_type type, const char *llama_file, const char *arch) {
    const char *ours = convert_fixture(fixture, type);
    gguf_file a, b;
    if (!ours || !CHECK(g8_gguf_open(ours, &a) == GEMMA8_OK)) return;
    if (!CHECK(g8_gguf_open(data_path(llama_file), &b) == GEMMA8_OK)) {
        g8_gguf_close(&a);
        return;
    }
    CHECK(a.n_tensors == b.n_tensors);
    const int same = same_tensors(&a, &b);
    harness_note("%s %s: %d of %llu tensors byte-identical to llama.cpp's", fixture,
                 gemma8_type_name(type), same, (unsigned long long)b.n_tensors);
    const char *keys[] = {"context_length", "embedding_length", "block_count", "feed_forward_length",
                          "attention.head_count", "attention.head_count_kv", "attention.key_length",
                          "attention.value_length", "attention.sliding_window"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        gemma8_status st;
        uint32_t va = 0, vb = 1;
        char key[96];
        snprintf(key, sizeof key, "%s.%s", arch, keys[k]);
        CHECKF(g8_gguf_get_u32(&a, key, &va, &st) && g8_gguf_get_u32(&b, key, &vb, &st) && va == vb, "key %s", key);
    }
    /* float keys llama.cpp's file has (gemma2: the soft-caps; gemma3: both RoPE bases) */
    for (uint64_t i = 0; i < b.n_kv; i++) {
        if (b.kv[i].type != GGUF_FLOAT32 || strncmp(b.kv[i].key, arch, strlen(arch))) continue;
        gemma8_status st;
        float va = 0, vb = 1;
        CHECKF(g8_gguf_get_f32(&a, b.kv[i].key, &va, &st) && g8_gguf_get_f32(&b, b.kv[i].key, &vb, &st) && va == vb,
               "key %s", b.kv[i].key);
    }
    g8_gguf_close(&a);
    g8_gguf_close(&b);
}

TEST(gguf_convert_matches_llamacpp_f32) {
    compare_tensors("tiny-a", GEMMA8_TYPE_F32, "llamacpp-gguf/tiny-a-f32.gguf", "gemma2");
}
TEST(gguf_convert_matches_llamacpp_q8_0) {
    compare_tensors("tiny-a", GEMMA8_TYPE_Q8_0, "llamacpp-gguf/tiny-a-q8_0.gguf", "gemma2");
}
/* gemma3: llama.cpp's convert_hf_to_gguf.py (f32) and llama-quantize (q8_0) on tiny-a */
TEST(gguf_convert_matches_llamacpp_gemma3_f32) {
    compare_tensors("gemma3/tiny-a", GEMMA8_TYPE_F32, "llamacpp-gguf/gemma3-tiny-a-f32.gguf", "gemma3");
}
TEST(gguf_convert_matches_llamacpp_gemma3_q8_0) {
    compare_tensors("gemma3/tiny-a", GEMMA8_TYPE_Q8_0, "llamacpp-gguf/gemma3-tiny-a-q8_0.gguf", "gemma3");
}

/* The llama.cpp file with the real tokenizer: metadata arrays are read. */
TEST(gguf_llamacpp_fullvocab_metadata) {
    gguf_file f;
    if (!CHECKF(g8_gguf_open(data_path("llamacpp-gguf/fullvocab-f16.gguf"), &f) == GEMMA8_OK, "%s", gemma8_last_error()))
        return;
    const gguf_kv *tokens = g8_gguf_find_kv(&f, "tokenizer.ggml.tokens");
    CHECK(tokens && tokens->type == GGUF_ARRAY && tokens->arr_type == GGUF_STRING && tokens->n == 256000);
    if (tokens) CHECK(tokens->strs[2].len == 5 && !memcmp(tokens->strs[2].p, "<bos>", 5));
    const gguf_kv *types = g8_gguf_find_kv(&f, "tokenizer.ggml.token_type");
    CHECK(types && types->arr_type == GGUF_INT32 && types->n == 256000);
    gguf_str tmpl;
    gemma8_status st;
    CHECK(g8_gguf_get_str(&f, "tokenizer.chat_template", &tmpl, &st) && tmpl.len > 100);
    g8_gguf_close(&f);
}

/* ---- bad input ------------------------------------------------------------ */

static void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(*n);
    if (fread(p, 1, *n, f) != *n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

static void write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

/* Loading must fail cleanly (a status and a message), never crash. */
static gemma8_status try_load(const char *path) {
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    gemma8_status st = gemma8_model_load(path, &mp, &m);
    if (st == GEMMA8_OK) gemma8_model_free(m);
    else CHECKF(gemma8_last_error()[0] != 0, "no message for status %d", st);
    return st;
}

TEST(gguf_truncated_files_fail_cleanly) {
    size_t n;
    uint8_t *buf = read_all(data_path("llamacpp-gguf/tiny-a-q8_0.gguf"), &n);
    if (!CHECK(buf != NULL)) return;
    const char *p = tmp_path("trunc.gguf");
    int failures = 0, tries = 0;
    for (int k = 0; k < 60; k++) {
        size_t cut = (size_t)((double)n * k / 60.0);
        if (k < 20) cut = (size_t)k * 97; /* many cuts inside the header */
        write_all(p, buf, cut);
        gemma8_status st = try_load(p);
        tries++;
        failures += st != GEMMA8_OK;
        CHECKF(st == GEMMA8_ERR_FORMAT, "cut at %zu: status %d (%s)", cut, st, gemma8_last_error());
    }
    harness_note("truncated at %d offsets: %d clean errors", tries, failures);
    free(buf);
}

TEST(gguf_bad_magic_and_version) {
    size_t n;
    uint8_t *buf = read_all(data_path("llamacpp-gguf/tiny-a-f32.gguf"), &n);
    if (!CHECK(buf != NULL)) return;
    const char *p = tmp_path("bad.gguf");
    buf[0] = 'X';
    write_all(p, buf, n);
    CHECK(try_load(p) == GEMMA8_ERR_FORMAT);
    CHECK(strstr(gemma8_last_error(), "bad magic") != NULL);
    buf[0] = 'G';
    buf[4] = 9;
    write_all(p, buf, n);
    CHECK(try_load(p) == GEMMA8_ERR_UNSUPPORTED);
    CHECK(strstr(gemma8_last_error(), "version") != NULL);
    free(buf);
    CHECK(try_load(tmp_path("does-not-exist.gguf")) == GEMMA8_ERR_IO);
}

/* Flipping bytes anywhere in the header and tensor table never crashes. */
TEST(gguf_bit_flips_never_crash) {
    size_t n;
    uint8_t *buf = read_all(data_path("llamacpp-gguf/tiny-a-q8_0.gguf"), &n);
    if (!CHECK(buf != NULL)) return;
    gguf_file f;
    CHECK(g8_gguf_open(data_path("llamacpp-gguf/tiny-a-q8_0.gguf"), &f) == GEMMA8_OK);
    size_t header = (size_t)f.data_offset;
    g8_gguf_close(&f);
    const char *p = tmp_path("flip.gguf");
    unsigned seed = 12345;
    int errors = 0, loads = 0;
    for (int k = 0; k < 300; k++) {
        seed = seed * 1103515245u + 12345u;
        size_t at = (seed >> 8) % header;
        uint8_t old = buf[at];
        buf[at] ^= (uint8_t)(1u << ((seed >> 4) % 8));
        if (k % 3 == 0) buf[at] = 0xff;
        write_all(p, buf, n);
        gemma8_status st = try_load(p);
        if (st) errors++;
        else loads++;
        buf[at] = old;
    }
    harness_note("300 header corruptions: %d clean errors, %d still loadable (e.g. a changed name byte)", errors, loads);
    CHECK(errors > 0);
    free(buf);
}

/* A model whose architecture is not gemma2 is refused with its name. */
TEST(gguf_unknown_architecture) {
    gguf_writer *w = g8_gguf_writer_new();
    g8_gguf_set_str(w, "general.architecture", "llama");
    const char *p = tmp_path("llama.gguf");
    CHECK(g8_gguf_write(w, p, NULL, NULL, NULL, NULL) == GEMMA8_OK);
    g8_gguf_writer_free(w);
    CHECK(try_load(p) == GEMMA8_ERR_UNSUPPORTED);
    CHECK(strstr(gemma8_last_error(), "'llama'") != NULL);
}

/* A writer/reader round trip of every metadata type used. */
TEST(gguf_writer_round_trip) {
    gguf_writer *w = g8_gguf_writer_new();
    g8_gguf_set_str(w, "a.str", "hello");
    g8_gguf_set_u32(w, "a.u32", 7);
    g8_gguf_set_f32(w, "a.f32", 1.5f);
    g8_gguf_set_bool(w, "a.bool", true);
    const char *strs[] = {"x", "", "yz"};
    g8_gguf_set_arr_str(w, "a.strs", strs, 3);
    int32_t ints[] = {1, -2, 3};
    g8_gguf_set_arr(w, "a.ints", GGUF_INT32, ints, 3);
    const char *p = tmp_path("rt.gguf");
    CHECK(g8_gguf_write(w, p, NULL, NULL, NULL, NULL) == GEMMA8_OK);
    g8_gguf_writer_free(w);
    gguf_file f;
    if (!CHECK(g8_gguf_open(p, &f) == GEMMA8_OK)) return;
    gemma8_status st;
    gguf_str s;
    uint32_t u;
    float x;
    bool b;
    CHECK(g8_gguf_get_str(&f, "a.str", &s, &st) && s.len == 5 && !memcmp(s.p, "hello", 5));
    CHECK(g8_gguf_get_u32(&f, "a.u32", &u, &st) && u == 7);
    CHECK(g8_gguf_get_f32(&f, "a.f32", &x, &st) && x == 1.5f);
    CHECK(g8_gguf_get_bool(&f, "a.bool", &b, &st) && b);
    CHECK(!g8_gguf_get_u32(&f, "a.str", &u, &st) && st == GEMMA8_ERR_FORMAT);
    const gguf_kv *kv = g8_gguf_find_kv(&f, "a.strs");
    CHECK(kv && kv->n == 3 && kv->strs[2].len == 2 && kv->strs[1].len == 0);
    kv = g8_gguf_find_kv(&f, "a.ints");
    int32_t got[3];
    if (CHECK(kv && kv->n == 3)) {
        memcpy(got, kv->data, sizeof got);
        CHECK(got[1] == -2);
    }
    g8_gguf_close(&f);
}

/* ---- gemma3 files ------------------------------------------------------------------------ */

/* A gemma3 file without a q/k norm is refused naming the tensor, never run without it. */
TEST(gguf_gemma3_missing_qk_norm) {
    const char *src = convert_fixture("gemma3/tiny-a", GEMMA8_TYPE_F32);
    const char *names[2] = {"blk.2.attn_q_norm.weight", "blk.6.attn_k_norm.weight"};
    for (int k = 0; src && k < 2; k++) {
        const char *dst = tmp_path("gemma3-no-norm.gguf");
        if (!gguf_rewrite(src, dst, &(gguf_edit){.drop_tensor = names[k]})) continue;
        CHECK(try_load(dst) == GEMMA8_ERR_FORMAT);
        CHECKF(strstr(gemma8_last_error(), names[k]) != NULL, "%s", gemma8_last_error());
        harness_note("%s", gemma8_last_error());
    }
}

/* The Gemma family's other architectures in GGUF (llama.cpp's names) are refused by name. */
TEST(gguf_other_gemma_architectures) {
    const char *src = convert_fixture("gemma3/tiny-a", GEMMA8_TYPE_F32);
    const char *archs[] = {"gemma3n", "gemma4", "gemma-embedding", "gemma"};
    for (int k = 0; src && k < 4; k++) {
        const char *dst = tmp_path("other-gemma.gguf");
        if (!gguf_rewrite(src, dst, &(gguf_edit){.arch = archs[k]})) continue;
        char want[64];
        snprintf(want, sizeof want, "'%s'", archs[k]);
        CHECK(try_load(dst) == GEMMA8_ERR_UNSUPPORTED);
        CHECKF(strstr(gemma8_last_error(), want) != NULL, "%s", gemma8_last_error());
    }
}

/* A gemma3 file as llama.cpp's converter writes it, without the keys gemma8 adds (local RoPE base,
 * query scale; the pattern is never written when 6): llama.cpp's rules give tiny-a's values back,
 * and its logits. */
TEST(gguf_gemma3_llamacpp_defaults) {
    const char *src = convert_fixture("gemma3/tiny-a", GEMMA8_TYPE_F32);
    const char *drop[] = {"gemma3.rope.freq_base_swa", "gemma3.query_pre_attn_scalar", NULL};
    const char *dst = tmp_path("gemma3-llamacpp-keys.gguf");
    if (!src || !gguf_rewrite(src, dst, &(gguf_edit){.drop_keys = drop})) return;
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!CHECK(gemma8_model_load(dst, &mp, &m) == GEMMA8_OK)) return;
    gemma8_model_info in = gemma8_model_get_info(m);
    CHECK(in.rope_base_local == 10000.0f && in.rope_base == 1e6f && in.query_pre_attn_scalar == 32.0f);
    CHECK(in.n_layer_sliding == 6 && in.sliding_window == 8 && in.final_softcap == 0 && in.attn_softcap == 0);
    size_t T;
    int32_t *tok = NULL;
    float *want = ref_logits("gemma3/tiny-a", "seq0", &tok, &T);
    float *got = tok ? eval_all(m, tok, (int)T, 64, 2) : NULL;
    if (got && want) {
        const float d = max_abs_diff(got, want, T * (size_t)in.n_vocab);
        CHECKF(d <= 1e-4f, "max |diff| %g", d);
        harness_note("gemma3 tiny-a with llama.cpp's keys only: max |diff| %.3g from transformers", d);
    }
    free(tok);
    free(want);
    free(got);
    /* without a sliding window every layer is global (llama.cpp's rule) */
    const char *drop_window[] = {"gemma3.attention.sliding_window", NULL};
    if (gguf_rewrite(src, dst, &(gguf_edit){.drop_keys = drop_window})) {
        gemma8_model *g = NULL;
        if (CHECK(gemma8_model_load(dst, &mp, &g) == GEMMA8_OK)) CHECK(gemma8_model_get_info(g).n_layer_sliding == 0);
        gemma8_model_free(g);
    }
    gemma8_model_free(m);
}

/* ---- gemma3 interop with llama.cpp ------------------------------------------------------- */

/* gemma8's argmax at every position of seq0 and seq1 and its greedy ids after gen0's prompt, against
 * what llama.cpp gave on the same file (tests/data/gemma3/llamacpp-ids.jsonl, written by
 * scripts/interop/llamacpp.sh). */
static void check_llamacpp_ids(const char *file, const char *fixture, const char *label) {
    FILE *f = fopen(data_path("gemma3/llamacpp-ids.jsonl"), "rb");
    char line[16384];
    cJSON *rec = NULL;
    while (f && !rec && fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *name = cJSON_GetObjectItem(j, "file");
        if (cJSON_IsString(name) && !strcmp(name->valuestring, label)) rec = j;
        else cJSON_Delete(j);
    }
    if (f) fclose(f);
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!CHECKF(rec != NULL, "no record of '%s'", label) ||
        !CHECKF(gemma8_model_load(file, &mp, &m) == GEMMA8_OK, "%s", gemma8_last_error())) {
        cJSON_Delete(rec);
        return;
    }
    const int V = gemma8_model_get_info(m).n_vocab;
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path(fixture));
    int same = 0, total = 0;
    const char *seqs[3] = {"seq0", "seq1", "gen0"};
    for (int s = 0; s < 3; s++) {
        const cJSON *want = cJSON_GetObjectItem(rec, seqs[s]);
        size_t T;
        int32_t *tok = ref_load(ref, s < 2 ? (s ? "seq1.tokens" : "seq0.tokens") : "gen0.prompt", &T);
        if (!tok || !CHECK(cJSON_IsArray(want))) {
            free(tok);
            continue;
        }
        const int n = cJSON_GetArraySize(want);
        int32_t *got = malloc((size_t)n * sizeof(int32_t));
        if (s < 2) { /* argmax at every position */
            float *lg = eval_all(m, tok, (int)T, 256, 2);
            for (int t = 0; lg && t < n && t < (int)T; t++) got[t] = argmax_f(lg + (size_t)t * V, V);
            free(lg);
        } else { /* greedy, from gen0's prompt */
            gemma8_context_params cp = gemma8_context_default_params();
            gemma8_context *ctx = NULL;
            if (CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK) && CHECK(t_eval(ctx, 0, tok, (int)T, NULL) == 0))
                for (int i = 0; i < n; i++) {
                    got[i] = argmax_f(gemma8_get_logits(ctx, -1), V);
                    if (t_eval(ctx, 0, &got[i], 1, NULL)) break;
                }
            gemma8_context_free(ctx);
        }
        int i = 0;
        for (const cJSON *e = want->child; e; e = e->next, i++) same += got[i] == (int32_t)e->valuedouble;
        total += n;
        free(got);
        free(tok);
    }
    CHECKF(same == total, "%s: %d of %d ids as llama.cpp's", label, same, total);
    harness_note("%s: %d/%d argmax and greedy ids as llama.cpp's", label, same, total);
    cJSON_Delete(rec);
    gemma8_model_free(m);
}

/* llama.cpp's gemma3 files (convert_hf_to_gguf.py, llama-quantize) in gemma8: llama.cpp's ids; the f32
 * file's logits also transformers'. */
TEST(gguf_llamacpp_gemma3_files) {
    static const struct { const char *file, *fixture, *label; } files[] = {
        {"llamacpp-gguf/gemma3-tiny-a-f32.gguf", "gemma3/tiny-a", "llama.cpp tiny-a f32"},
        {"llamacpp-gguf/gemma3-tiny-a-q8_0.gguf", "gemma3/tiny-a", "llama.cpp tiny-a q8_0"},
        {"llamacpp-gguf/gemma3-tiny-a-q4_0.gguf", "gemma3/tiny-a", "llama.cpp tiny-a q4_0"},
        {"llamacpp-gguf/gemma3-tiny-b-q8_0.gguf", "gemma3/tiny-b", "llama.cpp tiny-b q8_0"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s", data_path(files[i].file));
        check_llamacpp_ids(path, files[i].fixture, files[i].label);
    }
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!CHECK(gemma8_model_load(data_path("llamacpp-gguf/gemma3-tiny-a-f32.gguf"), &mp, &m) == GEMMA8_OK)) return;
    int32_t *tok = NULL;
    size_t T;
    float *want = ref_logits("gemma3/tiny-a", "seq0", &tok, &T);
    float *got = tok ? eval_all(m, tok, (int)T, 256, 2) : NULL;
    if (want && got) {
        const float d = max_abs_diff(got, want, T * 512);
        CHECKF(d <= 1e-4f, "llama.cpp's gemma3 f32 file: %g", d);
        harness_note("llama.cpp's gemma3 tiny-a f32 file: max |diff| %.3g from transformers", d);
    }
    free(tok);
    free(want);
    free(got);
    gemma8_model_free(m);
}

/* gemma8's gemma3 files ran in llama.cpp (the ids it gave are recorded): gemma8 gives the same. */
TEST(gguf_gemma3_files_as_llamacpp_ran_them) {
    const char *fixtures[2] = {"tiny-a", "tiny-b"};
    const gemma8_type types[3] = {GEMMA8_TYPE_F32, GEMMA8_TYPE_Q8_0, GEMMA8_TYPE_Q4_0};
    for (int f = 0; f < 2; f++)
        for (int t = 0; t < 3; t++) {
            char fixture[64], label[64];
            snprintf(fixture, sizeof fixture, "gemma3/%s", fixtures[f]);
            snprintf(label, sizeof label, "gemma8 %s %s", fixtures[f], gemma8_type_name(types[t]));
            const char *path = convert_fixture(fixture, types[t]);
            if (path) check_llamacpp_ids(path, fixture, label);
        }
}
