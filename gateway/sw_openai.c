/*  sw_openai.c: OpenAI request bodies checked, answers built (see sw_openai.h). */
#include "sw_openai.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------------------ */

/* The valid UTF-8 sequence at s (n >= 1 bytes left), RFC 3629 section 4
 * (no overlong forms, no surrogates, nothing past U+10FFFF): its length 1..4,
 * or 0 when the bytes there are not valid UTF-8; *incomplete when they are a
 * valid start that the end of the buffer cuts. */
static size_t s_utf8_seq(const unsigned char *s, size_t n, bool *incomplete)
{
    *incomplete = false;
    const unsigned c = s[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        need = 2;
    else if (c == 0xED)
        need = 2, hi = 0x9F;
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else if (c == 0xF4)
        need = 3, hi = 0x8F;
    else
        return 0;
    for (size_t k = 1; k <= need; k++) {
        if (k >= n) {
            *incomplete = true;
            return 0;
        }
        const unsigned b = s[k];
        if (b < (k == 1 ? lo : 0x80u) || b > (k == 1 ? hi : 0xBFu))
            return 0;
    }
    return need + 1;
}

size_t sw_openai_utf8_ready(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *) s;
    size_t i = 0;
    while (i < len) {
        bool incomplete;
        const size_t n = s_utf8_seq(u + i, len - i, &incomplete);
        if (incomplete)
            return i;
        i += n ? n : 1;
    }
    return len;
}

/* A copy of len bytes of s with every byte that is not part of valid UTF-8
 * replaced by U+FFFD; *out_len its length. NULL when out of memory. */
static char *s_utf8_clean(const char *s, size_t len, size_t *out_len)
{
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *o = malloc(len * 3 + 1);
    if (!o)
        return NULL;
    const unsigned char *u = (const unsigned char *) s;
    size_t i = 0, w = 0;
    while (i < len) {
        bool incomplete;
        const size_t n = s_utf8_seq(u + i, len - i, &incomplete);
        if (n) {
            memcpy(o + w, s + i, n);
            w += n, i += n;
        } else {
            memcpy(o + w, "\xEF\xBF\xBD", 3);
            w += 3, i += 1;
        }
    }
    o[w] = 0;
    *out_len = w;
    return o;
}

/* A JSON string of len bytes of s, invalid UTF-8 replaced; NULL when out of memory. */
static json_t *s_text(const char *s, size_t len)
{
    size_t n = 0;
    char *c = s_utf8_clean(s ? s : "", s ? len : 0, &n);
    json_t *j = c ? json_stringn(c, n) : NULL;
    free(c);
    return j;
}

/* ---- requests --------------------------------------------------------------------- */

