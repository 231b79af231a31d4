/*  sw_chat.h: chat messages -> one prompt, in the model's chat format.
 *
 *  A GGUF may carry its chat template as Jinja source in the metadata key
 *  `tokenizer.chat_template` (GGUF spec, "Prompting"). swisd does not run
 *  Jinja: it recognizes which published format a template implements by the
 *  markers it writes, and renders that format in C. Formats (the text each
 *  message becomes; {c} is the message content, BOS is omitted at the very
 *  start because the tokenizer adds it):
 *
 *    chatml   "<|im_start|>{role}\n{c}<|im_end|>\n" ... "<|im_start|>assistant\n"
 *             (Qwen2, SmolLM2 and others; marker "<|im_start|>")
 *    llama3   "<|start_header_id|>{role}<|end_header_id|>\n\n{c trimmed}<|eot_id|>"
 *             ... "<|start_header_id|>assistant<|end_header_id|>\n\n"
 *             (Llama 3.x; marker "<|start_header_id|>")
 *    llama2   "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] ..."
 *             (Llama 2 chat; markers "[INST]" and "<<SYS>>"; contents trimmed)
 *    mistral  "[INST] {user} [/INST]{assistant}</s>[INST] ..." with a system
 *             message put before the first user message ("{system}\n\n{user}")
 *             (Mistral instruct; marker "[INST]" without "<<SYS>>")
 *    zephyr   "<|{role}|>\n{c}</s>\n" ... "<|assistant|>\n"
 *             (Zephyr, TinyLlama-chat; marker "<|user|>" without "<|end|>")
 *    phi3     "<|{role}|>\n{c}<|end|>\n" ... "<|assistant|>\n"
 *             (Phi-3; markers "<|user|>" and "<|end|>")
 *    gemma    "<start_of_turn>{user|model}\n{c trimmed}<end_of_turn>\n" ...
 *             "<start_of_turn>model\n"; a system message is put before the
 *             first user message ("{system}\n\n{user}") (Gemma; marker
 *             "<start_of_turn>")
 *    default  "{Role}: {c}\n" per message, then "Assistant:" (no template,
 *             or one not recognized; "Role" is the role capitalized)
 *
 *  Each format's text is checked against the Jinja engine itself (python3
 *  jinja2) rendering a template of that format, in tests/test_chat.py.
 *
 *  The output keeps apart the format's own text (markers; special tokens in
 *  it are recognized) from the messages' contents (plain text: a user who
 *  types "<|im_end|>" does not end a turn): see sw_tok_part_t.
 *
 *  Thread safety: stateless; all functions are reentrant.
 */
#ifndef SW_CHAT_H
#define SW_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SW_CHAT_DEFAULT = 0,
    SW_CHAT_CHATML,
    SW_CHAT_LLAMA3,
    SW_CHAT_LLAMA2,
    SW_CHAT_MISTRAL,
    SW_CHAT_ZEPHYR,
    SW_CHAT_PHI3,
    SW_CHAT_GEMMA,
} sw_chat_format_t;

/*  One message. role: "system", "developer" (same as system), "user" or
 *  "assistant"; content: UTF-8, NUL-terminated. Both borrowed. */
typedef struct {
    const char *role;
    const char *content;
} sw_chat_msg_t;

/*  One piece of the rendered prompt: bytes [off, off + len) of text. */
typedef struct {
    size_t off, len;
    bool special;   /* the format's own text (special tokens recognized) */
} sw_chat_part_t;

/*  A rendered prompt. text is NUL-terminated and holds every part back to
 *  back; parts cover it in order. Owned by the caller: sw_chat_prompt_free. */
typedef struct {
    char *text;
    size_t len;
    sw_chat_part_t *parts;
    size_t n_parts;
} sw_chat_prompt_t;

/*  The format a Jinja chat template implements, by its markers (see the
 *  table above). NULL or "" or an unknown template: SW_CHAT_DEFAULT. */
sw_chat_format_t sw_chat_detect(const char *jinja_template);

/*  "chatml", "llama3", ..., "default". */
const char *sw_chat_format_name(sw_chat_format_t fmt);

/*  The format of a name as printed by sw_chat_format_name; -1 if none. */
int sw_chat_format_from_name(const char *name, sw_chat_format_t *fmt);

/*  Renders n messages (n >= 1) and the prompt for the assistant's answer.
 *  Returns 0 and fills out, or -1 with a reason in err: an unknown role, a
 *  NULL content, no message, or out of memory. On -1 out is empty. */
int sw_chat_render(sw_chat_format_t fmt, const sw_chat_msg_t *msgs, size_t n, sw_chat_prompt_t *out, char *err,
                   size_t errlen);

/*  Frees what sw_chat_render filled; accepts a zeroed or freed prompt. */
void sw_chat_prompt_free(sw_chat_prompt_t *p);

/*  A stop string the format needs besides the model's end-of-turn tokens
 *  (default: "\nUser:", so the model does not write the user's next turn),
 *  or NULL. */
const char *sw_chat_stop_string(sw_chat_format_t fmt);

#ifdef __cplusplus
}
#endif
#endif
