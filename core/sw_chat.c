/*  sw_chat.c: chat formats (see sw_chat.h for the text of each). */
#include "sw_chat.h"

#include <stdlib.h>
#include <string.h>

#include "sw_common.h"

static const char *const s_names[] = {"default", "chatml", "llama3", "llama2", "mistral", "zephyr", "phi3", "gemma"};

sw_chat_format_t sw_chat_detect(const char *t)
{
    if (!t || !*t)
        return SW_CHAT_DEFAULT;
    if (strstr(t, "<|im_start|>"))
        return SW_CHAT_CHATML;
    if (strstr(t, "<|start_header_id|>"))
        return SW_CHAT_LLAMA3;
    if (strstr(t, "<start_of_turn>"))
        return SW_CHAT_GEMMA;
    if (strstr(t, "[INST]"))
        return strstr(t, "<<SYS>>") ? SW_CHAT_LLAMA2 : SW_CHAT_MISTRAL;
    if (strstr(t, "<|user|>"))
        return strstr(t, "<|end|>") ? SW_CHAT_PHI3 : SW_CHAT_ZEPHYR;
    return SW_CHAT_DEFAULT;
}

const char *sw_chat_format_name(sw_chat_format_t fmt)
{
    return (unsigned) fmt < sizeof s_names / sizeof s_names[0] ? s_names[fmt] : "default";
}

int sw_chat_format_from_name(const char *name, sw_chat_format_t *fmt)
{
    for (size_t i = 0; name && i < sizeof s_names / sizeof s_names[0]; i++)
        if (!strcmp(name, s_names[i])) {
            *fmt = (sw_chat_format_t) i;
            return 0;
        }
    return -1;
}

const char *sw_chat_stop_string(sw_chat_format_t fmt) { return fmt == SW_CHAT_DEFAULT ? "\nUser:" : NULL; }

/* ---- building the prompt ---------------------------------------------------- */

typedef struct {
    sw_chat_prompt_t *p;
    size_t cap, parts_cap;
    bool oom;
} s_buf_t;

static void s_put(s_buf_t *b, const char *s, size_t n, bool special)
{
    if (b->oom || n == 0)
        return;
    sw_chat_prompt_t *p = b->p;
    if (p->len + n + 1 > b->cap) {
        size_t cap = (p->len + n + 1) * 2;
        char *t = realloc(p->text, cap);
        if (!t) {
            b->oom = true;
            return;
        }
        p->text = t;
        b->cap = cap;
    }
    /* a part continues the previous one when of the same kind */
    if (p->n_parts && p->parts[p->n_parts - 1].special == special) {
        p->parts[p->n_parts - 1].len += n;
    } else {
        if (p->n_parts == b->parts_cap) {
            size_t cap = b->parts_cap ? b->parts_cap * 2 : 16;
            sw_chat_part_t *q = realloc(p->parts, cap * sizeof *q);
            if (!q) {
                b->oom = true;
                return;
            }
            p->parts = q;
            b->parts_cap = cap;
        }
        p->parts[p->n_parts++] = (sw_chat_part_t){.off = p->len, .len = n, .special = special};
    }
    memcpy(p->text + p->len, s, n);
    p->len += n;
    p->text[p->len] = 0;
}

/* the format's own text */
static void s_fmt(s_buf_t *b, const char *s) { s_put(b, s, strlen(s), true); }

/* a message's content, whole or with ASCII white space trimmed at both ends
 * (Jinja's |trim, for ASCII) */
static void s_content(s_buf_t *b, const char *s, bool trim)
{
    size_t n = strlen(s);
    if (trim) {
        while (n && strchr(" \t\n\r\f\v", s[0])) {
            s++;
            n--;
        }
        while (n && strchr(" \t\n\r\f\v", s[n - 1]))
            n--;
    }
    s_put(b, s, n, false);
}

typedef enum { R_SYSTEM, R_USER, R_ASSISTANT } s_role_t;

static int s_role(const char *r, s_role_t *out)
{
    if (!r)
        return -1;
    if (!strcmp(r, "system") || !strcmp(r, "developer"))
        *out = R_SYSTEM;
    else if (!strcmp(r, "user"))
        *out = R_USER;
    else if (!strcmp(r, "assistant"))
        *out = R_ASSISTANT;
    else
        return -1;
    return 0;
}

static const char *const s_role_names[] = {"system", "user", "assistant"};

