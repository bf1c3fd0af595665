/* test-forward.c - logits and greedy generations against transformers' reference. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Compares the logits of seqN of a fixture; returns the max difference. */
static float check_seq(gemma8_model *m, const char *fixture, const char *seq, float tol, int n_batch) {
    char ref[512], tn[64], ln[64];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path(fixture));
    snprintf(tn, sizeof tn, "%s.tokens", seq);
    snprintf(ln, sizeof ln, "%s.logits", seq);
    size_t T, n;
    int32_t *tokens = ref_load(ref, tn, &T);
    float *want = ref_load(ref, ln, &n);
    float diff = INFINITY;
    if (tokens && want) {
        int V = gemma8_model_get_info(m).n_vocab;
        CHECK(n == T * (size_t)V);
        float *got = eval_all(m, tokens, (int)T, n_batch, 2);
        if (got) {
            diff = max_abs_diff(got, want, n);
            int agree = argmax_agree(got, want, (int)T, V);
            CHECKF(diff <= tol, "%s %s: max |logit diff| %g > %g", fixture, seq, diff, tol);
            CHECKF(agree == (int)T, "%s %s: argmax agrees at %d of %zu positions", fixture, seq, agree, T);
            harness_note("%s %s (%zu tokens, batch %d): max |diff| %.3g, argmax %d/%zu", fixture, seq, T, n_batch, diff,
                         agree, T);
        }
        free(got);
    }
    free(tokens);
    free(want);
    return diff;
}

/* Greedy generation of gen0 through the KV cache, one token per eval. */
static void check_gen0(gemma8_model *m, const char *fixture) {
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path(fixture));
    size_t np, no;
    int32_t *prompt = ref_load(ref, "gen0.prompt", &np);
    int32_t *want = ref_load(ref, "gen0.output", &no);
    gemma8_context_params cp = gemma8_context_default_params();
    gemma8_context *ctx;
    if (prompt && want && CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK)) {
        int V = gemma8_model_get_info(m).n_vocab, same = 0;
        CHECK(t_eval(ctx, 0, prompt, (int)np, NULL) == GEMMA8_OK);
        for (size_t i = 0; i < no; i++) {
            int32_t tok = argmax_f(gemma8_get_logits(ctx, -1), V);
            same += tok == want[i];
            CHECKF(tok == want[i], "%s gen0 step %zu: got %d want %d", fixture, i, tok, want[i]);
            CHECK(t_eval(ctx, 0, &tok, 1, NULL) == GEMMA8_OK);
        }
        harness_note("%s gen0: %d/%zu greedy tokens identical", fixture, same, no);
        gemma8_context_free(ctx);
    }
    free(prompt);
    free(want);
}

/* Converts `fixture` to `type` and checks it against the reference of `ref_fixture`. */
static void check_fixture(const char *fixture, const char *ref_fixture, gemma8_type type, float tol, bool has_seq1) {
    const char *path = convert_fixture(fixture, type);
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!path || !CHECKF(gemma8_model_load(path, &mp, &m) == GEMMA8_OK, "%s", gemma8_last_error())) return;
    check_seq(m, ref_fixture, "seq0", tol, 256);
    check_seq(m, ref_fixture, "seq0", tol, 5); /* several chunks through the cache */
    if (has_seq1) check_seq(m, ref_fixture, "seq1", tol, 256);
    check_gen0(m, ref_fixture);
    gemma8_model_free(m);
}

TEST(forward_tiny_a_f32) { check_fixture("tiny-a", "tiny-a", GEMMA8_TYPE_F32, 1e-3f, true); }
TEST(forward_tiny_a_sharded_f32) { check_fixture("tiny-a-sharded", "tiny-a", GEMMA8_TYPE_F32, 1e-3f, true); }
TEST(forward_tiny_b_f32) { check_fixture("tiny-b", "tiny-b", GEMMA8_TYPE_F32, 1e-3f, true); }
TEST(forward_tiny_c_f32) { check_fixture("tiny-c", "tiny-c", GEMMA8_TYPE_F32, 1e-3f, false); }

/* The fixtures' weights are bf16 values: bf16 stores them exactly, and so does
 * f16 (wider mantissa) while they are in its range, so the f32 bound holds. */
