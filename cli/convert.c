/* convert.c - the commands that write model files: convert (a Hugging Face checkpoint, or
 * random weights), quantize (a GGUF file to another type) and convert-lora (a PEFT adapter). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t g_interrupted;

static void on_interrupt(int sig) {
    (void)sig;
    g_interrupted = 1;
}

typedef struct convert_progress {
    bool tty;            /* redraw one line with \r; else a plain line every 10% */
    int last_decile;
} convert_progress;

static bool progress(const char *what, uint64_t done, uint64_t total, void *user) {
    convert_progress *cp = user;
    const double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    if (cp->tty) {
        fprintf(stderr, "\rgemma8: writing %7.2f / %.2f GB (%3.0f%%) %-36.36s", done / 1e9, total / 1e9, pct, what);
        if (done == total) fprintf(stderr, "\n");
    } else if ((int)(pct / 10) > cp->last_decile) {
        cp->last_decile = (int)(pct / 10);
        fprintf(stderr, "gemma8: writing %.2f / %.2f GB (%.0f%%)\n", done / 1e9, total / 1e9, pct);
    }
    return !g_interrupted; /* Ctrl-C: the library stops and removes its temporary file */
}

/* --type and --output-type: types that can be written; 2 after the error */
static int parse_types(const char *cmd, const char *type, const char *out_type, gemma8_convert_params *p) {
    gemma8_type t;
    if (!gemma8_type_parse(type, &p->type) || p->type == GEMMA8_TYPE_Q6_K) {
        fprintf(stderr, "gemma8 %s: --type expects q8_0, q4_0, f32, f16 or bf16, got '%s'\n", cmd, type);
        return 2;
    }
    if (out_type && (!gemma8_type_parse(out_type, &t) || t == GEMMA8_TYPE_Q6_K)) {
        fprintf(stderr, "gemma8 %s: --output-type expects q8_0, q4_0, f32, f16 or bf16, got '%s'\n", cmd, out_type);
        return 2;
    }
    p->output_type = out_type ? (int32_t)t : -1;
    return 0;
}

/* Ctrl-C handling and progress lines for convert and quantize; the result line. */
static int write_model(const char *cmd, const char *out, const char *type, bool quiet, gemma8_convert_params *p,
                       gemma8_status (*run)(void *), void *arg) {
    convert_progress cp = {isatty(2), -1};
    p->progress = progress;
    p->progress_user_data = &cp;
    if (quiet) cp.last_decile = 10; /* no lines; progress still carries Ctrl-C */
    cp.tty = cp.tty && !quiet;
    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double t0 = gemma8_time();
    gemma8_status st = run(arg);
    if (st == GEMMA8_ERR_ABORTED) {
        fprintf(stderr, "\ngemma8: interrupted: '%s' was not written\n", out);
        return 130;
    }
    if (st) return cli_fail(st);
    struct stat sb;
    double gb = stat(out, &sb) == 0 ? (double)sb.st_size / 1e9 : 0;
    if (!quiet) fprintf(stderr, "gemma8 %s: wrote %s (%s, %.2f GB) in %.1f s\n", cmd, out, type, gb, gemma8_time() - t0);
    return 0;
}

typedef struct convert_args {
    const char *in, *out, *random_cfg, *tok_dir;
    const gemma8_convert_params *p;
} convert_args;

static gemma8_status run_convert(void *arg) {
    const convert_args *a = arg;
    return a->random_cfg ? gemma8_convert_random(a->random_cfg, a->tok_dir ? a->tok_dir : a->in, a->out, a->p)
                         : gemma8_convert_hf(a->in, a->out, a->p);
}

static gemma8_status run_quantize(void *arg) {
    const convert_args *a = arg;
    return gemma8_quantize(a->in, a->out, a->p);
}

