/*  fuzz_openai.c: fuzz target for the HTTP front's decoder of request
 *  bodies (gateway/sw_openai: jansson, then every field checked) and for
 *  the answers built from a gateway's text (which may be any bytes).
 *
 *  Input layout: byte 0 selects the endpoint (bit 0: 1 chat, 0 completions)
 *  and the chat format (bits 1..3: sw_chat_format_t mod SW_CHAT_GEMMA + 1);
 *  the rest is the body, passed with its length (not NUL-terminated).
 *  A body accepted must give a request within the documented ranges
 *  (max_tokens 1..limit, temperature 0..2, ...), else the target traps.
 *  The same bytes are then used as generated text: the answer and chunk
 *  builders must give JSON that jansson reads back (invalid UTF-8 replaced),
 *  and sw_openai_utf8_ready must hold back at most 3 bytes.
 *  Build with libFuzzer (-Dfuzz=true, clang) or with fuzz_main.c; the seed
 *  corpus is tests/fuzz/openai_seeds (first byte '0': completions, '1': chat).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sw_openai.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Traps unless text is JSON; frees it. NULL (out of memory) is allowed. */
static void s_json_ok(char *text)
{
    if (!text)
        return;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL); /* a gateway text may hold NUL: "\u0000" is JSON */
    if (!j)
        __builtin_trap();
    json_decref(j);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const bool chat = data[0] & 1;
    const sw_openai_limits_t lim = {.max_tokens = 512, .chat_format = ((data[0] >> 1) & 7) % (SW_CHAT_GEMMA + 1)};
    const char *body = (const char *) data + 1;
    const size_t len = size - 1;
    char why[256];
    bool oom = false;
    sw_openai_request_t *r = sw_openai_request_parse(len ? body : NULL, len, chat, &lim, &oom, why, sizeof why);
    if (r) {
        const sw_client_request_t *q = &r->req;
        if (q->max_tokens < 1 || q->max_tokens > lim.max_tokens || !(q->temperature >= 0 && q->temperature <= 2) ||
            !(q->top_p > 0 && q->top_p <= 1) || !(q->min_p >= 0 && q->min_p <= 1) || q->top_k < 0 ||
            q->top_k > SW_OPENAI_MAX_TOP_K || !(q->repeat_penalty > 0 && q->repeat_penalty <= 10) ||
            q->n_stop < 0 || q->n_stop > SW_OPENAI_MAX_STOPS + 1 || !q->prompt ||
            strlen(q->prompt) > SW_OPENAI_MAX_PROMPT || r->chat != chat)
            __builtin_trap();
        for (int i = 0; i < q->n_stop; i++)
            if (!q->stop[i] || strlen(q->stop[i]) > SW_OPENAI_MAX_STOP_BYTES)
                __builtin_trap();
        sw_openai_request_destroy(&r);
    } else if (!why[0]) {
        __builtin_trap(); /* refused without a reason */
    }
    /* the body's bytes as a gateway's text */
    const size_t ready = sw_openai_utf8_ready(body, len);
    if (ready > len || len - ready > 3)
        __builtin_trap();
    sw_client_summary_t sum = {.prompt_tokens = 1, .completion_tokens = 2, .seed = (uint64_t) len};
    memcpy(sum.stop_reason, "length", 7);
    s_json_ok(sw_openai_completion_json(chat, "id", 1, "model", body, len, &sum));
    const uint64_t seed = 5;
    s_json_ok(sw_openai_chunk_json(chat, "id", 1, "model", body, ready, len & 1 ? "stop" : NULL,
                                   len & 1 ? &seed : NULL));
    return 0;
}
