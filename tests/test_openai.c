/*  test_openai.c: OpenAI request bodies and answers (gateway/sw_openai) fed
 *  hostile input.
 *
 *  - Valid bodies of both endpoints give the request the gateway gets:
 *    defaults, every sampling field, stops (with the chat format's own),
 *    stream, the seed with its presence (absent, 0, 42, 2^63 - 1).
 *  - Refused, with a reason naming the field, and never a crash: wrong JSON
 *    types for every field, numbers out of range, huge numbers (1e308,
 *    1e999, 2^64), NaN and Infinity (as literals and strings), nesting
 *    100,000 deep (inside a field and at the top), missing fields, giant
 *    arrays (messages, stops, content parts), invalid UTF-8 (bytes, overlong
 *    forms, lone surrogates, "\u0000"), bodies cut short, not NUL-terminated,
 *    empty, or NULL.
 *  - Answers: a completion and chunks carry the seed where they should, text
 *    that is not UTF-8 becomes U+FFFD rather than a lost chunk or a failed
 *    answer; sw_openai_utf8_ready holds back exactly a split character.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_openai.h"
#include "sw_test.h"

static const sw_openai_limits_t s_lim = {.max_tokens = 2048, .chat_format = SW_CHAT_DEFAULT};

/* Parses a NUL-terminated body; NULL with the reason in why. */
static sw_openai_request_t *s_parse(const char *body, bool chat, char *why, size_t whylen)
{
    bool oom = true;
    sw_openai_request_t *r = sw_openai_request_parse(body, strlen(body), chat, &s_lim, &oom, why, whylen);
    CHECK_MSG(!oom, "out of memory reported for %.80s", body);
    return r;
}

/* A body that must be refused with a reason containing want (NULL: any). */
static void s_refused(const char *body, bool chat, const char *want)
{
    char why[256] = "";
    sw_openai_request_t *r = s_parse(body, chat, why, sizeof why);
    CHECK_MSG(r == NULL, "accepted: %.120s", body);
    CHECK_MSG(why[0] && (!want || strstr(why, want)), "reason '%s' for %.120s (want '%s')", why, body,
              want ? want : "");
    sw_openai_request_destroy(&r);
}

/* A body that must be accepted; returns it (caller destroys). */
static sw_openai_request_t *s_accepted(const char *body, bool chat)
{
    char why[256] = "";
    sw_openai_request_t *r = s_parse(body, chat, why, sizeof why);
    CHECK_MSG(r != NULL, "refused (%s): %.120s", why, body);
    return r;
}

