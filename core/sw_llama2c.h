/*  sw_llama2c.h: reader of llama2.c tokenizer files (tokenizer.bin, tok512.bin).
 *
 *  Format (Karpathy's llama2.c, export in tokenizer.py; all little-endian):
 *    1. max_token_length  int32   longest piece in bytes
 *    2. n_vocab records, each:
 *         score  f32
 *         len    int32   piece length in bytes (0..max_token_length)
 *         bytes  len bytes, UTF-8, not NUL-terminated
 *  The file does not store n_vocab (the model header does). Spaces are stored
 *  as ' ', BOS/EOS as "\n<s>\n" / "\n</s>\n".
 *
 *  The loader rewrites the pieces the way a SentencePiece GGUF stores them
 *  (as in stories260K.f32.gguf and llama.cpp's converters): ' ' -> U+2581,
 *  id 0 "<unk>" (type unknown), ids 1 "<s>" and 2 "</s>" (type control),
 *  pieces "<0xXX>" type byte, all others type normal; scores unchanged.
 *
 *  Thread safety: no shared state; a loaded vocabulary is immutable.
 */
#ifndef SW_LLAMA2C_H
#define SW_LLAMA2C_H

#include <stddef.h>
#include <stdint.h>

#include "sw_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t n_vocab;           /* number of tokens */
    int32_t max_token_length;  /* header value, bytes */
    char **tokens;             /* (n_vocab) pieces, each NUL-terminated (the NUL not counted) */
    size_t *token_lens;        /* (n_vocab) piece lengths in bytes */
    float *scores;             /* (n_vocab) */
    int32_t *types;            /* (n_vocab) SW_TOKTYPE_* */
} sw_llama2c_vocab_t;

/*  Reads a llama2.c tokenizer file.
 *  path: file name. n_vocab: the number of tokens to read (the model
 *  header's vocab_size), or <= 0 to read records until the end of the file.
 *  out: filled on success (caller frees with sw_llama2c_vocab_free), zeroed
 *  on failure.
 *  Validation: header and every length are checked against the bytes left
 *  in the file and against max_token_length; with n_vocab > 0 the file must
 *  end exactly after the n_vocab-th record (otherwise the sizes disagree).
 *  Returns 0, or -1 with the reason in err. */
int sw_llama2c_vocab_load(const char *path, int32_t n_vocab, sw_llama2c_vocab_t *out,
                          char *err, size_t errlen);

/*  Same from a caller-owned buffer (data: size bytes, borrowed during the call). */
int sw_llama2c_vocab_parse(const void *data, size_t size, int32_t n_vocab, sw_llama2c_vocab_t *out,
                           char *err, size_t errlen);

/*  Frees the arrays of v and zeroes it; accepts NULL and an already freed v. */
void sw_llama2c_vocab_free(sw_llama2c_vocab_t *v);

/*  Fills a SentencePiece vocabulary description that borrows v's arrays
 *  (valid while v is): kind SPM, bos 1, eos 2, unk 0, pad -1, add_bos true,
 *  add_space_prefix true (what llama2.c's encoder does). Build a tokenizer
 *  with sw_tokenizer_new(desc, ...). */
void sw_llama2c_vocab_desc(const sw_llama2c_vocab_t *v, sw_vocab_desc_t *desc);

#ifdef __cplusplus
}
#endif
#endif
