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

/* gemma8's converter writes the same tensors as llama.cpp's, byte for byte. */
static void compare_tensors(gemma8_type type, const char *llama_file) {
    const char *ours = convert_fixture("tiny-a", type);
    gguf_file a, b;
    if (!ours || !CHECK(g8_gguf_open(ours, &a) == GEMMA8_OK)) return;
    if (!CHECK(g8_gguf_open(data_path(llama_file), &b) == GEMMA8_OK)) {
        g8_gguf_close(&a);
        return;
    }
    CHECK(a.n_tensors == b.n_tensors);
    int same = 0;
    for (uint64_t i = 0; i < b.n_tensors; i++) {
        const gguf_tensor *tb = &b.tensors[i], *ta = g8_gguf_find_tensor(&a, tb->name);
        if (!CHECKF(ta != NULL, "tensor %s missing from gemma8's file", tb->name)) continue;
        bool ok = ta->type == tb->type && ta->n_dims == tb->n_dims && !memcmp(ta->ne, tb->ne, sizeof ta->ne) &&
                  ta->nbytes == tb->nbytes && !memcmp(ta->data, tb->data, ta->nbytes);
        CHECKF(ok, "tensor %s differs from llama.cpp's", tb->name);
        same += ok;
    }
    harness_note("%s: %d of %llu tensors byte-identical to llama.cpp's", gemma8_type_name(type), same,
                 (unsigned long long)b.n_tensors);
    const char *keys[] = {"gemma2.context_length", "gemma2.embedding_length", "gemma2.block_count",
                          "gemma2.feed_forward_length", "gemma2.attention.head_count", "gemma2.attention.head_count_kv",
                          "gemma2.attention.key_length", "gemma2.attention.value_length",
                          "gemma2.attention.sliding_window", "general.file_type"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        gemma8_status st;
        uint32_t va = 0, vb = 1;
        CHECKF(g8_gguf_get_u32(&a, keys[k], &va, &st) && g8_gguf_get_u32(&b, keys[k], &vb, &st) && va == vb, "key %s",
               keys[k]);
    }
    const char *fkeys[] = {"gemma2.attention.layer_norm_rms_epsilon", "gemma2.attn_logit_softcapping",
                           "gemma2.final_logit_softcapping"};
    for (size_t k = 0; k < sizeof fkeys / sizeof fkeys[0]; k++) {
        gemma8_status st;
        float va = 0, vb = 1;
        CHECKF(g8_gguf_get_f32(&a, fkeys[k], &va, &st) && g8_gguf_get_f32(&b, fkeys[k], &vb, &st) && va == vb, "key %s",
               fkeys[k]);
    }
    g8_gguf_close(&a);
    g8_gguf_close(&b);
}

TEST(gguf_convert_matches_llamacpp_f32) { compare_tensors(GEMMA8_TYPE_F32, "llamacpp-gguf/tiny-a-f32.gguf"); }
TEST(gguf_convert_matches_llamacpp_q8_0) { compare_tensors(GEMMA8_TYPE_Q8_0, "llamacpp-gguf/tiny-a-q8_0.gguf"); }

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