static void test_valid(void)
{
    sw_openai_request_t *r = s_accepted("{\"prompt\": \"Once upon a time\"}", false);
    if (r) {
        CHECK(!strcmp(r->req.prompt, "Once upon a time") && r->req.n_parts == 0);
        CHECK(r->req.max_tokens == 16 && r->req.temperature == 1.0f && r->req.top_p == 1.0f);
        CHECK(r->req.min_p == 0 && r->req.top_k == 0 && r->req.repeat_penalty == 1.0f);
        CHECK(!r->req.has_seed && !r->req.ignore_eos && !r->stream && !r->chat && r->req.n_stop == 0);
    }
    sw_openai_request_destroy(&r);
    CHECK(r == NULL);
    sw_openai_request_destroy(&r); /* NULL is fine */
    sw_openai_request_destroy(NULL);

    r = s_accepted("{\"prompt\": \"x\", \"max_tokens\": 2048, \"temperature\": 0, \"top_p\": 0.5, \"min_p\": 1,"
                   " \"top_k\": -1, \"repetition_penalty\": 10, \"ignore_eos\": true, \"seed\": 42, \"stream\": true,"
                   " \"stop\": [\"a\", \"\\n\\n\"], \"frequency_penalty\": 0, \"presence_penalty\": 0.0,"
                   " \"user\": {\"unknown\": [1, 2]}}",
                   false);
    if (r) {
        CHECK(r->req.max_tokens == 2048 && r->req.temperature == 0 && r->req.top_p == 0.5f && r->req.min_p == 1);
        CHECK(r->req.top_k == 0 && r->req.repeat_penalty == 10 && r->req.ignore_eos && r->stream);
        CHECK(r->req.has_seed && r->req.seed == 42);
        CHECK(r->req.n_stop == 2 && !strcmp(r->req.stop[0], "a") && !strcmp(r->req.stop[1], "\n\n"));
    }
    sw_openai_request_destroy(&r);
    /* null means absent */
    r = s_accepted("{\"prompt\": \"x\", \"max_tokens\": null, \"seed\": null, \"stop\": null, \"stream\": null}", false);
    CHECK(r && r->req.max_tokens == 16 && !r->req.has_seed && r->req.n_stop == 0 && !r->stream);
    sw_openai_request_destroy(&r);
    /* seed 0 is a seed; the largest JSON integer is one too */
    r = s_accepted("{\"prompt\": \"x\", \"seed\": 0}", false);
    CHECK(r && r->req.has_seed && r->req.seed == 0);
    sw_openai_request_destroy(&r);
    r = s_accepted("{\"prompt\": \"x\", \"seed\": 9223372036854775807}", false);
    CHECK(r && r->req.has_seed && r->req.seed == 9223372036854775807ull);
    sw_openai_request_destroy(&r);
    /* one stop string; 256 bytes is the limit */
    char body[1024];
    snprintf(body, sizeof body, "{\"prompt\": \"x\", \"stop\": \"%0256d\"}", 0);
    r = s_accepted(body, false);
    CHECK(r && r->req.n_stop == 1 && strlen(r->req.stop[0]) == 256);
    sw_openai_request_destroy(&r);
    /* a body that is not NUL-terminated: only len bytes are read */
    const char cut[] = "{\"prompt\": \"ab\"}GARBAGE";
    char why[256];
    r = sw_openai_request_parse(cut, 16, false, &s_lim, NULL, why, sizeof why);
    CHECK(r && !strcmp(r->req.prompt, "ab"));
    sw_openai_request_destroy(&r);

    /* chat: string contents and arrays of text parts, rendered in the format, with its stop string */
    r = s_accepted("{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
                   " {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Hel\"},"
                   " {\"type\": \"text\", \"text\": \"lo\"}]}], \"stop\": \"END\"}",
                   true);
    if (r) {
        CHECK(r->chat && r->req.n_parts >= 1 && r->req.parts == r->parts);
        CHECK(strstr(r->prompt, "Hello") && strstr(r->prompt, "Be brief."));
        const char *fmt_stop = sw_chat_stop_string(SW_CHAT_DEFAULT);
        CHECK(r->req.n_stop == (fmt_stop ? 2 : 1) && !strcmp(r->req.stop[0], "END"));
        size_t total = 0;
        for (size_t i = 0; i < r->req.n_parts; i++)
            total += strlen(r->req.parts[i].text);
        CHECK(total == strlen(r->prompt));
    }
    sw_openai_request_destroy(&r);
}