TEST(forward_tiny_a_bf16) { check_fixture("tiny-a", "tiny-a", GEMMA8_TYPE_BF16, 1e-3f, true); }
TEST(forward_tiny_a_f16) { check_fixture("tiny-a", "tiny-a", GEMMA8_TYPE_F16, 1e-3f, true); }
/* tiny-b is an f32 checkpoint (of bf16-rounded values): stored as bf16 it must still match */
TEST(forward_tiny_b_bf16) { check_fixture("tiny-b", "tiny-b", GEMMA8_TYPE_BF16, 1e-3f, true); }

/* Gemma 3 (tests/data/gemma3/README.md): tiny-a in the Hub's config form, bf16, the ring of its
 * window of 8 wrapping over 40 tokens, a 7-layer pattern; tiny-b in the newer form, with GQA, a
 * 27B-style query scale, linear RoPE scaling on its global layers and a final soft-cap. */
TEST(forward_gemma3_tiny_a_f32) { check_fixture("gemma3/tiny-a", "gemma3/tiny-a", GEMMA8_TYPE_F32, 1e-4f, true); }
TEST(forward_gemma3_tiny_b_f32) { check_fixture("gemma3/tiny-b", "gemma3/tiny-b", GEMMA8_TYPE_F32, 1e-4f, true); }
TEST(forward_gemma3_tiny_a_bf16) { check_fixture("gemma3/tiny-a", "gemma3/tiny-a", GEMMA8_TYPE_BF16, 1e-4f, true); }

TEST(forward_tiny_long) {
    const char *path = convert_fixture("tiny-long", GEMMA8_TYPE_BF16);
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!path || !CHECK(gemma8_model_load(path, &mp, &m) == GEMMA8_OK)) return;
    check_seq(m, "tiny-long", "seq0", 1e-2f, 256);
    gemma8_model_free(m);
}

/* Prefill of a prompt then token-by-token decode equals one full prefill. */
TEST(forward_prefill_then_decode) {
    const char *path = convert_fixture("tiny-c", GEMMA8_TYPE_F32);
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!path || !CHECK(gemma8_model_load(path, &mp, &m) == GEMMA8_OK)) return;
    size_t T;
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path("tiny-c"));
    int32_t *tokens = ref_load(ref, "seq0.tokens", &T);
    int V = gemma8_model_get_info(m).n_vocab;
    float *full = tokens ? eval_all(m, tokens, (int)T, 512, 1) : NULL;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_batch = 64;
    gemma8_context *ctx;
    if (full && CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK)) {
        int P = 100;
        float *part = malloc((size_t)T * V * sizeof(float));
        CHECK(t_eval(ctx, 0, tokens, P, part) == GEMMA8_OK);
        for (size_t t = (size_t)P; t < T; t++) {
            CHECK(t_eval(ctx, 0, &tokens[t], 1, NULL) == GEMMA8_OK);
            memcpy(part + t * V, gemma8_get_logits(ctx, -1), (size_t)V * sizeof(float));
        }
        float d = max_abs_diff(full, part, T * (size_t)V);
        CHECKF(d <= 1e-4f, "prefill+decode vs prefill: %g", d);
        harness_note("tiny-c: prefill %d + decode %zu vs one prefill: max |diff| %.3g", P, T - P, d);
        CHECK(gemma8_seq_n_past(ctx, 0) == (int)T);
        free(part);
        gemma8_context_free(ctx);
    }
    free(full);
    free(tokens);
    gemma8_model_free(m);
}

/* ---- w8a8 (q8_0) against the float reference ------------------------------ */

