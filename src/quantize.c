/* quantize.c - a GGUF gemma2 / gemma3 model quantized again (llama.cpp's llama-quantize):
 * each matrix widened to f32 row by row and stored in the new type; norms and
 * metadata copied; written to a temporary name and renamed when complete. */
#include "arch.h"
#include "convert.h"
#include "gguf.h"
#include "quant.h"

#include <stdlib.h>
#include <string.h>

typedef struct qtensor {
    const gguf_tensor *src;
    uint32_t type;     /* what it is written as */
} qtensor;

typedef struct qjob {
    qtensor *t;
    float *row;
} qjob;

static gemma8_status fill(void *user, size_t index, void *buf, size_t nbytes) {
    const qjob *q = user;
    const qtensor *qt = &q->t[index];
    const gguf_tensor *src = qt->src;
    if (qt->type == src->type) {
        memcpy(buf, src->data, nbytes);
        return GEMMA8_OK;
    }
    const int64_t cols = src->ne[0], rows = (int64_t)(src->nbytes / g8_gguf_row_size(src->type, cols));
    const size_t in_bytes = g8_gguf_row_size(src->type, cols), out_bytes = g8_gguf_row_size(qt->type, cols);
    for (int64_t r = 0; r < rows; r++) {
        g8_to_f32(src->type, (const uint8_t *)src->data + (size_t)r * in_bytes, q->row, cols);
        uint8_t *dst = (uint8_t *)buf + (size_t)r * out_bytes;
        switch (qt->type) {
        case GEMMA8_TYPE_Q8_0: g8_quantize_row_q8_0_ref(q->row, (block_q8_0 *)dst, cols); break;
        case GEMMA8_TYPE_Q4_0: g8_quantize_row_q4_0_ref(q->row, (block_q4_0 *)dst, cols); break;
        case GEMMA8_TYPE_F32: memcpy(dst, q->row, (size_t)cols * 4); break;
        default:
            for (int64_t i = 0; i < cols; i++) {
                uint16_t h = qt->type == GEMMA8_TYPE_F16 ? g8_f32_to_f16(q->row[i]) : g8_f32_to_bf16(q->row[i]);
                memcpy(dst + 2 * i, &h, 2);
            }
        }
    }
    return GEMMA8_OK;
}

gemma8_status gemma8_quantize(const char *in_path, const char *out_path, const gemma8_convert_params *params) {
    if (!in_path || !out_path) return g8_fail(GEMMA8_ERR_INVALID_ARG, "quantize needs an input and an output path");
    gemma8_convert_params p = params ? *params : gemma8_convert_default_params();
    gemma8_status st = g8_check_convert_types(&p);
    if (st) return st;
    gguf_file f;
    if ((st = g8_gguf_open(in_path, &f))) return st;
    gguf_str arch = {0};
    if (!g8_gguf_get_str(&f, KEY_ARCH, &arch, &st) || !g8_arch_find(arch.p, arch.len)) {
        g8_gguf_close(&f);
        return st ? st : g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': not a model of an architecture gemma8 runs (%s)",
                                 in_path, g8_arch_names());
    }
    gguf_str kind = {0};
    if (g8_gguf_get_str(&f, "general.type", &kind, &st) && !(kind.len == 5 && !memcmp(kind.p, "model", 5))) {
        st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': not a model (general.type '%.*s'): quantize takes a model",
                     in_path, (int)G8_MIN(kind.len, 40), kind.p); /* before the mapping goes */
        g8_gguf_close(&f);
        return st;
    }
    st = GEMMA8_OK;
    gguf_writer *w = g8_gguf_writer_new();
    qjob q = {calloc(f.n_tensors ? f.n_tensors : 1, sizeof *q.t), NULL};
    int64_t max_cols = 1;
    for (uint64_t i = 0; i < f.n_tensors; i++) max_cols = G8_MAX(max_cols, f.tensors[i].ne[0]);
    q.row = malloc((size_t)max_cols * sizeof(float));
    if (!w || !q.t || !q.row) st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory quantizing '%s'", in_path);
    for (uint64_t i = 0; !st && i < f.n_kv; i++) {
        const gguf_kv *kv = &f.kv[i];
        if (!strcmp(kv->key, KEY_FILE_TYPE)) g8_gguf_set_u32(w, KEY_FILE_TYPE, g8_file_type(p.type));
        else g8_gguf_copy_kv(w, kv);
    }
    int kept = 0;
    for (uint64_t i = 0; !st && i < f.n_tensors; i++) {
        const gguf_tensor *t = &f.tensors[i];
        uint32_t type = t->type;
        if (t->n_dims == 2) { /* a matrix: the new type, where its rows are whole blocks of it */
            const bool embd = !strcmp(t->name, TN_TOKEN_EMBD) || !strcmp(t->name, TN_OUTPUT);
            const uint32_t want = embd ? g8_output_type(&p) : (uint32_t)p.type;
            if (g8_gguf_row_size(want, t->ne[0])) type = want;
            else kept++;
            if (!g8_gguf_block_size(t->type))
                st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': tensor '%s' has type %s", in_path, t->name,
                             gemma8_type_name(t->type));
        }
        q.t[i] = (qtensor){t, type};
        g8_gguf_add_tensor(w, t->name, type, t->n_dims, t->ne);
    }
    if (kept) g8_log(G8_LOG_WARN, "%d matrices keep their type: their rows are not whole blocks of %s", kept,
                     gemma8_type_name(p.type));
    if (!st) st = g8_gguf_write(w, out_path, fill, &q, p.progress, p.progress_user_data);
    g8_gguf_writer_free(w);
    free(q.t);
    free(q.row);
    g8_gguf_close(&f);
    return st;
}