static void test_types_and_ranges(void)
{
    s_refused("{\"prompt\": 3}", false, "'prompt'");
    s_refused("{\"prompt\": null}", false, "'prompt'");
    s_refused("{\"prompt\": [\"a\"]}", false, "'prompt'");
    s_refused("{\"prompt\": {\"a\": 1}}", false, "'prompt'");
    s_refused("{\"prompt\": true}", false, "'prompt'");
    s_refused("{\"prompt\": \"x\", \"max_tokens\": \"many\"}", false, "'max_tokens'");
    s_refused("{\"prompt\": \"x\", \"max_tokens\": 0}", false, "'max_tokens'");
    s_refused("{\"prompt\": \"x\", \"max_tokens\": 2049}", false, "'max_tokens'");
    s_refused("{\"prompt\": \"x\", \"max_tokens\": -1}", false, "'max_tokens'");
    s_refused("{\"prompt\": \"x\", \"max_tokens\": 16.0}", false, "'max_tokens'");
    s_refused("{\"prompt\": \"x\", \"max_tokens\": 1e20}", false, "'max_tokens'");
    s_refused("{\"prompt\": \"x\", \"max_tokens\": -9223372036854775808}", false, "'max_tokens'");
    s_refused("{\"prompt\": \"x\", \"temperature\": 9}", false, "'temperature'");
    s_refused("{\"prompt\": \"x\", \"temperature\": -0.001}", false, "'temperature'");
    s_refused("{\"prompt\": \"x\", \"temperature\": \"1\"}", false, "'temperature'");
    s_refused("{\"prompt\": \"x\", \"temperature\": [1]}", false, "'temperature'");
    s_refused("{\"prompt\": \"x\", \"temperature\": 1e308}", false, "'temperature'");
    s_refused("{\"prompt\": \"x\", \"temperature\": -1e308}", false, "'temperature'");
    s_refused("{\"prompt\": \"x\", \"top_p\": 0}", false, "'top_p'");
    s_refused("{\"prompt\": \"x\", \"top_p\": 1.0000001}", false, "'top_p'");
    s_refused("{\"prompt\": \"x\", \"min_p\": 2}", false, "'min_p'");
    s_refused("{\"prompt\": \"x\", \"top_k\": 1048577}", false, "'top_k'");
    s_refused("{\"prompt\": \"x\", \"top_k\": -2}", false, "'top_k'");
    s_refused("{\"prompt\": \"x\", \"top_k\": 4.5}", false, "'top_k'");
    s_refused("{\"prompt\": \"x\", \"repetition_penalty\": 0}", false, "'repetition_penalty'");
    s_refused("{\"prompt\": \"x\", \"repetition_penalty\": 11}", false, "'repetition_penalty'");
    s_refused("{\"prompt\": \"x\", \"frequency_penalty\": 0.5}", false, "'frequency_penalty'");
    s_refused("{\"prompt\": \"x\", \"presence_penalty\": 3}", false, "'presence_penalty'");
    s_refused("{\"prompt\": \"x\", \"presence_penalty\": \"0\"}", false, "'presence_penalty'");
    s_refused("{\"prompt\": \"x\", \"ignore_eos\": 1}", false, "'ignore_eos'");
    s_refused("{\"prompt\": \"x\", \"stream\": \"true\"}", false, "'stream'");
    s_refused("{\"prompt\": \"x\", \"seed\": -1}", false, "'seed'");
    s_refused("{\"prompt\": \"x\", \"seed\": 1.5}", false, "'seed'");
    s_refused("{\"prompt\": \"x\", \"seed\": \"7\"}", false, "'seed'");
    s_refused("{\"prompt\": \"x\", \"seed\": 1e300}", false, "'seed'");
    s_refused("{\"prompt\": \"x\", \"stop\": 5}", false, "'stop'");
    s_refused("{\"prompt\": \"x\", \"stop\": [\"a\", 5]}", false, "'stop'");
    s_refused("{\"prompt\": \"x\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", false, "'stop'");
    s_refused("{\"prompt\": \"x\", \"stop\": [[\"a\"]]}", false, "'stop'");
    s_refused("{\"prompt\": \"x\", \"stop\": {\"a\": \"b\"}}", false, "'stop'");
    char body[1024];
    snprintf(body, sizeof body, "{\"prompt\": \"x\", \"stop\": \"%0257d\"}", 0);
    s_refused(body, false, "'stop'");
    snprintf(body, sizeof body, "{\"prompt\": \"x\", \"stop\": [\"%0257d\"]}", 0);
    s_refused(body, false, "'stop'");
}

