/* main.c - the gemma8 command: its table of subcommands and main. Each subcommand lives in a
 * file of its own; they use only the public header. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void log_to_stderr(int level, const char *msg, void *user) {
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (level <= 2) fprintf(stderr, "gemma8: %s: %s\n", names[level < 0 || level > 3 ? 0 : level], msg);
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"convert", cmd_convert, "convert a Hugging Face checkpoint to GGUF (default q8_0)"},
    {"convert-lora", cmd_convert_lora, "convert a PEFT LoRA adapter to a LoRA GGUF (llama.cpp's layout)"},
    {"quantize", cmd_quantize, "quantize a GGUF model again (q4_0, q8_0, ...), as llama-quantize"},
    {"run", cmd_run, "generate from a prompt or token ids"},
    {"chat", cmd_chat, "interactive multi-turn chat"},
    {"demo", cmd_demo, "chat with a tiny random-weight model (no real model needed)"},
    {"logits", cmd_logits, "write the logits of every position of a token sequence"},
    {"info", cmd_info, "show a model's architecture, sizes and types"},
    {"serve", cmd_serve, "an OpenAI- and Ollama-compatible HTTP server"},
    {"bench", cmd_bench, "measure prefill/decode speed, weight GB/s, memory bandwidth"},
    {"tokenize", cmd_tokenize, "text (or a chat as JSON) on stdin to token ids"},
    {"detokenize", cmd_detokenize, "token ids (JSON array) on stdin to text"},
};

int main(int argc, char **argv) {
    gemma8_log_set(log_to_stderr, NULL);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        printf("usage: gemma8 COMMAND [options]   (gemma8 COMMAND --help for each; gemma8 --version)\n\n"
               "commands:\n");
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            printf("  %-10s %s\n", commands[i].name, commands[i].help);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("gemma8 %s\n", gemma8_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "gemma8: unknown command '%s' (see gemma8 --help)\n", argv[1]);
    return 2;
}