static void check_q8_0(const char *fixture, bool gen0, int32_t kv_type) {
    const char *kv = kv_type == GEMMA8_TYPE_Q8_0 ? ", q8_0 KV" : "";
    const char *path = convert_fixture(fixture, GEMMA8_TYPE_Q8_0);
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!path || !CHECK(gemma8_model_load(path, &mp, &m) == GEMMA8_OK)) return;
    CHECK(gemma8_model_get_info(m).matrix_type == GEMMA8_TYPE_Q8_0);
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path(fixture));
    size_t T, n;
    int32_t *tok = ref_load(ref, "seq0.tokens", &T);
    float *want = ref_load(ref, "seq0.logits", &n);
    int V = gemma8_model_get_info(m).n_vocab;
    float *got = tok ? eval_all_kv(m, tok, (int)T, 256, 2, kv_type) : NULL;
    if (got && want) {
        double kl = mean_kl(want, got, (int)T, V);
        int agree = argmax_agree(got, want, (int)T, V);
        CHECKF(kl <= 1e-3, "%s q8_0%s: mean KL %g", fixture, kv, kl);
        CHECKF(agree * 100 >= 99 * (int)T, "%s q8_0%s: argmax %d/%zu", fixture, kv, agree, T);
        harness_note("%s q8_0 (w8a8)%s seq0: mean KL %.3g, argmax %d/%zu, max |diff| %.3g", fixture, kv, kl, agree, T,
                     max_abs_diff(got, want, n));
    }
    if (gen0) {
        size_t np, no;
        int32_t *prompt = ref_load(ref, "gen0.prompt", &np), *gw = ref_load(ref, "gen0.output", &no);
        gemma8_context_params cp = gemma8_context_default_params();
        cp.kv_type = kv_type;
        gemma8_context *ctx;
        if (prompt && gw && CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK)) {
            CHECK(t_eval(ctx, 0, prompt, (int)np, NULL) == GEMMA8_OK);
            size_t same = 0;
            for (size_t i = 0; i < no; i++) {
                int32_t t = argmax_f(gemma8_get_logits(ctx, -1), V);
                if (t != gw[i]) break;
                same++;
                CHECK(t_eval(ctx, 0, &t, 1, NULL) == GEMMA8_OK);
            }
            CHECKF(same == no, "%s q8_0%s gen0: first %zu of %zu greedy tokens identical", fixture, kv, same, no);
            harness_note("%s q8_0%s gen0: %zu/%zu greedy tokens identical", fixture, kv, same, no);
            gemma8_context_free(ctx);
        }
        free(prompt);
        free(gw);
    }
    free(tok);
    free(want);
    free(got);
    gemma8_model_free(m);
}

TEST(q8_0_tiny_a) { check_q8_0("tiny-a", true, GEMMA8_KV_AUTO); }
TEST(q8_0_tiny_b) { check_q8_0("tiny-b", true, GEMMA8_KV_AUTO); }
TEST(q8_0_tiny_c) { check_q8_0("tiny-c", true, GEMMA8_KV_AUTO); }
/* the cache left to auto: f16 under Q8_0 weights */
TEST(q8_0_kv_f16_tiny_long) { check_q8_0("tiny-long", false, GEMMA8_KV_AUTO); }

/* the same bars with the KV cache in Q8_0 as well (past the sliding window in
 * tiny-long); tiny-b and tiny-long have heads of 32, tiny-a's of 16 cannot be
 * cut in blocks of 32: a clean refusal */
TEST(q8_0_kv_q8_0_tiny_b) { check_q8_0("tiny-b", true, GEMMA8_TYPE_Q8_0); }
TEST(q8_0_kv_q8_0_tiny_long) { check_q8_0("tiny-long", false, GEMMA8_TYPE_Q8_0); }
TEST(q8_0_kv_q8_0_needs_heads_of_32) {
    const char *path = convert_fixture("tiny-a", GEMMA8_TYPE_Q8_0);
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!path || !CHECK(gemma8_model_load(path, &mp, &m) == GEMMA8_OK)) return;
    gemma8_context_params cp = gemma8_context_default_params();
    cp.kv_type = GEMMA8_TYPE_Q8_0;
    gemma8_context *ctx = (gemma8_context *)&cp;
    CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_ERR_INVALID_ARG && ctx == NULL);
    CHECKF(strstr(gemma8_last_error(), "multiple of 32"), "%s", gemma8_last_error());
    cp.kv_type = 2; /* not a cache type */
    CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_ERR_INVALID_ARG && ctx == NULL);
    gemma8_model_free(m);
}

/* ---- w4a8 (q4_0) ----------------------------------------------------------------- */

/* Logits of a fixture's seq0 with model file path; the reference's too. */
static float *seq0_logits(const char *fixture, const char *path, float **want, size_t *T, int *V) {
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!path || !CHECK(gemma8_model_load(path, &mp, &m) == GEMMA8_OK)) return NULL;
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path(fixture));
    size_t n;
    int32_t *tok = ref_load(ref, "seq0.tokens", T);
    if (want) *want = ref_load(ref, "seq0.logits", &n);
    *V = gemma8_model_get_info(m).n_vocab;
    float *got = tok ? eval_all(m, tok, (int)*T, 256, 2) : NULL;
    free(tok);
    gemma8_model_free(m);
    return got;
}

/* q4_0 matrices (the embedding q8_0, the default, or q4_0 too) against the float
 * reference: tiny random models are far harsher on 4 bits than trained ones, so
 * the bound is what ggml's own rounding gives them (the tensors are ggml's, byte
 * for byte: test-convert), with room: KL printed. */