static sw_openai_request_t *s_fail(sw_openai_request_t *r, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static sw_openai_request_t *s_fail(sw_openai_request_t *r, char *why, size_t whylen, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    sw_openai_request_destroy(&r);
    return NULL;
}

/* A number field: absent or null leaves *out (the default) and returns 0;
 * a number in [lo, hi] (lo excluded when lo_open) is stored; else -1. */
static int s_number(json_t *j, const char *key, double lo, bool lo_open, double hi, float *out)
{
    json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return -1;
    const double x = json_number_value(v);
    if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
        return -1;
    *out = (float) x;
    return 0;
}

/* The chat messages rendered in the model's format into r (prompt, parts).
 * Returns 0, or -1 with a reason in why. */
static int s_chat(sw_openai_request_t *r, json_t *msgs, const sw_openai_limits_t *lim, bool *oom, char *why,
                  size_t whylen)
{
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        snprintf(why, whylen, "'messages' must be a non-empty array");
        return -1;
    }
    const size_t nm = json_array_size(msgs);
    if (nm > SW_OPENAI_MAX_MESSAGES) {
        snprintf(why, whylen, "at most %d messages", SW_OPENAI_MAX_MESSAGES);
        return -1;
    }
    sw_chat_msg_t *cm = calloc(nm, sizeof *cm);
    char **owned = calloc(nm, sizeof *owned); /* contents given as arrays of text parts, joined */
    if (!cm || !owned) {
        free(cm), free(owned);
        *oom = true;
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    snprintf(why, whylen, "each message needs a string 'role' and a 'content' string or array of text parts");
    size_t total = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < nm; i++) {
        json_t *m = json_array_get(msgs, i), *content = json_object_get(m, "content");
        cm[i].role = json_string_value(json_object_get(m, "role"));
        if (json_is_string(content)) {
            cm[i].content = json_string_value(content);
        } else if (json_is_array(content)) {
            size_t k, len = 0;
            json_t *part;
            json_array_foreach(content, k, part) {
                const char *t = json_string_value(json_object_get(part, "text"));
                const char *type = json_string_value(json_object_get(part, "type"));
                if (!t || !type || strcmp(type, "text")) {
                    ok = false;
                    break;
                }
                len += json_string_length(json_object_get(part, "text"));
                if (len > SW_OPENAI_MAX_PROMPT) {
                    ok = false;
                    break;
                }
            }
            if (ok && !(owned[i] = malloc(len + 1))) {
                *oom = true;
        snprintf(why, whylen, "out of memory");
                ok = false;
            }
            if (ok) {
                size_t o = 0;
                json_array_foreach(content, k, part) {
                    json_t *t = json_object_get(part, "text");
                    memcpy(owned[i] + o, json_string_value(t), json_string_length(t));
                    o += json_string_length(t);
                }
                owned[i][o] = 0;
                cm[i].content = owned[i];
            }
        }
        if (!cm[i].role || !cm[i].content)
            ok = false;
        else if ((total += strlen(cm[i].content)) > SW_OPENAI_MAX_PROMPT) {
            snprintf(why, whylen, "the messages are longer than 1 MiB");
            ok = false;
        }
    }
    if (ok && sw_chat_render((sw_chat_format_t) lim->chat_format, cm, nm, &r->chat_prompt, why, whylen) != 0)
        ok = false;
    for (size_t i = 0; i < nm; i++)
        free(owned[i]);
    free(owned);
    free(cm);
    if (!ok)
        return -1;
    if (r->chat_prompt.len > SW_OPENAI_MAX_PROMPT) {
        snprintf(why, whylen, "the prompt is longer than 1 MiB");
        return -1;
    }
    if (r->chat_prompt.n_parts && !(r->parts = calloc(r->chat_prompt.n_parts, sizeof *r->parts))) {
        *oom = true;
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < r->chat_prompt.n_parts; i++) {
        const sw_chat_part_t *cp = &r->chat_prompt.parts[i];
        r->parts[i].special = cp->special;
        if (!(r->parts[i].text = strndup(r->chat_prompt.text + cp->off, cp->len))) {
            *oom = true;
        snprintf(why, whylen, "out of memory");
            return -1;
        }
        r->n_parts++;
    }
    r->req.parts = r->parts;
    r->req.n_parts = r->n_parts;
    if (!(r->prompt = strdup(r->chat_prompt.text ? r->chat_prompt.text : ""))) {
        *oom = true;
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

/* "stop": one string or an array of up to SW_OPENAI_MAX_STOPS, each at most
 * SW_OPENAI_MAX_STOP_BYTES; every form checked the same way. */
static int s_stops(sw_openai_request_t *r, json_t *v, bool *oom, char *why, size_t whylen)
{
    const bool one = json_is_string(v);
    const size_t n = one ? 1 : json_is_array(v) ? json_array_size(v) : SW_OPENAI_MAX_STOPS + 1;
    for (size_t i = 0; i < n && n <= SW_OPENAI_MAX_STOPS; i++) {
        json_t *s = one ? v : json_array_get(v, i);
        if (!json_is_string(s) || json_string_length(s) > SW_OPENAI_MAX_STOP_BYTES)
            break;
        if (!(r->stops[r->req.n_stop] = strdup(json_string_value(s)))) {
            *oom = true;
        snprintf(why, whylen, "out of memory");
            return -1;
        }
        r->req.n_stop++;
    }
    if ((size_t) r->req.n_stop != n) {
        snprintf(why, whylen, "'stop' must be a string or an array of up to %d strings, each at most %d bytes",
                 SW_OPENAI_MAX_STOPS, SW_OPENAI_MAX_STOP_BYTES);
        return -1;
    }
    r->req.stop = (const char *const *) r->stops;
    return 0;
}

sw_openai_request_t *sw_openai_request_parse(const char *body, size_t len, bool chat, const sw_openai_limits_t *lim,
                                             bool *oom, char *why, size_t whylen)
{
    bool oom_dummy;
    if (!oom)
        oom = &oom_dummy;
    *oom = false;
    json_error_t jerr;
    json_t *j = body && len ? json_loadb(body, len, 0, &jerr) : NULL;
    if (!json_is_object(j)) {
        if (!j && body && len && json_error_code(&jerr) == json_error_out_of_memory)
            *oom = true;
        json_decref(j);
        return s_fail(NULL, why, whylen, "the body is not a JSON object");
    }
    sw_openai_request_t *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(j);
        *oom = true;
        return s_fail(NULL, why, whylen, "out of memory");
    }
    r->chat = chat;
    sw_client_request_t *q = &r->req;
    json_t *v;
    const char *bad = NULL; /* the reason, when it is a constant */
    if (chat) {
        if (s_chat(r, json_object_get(j, "messages"), lim, oom, why, whylen) != 0)
            goto fail_why;
    } else {
        v = json_object_get(j, "prompt");
        if (!json_is_string(v)) {
            bad = "'prompt' must be a string";
            goto fail;
        }
        if (json_string_length(v) > SW_OPENAI_MAX_PROMPT) {
            bad = "the prompt is longer than 1 MiB";
            goto fail;
        }
        if (!(r->prompt = strdup(json_string_value(v)))) {
            bad = "out of memory";
            *oom = true;
            goto fail;
        }
    }
    q->prompt = r->prompt;
    q->max_tokens = 16;
    if ((v = json_object_get(j, "max_tokens")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (json_int_t) lim->max_tokens) {
            bad = "'max_tokens' must be an integer from 1 to the server's limit";
            goto fail;
        }
        q->max_tokens = (uint32_t) json_integer_value(v);
    }
    q->temperature = 1.0f;
    if (s_number(j, "temperature", 0, false, 2, &q->temperature) != 0) {
        bad = "'temperature' must be a number from 0 to 2";
        goto fail;
    }
    q->top_p = 1.0f;
    if (s_number(j, "top_p", 0, true, 1, &q->top_p) != 0) {
        bad = "'top_p' must be a number in (0, 1]";
        goto fail;
    }
    /* beyond OpenAI's fields, with vLLM's names: min_p, top_k, repetition_penalty, ignore_eos */
    q->min_p = 0;
    if (s_number(j, "min_p", 0, false, 1, &q->min_p) != 0) {
        bad = "'min_p' must be a number from 0 to 1";
        goto fail;
    }
    q->top_k = 0;
    if ((v = json_object_get(j, "top_k")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) > SW_OPENAI_MAX_TOP_K) {
            bad = "'top_k' must be an integer from 0 to 1048576 (0 or -1: off)";
            goto fail;
        }
        q->top_k = json_integer_value(v) < 0 ? 0 : (int32_t) json_integer_value(v);
    }
    q->repeat_penalty = 1.0f;
    if (s_number(j, "repetition_penalty", 0, true, 10, &q->repeat_penalty) != 0) {
        bad = "'repetition_penalty' must be a number in (0, 10] (1: off)";
        goto fail;
    }
    static const char *const unsupported[] = {"frequency_penalty", "presence_penalty"};
    for (size_t i = 0; i < 2; i++) {
        float x = 0;
        if (s_number(j, unsupported[i], -2, false, 2, &x) != 0) {
            snprintf(why, whylen, "'%s' must be a number from -2 to 2", unsupported[i]);
            goto fail_why;
        }
        if (x != 0) {
            snprintf(why, whylen, "'%s' other than 0 is not supported; use 'repetition_penalty'", unsupported[i]);
            goto fail_why;
        }
    }
    if ((v = json_object_get(j, "ignore_eos")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            bad = "'ignore_eos' must be a boolean";
            goto fail;
        }
        q->ignore_eos = json_is_true(v);
    }
    if ((v = json_object_get(j, "seed")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            bad = "'seed' must be a non-negative integer";
            goto fail;
        }
        q->seed = (uint64_t) json_integer_value(v);
        q->has_seed = true;
    }
    if ((v = json_object_get(j, "stop")) && !json_is_null(v) && s_stops(r, v, oom, why, whylen) != 0)
        goto fail_why;
    const char *fmt_stop = chat ? sw_chat_stop_string((sw_chat_format_t) lim->chat_format) : NULL;
    if (fmt_stop) {
        if (!(r->stops[q->n_stop] = strdup(fmt_stop))) {
            bad = "out of memory";
            *oom = true;
            goto fail;
        }
        q->n_stop++;
        q->stop = (const char *const *) r->stops;
    }
    if ((v = json_object_get(j, "stream")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            bad = "'stream' must be a boolean";
            goto fail;
        }
        r->stream = json_is_true(v);
    }
    json_decref(j);
    return r;
fail:
    json_decref(j);
    return s_fail(r, why, whylen, "%s", bad);
fail_why:
    json_decref(j);
    return s_fail(r, NULL, 0, "%s", "");
}

