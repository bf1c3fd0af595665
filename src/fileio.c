/* fileio.c - read-only file mapping and atomic (temp file + rename) writes. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

char *g8_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    else g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    return p;
}

gemma8_status g8_map_file(const char *path, g8_map *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return g8_fail(GEMMA8_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return g8_fail(GEMMA8_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return g8_fail(GEMMA8_ERR_IO, "'%s' is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return GEMMA8_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return g8_fail(GEMMA8_ERR_IO, "cannot map '%s': %s", path, strerror(e));
    out->data = p;
    out->size = (size_t)st.st_size;
    return GEMMA8_OK;
}

void g8_unmap(g8_map *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

static void atomic_release(g8_atomic_file *af) {
    free(af->final_path);
    free(af->tmp_path);
    af->final_path = af->tmp_path = NULL;
    af->fp = NULL;
}

gemma8_status g8_atomic_open(const char *path, g8_atomic_file *af) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path);
    af->final_path = strdup(path);
    af->tmp_path = malloc(n + 16);
    if (!af->final_path || !af->tmp_path) {
        atomic_release(af);
        return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    }
    snprintf(af->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        gemma8_status st = g8_fail(GEMMA8_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        atomic_release(af);
        return st;
    }
    fchmod(fd, 0644);
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        close(fd);
        unlink(af->tmp_path);
        atomic_release(af);
        return g8_fail(GEMMA8_ERR_IO, "cannot open stream for '%s'", path);
    }
    return GEMMA8_OK;
}

gemma8_status g8_atomic_write(g8_atomic_file *af, const void *buf, size_t n) {
    if (n && fwrite(buf, 1, n, af->fp) != n)
        return g8_fail(GEMMA8_ERR_IO, "write to '%s' failed: %s", af->final_path, strerror(errno));
    return GEMMA8_OK;
}

gemma8_status g8_atomic_commit(g8_atomic_file *af) {
    gemma8_status st = GEMMA8_OK;
    if (fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0)
        st = g8_fail(GEMMA8_ERR_IO, "write to '%s' failed: %s", af->final_path, strerror(errno));
    if (fclose(af->fp) != 0 && st == GEMMA8_OK)
        st = g8_fail(GEMMA8_ERR_IO, "closing '%s' failed: %s", af->final_path, strerror(errno));
    af->fp = NULL;
    if (st == GEMMA8_OK && rename(af->tmp_path, af->final_path) != 0)
        st = g8_fail(GEMMA8_ERR_IO, "cannot write '%s' (renaming the finished temporary file failed: %s)",
                     af->final_path, strerror(errno));
    if (st != GEMMA8_OK) unlink(af->tmp_path);
    atomic_release(af);
    return st;
}

void g8_atomic_abort(g8_atomic_file *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp_path) unlink(af->tmp_path);
    atomic_release(af);
}
