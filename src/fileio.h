/* fileio.h - read-only file mapping and atomic (temp file + rename) writes. */
#ifndef G8_FILEIO_H
#define G8_FILEIO_H

#include "common.h"
#include <stdio.h>

typedef struct g8_map {
    const uint8_t *data;   /* NULL for an empty file */
    size_t size;
} g8_map;

/* dir + "/" + name, malloc'd; NULL (with an error recorded) if out of memory. */
char *g8_path_join(const char *dir, const char *name);

/* Maps a whole file read-only. */
gemma8_status g8_map_file(const char *path, g8_map *out);
void g8_unmap(g8_map *m);

/* An output file that appears under its final name only once complete. */
typedef struct g8_atomic_file {
    FILE *fp;
    char *final_path;
    char *tmp_path;
} g8_atomic_file;

gemma8_status g8_atomic_open(const char *path, g8_atomic_file *af);
/* Writes n bytes; on failure records the error (e.g. disk full). */
gemma8_status g8_atomic_write(g8_atomic_file *af, const void *buf, size_t n);
/* Flushes, fsyncs and renames onto the final path. Always releases af. */
gemma8_status g8_atomic_commit(g8_atomic_file *af);
/* Removes the temporary file. Always releases af. */
void g8_atomic_abort(g8_atomic_file *af);

#endif
