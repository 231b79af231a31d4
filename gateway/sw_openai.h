/*  sw_openai.h: the OpenAI API's JSON shapes for the gateway's HTTP front
 *  (gateway/sw_http): request bodies of POST /v1/completions and
 *  /v1/chat/completions parsed and checked into a gateway request
 *  (sw_client.h), and the bodies of its answers built: a completion, a
 *  streamed chunk, an error. Source of the shapes: the OpenAI API reference
 *  ("Completions", "Chat", "Error codes"); the fields beyond it carry vLLM's
 *  names (min_p, top_k, repetition_penalty, ignore_eos). docs/protocol.md,
 *  "HTTP API", lists every field with its range.
 *
 *  A body is hostile input: every field is checked for its JSON type and its
 *  range before use, with a one-line reason naming the field on refusal.
 *  JSON itself is parsed by jansson (UTF-8 checked, "\u0000" refused,
 *  nesting at most 2048 deep, integers that overflow int64 and reals that
 *  overflow a double refused); sizes are bounded by the caller's body cap
 *  (sw_http: 1 MiB) and below by SW_OPENAI_MAX_* here.
 *
 *  Thread safety: every function is reentrant; a request object belongs to
 *  one thread at a time.
 */
#ifndef SW_OPENAI_H
#define SW_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_chat.h"
#include "sw_client.h"

#define SW_OPENAI_MAX_MESSAGES 1024          /* chat messages per request */
#define SW_OPENAI_MAX_PROMPT ((1u << 20) - 4096) /* bytes of a prompt (plain, or rendered from the messages) */
#define SW_OPENAI_MAX_STOPS 4                /* the request's stop strings (OpenAI's limit) */
#define SW_OPENAI_MAX_STOP_BYTES 256         /* bytes of each stop string */
#define SW_OPENAI_MAX_TOP_K (1 << 20)        /* largest top_k accepted */

/*  What the server allows. */
typedef struct {
    uint32_t max_tokens;      /* the largest "max_tokens" accepted, >= 1 */
    int chat_format;          /* sw_chat_format_t the chat messages are rendered in */
} sw_openai_limits_t;

/*  A checked request. req is what goes to the gateway (sw_client_generate);
 *  its pointers point into this object's own storage, valid until it is
 *  destroyed. Read-only for the caller. */
typedef struct {
    sw_client_request_t req;      /* prompt or parts, sampling, seed (has_seed), stops */
    bool chat;                    /* a chat request (messages rendered in the model's format) */
    bool stream;                  /* "stream": true: server-sent events */
    /* storage of req (owned) */
    char *prompt;                 /* plain prompt, or the rendered chat prompt's text */
    sw_chat_prompt_t chat_prompt; /* chat: the rendered prompt */
    sw_client_prompt_part_t *parts; /* chat: n_parts pieces of it (texts owned) */
    size_t n_parts;
    char *stops[SW_OPENAI_MAX_STOPS + 1]; /* the request's stop strings and the chat format's own */
} sw_openai_request_t;

/*  Parses and checks a request body. body: len bytes of JSON (need not be
 *  NUL-terminated; NULL or empty is refused); chat: the body is for
 *  /v1/chat/completions ("messages") rather than /v1/completions
 *  ("prompt"); lim: the server's limits (borrowed).
 *  Defaults of absent (or null) fields: max_tokens 16, temperature 1,
 *  top_p 1, min_p 0, top_k 0 (off), repetition_penalty 1, no seed (the
 *  gateway draws one), stream false.
 *  Returns the request (caller destroys it), or NULL with a one-line reason
 *  in why ("'temperature' must be a number from 0 to 2") and *oom (may be
 *  NULL) telling a failed allocation (the server's fault: 500) from a bad
 *  body (the client's: 400). */
sw_openai_request_t *sw_openai_request_parse(const char *body, size_t len, bool chat, const sw_openai_limits_t *lim,
                                             bool *oom, char *why, size_t whylen);

/*  Frees a request and sets *self_p to NULL; accepts NULL and *self_p NULL. */
void sw_openai_request_destroy(sw_openai_request_t **self_p);

/*  OpenAI's finish_reason of a gateway stop_reason (sw_client_summary_t):
 *  "length" for "length", else "stop". Static string. */
const char *sw_openai_finish_reason(const char *stop_reason);

/*  The error body {"error": {"message", "type", "code"}}: type is OpenAI's
 *  error type ("invalid_request_error"), code a short name or NULL (JSON
 *  null). Returns compact JSON text (caller frees), or NULL when out of
 *  memory. */
char *sw_openai_error_json(const char *type, const char *message, const char *code);

/*  The non-streaming answer: a "text_completion" (chat: "chat.completion",
 *  the text as the assistant's message) with id, created (Unix seconds),
 *  model, one choice of text (len bytes; a byte that is not part of valid
 *  UTF-8 becomes U+FFFD), usage from sum, and the sampler's seed sum->seed
 *  at the top level ("seed"). Returns compact JSON text (caller frees), or
 *  NULL only when out of memory. */
char *sw_openai_completion_json(bool chat, const char *id, long created, const char *model, const char *text,
                                size_t len, const sw_client_summary_t *sum);

/*  One streamed chunk: "text_completion" (chat: "chat.completion.chunk",
 *  the text as a delta), with text (len bytes, invalid UTF-8 as above) and
 *  finish_reason (NULL: JSON null, while text goes on). seed: the sampler's
 *  seed, given for the final chunk (the one with a finish_reason), NULL
 *  elsewhere. Returns compact JSON text (caller frees), or NULL only when
 *  out of memory. */
char *sw_openai_chunk_json(bool chat, const char *id, long created, const char *model, const char *text, size_t len,
                           const char *finish, const uint64_t *seed);

/*  How many of the len bytes of s can be sent now: all of them but an
 *  incomplete UTF-8 sequence at the end (at most 3 bytes, which the next
 *  chunk may complete: a token's bytes may split a character). Invalid
 *  bytes count as sendable (they become U+FFFD). */
size_t sw_openai_utf8_ready(const char *s, size_t len);

#endif
