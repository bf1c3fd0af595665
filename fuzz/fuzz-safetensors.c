/* fuzz-safetensors.c - the safetensors reader on arbitrary bytes. */
#include "fuzz-common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, "safetensors");
    st_set set;
    if (g8_st_open_file(path, &set) == GEMMA8_OK) {
        volatile uint64_t sum = 0; /* touch every tensor's bounds */
        for (size_t i = 0; i < set.n_tensors; i++)
            if (set.tensors[i].nbytes) sum += ((const uint8_t *)set.tensors[i].data)[set.tensors[i].nbytes - 1];
        g8_st_close(&set);
    }
    unlink(path);
    return 0;
}