/* Formats that put the system message in front of the first user message. */
static void s_render_inst(s_buf_t *b, sw_chat_format_t fmt, const sw_chat_msg_t *m, const s_role_t *roles, size_t n)
{
    const char *sys = NULL;
    size_t i = 0;
    if (roles[0] == R_SYSTEM) {
        sys = m[0].content;
        i = 1;
    }
    bool first_user = true;
    for (size_t k = i; k < n; k++) {
        const bool user = roles[k] != R_ASSISTANT; /* a later system message: a user turn (no other place) */
        if (fmt == SW_CHAT_LLAMA2) {
            if (user) {
                if (k > i)
                    s_fmt(b, "<s>"); /* BOS between exchanges; the first one is the tokenizer's */
                if (first_user && sys) {
                    s_fmt(b, "[INST] <<SYS>>\n");
                    s_content(b, sys, false);
                    s_fmt(b, "\n<</SYS>>\n\n");
                } else {
                    s_fmt(b, "[INST] ");
                }
                s_content(b, m[k].content, true);
                s_fmt(b, " [/INST]");
            } else {
                s_fmt(b, " ");
                s_content(b, m[k].content, true);
                s_fmt(b, " </s>");
            }
        } else if (fmt == SW_CHAT_MISTRAL) {
            if (user) {
                s_fmt(b, "[INST] ");
                if (first_user && sys) {
                    s_content(b, sys, false);
                    s_fmt(b, "\n\n");
                }
                s_content(b, m[k].content, false);
                s_fmt(b, " [/INST]");
            } else {
                s_content(b, m[k].content, false);
                s_fmt(b, "</s>");
            }
        } else { /* gemma */
            s_fmt(b, user ? "<start_of_turn>user\n" : "<start_of_turn>model\n");
            if (user && first_user && sys) {
                s_content(b, sys, false);
                s_fmt(b, "\n\n");
            }
            s_content(b, m[k].content, true);
            s_fmt(b, "<end_of_turn>\n");
        }
        if (user)
            first_user = false;
    }
    if (first_user && sys) { /* only a system message */
        if (fmt == SW_CHAT_LLAMA2) {
            s_fmt(b, "[INST] <<SYS>>\n");
            s_content(b, sys, false);
            s_fmt(b, "\n<</SYS>>\n\n [/INST]");
        } else if (fmt == SW_CHAT_MISTRAL) {
            s_fmt(b, "[INST] ");
            s_content(b, sys, false);
            s_fmt(b, "\n\n [/INST]");
        } else {
            s_fmt(b, "<start_of_turn>user\n");
            s_content(b, sys, false);
            s_fmt(b, "\n\n<end_of_turn>\n");
        }
    }
    if (fmt == SW_CHAT_GEMMA)
        s_fmt(b, "<start_of_turn>model\n");
}

int sw_chat_render(sw_chat_format_t fmt, const sw_chat_msg_t *msgs, size_t n, sw_chat_prompt_t *out, char *err,
                   size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!msgs || n == 0)
        return sw_err(err, errlen, "no messages");
    s_role_t *roles = malloc(sizeof *roles * n);
    if (!roles)
        return sw_err(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (s_role(msgs[i].role, &roles[i]) != 0) {
            free(roles);
            return sw_err(err, errlen, "message %zu: role must be system, developer, user or assistant", i);
        }
        if (!msgs[i].content) {
            free(roles);
            return sw_err(err, errlen, "message %zu has no content", i);
        }
    }
    s_buf_t b = {.p = out};
    switch (fmt) {
    case SW_CHAT_CHATML:
        for (size_t i = 0; i < n; i++) {
            s_fmt(&b, "<|im_start|>");
            s_fmt(&b, s_role_names[roles[i]]);
            s_fmt(&b, "\n");
            s_content(&b, msgs[i].content, false);
            s_fmt(&b, "<|im_end|>\n");
        }
        s_fmt(&b, "<|im_start|>assistant\n");
        break;
    case SW_CHAT_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            s_fmt(&b, "<|start_header_id|>");
            s_fmt(&b, s_role_names[roles[i]]);
            s_fmt(&b, "<|end_header_id|>\n\n");
            s_content(&b, msgs[i].content, true);
            s_fmt(&b, "<|eot_id|>");
        }
        s_fmt(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case SW_CHAT_ZEPHYR:
    case SW_CHAT_PHI3:
        for (size_t i = 0; i < n; i++) {
            s_fmt(&b, "<|");
            s_fmt(&b, s_role_names[roles[i]]);
            s_fmt(&b, "|>\n");
            s_content(&b, msgs[i].content, false);
            s_fmt(&b, fmt == SW_CHAT_PHI3 ? "<|end|>\n" : "</s>\n");
        }
        s_fmt(&b, "<|assistant|>\n");
        break;
    case SW_CHAT_LLAMA2:
    case SW_CHAT_MISTRAL:
    case SW_CHAT_GEMMA:
        s_render_inst(&b, fmt, msgs, roles, n);
        break;
    default:
        for (size_t i = 0; i < n; i++) {
            static const char *const heads[] = {"System: ", "User: ", "Assistant: "};
            s_fmt(&b, heads[roles[i]]);
            s_content(&b, msgs[i].content, false);
            s_fmt(&b, "\n");
        }
        s_fmt(&b, "Assistant:");
        break;
    }
    free(roles);
    if (b.oom) {
        sw_chat_prompt_free(out);
        return sw_err(err, errlen, "out of memory");
    }
    return 0;
}

void sw_chat_prompt_free(sw_chat_prompt_t *p)
{
    if (!p)
        return;
    free(p->text);
    free(p->parts);
    memset(p, 0, sizeof *p);
}
