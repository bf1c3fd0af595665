/* gguf.h - GGUF v3 files: a bounds-checked zero-copy reader and a streaming writer.
 *
 * Layout (all integers little-endian):
 *
 *   offset 0   char[4]  magic "GGUF"
 *          4   u32      version (2 or 3; gemma8 writes 3)
 *          8   u64      tensor_count
 *         16   u64      kv_count
 *         24   kv_count key/value pairs:
 *                 string key  (u64 length, then that many UTF-8 bytes, no NUL)
 *                 u32    value type (gguf_vtype below)
 *                 value: scalar of that type, a string, or an array:
 *                        u32 element type, u64 count, count elements
 *              tensor_count tensor infos:
 *                 string name
 *                 u32    n_dims (1..4)
 *                 u64    ne[n_dims]   (ne[0] is the innermost, contiguous dimension)
 *                 u32    ggml type (gemma8_type)
 *                 u64    offset of the data, relative to the data section, a
 *                        multiple of the alignment
 *              padding to `general.alignment` (u32 key, default 32)
 *   data section: tensor data, each tensor starting at its aligned offset.
 *
 * Q8_0 tensors are rows of blocks {f16 d; int8 qs[32]} (34 bytes) along ne[0].
 */
#ifndef G8_GGUF_H
#define G8_GGUF_H

#include "common.h"
#include "fileio.h"

enum gguf_vtype {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3,
    GGUF_UINT32 = 4, GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7,
    GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4

typedef struct gguf_str {
    const char *p;     /* points into the file; not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    char *key;
    uint32_t type;        /* gguf_vtype */
    uint32_t arr_type;    /* element type when type == GGUF_ARRAY */
    uint64_t n;           /* element count of an array */
    const uint8_t *data;  /* scalar value or first array element, in the file */
    gguf_str *strs;       /* elements of a string array (or the string itself) */
} gguf_kv;

typedef struct gguf_tensor {
    char *name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];   /* unused dims are 1 */
    uint32_t type;
    uint64_t offset;             /* relative to the data section */
    uint64_t nbytes;
    const void *data;            /* in the mapping */
} gguf_tensor;

typedef struct gguf_file {
    g8_map map;
    uint32_t version;
    uint64_t n_kv;
    uint64_t n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset;
} gguf_file;

/* Bytes of a row of n elements of a ggml type; 0 if unsupported or not a whole
 * number of blocks. */
size_t g8_gguf_row_size(uint32_t type, int64_t n);
/* Elements per block of a type (1 for float types, 32 for Q8_0); 0 if unknown. */
int g8_gguf_block_size(uint32_t type);

gemma8_status g8_gguf_open(const char *path, gguf_file *f);
void g8_gguf_close(gguf_file *f);

const gguf_kv *g8_gguf_find_kv(const gguf_file *f, const char *key);
const gguf_tensor *g8_gguf_find_tensor(const gguf_file *f, const char *name);

/* Typed getters: return false if the key is missing; fail with a message if it
 * has the wrong type (*st set to an error then). */
bool g8_gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, gemma8_status *st);
bool g8_gguf_get_f32(const gguf_file *f, const char *key, float *out, gemma8_status *st);
bool g8_gguf_get_bool(const gguf_file *f, const char *key, bool *out, gemma8_status *st);
bool g8_gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, gemma8_status *st);

/* ---- writer ------------------------------------------------------------ */

typedef struct gguf_writer gguf_writer;

/* Fills buf (nbytes) with the data of tensor `index` at write time. */
typedef gemma8_status (*gguf_fill_fn)(void *user, size_t index, void *buf, size_t nbytes);

gguf_writer *g8_gguf_writer_new(void);
void g8_gguf_writer_free(gguf_writer *w);

void g8_gguf_set_str(gguf_writer *w, const char *key, const char *val);
void g8_gguf_set_u32(gguf_writer *w, const char *key, uint32_t val);
void g8_gguf_set_f32(gguf_writer *w, const char *key, float val);
void g8_gguf_set_bool(gguf_writer *w, const char *key, bool val);
void g8_gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *vals, uint64_t n);
/* Array of fixed-size scalars (elem_type GGUF_FLOAT32, GGUF_INT32, ...), copied. */
void g8_gguf_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *vals, uint64_t n);

/* Copies a key/value pair of a file being read (a nested array is not copied: GGUF
 * readers here refuse them). */
void g8_gguf_copy_kv(gguf_writer *w, const gguf_kv *kv);

/* Declares a tensor; its data comes from fill(user, index, ...) during write.
 * Returns the index. */
size_t g8_gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                       const int64_t *ne);

/* Writes the file atomically (temp file + rename). progress may be NULL. */
gemma8_status g8_gguf_write(gguf_writer *w, const char *path, gguf_fill_fn fill, void *user,
                         gemma8_progress_fn progress, void *progress_user);

#endif
