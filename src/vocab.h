/* vocab.h - the tokenizer vocabulary: carried from a checkpoint into GGUF. */
#ifndef G8_VOCAB_H
#define G8_VOCAB_H

#include "gguf.h"

/* llama.cpp's token types (tokenizer.ggml.token_type) */
enum g8_token_type {
    G8_TOKEN_NORMAL = 1, G8_TOKEN_UNKNOWN = 2, G8_TOKEN_CONTROL = 3,
    G8_TOKEN_USER_DEFINED = 4, G8_TOKEN_UNUSED = 5, G8_TOKEN_BYTE = 6,
};

/* True if s is a byte piece "<0xNN>" (two upper- or lower-case hex digits); *b gets the byte. */
bool g8_byte_piece(const char *s, size_t len, unsigned *b);

/* Writes the tokenizer metadata (llama.cpp's keys) of the checkpoint in dir
 * (tokenizer.json, tokenizer_config.json) into w; without them, a placeholder
 * vocabulary of n_vocab pieces (<pad> <eos> <bos> <unk>, byte pieces, fillers)
 * so that the file still loads in llama.cpp. dir may be NULL. own_size: the vocabulary is the
 * tokenizer's own size even when n_vocab (the embedding's rows) is larger (gemma3, as llama.cpp's
 * converter); *n_out gets the vocabulary's size, the embedding rows to write. */
gemma8_status g8_vocab_convert(gguf_writer *w, const char *dir, int n_vocab, bool own_size, int *n_out);


/* ---- the loaded vocabulary and tokenizer ---------------------------------- */

typedef struct g8_ids {
    int32_t *v;
    size_t n, cap;
} g8_ids;

bool g8_ids_push(g8_ids *ids, int32_t id);

typedef struct g8_trie g8_trie;

typedef struct g8_vocab {
    int n;
    char **text;           /* (n) token text, NUL-terminated; spaces stored as U+2581 */
    uint32_t *len;         /* (n) bytes of text */
    int32_t *type;         /* (n) g8_token_type */
    bool *special;         /* (n) Hugging Face's "special" added tokens: matched in text only
                              with parse_special, left out by skip_special */
    uint32_t *rank;        /* (n) merge priority of the token as a BPE product; UINT32_MAX: never */
    int32_t *hash;         /* open-addressing table of ids, by text */
    uint32_t hash_mask;
    int32_t byte_id[256];  /* <0xNN> pieces, -1 if absent */
    g8_trie *added;        /* CONTROL and USER_DEFINED tokens, matched before BPE */
    int32_t bos, eos, unk, pad, start_of_turn, end_of_turn;
    bool add_bos;
    bool split_words;      /* no mergeable piece has U+2581 after another character */
    char *chat_template;   /* NULL if none */
    char *storage;         /* behind text[] */
} g8_vocab;

/* Reads llama.cpp's tokenizer metadata from a GGUF file. */
gemma8_status g8_vocab_load(g8_vocab *v, const gguf_file *f, const char *path);
void g8_vocab_free(g8_vocab *v);

/* Id of a token text (spaces as U+2581), or -1. */
int32_t g8_vocab_find(const g8_vocab *v, const char *s, size_t len);

/* Appends the ids of text to out. parse_special: recognise control-token text
 * (<bos>, <start_of_turn>, ...); user-defined tokens (newline and space runs,
 * HTML tags) are always recognised, as in Hugging Face. */
gemma8_status g8_tokenize(const g8_vocab *v, const char *text, size_t len, bool parse_special, g8_ids *out);

/* Appends the text of one token to a buffer: *raw_byte gets the byte of a
 * <0xNN> piece (returns 0 bytes of text then), else -1. */
size_t g8_token_text(const g8_vocab *v, int32_t id, bool special, char *buf, size_t cap, int *raw_byte);

/* Streaming decoder: text is released only in whole UTF-8 characters; bytes
 * that cannot complete one come out as U+FFFD. */
typedef struct g8_stream {
    uint8_t pend[4];
    int n;
} g8_stream;

/* Appends the text completed by token id to *out (a malloc'd buffer of *len
 * bytes, grown as needed; NUL-terminated). Control tokens give no text.
 * Returns false on out-of-memory. */
bool g8_stream_feed(const g8_vocab *v, g8_stream *s, int32_t id, char **out, size_t *len);
/* Releases held bytes (as U+FFFD) at the end of a stream. */
bool g8_stream_flush(g8_stream *s, char **out, size_t *len);

/* Decodes ids to UTF-8 as Hugging Face does (byte pieces fused; a run of bytes
 * that is not valid UTF-8 becomes one U+FFFD per byte). Returns a malloc'd
 * NUL-terminated string, NULL on error. */
char *g8_detokenize(const g8_vocab *v, const int32_t *ids, size_t n, bool skip_special, size_t *out_len);

#endif