static void check_q4_0(const char *fixture, int32_t output_type, double max_kl, int min_agree_pct) {
    char name[128];
    snprintf(name, sizeof name, "%s-q4_0-out%d.gguf", fixture, output_type);
    const char *path = tmp_path(name);
    char p_copy[1024];
    snprintf(p_copy, sizeof p_copy, "%s", path);
    gemma8_convert_params p = gemma8_convert_default_params();
    p.type = GEMMA8_TYPE_Q4_0;
    p.output_type = output_type;
    if (!CHECKF(gemma8_convert_hf(data_path(fixture), p_copy, &p) == GEMMA8_OK, "%s", gemma8_last_error())) return;
    float *want = NULL;
    size_t T = 0;
    int V = 0;
    float *got = seq0_logits(fixture, p_copy, &want, &T, &V);
    if (got && want) {
        double kl = mean_kl(want, got, (int)T, V);
        int agree = argmax_agree(got, want, (int)T, V);
        harness_note("%s q4_0 (w4a8), embedding %s, seq0: mean KL %.3g, argmax %d/%zu", fixture,
                     output_type < 0 ? "q8_0" : gemma8_type_name(output_type), kl, agree, T);
        CHECKF(kl <= max_kl, "%s q4_0: mean KL %g > %g", fixture, kl, max_kl);
        CHECKF(agree * 100 >= min_agree_pct * (int)T, "%s q4_0: argmax %d/%zu", fixture, agree, T);
    }
    free(want);
    free(got);
}

TEST(q4_0_tiny_a) { check_q4_0("tiny-a", -1, 0.005, 95); }
TEST(q4_0_tiny_b) { check_q4_0("tiny-b", -1, 0.005, 95); }
TEST(q4_0_tiny_a_embedding_q4_0) { check_q4_0("tiny-a", GEMMA8_TYPE_Q4_0, 0.02, 90); }

/* The w4a8 product is the dequantized weights' product up to the activations'
 * int8 rounding: the same file widened to f32 (gemma8 quantize) gives logits as
 * close as q8_0's are to f32. */
TEST(q4_0_equals_its_weights_in_float) {
    char q4[1024], f32[1024];
    snprintf(q4, sizeof q4, "%s", tmp_path("tiny-b-q4_0-own.gguf"));
    snprintf(f32, sizeof f32, "%s", tmp_path("tiny-b-q4_0-as-f32.gguf"));
    gemma8_convert_params p = gemma8_convert_default_params();
    p.type = GEMMA8_TYPE_Q4_0;
    p.output_type = GEMMA8_TYPE_Q4_0;
    if (!CHECK(gemma8_convert_hf(data_path("tiny-b"), q4, &p) == GEMMA8_OK)) return;
    p.type = GEMMA8_TYPE_F32;
    p.output_type = -1;
    if (!CHECKF(gemma8_quantize(q4, f32, &p) == GEMMA8_OK, "%s", gemma8_last_error())) return;
    size_t T = 0, T2 = 0;
    int V = 0, V2 = 0;
    float *a = seq0_logits("tiny-b", q4, NULL, &T, &V), *b = seq0_logits("tiny-b", f32, NULL, &T2, &V2);
    if (a && b && CHECK(T == T2 && V == V2)) {
        double kl = mean_kl(b, a, (int)T, V);
        int agree = argmax_agree(a, b, (int)T, V);
        harness_note("tiny-b q4_0 vs its weights in f32: mean KL %.3g, argmax %d/%zu", kl, agree, T);
        CHECKF(kl <= 1e-3, "mean KL %g", kl);
        CHECKF(agree * 100 >= 99 * (int)T, "argmax %d/%zu", agree, T);
    }
    free(a);
    free(b);
}

/* ---- Gemma 3 quantized, against an exact simulation -------------------------------------- */

/* q8_0 (w8a8) and q4_0 (w4a8, embedding q8_0) on the Gemma 3 fixtures: the mean KL per position
 * from transformers' logits (over seq0 and seq1) within 3x of what the float64 simulation of the
 * same quantization reaches (tests/data/gemma3/simulate-quant.py, quant-sim.json), and the argmax as
 * often right. kv_type q8_0 also puts the cache in Q8_0 (tiny-b's heads of 32). */
