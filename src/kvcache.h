/* kvcache.h - the KV cache: the keys and values of every position of every
 * sequence a context holds, and their tokens.
 *
 * A cache holds n_seq independent sequences (a sequence is one conversation:
 * its own positions 0..n_past-1, its own tokens, its own sliding-window rings),
 * each of n_ctx positions. Server slots are sequences of one cache, as
 * llama.cpp's seq_id.
 *
 * Layout, per sequence and layer: keys and values each in one buffer,
 * head-major (n_head_kv, slots, head bytes), so that attention reads a head's
 * keys as one stream. Position p lives in slot p % slots. Global layers have
 * n_ctx slots; sliding-window layers a ring of window + n_batch slots (a chunk
 * of n_batch new positions never overwrites one that its queries still see).
 * Head bytes: head_dim floats (f32), head_dim halves (f16), or head_dim / 32
 * blocks of Q8_0 (block_q8_0: f16 scale + 32 int8).
 *
 * A unified cache (llama.cpp's --kv-unified) is one pool of n_ctx positions
 * that the sequences share: each may hold up to n_ctx, all together n_ctx.
 * Its buffers keep the same layout but are address space reserved, not memory:
 * the system gives a page when a position in it is first written, and takes
 * the pages of positions back when a sequence is cleared or cut back. So the
 * memory held follows the positions held, and the attention reads the same
 * layout as in a cache of separate sequences.
 */
#ifndef G8_KVCACHE_H
#define G8_KVCACHE_H

#include "kernels.h"
#include "model.h"

typedef struct g8_kv_layer {
    void *k;           /* (n_head_kv, slots, head bytes) */
    void *v;           /* (n_head_kv, slots, head bytes) */
    int slots;         /* n_ctx, or window + n_batch on sliding layers */
} g8_kv_layer;

typedef struct g8_kv_seq {
    int32_t n_past;          /* positions held: 0..n_past-1 */
    int32_t pos_end;         /* one past the highest position written since the sequence was empty
                                (above n_past after a cut back or an aborted pass) */
    int32_t *tokens;         /* (n_ctx) the token of each position (-1: an embedding input) */
    g8_kv_layer *layers;     /* (n_layer) */
} g8_kv_seq;

typedef struct g8_kvcache {
    uint32_t type;           /* GEMMA8_TYPE_F32, GEMMA8_TYPE_F16 or GEMMA8_TYPE_Q8_0 */
    int n_layer, n_head_kv, head_dim;
    int window;              /* of the sliding layers */
    int n_ctx;               /* positions per sequence */
    int n_batch;             /* most positions written at once */
    int n_seq;
    bool unified;            /* one pool of n_ctx positions for all sequences */
    g8_kv_seq *seq;          /* (n_seq) */
    const g8_kernels *k;     /* quantizes rows of a Q8_0 cache */
} g8_kvcache;

/* Whether t is a KV cache type (f32, f16, q8_0). */
bool g8_kv_type_known(int32_t t);

/* Bytes of one head's key (or value) at one position. */
size_t g8_kv_head_bytes(uint32_t type, int head_dim);
/* Byte offset of head g at ring slot `slot` in a layer buffer of `slots` positions. */
size_t g8_kv_offset(uint32_t type, int head_dim, int slots, int g, int slot);
/* Slots of layer il for a sequence of n_ctx positions written n_batch at a time. */
int g8_kv_slots(const g8_hparams *hp, int il, int n_ctx, int n_batch);
/* Bytes a cache of n_seq sequences takes; rings false: as if every layer kept n_ctx. */
uint64_t g8_kv_bytes(const g8_hparams *hp, uint32_t type, int n_seq, int n_ctx, int n_batch, bool rings);
/* The most memory a unified pool of n_ctx positions shared by n_seq sequences holds: every global
 * layer n_ctx positions, the rings of the sliding ones no more than n_seq full rings, and a page per
 * head buffer left over from a position that does not fill its page. */
uint64_t g8_kv_bytes_unified(const g8_hparams *hp, uint32_t type, int n_seq, int n_ctx, int n_batch);

/* Allocates n_seq empty sequences (unified: sharing one pool of n_ctx positions);
 * GEMMA8_ERR_NOMEM naming the size on failure. */
gemma8_status g8_kv_init(g8_kvcache *c, const g8_hparams *hp, const g8_kernels *k, uint32_t type, int n_seq,
                         int n_ctx, int n_batch, bool unified);
/* Positions the sequences hold together (of a unified pool: its used part). */
int32_t g8_kv_held(const g8_kvcache *c);
void g8_kv_free(g8_kvcache *c);

/* Row `pos` of sequence s, layer il: keys (kv 0) or values (kv 1), all heads, as f32 / from f32. */
void g8_kv_get_row(const g8_kvcache *c, int s, int il, int kv, int32_t pos, float *out);
void g8_kv_set_row(g8_kvcache *c, int s, int il, int kv, int32_t pos, const float *in);

/* Whether sequence s can be cut back to n positions (sliding-window rings keep
 * only the last positions, so a long cut back needs a new prefill). */
bool g8_kv_can_truncate(const g8_kvcache *c, int s, int32_t n);
/* Keeps the first n positions of sequence s, or none if the rings cannot. */
void g8_kv_truncate(g8_kvcache *c, int s, int32_t n);
/* Empties sequence s. */
void g8_kv_clear(g8_kvcache *c, int s);

/* Prompt caches: sequence s to a file and back (fingerprint: the model's and its adapters'). */
gemma8_status g8_kv_save(const g8_kvcache *c, int s, uint64_t fingerprint, const char *path);
gemma8_status g8_kv_load(g8_kvcache *c, int s, uint64_t fingerprint, int32_t n_vocab, const char *path);
/* The same in a buffer: *size is what it takes; GEMMA8_ERR_BUFFER_TOO_SMALL when cap is less (buf
 * NULL: only *size). */
gemma8_status g8_kv_save_buffer(const g8_kvcache *c, int s, uint64_t fingerprint, void *buf, size_t cap,
                                size_t *size);
gemma8_status g8_kv_load_buffer(g8_kvcache *c, int s, uint64_t fingerprint, int32_t n_vocab, const void *buf,
                                size_t size);

#endif
