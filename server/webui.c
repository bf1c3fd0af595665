/* webui.c - the chat page at /: server/webui/ (HTML, CSS, plain JavaScript), built into the program
 * with the assembler's .incbin, so the program needs no files beside it. The page talks to the
 * server's own OpenAI API. */
#include "server.h"

#include <string.h>

#define G8_EMBED(name, file)                                                                                 \
    __asm__(".pushsection .rodata\n"                                                                         \
            ".balign 16\n"                                                                                   \
            ".globl " #name "\n" #name ":\n"                                                                 \
            ".incbin \"" file "\"\n"                                                                         \
            ".globl " #name "_end\n" #name "_end:\n"                                                         \
            ".popsection\n");                                                                                \
    extern const char name[], name##_end[]

G8_EMBED(srv_webui_index, "server/webui/index.html");
G8_EMBED(srv_webui_app, "server/webui/app.js");
G8_EMBED(srv_webui_style, "server/webui/style.css");

typedef struct asset {
    const char *path, *type;
    const char *start, *end;
} asset;

int srv_webui(srv_conn *c, cJSON *body) {
    (void)body;
    const asset assets[] = {
        {"/", "text/html; charset=utf-8", srv_webui_index, srv_webui_index_end},
        {"/index.html", "text/html; charset=utf-8", srv_webui_index, srv_webui_index_end},
        {"/webui/app.js", "text/javascript; charset=utf-8", srv_webui_app, srv_webui_app_end},
        {"/webui/style.css", "text/css; charset=utf-8", srv_webui_style, srv_webui_style_end},
    };
    const char *url = srv_conn_url(c);
    for (size_t i = 0; !srv_of(c)->no_webui && i < sizeof assets / sizeof *assets; i++)
        if (!strcmp(url, assets[i].path))
            return srv_reply_static(c, assets[i].type, assets[i].start,
                                    (size_t)(assets[i].end - assets[i].start));
    if (srv_of(c)->no_webui)
        return srv_reply_error(c, 404, "invalid_request_error", "not_found", "no chat page (--no-webui)");
    return srv_reply_error(c, 404, "invalid_request_error", "not_found", "no file %s", url);
}