static void test_not_json(void)
{
    /* NaN and Infinity are not JSON; nor are numbers past int64 or double */
    s_refused("{\"prompt\": \"x\", \"temperature\": NaN}", false, "JSON object");
    s_refused("{\"prompt\": \"x\", \"temperature\": Infinity}", false, "JSON object");
    s_refused("{\"prompt\": \"x\", \"temperature\": -Infinity}", false, "JSON object");
    s_refused("{\"prompt\": \"x\", \"temperature\": \"NaN\"}", false, "'temperature'");
    s_refused("{\"prompt\": \"x\", \"top_p\": \"nan\"}", false, "'top_p'");
    s_refused("{\"prompt\": \"x\", \"temperature\": 1e999}", false, "JSON object");
    s_refused("{\"prompt\": \"x\", \"seed\": 18446744073709551616}", false, "JSON object");
    s_refused("{\"prompt\": \"x\", \"max_tokens\": 99999999999999999999999}", false, "JSON object");
    /* not an object, empty, cut short, trailing garbage */
    s_refused("[]", false, "JSON object");
    s_refused("\"prompt\"", false, "JSON object");
    s_refused("null", false, "JSON object");
    s_refused("", false, "JSON object");
    s_refused("{\"prompt\": \"x\"", false, "JSON object");
    s_refused("{\"prompt\": \"x\"} {}", false, "JSON object");
    s_refused("{not json", false, "JSON object");
    char why[256] = "";
    bool oom = true;
    CHECK(!sw_openai_request_parse(NULL, 10, false, &s_lim, &oom, why, sizeof why) && !oom && why[0]);
    CHECK(!sw_openai_request_parse("{}", 0, true, &s_lim, &oom, why, sizeof why) && !oom);
    CHECK(!sw_openai_request_parse("{}", 2, false, &s_lim, NULL, NULL, 0)); /* no reason buffer: fine */
    /* invalid UTF-8: a stray byte, an overlong '/', a lone surrogate, a surrogate as bytes, NUL */
    s_refused("{\"prompt\": \"a\xff" "b\"}", false, "JSON object");
    s_refused("{\"prompt\": \"\xc0\xaf\"}", false, "JSON object");
    s_refused("{\"prompt\": \"\\ud800\"}", false, "JSON object");
    s_refused("{\"prompt\": \"\xed\xa0\x80\"}", false, "JSON object");
    s_refused("{\"prompt\": \"a\\u0000b\"}", false, "JSON object");
    s_refused("{\"messages\": [{\"role\": \"user\", \"content\": \"\xf8\x88\x80\x80\x80\"}]}", true, "JSON object");
    const char nul_inside[] = "{\"prompt\": \"a\0b\"}";
    CHECK(!sw_openai_request_parse(nul_inside, sizeof nul_inside - 1, false, &s_lim, NULL, why, sizeof why));
}

