/*  chat_tool.c: renders chat messages with sw_chat for tests/test_chat.py.
 *  usage: chat_tool TEMPLATE.jinja MESSAGES.json
 *  Prints {"format": NAME, "text": TEXT, "parts": [[off, len, special], ...]}
 *  or {"error": MESSAGE}; exits 1 when a file cannot be read.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "sw_chat.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: chat_tool TEMPLATE.jinja MESSAGES.json\n");
        return 2;
    }
    json_error_t je;
    FILE *f = fopen(argv[1], "rb");
    if (!f)
        return 1;
    char *text = calloc(1, 1 << 20);
    if (text)
        (void) !fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    json_t *msgs = json_load_file(argv[2], 0, &je);
    if (!json_is_array(msgs))
        return 1;
    size_t k = json_array_size(msgs);
    sw_chat_msg_t *m = calloc(k ? k : 1, sizeof *m);
    for (size_t i = 0; i < k; i++) {
        m[i].role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
        m[i].content = json_string_value(json_object_get(json_array_get(msgs, i), "content"));
    }
    sw_chat_format_t fmt = sw_chat_detect(text);
    sw_chat_prompt_t p;
    char err[256];
    json_t *out;
    if (sw_chat_render(fmt, m, k, &p, err, sizeof err) != 0) {
        out = json_pack("{s:s, s:s}", "format", sw_chat_format_name(fmt), "error", err);
    } else {
        json_t *parts = json_array();
        for (size_t i = 0; i < p.n_parts; i++)
            json_array_append_new(parts, json_pack("[I, I, b]", (json_int_t) p.parts[i].off,
                                                   (json_int_t) p.parts[i].len, p.parts[i].special));
        out = json_pack("{s:s, s:s%, s:o}", "format", sw_chat_format_name(fmt), "text", p.text ? p.text : "", p.len,
                        "parts", parts);
        sw_chat_prompt_free(&p);
    }
    char *s = json_dumps(out, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(out);
    json_decref(msgs);
    free(m);
    free(text);
    return 0;
}