void sw_openai_request_destroy(sw_openai_request_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_openai_request_t *r = *self_p;
    free(r->prompt);
    for (size_t i = 0; i < r->n_parts; i++)
        free((char *) r->parts[i].text);
    free(r->parts);
    sw_chat_prompt_free(&r->chat_prompt);
    for (size_t i = 0; i < sizeof r->stops / sizeof r->stops[0]; i++)
        free(r->stops[i]);
    free(r);
    *self_p = NULL;
}

/* ---- answers ---------------------------------------------------------------------- */

const char *sw_openai_finish_reason(const char *stop_reason)
{
    return stop_reason && !strcmp(stop_reason, "length") ? "length" : "stop";
}

/* Compact JSON text of j, which it takes (NULL in: NULL out). */
static char *s_dump(json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

char *sw_openai_error_json(const char *type, const char *message, const char *code)
{
    return s_dump(json_pack("{s:{s:s, s:s, s:o}}", "error", "message", message ? message : "", "type",
                            type ? type : "server_error", "code", code ? json_string(code) : json_null()));
}

char *sw_openai_completion_json(bool chat, const char *id, long created, const char *model, const char *text,
                                size_t len, const sw_client_summary_t *sum)
{
    json_t *t = s_text(text, len);
    if (!t)
        return NULL;
    const char *finish = sw_openai_finish_reason(sum->stop_reason);
    json_t *choice = chat ? json_pack("{s:i, s:{s:s, s:o}, s:s}", "index", 0, "message", "role", "assistant",
                                      "content", t, "finish_reason", finish)
                          : json_pack("{s:i, s:o, s:s}", "index", 0, "text", t, "finish_reason", finish);
    if (!choice)
        return NULL;
    return s_dump(json_pack("{s:s, s:s, s:I, s:s, s:[o], s:{s:I, s:I, s:I}, s:I}", "id", id, "object",
                            chat ? "chat.completion" : "text_completion", "created", (json_int_t) created, "model",
                            model, "choices", choice, "usage", "prompt_tokens", (json_int_t) sum->prompt_tokens,
                            "completion_tokens", (json_int_t) sum->completion_tokens, "total_tokens",
                            (json_int_t) sum->prompt_tokens + (json_int_t) sum->completion_tokens, "seed",
                            (json_int_t) sum->seed));
}

char *sw_openai_chunk_json(bool chat, const char *id, long created, const char *model, const char *text, size_t len,
                           const char *finish, const uint64_t *seed)
{
    json_t *t = s_text(text, len);
    if (!t)
        return NULL;
    json_t *choice = chat ? json_pack("{s:i, s:{s:o}, s:o}", "index", 0, "delta", "content", t, "finish_reason",
                                      finish ? json_string(finish) : json_null())
                          : json_pack("{s:i, s:o, s:o}", "index", 0, "text", t, "finish_reason",
                                      finish ? json_string(finish) : json_null());
    if (!choice)
        return NULL;
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", id, "object",
                          chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t) created, "model",
                          model, "choices", choice);
    if (j && seed && json_object_set_new(j, "seed", json_integer((json_int_t) *seed)) != 0) {
        json_decref(j);
        return NULL;
    }
    return s_dump(j);
}
