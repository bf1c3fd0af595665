/* test-convert.c - the converter refuses bad checkpoints with a clear error and
 * leaves no output behind. */
#include "safetensors.h"
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct mutation {
    const char *drop;          /* leave this tensor out */
    const char *reshape;       /* give this tensor a wrong shape */
    const char *dtype_of;      /* give this tensor dtype `dtype` */
    const char *dtype;
    size_t truncate_by;        /* cut this many bytes off the end */
} mutation;

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while (a && b && (n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    if (a) fclose(a);
    if (b) fclose(b);
}

/* Writes a copy of a bf16 fixture under tmp/name with one mutation; returns its dir. */
static const char *make_checkpoint_of(const char *fixture, const char *name, const mutation *mu,
                                      const char *config_text) {
    char src[512];
    static char dir[1024];
    snprintf(dir, sizeof dir, "%s", tmp_path(name));
    mkdir(dir, 0755);
    char p[1200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (config_text) {
        FILE *f = fopen(p, "w");
        fputs(config_text, f);
        fclose(f);
    } else {
        snprintf(src, sizeof src, "%s/config.json", data_path(fixture));
        copy_file(src, p);
    }
    st_set set;
    snprintf(src, sizeof src, "%s/model.safetensors", data_path(fixture));
    if (!CHECK(g8_st_open_file(src, &set) == GEMMA8_OK)) return dir;
    cJSON *h = cJSON_CreateObject();
    uint64_t off = 0;
    for (size_t i = 0; i < set.n_tensors; i++) {
        const st_tensor *t = &set.tensors[i];
        if (mu->drop && !strcmp(mu->drop, t->name)) continue;
        cJSON *e = cJSON_AddObjectToObject(h, t->name);
        cJSON_AddStringToObject(e, "dtype", mu->dtype_of && !strcmp(mu->dtype_of, t->name) ? mu->dtype : "BF16");
        int shape[4];
        for (int d = 0; d < t->n_dims; d++) shape[d] = (int)t->shape[d];
        if (mu->reshape && !strcmp(mu->reshape, t->name)) shape[0] /= 2, shape[t->n_dims - 1] *= 2;
        cJSON_AddItemToObject(e, "shape", cJSON_CreateIntArray(shape, t->n_dims));
        double offs[2] = {(double)off, (double)(off + t->nbytes)};
        cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateDoubleArray(offs, 2));
        off += t->nbytes;
    }
    char *js = cJSON_PrintUnformatted(h);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "wb");
    uint64_t hl = strlen(js);
    fwrite(&hl, 8, 1, f);
    fwrite(js, 1, hl, f);
    for (size_t i = 0; i < set.n_tensors; i++)
        if (!(mu->drop && !strcmp(mu->drop, set.tensors[i].name)))
            fwrite(set.tensors[i].data, 1, set.tensors[i].nbytes, f);
    fclose(f);
    if (mu->truncate_by) {
        struct stat sb;
        stat(p, &sb);
        CHECK(truncate(p, sb.st_size - (off_t)mu->truncate_by) == 0);
    }
    free(js);
    cJSON_Delete(h);
    g8_st_close(&set);
    return dir;
}

static const char *make_checkpoint(const char *name, const mutation *mu, const char *config_text) {
    return make_checkpoint_of("tiny-a", name, mu, config_text);
}

