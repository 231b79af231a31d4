/*  sw_tokenizer.h: text <-> token ids for Llama-family models.
 *
 *  Two algorithms, chosen by GGUF `tokenizer.ggml.model`:
 *  - "llama": SentencePiece-style BPE over pieces with scores (the highest-
 *    scoring adjacent merge first), a leading space ("dummy prefix") added to
 *    the text, spaces written as U+2581, and byte fallback to <0xXX> tokens for
 *    characters not in the vocabulary. Source: SentencePiece (Kudo & Richardson
 *    2018) BPE mode, as used by Llama 1/2, TinyLlama, Mistral.
 *  - "gpt2": byte-level BPE (Radford et al. 2019): the text is split by the
 *    pre-tokenizer regex named by `tokenizer.ggml.pre` (gpt2, llama3, qwen2,
 *    smollm ...), each byte mapped to a printable code point, then ranked
 *    merges from `tokenizer.ggml.merges` applied lowest rank first.
 *  sw_tokenizer_encode treats the text as plain text: a special token's
 *  spelling in it ("<|im_start|>") is tokenized like any other characters.
 *  sw_tokenizer_encode_special also recognizes the pieces of special tokens
 *  (control and user-defined types), which chat templates need.
 *
 *  Thread safety: immutable after construction; encode/decode are reentrant.
 */
#ifndef SW_TOKENIZER_H
#define SW_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SW_TOK_SPM = 1, SW_TOK_BPE = 2 } sw_tok_kind_t;

/*  GGUF token types (tokenizer.ggml.token_type). */
enum { SW_TOKTYPE_NORMAL = 1, SW_TOKTYPE_UNKNOWN = 2, SW_TOKTYPE_CONTROL = 3,
       SW_TOKTYPE_USER = 4, SW_TOKTYPE_UNUSED = 5, SW_TOKTYPE_BYTE = 6 };

/*  A vocabulary described by arrays (all borrowed during construction only;
 *  the tokenizer copies what it keeps). */
typedef struct {
    sw_tok_kind_t kind;
    int32_t n_vocab;
    const char *const *tokens;  /* n_vocab pieces (UTF-8, not NUL-terminated) */
    const size_t *token_lens;   /* their lengths in bytes */
    const float *scores;        /* n_vocab scores (SPM); may be NULL for BPE */
    const int32_t *types;       /* n_vocab token types; may be NULL (all normal) */
    const char *const *merges;  /* BPE: n_merges "left right" strings, rank order */
    const size_t *merge_lens;
    int32_t n_merges;
    const char *pre;            /* BPE pre-tokenizer name ("gpt2", "qwen2", ...), may be NULL */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    bool add_bos;               /* prepend BOS when the caller asks for defaults */
    bool add_space_prefix;      /* SPM: add a leading space (default true) */
} sw_vocab_desc_t;

typedef struct sw_tokenizer_t sw_tokenizer_t;

/*  Builds a tokenizer from arrays. Returns NULL with a reason in err.
 *  Caller destroys result. */
sw_tokenizer_t *sw_tokenizer_new(const sw_vocab_desc_t *desc, char *err, size_t errlen);
/*  Builds a tokenizer from a GGUF file's tokenizer.ggml.* metadata; a missing
 *  or inconsistent vocabulary is an error naming the key. */
sw_tokenizer_t *sw_tokenizer_from_gguf(const sw_gguf_t *gguf, char *err, size_t errlen);
void sw_tokenizer_destroy(sw_tokenizer_t **self_p);

sw_tok_kind_t sw_tokenizer_kind(const sw_tokenizer_t *self);
int32_t sw_tokenizer_n_vocab(const sw_tokenizer_t *self);
int32_t sw_tokenizer_bos(const sw_tokenizer_t *self);   /* -1 if none */
int32_t sw_tokenizer_eos(const sw_tokenizer_t *self);   /* -1 if none */
bool sw_tokenizer_add_bos(const sw_tokenizer_t *self);
/*  True for tokens that end generation: EOS, and control-type tokens whose
 *  text is one of <|eot_id|>, <|im_end|>, <|endoftext|>, </s>, <|end|>,
 *  <end_of_turn>, <|end_of_text|>. False for ids out of range. */
bool sw_tokenizer_is_eog(const sw_tokenizer_t *self, int32_t token);

/*  Encodes len bytes of UTF-8 text (invalid UTF-8 is encoded byte-wise by
 *  byte fallback, never rejected). Writes at most max_out ids to out.
 *  Returns the number of ids the full encoding has (may exceed max_out: call
 *  again with a larger buffer; out may be NULL with max_out 0 to count), or
 *  -1 on allocation failure or a text over ~1 GiB. Empty text encodes to
 *  nothing (plus BOS if asked). */
int64_t sw_tokenizer_encode(const sw_tokenizer_t *self, const char *text, size_t len,
                            bool add_bos, int32_t *out, int64_t max_out);

/*  Like sw_tokenizer_encode, but every occurrence of a special token's piece
 *  (control or user-defined type, 2 bytes or more; the longest match wins)
 *  becomes that token, and the text between them is encoded as plain text.
 *  SPM: the dummy-prefix space is added to the first text segment and to
 *  each segment that follows a special token (llama.cpp's convention, so
 *  ids agree with it). Use only for text the server assembled (chat
 *  templates): a user who types "</s>" would otherwise end a turn; mix
 *  the two with sw_tokenizer_encode_parts.
 *  Returns as sw_tokenizer_encode. */
int64_t sw_tokenizer_encode_special(const sw_tokenizer_t *self, const char *text, size_t len, bool add_bos,
                                    int32_t *out, int64_t max_out);

/*  A piece of a prompt: text (UTF-8, len bytes, borrowed) in which special
 *  token pieces are recognized (special = true: text the server wrote, such
 *  as a chat template's markers) or not (false: the user's words). */
typedef struct {
    const char *text;
    size_t len;
    bool special;
} sw_tok_part_t;

/*  Encodes the parts as one text: the plain text between recognized special
 *  tokens runs across part boundaries exactly as if the parts were one
 *  string, but a special token is recognized only where its whole piece lies
 *  inside one special part. With every part special this is
 *  sw_tokenizer_encode_special of the concatenation. Returns as
 *  sw_tokenizer_encode (-1 also when the parts total over 1 GiB). */
int64_t sw_tokenizer_encode_parts(const sw_tokenizer_t *self, const sw_tok_part_t *parts, size_t n_parts,
                                  bool add_bos, int32_t *out, int64_t max_out);

/*  The bytes one token stands for when it follows token `prev` (-1 at the
 *  start): SPM pieces have U+2581 turned into spaces, the leading space of
 *  the first piece after BOS removed, <0xXX> byte tokens turned into the
 *  byte; BPE pieces are mapped back from the byte-level alphabet (BPE
 *  user-defined tokens are copied as is). Control, unknown and unused
 *  tokens decode to nothing. decode(encode(s)) == s for any bytes s (SPM:
 *  unless s holds U+2581, which encodes as a space). Writes up to buflen bytes (no NUL) and
 *  returns the number of bytes of the piece (may exceed buflen), or -1 for an
 *  id out of range. A multi-byte UTF-8 character may be split over tokens;
 *  callers concatenate bytes. */
int sw_tokenizer_decode_token(const sw_tokenizer_t *self, int32_t prev, int32_t token,
                              char *buf, size_t buflen);

/*  The raw piece string as stored in the vocabulary (borrowed), and length. */
const char *sw_tokenizer_piece(const sw_tokenizer_t *self, int32_t token, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
