/*  sw_tokenizer_internal.h: the tokenizer's private state, shared by
 *  sw_tokenizer.c (storage, SPM, decoding, GGUF) and sw_tokenizer_bpe.c
 *  (byte-level BPE). Not part of the public API.
 */
#ifndef SW_TOKENIZER_INTERNAL_H
#define SW_TOKENIZER_INTERNAL_H

#include "sw_tokenizer.h"

#define SW_TOK_MAX_VOCAB (1 << 22)   /* 4M tokens: far above any real vocabulary */
#define SW_TOK_MAX_MERGES (1 << 23)
#define SW_TOK_MAX_PIECE 65536       /* bytes per piece */
#define SW_TOK_CP2BYTE_N 324         /* GPT-2 byte alphabet uses code points < 324 */
#define SW_TOK_MAX_RE 2

struct sw_tokenizer_t {
    sw_tok_kind_t kind;
    int32_t n_vocab;
    char *blob;            /* all pieces back to back */
    size_t *tok_off;       /* (n_vocab) offset of each piece in blob */
    uint32_t *tok_len;     /* (n_vocab) piece length in bytes */
    float *scores;         /* (n_vocab) */
    int32_t *types;        /* (n_vocab) SW_TOKTYPE_* */
    uint8_t *eog;          /* (n_vocab) 1 for end-of-generation tokens */
    int32_t *ht;           /* open-addressing piece -> id table, -1 empty */
    size_t ht_cap;         /* power of two */
    int32_t byte_id[256];  /* SPM: id of <0xXX>, or -1 */
    int32_t bos_id, eos_id, unk_id, pad_id;
    bool add_bos, add_space_prefix;
    bool spm_word_split;    /* SPM: merge word by word (exact for this vocabulary) */
    /* BPE */
    int16_t cp2byte[SW_TOK_CP2BYTE_N]; /* inverse GPT-2 byte map, -1 if none */
    uint16_t byte2cp[256];  /* GPT-2 byte map: byte -> code point */
    int32_t byte_tok[256];  /* id of the piece of one mapped byte, or -1 */
    uint64_t *mkey;         /* merge table: key (left_id << 32 | right_id), 0 = empty slot */
    int32_t *mrank;         /* rank (order in tokenizer.ggml.merges) */
    int32_t *mres;          /* id of the merged piece */
    size_t m_cap;           /* power of two */
    void *re[SW_TOK_MAX_RE];/* pcre2_code_8 * chain, applied in order */
    int n_re;
    bool ignore_merges;     /* llama3: a whole pre-token found in the vocab is emitted as is */
    /* special tokens (control and user-defined types, >= 2 bytes), longest first */
    int32_t *special;       /* (n_special) ids */
    int32_t n_special;
    uint8_t special_first[256]; /* 1 if some special piece starts with this byte */
};

uint64_t sw__tok_hash(const char *s, size_t n);
int32_t sw__tok_lookup(const sw_tokenizer_t *self, const char *s, size_t n);
size_t sw__utf8_len(const unsigned char *s, size_t avail, uint32_t *cp_out);

int sw__tok_bpe_init(sw_tokenizer_t *self, const sw_vocab_desc_t *d, char *err, size_t errlen);
void sw__tok_bpe_free(sw_tokenizer_t *self);
int sw__tok_bpe_pretokenize(const sw_tokenizer_t *self, const char *text, size_t len,
                            size_t **ranges, size_t *n_out);
int64_t sw__tok_bpe_encode(const sw_tokenizer_t *self, const char *text, size_t len,
                           int32_t *out, int64_t max_out, int64_t cnt);

#endif
