/* ggml_stub.c - a library that exports the gguf_* (and safetensors st_*) names that
 * ggml and other libraries define, with other signatures. Each one aborts: a program
 * that links it before libgemma8 must never reach them through gemma8's own calls
 * (a library that exported its internals under these names would). */
#include <stdio.h>
#include <stdlib.h>

#define STUB(name)                                                                    \
    void name(void);                                                                  \
    void name(void) {                                                                 \
        fprintf(stderr, "ggml_stub: %s was called: libgemma8 reached another library's symbol\n", #name); \
        abort();                                                                      \
    }

STUB(gguf_open)
STUB(gguf_close)
STUB(gguf_find_kv)
STUB(gguf_find_tensor)
STUB(gguf_get_str)
STUB(gguf_get_u32)
STUB(gguf_get_f32)
STUB(gguf_get_bool)
STUB(gguf_block_size)
STUB(gguf_row_size)
STUB(gguf_writer_new)
STUB(gguf_writer_free)
STUB(gguf_add_tensor)
STUB(gguf_copy_kv)
STUB(gguf_set_str)
STUB(gguf_set_u32)
STUB(gguf_set_f32)
STUB(gguf_set_bool)
STUB(gguf_set_arr)
STUB(gguf_set_arr_str)
STUB(gguf_write)
STUB(st_open_file)
STUB(st_open_dir)
STUB(st_find)
STUB(st_close)
