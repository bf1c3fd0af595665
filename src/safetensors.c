/* safetensors.c - bounds-checked reader of (sharded) safetensors files. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gemma8_status add_file(st_set *set, const char *path) {
    g8_map *maps = realloc(set->maps, (size_t)(set->n_maps + 1) * sizeof *maps);
    if (!maps) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    set->maps = maps;
    g8_map *m = &set->maps[set->n_maps];
    gemma8_status st = g8_map_file(path, m);
    if (st) return st;
    int shard = set->n_maps++;
    if (m->size < 8) return g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a safetensors file: only %zu bytes", path, m->size);
    uint64_t hlen;
    memcpy(&hlen, m->data, 8);
    if (hlen > m->size - 8 || hlen > (100u << 20))
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': header length %llu does not fit in the %zu-byte file (truncated?)",
                       path, (unsigned long long)hlen, m->size);
    cJSON *root = cJSON_ParseWithLength((const char *)m->data + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return g8_fail(GEMMA8_ERR_FORMAT, "'%s': the safetensors header is not valid JSON", path);
    }
    const uint8_t *data = m->data + 8 + hlen;
    uint64_t data_size = m->size - 8 - hlen;
    st = GEMMA8_OK;
    for (cJSON *it = root->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) continue;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' has a malformed header entry", path, it->string);
            break;
        }
        st_tensor t = {0};
        size_t esz;
        if (strcmp(dt->valuestring, "BF16") == 0) t.type = GEMMA8_TYPE_BF16, esz = 2;
        else if (strcmp(dt->valuestring, "F16") == 0) t.type = GEMMA8_TYPE_F16, esz = 2;
        else if (strcmp(dt->valuestring, "F32") == 0) t.type = GEMMA8_TYPE_F32, esz = 4;
        else if (strcmp(dt->valuestring, "I32") == 0) t.type = ST_TYPE_I32, esz = 4;
        else {
            st = g8_fail(GEMMA8_ERR_UNSUPPORTED, "'%s': tensor '%s' has dtype %s (weights must be BF16, F16 or F32)", path,
                         it->string, dt->valuestring);
            break;
        }
        t.n_dims = cJSON_GetArraySize(shape);
        if (t.n_dims < 1 || t.n_dims > 4) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' has %d dimensions", path, it->string, t.n_dims);
            break;
        }
        uint64_t nel = 1;
        for (int i = 0; i < t.n_dims; i++) {
            double d = cJSON_GetArrayItem(shape, i)->valuedouble;
            if (!(d >= 1 && d < 1e12) || __builtin_mul_overflow(nel, (uint64_t)d, &nel) || nel > ((uint64_t)1 << 40)) {
                st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' has an invalid shape", path, it->string);
                break;
            }
            t.shape[i] = (int64_t)d;
        }
        if (st) break;
        double b = cJSON_GetArrayItem(offs, 0)->valuedouble, e = cJSON_GetArrayItem(offs, 1)->valuedouble;
        if (!(b >= 0 && e >= b && e <= (double)data_size) || (uint64_t)e - (uint64_t)b != nel * esz) {
            st = g8_fail(GEMMA8_ERR_FORMAT,
                         "'%s': tensor '%s' data [%.0f, %.0f) does not match its shape or runs past the end of the "
                         "file (%llu data bytes): truncated or corrupt", path, it->string, b, e,
                         (unsigned long long)data_size);
            break;
        }
        t.data = data + (uint64_t)b;
        t.nbytes = (uint64_t)e - (uint64_t)b;
        t.shard = shard;
        if (g8_st_find(set, it->string)) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': tensor '%s' appears twice", path, it->string);
            break;
        }
        st_tensor *nt = realloc(set->tensors, (set->n_tensors + 1) * sizeof *nt);
        if (!nt || !(t.name = strdup(it->string))) {
            if (nt) set->tensors = nt;
            st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
            break;
        }
        set->tensors = nt;
        set->tensors[set->n_tensors++] = t;
    }
    cJSON_Delete(root);
    return st;
}

gemma8_status g8_st_open_file(const char *path, st_set *set) {
    memset(set, 0, sizeof *set);
    gemma8_status st = add_file(set, path);
    if (st) g8_st_close(set);
    return st;
}

gemma8_status g8_st_open_dir(const char *dir, st_set *set) {
    memset(set, 0, sizeof *set);
    char *index_path = g8_path_join(dir, "model.safetensors.index.json");
    if (!index_path) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
    g8_map im;
    gemma8_status st = g8_map_file(index_path, &im);
    if (st) { /* no index: a single file */
        free(index_path);
        char *single = g8_path_join(dir, "model.safetensors");
        if (!single) return g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
        st = g8_st_open_file(single, set);
        free(single);
        return st;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)im.data, im.size);
    g8_unmap(&im);
    cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        st = g8_fail(GEMMA8_ERR_FORMAT, "'%s' is not a valid index (no weight_map object)", index_path);
        goto done;
    }
    /* open each distinct shard once, in order of first mention */
    char **seen = NULL;
    int n_seen = 0;
    for (cJSON *it = wm->child; it && !st; it = it->next) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/')) {
            st = g8_fail(GEMMA8_ERR_FORMAT, "'%s': entry '%s' does not name a shard file in the directory", index_path,
                         it->string);
            break;
        }
        int k = 0;
        while (k < n_seen && strcmp(seen[k], it->valuestring) != 0) k++;
        if (k < n_seen) continue;
        char **ns = realloc(seen, (size_t)(n_seen + 1) * sizeof *ns);
        if (!ns) {
            st = g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
            break;
        }
        seen = ns;
        seen[n_seen++] = it->valuestring;
        char *p = g8_path_join(dir, it->valuestring);
        st = p ? add_file(set, p) : g8_fail(GEMMA8_ERR_NOMEM, "out of memory");
        free(p);
    }
    free(seen);
    /* every tensor of the index must be in its shard */
    for (cJSON *it = wm->child; it && !st; it = it->next)
        if (!g8_st_find(set, it->string))
            st = g8_fail(GEMMA8_ERR_FORMAT, "tensor '%s' is listed in '%s' but missing from shard '%s'", it->string,
                         index_path, it->valuestring);
done:
    cJSON_Delete(root);
    free(index_path);
    if (st) g8_st_close(set);
    return st;
}

void g8_st_close(st_set *set) {
    for (int i = 0; i < set->n_maps; i++) g8_unmap(&set->maps[i]);
    for (size_t i = 0; i < set->n_tensors; i++) free(set->tensors[i].name);
    free(set->maps);
    free(set->tensors);
    memset(set, 0, sizeof *set);
}

const st_tensor *g8_st_find(const st_set *set, const char *name) {
    for (size_t i = 0; i < set->n_tensors; i++)
        if (strcmp(set->tensors[i].name, name) == 0) return &set->tensors[i];
    return NULL;
}
