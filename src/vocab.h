/* vocab.h - the tokenizer vocabulary: carried from a checkpoint into GGUF. */
#ifndef G8_VOCAB_H
#define G8_VOCAB_H

#include "gguf.h"

/* llama.cpp's token types (tokenizer.ggml.token_type) */
enum g8_token_type {
    G8_TOKEN_NORMAL = 1, G8_TOKEN_UNKNOWN = 2, G8_TOKEN_CONTROL = 3,
    G8_TOKEN_USER_DEFINED = 4, G8_TOKEN_UNUSED = 5, G8_TOKEN_BYTE = 6,
};

/* Writes the tokenizer metadata (llama.cpp's keys) of the checkpoint in dir
 * (tokenizer.json, tokenizer_config.json) into w; without them, a placeholder
 * vocabulary of n_vocab pieces (<pad> <eos> <bos> <unk>, byte pieces, fillers)
 * so that the file still loads in llama.cpp. dir may be NULL. */
gemma8_status g8_vocab_convert(gguf_writer *w, const char *dir, int n_vocab);

#endif