static void check_gemma3_quant(const char *fixture, gemma8_type type, int32_t kv_type) {
    const char *path = convert_fixture(fixture, type);
    gemma8_model *m;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!path || !CHECK(gemma8_model_load(path, &mp, &m) == GEMMA8_OK)) return;
    CHECK(gemma8_model_get_info(m).matrix_type == type);
    cJSON *sim = read_json_file(data_path("gemma3/quant-sim.json"));
    const char *name = strchr(fixture, '/') + 1;
    const cJSON *of = cJSON_GetObjectItem(cJSON_GetObjectItem(sim, name), gemma8_type_name(type));
    const char *seqs[2] = {"seq0", "seq1"};
    double kl_sum = 0, sim_sum = 0;
    int agree = 0, sim_agree = 0, positions = 0;
    for (int s = 0; s < 2 && CHECKF(of != NULL, "quant-sim.json has no %s %s", name, gemma8_type_name(type)); s++) {
        char ref[512], tn[32], ln[32];
        snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path(fixture));
        snprintf(tn, sizeof tn, "%s.tokens", seqs[s]);
        snprintf(ln, sizeof ln, "%s.logits", seqs[s]);
        size_t T, n;
        int32_t *tok = ref_load(ref, tn, &T);
        float *want = ref_load(ref, ln, &n);
        const int V = gemma8_model_get_info(m).n_vocab;
        float *got = tok ? eval_all_kv(m, tok, (int)T, 256, 2, kv_type) : NULL;
        const cJSON *sv = cJSON_GetObjectItem(of, seqs[s]);
        if (CHECK(got && want && sv)) {
            const double kl = mean_kl(want, got, (int)T, V), skl = cJSON_GetObjectItem(sv, "mean_kl")->valuedouble;
            const int a = argmax_agree(got, want, (int)T, V), sa = cJSON_GetObjectItem(sv, "argmax")->valueint;
            harness_note("%s %s%s %s: mean KL %.3g (simulation %.3g), argmax %d/%zu (simulation %d)", fixture,
                         gemma8_type_name(type), kv_type == GEMMA8_TYPE_Q8_0 ? " q8_0 KV" : "", seqs[s], kl, skl, a,
                         T, sa);
            kl_sum += kl * (double)T;
            sim_sum += skl * (double)T;
            agree += a;
            sim_agree += sa;
            positions += (int)T;
        }
        free(tok);
        free(want);
        free(got);
    }
    if (positions) {
        const double kl = kl_sum / positions, skl = sim_sum / positions;
        harness_note("%s %s: mean KL per position %.3g, simulation %.3g (ratio %.2f); argmax %d/%d (simulation %d)",
                     fixture, gemma8_type_name(type), kl, skl, kl / skl, agree, positions, sim_agree);
        CHECKF(kl <= 3 * skl, "%s: mean KL %g > 3 x %g", fixture, kl, skl);
        CHECKF(agree >= sim_agree, "%s: argmax %d < %d", fixture, agree, sim_agree);
    }
    cJSON_Delete(sim);
    gemma8_model_free(m);
}

TEST(gemma3_q8_0_tiny_a) { check_gemma3_quant("gemma3/tiny-a", GEMMA8_TYPE_Q8_0, GEMMA8_KV_AUTO); }
TEST(gemma3_q8_0_tiny_b) { check_gemma3_quant("gemma3/tiny-b", GEMMA8_TYPE_Q8_0, GEMMA8_KV_AUTO); }
TEST(gemma3_q8_0_kv_q8_0_tiny_b) { check_gemma3_quant("gemma3/tiny-b", GEMMA8_TYPE_Q8_0, GEMMA8_TYPE_Q8_0); }
TEST(gemma3_q4_0_tiny_a) { check_gemma3_quant("gemma3/tiny-a", GEMMA8_TYPE_Q4_0, GEMMA8_KV_AUTO); }
TEST(gemma3_q4_0_tiny_b) { check_gemma3_quant("gemma3/tiny-b", GEMMA8_TYPE_Q4_0, GEMMA8_KV_AUTO); }

/* ---- decode attention split over the threads --------------------------------------------- */

/* A decoded token whose attention has fewer tasks than threads (one KV head; or more threads than
 * KV heads) runs split three ways (ops.c): its logits must be the bits of the same positions in one
 * long prefill, past ATTN_KBLOCK keys on the global layers, with f16 and q8_0 caches. */
