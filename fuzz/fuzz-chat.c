/* fuzz-chat.c - chat requests: JSON parsing of {"role","content"} messages (content a string, or
 * an array whose strings are the message's text parts) and the chat template, on arbitrary bytes. */
#include "gemma8.h"
#include "fuzz-common.h"

#include <cjson/cJSON.h>

static gemma8_model *model;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    model = fuzz_load_fullvocab();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *arr = cJSON_ParseWithLength((const char *)data, size);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return 0;
    }
    int n = cJSON_GetArraySize(arr), k = 0;
    gemma8_chat_message *msgs = calloc((size_t)n + 1, sizeof *msgs);
    const char **parts = calloc((size_t)n + 1, 8 * sizeof *parts); /* up to 8 parts a message */
    for (cJSON *e = arr->child; e; e = e->next) {
        cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        msgs[k].role = cJSON_IsString(role) ? role->valuestring : NULL;
        msgs[k].content = cJSON_IsString(content) ? content->valuestring : NULL;
        for (cJSON *p = cJSON_IsArray(content) ? content->child : NULL; p && msgs[k].n_parts < 8; p = p->next)
            if (cJSON_IsString(p)) parts[(size_t)k * 8 + (size_t)msgs[k].n_parts++] = p->valuestring;
        if (msgs[k].n_parts) msgs[k].parts = parts + (size_t)k * 8;
        k++;
    }
    int32_t ids[512], count;
    gemma8_status st = gemma8_chat_tokenize(model, msgs, k, true, ids, 512, &count);
    if (st == GEMMA8_ERR_BUFFER_TOO_SMALL) {
        int32_t *big = malloc((size_t)count * sizeof *big);
        if (gemma8_chat_tokenize(model, msgs, k, true, big, count, &count)) abort(); /* the size it asked for fits */
        free(big);
    }
    free(msgs);
    free(parts);
    cJSON_Delete(arr);
    return 0;
}