static void test_deep_and_giant(void)
{
    /* nesting 100,000 deep, at the top and inside a field: refused by the parser's depth limit, no stack overflow */
    const size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    if (!deep)
        return;
    size_t o = 0;
    for (size_t i = 0; i < depth; i++)
        deep[o++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[o++] = ']';
    deep[o] = 0;
    s_refused(deep, false, "JSON object");
    o = (size_t) sprintf(deep, "{\"prompt\": \"x\", \"user\": ");
    for (size_t i = 0; i < depth; i++)
        deep[o++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[o++] = ']';
    deep[o++] = '}';
    deep[o] = 0;
    s_refused(deep, false, "JSON object");
    /* nesting the parser takes (1,000), in place of a field: a type error */
    o = (size_t) sprintf(deep, "{\"prompt\": ");
    for (size_t i = 0; i < 1000; i++)
        o += (size_t) sprintf(deep + o, "{\"a\":");
    deep[o++] = '1';
    for (size_t i = 0; i < 1000; i++)
        deep[o++] = '}';
    deep[o++] = '}';
    deep[o] = 0;
    s_refused(deep, false, "'prompt'");
    free(deep);

    /* giant arrays: 1,025 messages; 100,000 stops; 200,000 content parts of one letter (allowed: small) */
    const size_t big = 200000;
    char *b = malloc(big * 40 + 256);
    if (!b)
        return;
    o = (size_t) sprintf(b, "{\"messages\": [");
    for (size_t i = 0; i < 1025; i++)
        o += (size_t) sprintf(b + o, "%s{\"role\": \"user\", \"content\": \"hi\"}", i ? "," : "");
    sprintf(b + o, "]}");
    s_refused(b, true, "1024 messages");
    o = (size_t) sprintf(b, "{\"messages\": [");
    for (size_t i = 0; i < 1024; i++)
        o += (size_t) sprintf(b + o, "%s{\"role\": \"user\", \"content\": \"hi\"}", i ? "," : "");
    sprintf(b + o, "]}");
    sw_openai_request_t *r = s_accepted(b, true);
    sw_openai_request_destroy(&r);
    o = (size_t) sprintf(b, "{\"prompt\": \"x\", \"stop\": [");
    for (size_t i = 0; i < 100000; i++)
        o += (size_t) sprintf(b + o, "%s\"s\"", i ? "," : "");
    sprintf(b + o, "]}");
    s_refused(b, false, "'stop'");
    o = (size_t) sprintf(b, "{\"messages\": [{\"role\": \"user\", \"content\": [");
    for (size_t i = 0; i < big; i++)
        o += (size_t) sprintf(b + o, "%s{\"type\":\"text\",\"text\":\"a\"}", i ? "," : "");
    sprintf(b + o, "]}]}");
    r = s_accepted(b, true);
    CHECK(!r || strlen(r->prompt) >= big);
    sw_openai_request_destroy(&r);
    /* a prompt past the limit, plain and as parts */
    const size_t n = SW_OPENAI_MAX_PROMPT + 1;
    char *p = malloc(n + 128);
    if (p) {
        o = (size_t) sprintf(p, "{\"prompt\": \"");
        memset(p + o, 'a', n);
        sprintf(p + o + n, "\"}");
        s_refused(p, false, "1 MiB");
        o = (size_t) sprintf(p, "{\"messages\": [{\"role\": \"user\", \"content\": \"");
        memset(p + o, 'a', n);
        sprintf(p + o + n, "\"}]}");
        s_refused(p, true, "1 MiB");
        free(p);
    }
    free(b);
}

static void test_missing(void)
{
    s_refused("{}", false, "'prompt'");
    s_refused("{}", true, "'messages'");
    s_refused("{\"prompt\": \"x\"}", true, "'messages'");
    s_refused("{\"messages\": []}", true, "'messages'");
    s_refused("{\"messages\": {}}", true, "'messages'");
    s_refused("{\"messages\": [{}]}", true, "'role'");
    s_refused("{\"messages\": [null]}", true, "'role'");
    s_refused("{\"messages\": [7]}", true, "'role'");
    s_refused("{\"messages\": [{\"role\": \"user\"}]}", true, "'content'");
    s_refused("{\"messages\": [{\"content\": \"hi\"}]}", true, "'role'");
    s_refused("{\"messages\": [{\"role\": 1, \"content\": \"hi\"}]}", true, "'role'");
    s_refused("{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", true, "'content'");
    s_refused("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {}}]}]}",
              true, "'content'");
    s_refused("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]}", true, "'content'");
    s_refused("{\"messages\": [{\"role\": \"user\", \"content\": [{\"text\": \"a\"}]}]}", true, "'content'");
    s_refused("{\"messages\": [{\"role\": \"user\", \"content\": [\"a\"]}]}", true, "'content'");
    /* duplicate keys: jansson keeps the last; either way no crash and a checked value */
    sw_openai_request_t *r = s_accepted("{\"prompt\": \"x\", \"max_tokens\": 5, \"max_tokens\": 7}", false);
    CHECK(r && (r->req.max_tokens == 5 || r->req.max_tokens == 7));
    sw_openai_request_destroy(&r);
}

/* The parsed JSON of text (caller decrefs), or NULL. */
static json_t *s_load(const char *text)
{
    return text ? json_loads(text, 0, NULL) : NULL;
}

static void test_answers(void)
{
    sw_client_summary_t sum = {.prompt_tokens = 3, .completion_tokens = 4, .seed = 1234567890123ull};
    snprintf(sum.stop_reason, sizeof sum.stop_reason, "length");
    char *t = sw_openai_completion_json(false, "cmpl-1", 1700000000, "m", "ab\xff" "c", 4, &sum);
    json_t *j = s_load(t);
    CHECK(j != NULL);
    CHECK(json_integer_value(json_object_get(j, "seed")) == 1234567890123ll);
    CHECK(!strcmp(json_string_value(json_object_get(j, "object")) ?: "", "text_completion"));
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(!strcmp(json_string_value(json_object_get(c0, "text")) ?: "", "ab\xef\xbf\xbd" "c"));
    CHECK(!strcmp(json_string_value(json_object_get(c0, "finish_reason")) ?: "", "length"));
    CHECK(json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")) == 7);
    json_decref(j);
    free(t);
    snprintf(sum.stop_reason, sizeof sum.stop_reason, "eos");
    t = sw_openai_completion_json(true, "chatcmpl-1", 1, "m", NULL, 0, &sum);
    j = s_load(t);
    c0 = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(c0, "message"), "content")) ?: "x", ""));
    CHECK(!strcmp(json_string_value(json_object_get(c0, "finish_reason")) ?: "", "stop"));
    json_decref(j);
    free(t);
    /* chunks: no seed while text goes on; the final one has it */
    t = sw_openai_chunk_json(true, "c", 1, "m", "\xe2\x82", 2, NULL, NULL);
    j = s_load(t);
    c0 = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(j && !json_object_get(j, "seed") && json_is_null(json_object_get(c0, "finish_reason")));
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(c0, "delta"), "content")) ?: "",
                  "\xef\xbf\xbd\xef\xbf\xbd"));
    json_decref(j);
    free(t);
    const uint64_t seed = 77;
    t = sw_openai_chunk_json(false, "c", 1, "m", "", 0, "stop", &seed);
    j = s_load(t);
    CHECK(json_integer_value(json_object_get(j, "seed")) == 77);
    json_decref(j);
    free(t);
    /* errors */
    t = sw_openai_error_json("server_busy", "too \"busy\"", "overloaded");
    j = s_load(t);
    json_t *e = json_object_get(j, "error");
    CHECK(!strcmp(json_string_value(json_object_get(e, "message")) ?: "", "too \"busy\""));
    CHECK(!strcmp(json_string_value(json_object_get(e, "code")) ?: "", "overloaded"));
    json_decref(j);
    free(t);
    t = sw_openai_error_json("invalid_request_error", "bad", NULL);
    j = s_load(t);
    CHECK(json_is_null(json_object_get(json_object_get(j, "error"), "code")));
    json_decref(j);
    free(t);
    CHECK(!strcmp(sw_openai_finish_reason("length"), "length") && !strcmp(sw_openai_finish_reason(NULL), "stop"));
}