static void check_split_decode(const char *fixture, gemma8_type type, int32_t kv_type, int n_threads) {
    const char *path = convert_fixture(fixture, type);
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!path || !CHECK(gemma8_model_load(path, &mp, &m) == GEMMA8_OK)) return;
    const int V = gemma8_model_get_info(m).n_vocab, T = 700, P = 620;
    int32_t *tok = malloc((size_t)T * sizeof(int32_t));
    for (int i = 0; i < T; i++) tok[i] = 1 + (i * 37 + 11) % (V - 1);
    float *full = eval_all_kv(m, tok, T, 512, n_threads, kv_type);
    gemma8_context_params cp = gemma8_context_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = n_threads;
    cp.kv_type = kv_type;
    gemma8_context *ctx = NULL;
    int diffs = 0;
    if (full && CHECK(gemma8_context_new(m, &cp, &ctx) == GEMMA8_OK) && CHECK(t_eval(ctx, 0, tok, P, NULL) == 0)) {
        for (int t = P; t < T; t++) {
            if (!CHECK(t_eval(ctx, 0, &tok[t], 1, NULL) == GEMMA8_OK)) break;
            diffs += memcmp(gemma8_get_logits(ctx, -1), full + (size_t)t * V, (size_t)V * sizeof(float)) != 0;
        }
        CHECKF(diffs == 0, "%s: %d of %d decoded tokens differ from the prefill", fixture, diffs, T - P);
        harness_note("%s %s, %d threads: %d decoded tokens (keys %d..%d) bit-identical to one prefill", fixture,
                     gemma8_type_name(type), n_threads, T - P - diffs, P + 1, T);
    }
    gemma8_context_free(ctx);
    free(full);
    free(tok);
    gemma8_model_free(m);
}

/* A sliding window wider than attention's block of keys (ATTN_KBLOCK, 256; Gemma 3's 512 and 1024,
 * Gemma 2's 4096): past the window a query's blocks of keys start where its tile's first query's
 * window does, so a prefill in one piece, one in chunks of 7 and a decode token by token score the
 * same key in different runs. Their logits must be the same bits (gemma3 tiny-b, window set to 300,
 * f32 weights: no int8 activations to round a difference away; f16 and q8_0 caches). */
TEST(forward_wide_window_chunk_invariant) {
    const char *src = convert_fixture("gemma3/tiny-b", GEMMA8_TYPE_F32);
    const char *dst = tmp_path("gemma3-window-300.gguf");
    const gguf_edit wide = {.u32_key = "gemma3.attention.sliding_window", .u32 = 300};
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!src || !gguf_rewrite(src, dst, &wide)) return;
    if (!CHECK(gemma8_model_load(dst, &mp, &m) == GEMMA8_OK)) return;
    CHECK(gemma8_model_get_info(m).sliding_window == 300);
    const int V = gemma8_model_get_info(m).n_vocab, T = 680;
    int32_t *tok = malloc((size_t)T * sizeof(int32_t));
    for (int i = 0; i < T; i++) tok[i] = 1 + (i * 53 + 5) % (V - 1);
    const int32_t kvs[2] = {GEMMA8_TYPE_F16, GEMMA8_TYPE_Q8_0};
    for (int c = 0; c < 2; c++) {
        float *one = eval_all_kv(m, tok, T, 1024, 2, kvs[c]), *chunks = eval_all_kv(m, tok, T, 7, 2, kvs[c]);
        float *tokens = eval_all_kv(m, tok, T, 1, 2, kvs[c]);
        int d_chunks = 0, d_tokens = 0;
        for (int t = 0; one && chunks && tokens && t < T; t++) {
            d_chunks += memcmp(chunks + (size_t)t * V, one + (size_t)t * V, (size_t)V * sizeof(float)) != 0;
            d_tokens += memcmp(tokens + (size_t)t * V, one + (size_t)t * V, (size_t)V * sizeof(float)) != 0;
        }
        CHECKF(one && chunks && tokens && d_chunks == 0 && d_tokens == 0,
               "kv %s: %d positions differ in chunks of 7, %d token by token, of %d",
               gemma8_type_name(kvs[c]), d_chunks, d_tokens, T);
        free(one);
        free(chunks);
        free(tokens);
    }
    free(tok);
    gemma8_model_free(m);
}

TEST(forward_split_decode_one_kv_head) { check_split_decode("gemma3/tiny-a", GEMMA8_TYPE_F32, GEMMA8_KV_AUTO, 2); }
TEST(forward_split_decode_q8_0_cache) { check_split_decode("gemma3/tiny-b", GEMMA8_TYPE_Q8_0, GEMMA8_TYPE_Q8_0, 3); }
TEST(forward_split_decode_gemma2) { check_split_decode("tiny-b", GEMMA8_TYPE_Q8_0, GEMMA8_TYPE_F16, 4); }