/* No file (temporary or final) of this name prefix is left in the temp dir. */
static int leftovers(const char *prefix) {
    DIR *d = opendir(tmp_path(""));
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

static void expect_refusal(const char *name, const mutation *mu, const char *config, gemma8_status want,
                           const char *must_mention) {
    const char *dir = make_checkpoint(name, mu, config);
    char out[256];
    snprintf(out, sizeof out, "out-%s.gguf", name);
    gemma8_convert_params p = gemma8_convert_default_params();
    p.type = GEMMA8_TYPE_F32;
    gemma8_status st = gemma8_convert_hf(dir, tmp_path(out), &p);
    CHECKF(st == want, "%s: status %d, want %d (%s)", name, st, want, gemma8_last_error());
    CHECKF(strstr(gemma8_last_error(), must_mention) != NULL, "%s: message '%s' does not mention '%s'", name,
           gemma8_last_error(), must_mention);
    CHECKF(leftovers(out) == 0, "%s: output left behind", name);
    harness_note("%s: %s", name, gemma8_last_error());
}

TEST(convert_missing_tensor) {
    mutation mu = {.drop = "model.layers.2.mlp.up_proj.weight"};
    expect_refusal("missing", &mu, NULL, GEMMA8_ERR_FORMAT, "model.layers.2.mlp.up_proj.weight");
}

TEST(convert_shape_mismatch) {
    mutation mu = {.reshape = "model.layers.1.self_attn.k_proj.weight"};
    expect_refusal("shape", &mu, NULL, GEMMA8_ERR_FORMAT, "model.layers.1.self_attn.k_proj.weight");
}

TEST(convert_unsupported_dtype) {
    mutation mu = {.dtype_of = "model.norm.weight", .dtype = "F8_E4M3"};
    expect_refusal("dtype", &mu, NULL, GEMMA8_ERR_UNSUPPORTED, "F8_E4M3");
}

TEST(convert_truncated_safetensors) {
    mutation mu = {.truncate_by = 1000};
    expect_refusal("trunc", &mu, NULL, GEMMA8_ERR_FORMAT, "truncated");
}

TEST(convert_other_architecture) {
    mutation mu = {0};
    expect_refusal("llama", &mu,
                   "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64}",
                   GEMMA8_ERR_UNSUPPORTED, "LlamaForCausalLM");
}

TEST(convert_config_not_json) {
    mutation mu = {0};
    expect_refusal("notjson", &mu, "{\"model_type\": \"gemma2\", ", GEMMA8_ERR_FORMAT, "config.json");
}

TEST(convert_config_inconsistent) {
    mutation mu = {0};
    expect_refusal("badcfg", &mu,
                   "{\"model_type\": \"gemma2\", \"vocab_size\": 512, \"hidden_size\": 64, \"num_hidden_layers\": 4,"
                   " \"intermediate_size\": 128, \"num_attention_heads\": 4, \"num_key_value_heads\": 3}",
                   GEMMA8_ERR_FORMAT, "heads");
}

TEST(convert_missing_directory) {
    gemma8_convert_params p = gemma8_convert_default_params();
    CHECK(gemma8_convert_hf(tmp_path("no-such-dir"), tmp_path("x.gguf"), &p) == GEMMA8_ERR_IO);
    CHECK(strstr(gemma8_last_error(), "config.json") != NULL);
}

/* A failed conversion leaves an existing output file as it was. */
TEST(convert_failure_keeps_previous_output) {
    const char *out = tmp_path("keep.gguf");
    FILE *f = fopen(out, "w");
    fputs("previous", f);
    fclose(f);
    mutation mu = {.drop = "model.norm.weight"};
    const char *dir = make_checkpoint("keep", &mu, NULL);
    gemma8_convert_params p = gemma8_convert_default_params();
    CHECK(gemma8_convert_hf(dir, out, &p) == GEMMA8_ERR_FORMAT);
    char buf[16] = {0};
    f = fopen(out, "r");
    CHECK(f && fgets(buf, sizeof buf, f) && !strcmp(buf, "previous"));
    if (f) fclose(f);
    CHECK(leftovers("keep.gguf.tmp") == 0);
}

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* Disk full (RLIMIT_FSIZE): convert reports the write error and leaves no file. */
TEST(convert_disk_full) {
    const char *out = tmp_path("full.gguf");
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG instead of a signal */
        struct rlimit rl = {200 * 1024, 200 * 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
        gemma8_convert_params p = gemma8_convert_default_params();
        p.type = GEMMA8_TYPE_F32;
        gemma8_status st = gemma8_convert_hf(data_path("tiny-a"), out, &p);
        fprintf(stdout, "      disk full: %s\n", gemma8_last_error());
        fflush(stdout);
        _exit(st == GEMMA8_ERR_IO && strstr(gemma8_last_error(), "failed") ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    CHECK(access(out, F_OK) != 0);
    CHECK(leftovers("full.gguf") == 0);
}

/* ---- q4_0 (w4a8) ------------------------------------------------------------------- */

#include "gguf.h"

/* The two files have the same tensors: type, shape and bytes. */
static void same_files(const char *pa, const char *pb) {
    gguf_file a, b;
    if (!CHECK(g8_gguf_open(pa, &a) == GEMMA8_OK)) return;
    if (!CHECK(g8_gguf_open(pb, &b) == GEMMA8_OK)) {
        g8_gguf_close(&a);
        return;
    }
    CHECK(a.n_tensors == b.n_tensors);
    const int same = same_tensors(&b, &a);
    CHECKF((uint64_t)same == a.n_tensors, "%llu tensors differ", (unsigned long long)a.n_tensors - same);
    g8_gguf_close(&a);
    g8_gguf_close(&b);
}

/* gemma8's Q4_0 (and the Q8_0 embedding it keeps) are ggml's, byte for byte: convert --type q4_0 of
 * fixture (bf16 widened to f32) and gemma8 quantize of llama.cpp's f32 file both write
 * llama-quantize's Q4_0 file; ours gets gemma8's own file's path. */
static void check_q4_0_as_llama_quantize(const char *fixture, const char *llama_f32, const char *llama_q4_0,
                                         char *ours, size_t cap) {
    char name[128], requant[1024];
    snprintf(name, sizeof name, "%s-q4_0-gemma8.gguf", strrchr(fixture, '/') ? strrchr(fixture, '/') + 1 : fixture);
    snprintf(ours, cap, "%s", tmp_path(name));
    snprintf(requant, sizeof requant, "%s", tmp_path("q4_0-requant.gguf"));
    gemma8_convert_params p = gemma8_convert_default_params();
    p.type = GEMMA8_TYPE_Q4_0;
    CHECK(gemma8_convert_hf(data_path(fixture), ours, &p) == GEMMA8_OK);
    same_files(ours, data_path(llama_q4_0));
    CHECKF(gemma8_quantize(data_path(llama_f32), requant, &p) == GEMMA8_OK, "%s", gemma8_last_error());
    same_files(requant, data_path(llama_q4_0));
}

TEST(convert_q4_0_byte_identical_to_llama_quantize) {
    char ours[1024];
    check_q4_0_as_llama_quantize("tiny-a", "llamacpp-gguf/tiny-a-f32.gguf", "llamacpp-gguf/tiny-a-q4_0.gguf", ours,
                                 sizeof ours);
    /* and llama.cpp's file gives the logits of gemma8's own */
    gemma8_model *a = NULL, *b = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    CHECK(gemma8_model_load(ours, &mp, &a) == GEMMA8_OK);
    CHECK(gemma8_model_load(data_path("llamacpp-gguf/tiny-a-q4_0.gguf"), &mp, &b) == GEMMA8_OK);
    int32_t tok[12] = {2, 17, 300, 5, 99, 411, 7, 7, 256, 1, 44, 510};
    float *la = a ? eval_all(a, tok, 12, 256, 2) : NULL, *lb = b ? eval_all(b, tok, 12, 256, 2) : NULL;
    CHECK(la && lb && !memcmp(la, lb, (size_t)12 * 512 * sizeof(float)));
    free(la);
    free(lb);
    gemma8_model_free(a);
    gemma8_model_free(b);
}

/* gemma3's tiny-a (its 64-column embedding Q8_0 in both files) */
TEST(convert_gemma3_q4_0_byte_identical_to_llama_quantize) {
    char ours[1024];
    check_q4_0_as_llama_quantize("gemma3/tiny-a", "llamacpp-gguf/gemma3-tiny-a-f32.gguf",
                                 "llamacpp-gguf/gemma3-tiny-a-q4_0.gguf", ours, sizeof ours);
}

/* llama.cpp's Q4_0 file keeps token_embd in Q6_K: row lookup and the output
 * projection (int8 activations) equal the same file widened to f32 up to the
 * activations' rounding. */
TEST(quantize_llamacpp_q4_0_with_q6_k_embedding) {
    const char *src = data_path("llamacpp-gguf/random-h256-q4_0.gguf");
    char f32[1024];
    snprintf(f32, sizeof f32, "%s", tmp_path("random-h256-as-f32.gguf"));
    gguf_file f;
    if (CHECK(g8_gguf_open(src, &f) == GEMMA8_OK)) {
        const gguf_tensor *t = g8_gguf_find_tensor(&f, "token_embd.weight");
        CHECK(t && t->type == GEMMA8_TYPE_Q6_K);
        g8_gguf_close(&f);
    }
    gemma8_convert_params p = gemma8_convert_default_params();
    p.type = GEMMA8_TYPE_F32;
    CHECKF(gemma8_quantize(src, f32, &p) == GEMMA8_OK, "%s", gemma8_last_error());
    gemma8_model *a = NULL, *b = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    CHECK(gemma8_model_load(src, &mp, &a) == GEMMA8_OK);
    CHECK(gemma8_model_load(f32, &mp, &b) == GEMMA8_OK);
    int32_t tok[32];
    for (int i = 0; i < 32; i++) tok[i] = (int32_t)((i * 131 + 7) % 512);
    float *la = a ? eval_all(a, tok, 32, 256, 2) : NULL, *lb = b ? eval_all(b, tok, 32, 256, 2) : NULL;
    if (la && lb) {
        double kl = mean_kl(lb, la, 32, 512);
        int agree = argmax_agree(la, lb, 32, 512);
        harness_note("llama.cpp q4_0 + q6_k embedding vs its weights in f32: mean KL %.3g, argmax %d/32", kl, agree);
        CHECKF(kl <= 1e-3, "mean KL %g", kl);
        CHECKF(agree >= 31, "argmax %d/32", agree);
    }
    free(la);
    free(lb);
    gemma8_model_free(a);
    gemma8_model_free(b);
}

TEST(quantize_bad_input) {
    char out[1024];
    snprintf(out, sizeof out, "%s", tmp_path("quantize-bad.gguf"));
    gemma8_convert_params p = gemma8_convert_default_params();
    p.type = GEMMA8_TYPE_Q4_0;
    /* an adapter is not a model */
    CHECK(gemma8_quantize(data_path("llamacpp-gguf/tiny-a-lora.gguf"), out, &p) != GEMMA8_OK);
    CHECKF(strstr(gemma8_last_error(), "not a model"), "%s", gemma8_last_error());
    CHECK(access(out, F_OK) != 0);
    CHECK(gemma8_quantize(data_path("nonexistent.gguf"), out, &p) != GEMMA8_OK);
    p.type = GEMMA8_TYPE_Q6_K; /* read, never written */
    CHECK(gemma8_quantize(data_path("llamacpp-gguf/tiny-a-f32.gguf"), out, &p) == GEMMA8_ERR_INVALID_ARG);
    CHECK(strstr(gemma8_last_error(), "q6_k") != NULL);
    CHECK(access(out, F_OK) != 0);
}

/* ---- gemma3 ------------------------------------------------------------------------------ */

/* Checkpoints of the Gemma family gemma8 does not run are refused by name, before any weight is read. */
TEST(convert_other_gemmas_refused) {
    static const struct { const char *config, *name; } cases[] = {
        {"{\"architectures\": [\"Gemma3nForConditionalGeneration\"], \"model_type\": \"gemma3n\"}", "Gemma 3n"},
        {"{\"architectures\": [\"Gemma4ForConditionalGeneration\"], \"model_type\": \"gemma4\"}", "Gemma 4"},
        {"{\"model_type\": \"gemma4_text\", \"hidden_size\": 64}", "Gemma 4"},
        {"{\"architectures\": [\"PaliGemmaForConditionalGeneration\"], \"model_type\": \"paligemma\"}", "PaliGemma"},
        {"{\"architectures\": [\"Gemma3TextModel\"], \"model_type\": \"gemma3_text\"}", "EmbeddingGemma"},
        {"{\"architectures\": [\"Gemma3ForCausalLM\"], \"model_type\": \"gemma3_text\", \"vocab_size\": 512,"
         " \"use_bidirectional_attention\": true}", "bidirectional"},
    };
    mutation mu = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "other%zu", i);
        expect_refusal(name, &mu, cases[i].config, GEMMA8_ERR_UNSUPPORTED, cases[i].name);
    }
}

/* Converts dir to an f32 file and checks its logits against transformers' for gemma3/tiny-a. */
static void check_tiny_a_logits(const char *dir, const char *label) {
    const char *out = tmp_path("gemma3-layout.gguf");
    gemma8_convert_params p = gemma8_convert_default_params();
    p.type = GEMMA8_TYPE_F32;
    if (!CHECKF(gemma8_convert_hf(dir, out, &p) == GEMMA8_OK, "%s: %s", label, gemma8_last_error())) return;
    gemma8_model *m = NULL;
    gemma8_model_params mp = gemma8_model_default_params();
    if (!CHECK(gemma8_model_load(out, &mp, &m) == GEMMA8_OK)) return;
    char ref[512];
    snprintf(ref, sizeof ref, "%s/reference.safetensors", data_path("gemma3/tiny-a"));
    size_t T, n;
    int32_t *tok = ref_load(ref, "seq0.tokens", &T);
    float *want = ref_load(ref, "seq0.logits", &n);
    float *got = tok ? eval_all(m, tok, (int)T, 64, 2) : NULL;
    if (got && want) {
        const float d = max_abs_diff(got, want, n);
        CHECKF(d <= 1e-4f, "%s: max |diff| %g", label, d);
        harness_note("%s: max |diff| %.3g from transformers", label, d);
    }
    free(tok);
    free(want);
    free(got);
    gemma8_model_free(m);
}

/* Gemma3ForConditionalGeneration (4B and larger): the text model under language_model, in the Hub's
 * layout and with the module paths as names; the vision tower and projector skipped. */
TEST(convert_gemma3_conditional_generation) {
    check_tiny_a_logits(data_path("gemma3/tiny-a-mm"), "Gemma3ForConditionalGeneration (language_model.model.*)");
    check_tiny_a_logits(data_path("gemma3/tiny-a-mm-paths"), "Gemma3ForConditionalGeneration (model.language_model.*)");
}

/* A missing q/k norm in a gemma3 checkpoint is named. */
TEST(convert_gemma3_missing_qk_norm) {
    const char *drop = "model.layers.3.self_attn.k_norm.weight";
    mutation mu = {.drop = drop};
    const char *dir = make_checkpoint_of("gemma3/tiny-a", "g3-no-qnorm", &mu, NULL);
    gemma8_convert_params p = gemma8_convert_default_params();
    CHECK(gemma8_convert_hf(dir, tmp_path("g3-no-qnorm.gguf"), &p) == GEMMA8_ERR_FORMAT);
    CHECKF(strstr(gemma8_last_error(), drop) != NULL, "%s", gemma8_last_error());
    CHECK(leftovers("g3-no-qnorm.gguf") == 0);
}