int cmd_convert(int argc, char **argv) {
    const char *out = NULL, *random_cfg = NULL, *tok_dir = NULL, *type = "q8_0", *out_type = NULL;
    bool quiet = false;
    gemma8_convert_params p = gemma8_convert_default_params();
    const cli_opt opts[] = {
        {"-o|--output", CLI_STR, &out, "OUT.gguf", "the file to write (it appears only when complete)", NULL},
        {"--type", CLI_STR, &type, "T", "matrix storage: q8_0 (w8a8), q4_0 (w4a8), f32, f16, bf16", NULL},
        {"--output-type", CLI_STR, &out_type, "T", "token_embd/output (every logit): default q8_0 for q4_0, else "
         "--type", NULL},
        {"--random", CLI_STR, &random_cfg, "CONFIG.json", "random weights of this shape (benchmarks)", NULL},
        {"--lora", CLI_STR, &p.lora, "ADAPTER", "merge a LoRA adapter (PEFT folder or LoRA GGUF) before storing", NULL},
        {"--lora-scale", CLI_FLOAT, &p.lora_scale, "S", "its scale", NULL},
        {"--tokenizer", CLI_STR, &tok_dir, "DIR", "tokenizer.json for --random", NULL},
        {"-q|--quiet", CLI_FLAG, &quiet, NULL, "no progress", NULL},
        {0},
    };
    const cli_opt *tables[] = {opts, NULL};
    const char *usage =
        "usage: gemma8 convert HF_DIR -o OUT.gguf [--type q8_0|q4_0|f32|f16|bf16] [--lora ADAPTER [--lora-scale S]]\n"
        "       gemma8 convert --random CONFIG.json -o OUT.gguf [--type T] [--tokenizer DIR]\n\n"
        "Converts a Hugging Face Gemma 2 checkpoint (config.json, model.safetensors or shards with\n"
        "model.safetensors.index.json; bf16, f16 or f32) into one GGUF file in llama.cpp's gemma2\n"
        "layout. Matrices whose rows are not a multiple of 32 stay bf16/f16. Ctrl-C stops it and\n"
        "leaves no partial file.\n";
    const char *in = NULL;
    int np = 0;
    int r = cli_parse("convert", usage, argc, argv, tables, &in, 1, &np);
    if (r) return r == 1 ? 0 : 2;
    if ((r = parse_types("convert", type, out_type, &p))) return r;
    if ((!in && !random_cfg) || !out) {
        fprintf(stderr, "gemma8 convert: needs HF_DIR (or --random CONFIG.json) and -o OUT.gguf\n");
        return 2;
    }
    convert_args a = {in, out, random_cfg, tok_dir, &p};
    return write_model("convert", out, type, quiet, &p, run_convert, &a);
}

int cmd_quantize(int argc, char **argv) {
    const char *type = NULL, *out_type = NULL;
    bool quiet = false;
    gemma8_convert_params p = gemma8_convert_default_params();
    const cli_opt opts[] = {
        {"--type", CLI_STR, &type, "T", "q4_0 (w4a8), q8_0 (w8a8), f16, bf16, f32", NULL},
        {"--output-type", CLI_STR, &out_type, "T", "token_embd/output: default q8_0 for q4_0, else --type", NULL},
        {"-q|--quiet", CLI_FLAG, &quiet, NULL, "no progress", NULL},
        {0},
    };
    const cli_opt *tables[] = {opts, NULL};
    const char *usage =
        "usage: gemma8 quantize IN.gguf OUT.gguf --type q4_0|q8_0|f16|bf16|f32 [--output-type T]\n\n"
        "Quantizes a GGUF Gemma 2 model again, as llama.cpp's llama-quantize: its matrices (f32, f16, bf16,\n"
        "q8_0, q4_0, q6_k) are widened to f32 and stored in the new type (ggml's reference rounding);\n"
        "norms and metadata are copied. OUT.gguf appears only when complete.\n";
    const char *pos[2] = {NULL, NULL};
    int np = 0;
    int r = cli_parse("quantize", usage, argc, argv, tables, pos, 2, &np);
    if (r) return r == 1 ? 0 : 2;
    if (np != 2 || !type) {
        fprintf(stderr, "gemma8 quantize: needs IN.gguf OUT.gguf and --type\n");
        return 2;
    }
    if ((r = parse_types("quantize", type, out_type, &p))) return r;
    convert_args a = {pos[0], pos[1], NULL, NULL, &p};
    return write_model("quantize", pos[1], type, quiet, &p, run_quantize, &a);
}

int cmd_convert_lora(int argc, char **argv) {
    const char *out = NULL, *in = NULL;
    const cli_opt opts[] = {
        {"-o|--output", CLI_STR, &out, "OUT.gguf", "the file to write (it appears only when complete)", NULL},
        {0},
    };
    const cli_opt *tables[] = {opts, NULL};
    const char *usage = "usage: gemma8 convert-lora ADAPTER_DIR -o OUT.gguf\n\n"
                        "Writes a PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors) as a\n"
                        "LoRA GGUF in llama.cpp's layout, usable by gemma8 and llama.cpp alike.\n";
    int np = 0;
    int r = cli_parse("convert-lora", usage, argc, argv, tables, &in, 1, &np);
    if (r) return r == 1 ? 0 : 2;
    if (!in || !out) {
        fprintf(stderr, "gemma8 convert-lora: needs ADAPTER_DIR and -o OUT.gguf\n");
        return 2;
    }
    gemma8_status st = gemma8_lora_convert(in, out);
    if (st) return cli_fail(st);
    fprintf(stderr, "gemma8: wrote %s\n", out);
    return 0;
}
