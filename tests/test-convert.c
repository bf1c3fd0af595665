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

/* Writes a copy of tiny-a under tmp/name with one mutation; returns its dir. */
static const char *make_checkpoint(const char *name, const mutation *mu, const char *config_text) {
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
        copy_file(data_path("tiny-a/config.json"), p);
    }
    st_set set;
    if (!CHECK(st_open_file(data_path("tiny-a/model.safetensors"), &set) == GEMMA8_OK)) return dir;
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
    st_close(&set);
    return dir;
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
