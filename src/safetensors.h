/* safetensors.h - Hugging Face safetensors files, single or sharded.
 *
 * Layout: u64 little-endian header length N, then N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data; offsets are relative to the data start.
 */
#ifndef G8_SAFETENSORS_H
#define G8_SAFETENSORS_H

#include "common.h"
#include "fileio.h"

#define ST_TYPE_I32 26   /* ggml's id; only in reference data, never a weight */

typedef struct st_tensor {
    char *name;
    uint32_t type;        /* gemma8_type F32, F16, BF16, or ST_TYPE_I32 */
    int n_dims;
    int64_t shape[4];     /* in safetensors (row-major, outermost first) order */
    const void *data;
    uint64_t nbytes;
    int shard;
} st_tensor;

typedef struct st_set {
    g8_map *maps;         /* one per shard */
    int n_maps;
    st_tensor *tensors;
    size_t n_tensors;
} st_set;

/* Opens DIR/model.safetensors, or the shards listed by DIR/model.safetensors.index.json. */
gemma8_status g8_st_open_dir(const char *dir, st_set *set);
/* Opens one file. */
gemma8_status g8_st_open_file(const char *path, st_set *set);
void g8_st_close(st_set *set);
const st_tensor *g8_st_find(const st_set *set, const char *name);

#endif