static void test_utf8_ready(void)
{
    CHECK(sw_openai_utf8_ready("", 0) == 0);
    CHECK(sw_openai_utf8_ready("abc", 3) == 3);
    CHECK(sw_openai_utf8_ready("a\xe2\x82", 3) == 1);          /* euro sign cut after 2 of 3 bytes */
    CHECK(sw_openai_utf8_ready("a\xe2\x82\xac", 4) == 4);
    CHECK(sw_openai_utf8_ready("\xf0\x9f\x98", 3) == 0);        /* an emoji cut */
    CHECK(sw_openai_utf8_ready("a\xff", 2) == 2);               /* invalid: sent (as U+FFFD) */
    CHECK(sw_openai_utf8_ready("a\xe2" "b", 3) == 3);           /* a start followed by a non-continuation */
    CHECK(sw_openai_utf8_ready("\xc0", 1) == 1);                /* never valid */
    CHECK(sw_openai_utf8_ready("\xed\xa0", 2) == 2);            /* a surrogate's start: invalid */
    CHECK(sw_openai_utf8_ready("\xf4\x90", 2) == 2);            /* past U+10FFFF: invalid */
    CHECK(sw_openai_utf8_ready("\xe0\x80", 2) == 2);            /* overlong: invalid */
}

int main(void)
{
    test_valid();
    test_types_and_ranges();
    test_not_json();
    test_deep_and_giant();
    test_missing();
    test_answers();
    test_utf8_ready();
    return sw_test_report("openai");
}
