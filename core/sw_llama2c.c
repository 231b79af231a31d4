/*  sw_llama2c.c: llama2.c tokenizer.bin reader (format in sw_llama2c.h). */
#include "sw_llama2c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"

#define SW_LLAMA2C_MAX_VOCAB (1 << 22)
#define SW_LLAMA2C_MAX_PIECE 65536
#define SW_LLAMA2C_MAX_FILE ((size_t) 1 << 30)

static int32_t s_rd_i32(const unsigned char *p)
{
    uint32_t v = (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
    int32_t r;
    memcpy(&r, &v, 4);
    return r;
}

static bool s_is_byte_piece(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return false;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

void sw_llama2c_vocab_free(sw_llama2c_vocab_t *v)
{
    if (!v)
        return;
    if (v->tokens)
        for (int32_t i = 0; i < v->n_vocab; i++)
            free(v->tokens[i]);
    free(v->tokens);
    free(v->token_lens);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof(*v));
}

int sw_llama2c_vocab_parse(const void *data, size_t size, int32_t n_vocab, sw_llama2c_vocab_t *out,
                           char *err, size_t errlen)
{
    const char *fn = "sw_llama2c_vocab_parse";
    const unsigned char *p = data;
    memset(out, 0, sizeof(*out));
    if (!data || size < 4)
        return sw_err(err, errlen, "%s: file too short for the header (%zu bytes)", fn, size);
    int32_t maxlen = s_rd_i32(p);
    if (maxlen <= 0 || maxlen > SW_LLAMA2C_MAX_PIECE)
        return sw_err(err, errlen, "%s: max_token_length %d out of range (1..%d)", fn, (int) maxlen,
                      SW_LLAMA2C_MAX_PIECE);
    if (n_vocab > SW_LLAMA2C_MAX_VOCAB)
        return sw_err(err, errlen, "%s: n_vocab %d too large (max %d)", fn, (int) n_vocab,
                      SW_LLAMA2C_MAX_VOCAB);
    /* pass 1: count and validate records */
    size_t off = 4;
    int32_t count = 0;
    while (off < size && (n_vocab <= 0 || count < n_vocab)) {
        if (size - off < 8)
            return sw_err(err, errlen, "%s: record %d truncated (%zu bytes left, need 8)", fn,
                          (int) count, size - off);
        int32_t len = s_rd_i32(p + off + 4);
        if (len < 0 || len > maxlen)
            return sw_err(err, errlen, "%s: record %d has length %d outside 0..max_token_length %d",
                          fn, (int) count, (int) len, (int) maxlen);
        if ((size_t) len > size - off - 8)
            return sw_err(err, errlen, "%s: record %d of %d bytes runs past the end of the file",
                          fn, (int) count, (int) len);
        off += 8 + (size_t) len;
        if (++count > SW_LLAMA2C_MAX_VOCAB)
            return sw_err(err, errlen, "%s: more than %d records", fn, SW_LLAMA2C_MAX_VOCAB);
    }
    if (n_vocab > 0 && count < n_vocab)
        return sw_err(err, errlen, "%s: file holds %d tokens, expected %d", fn, (int) count, (int) n_vocab);
    if (off != size)
        return sw_err(err, errlen, "%s: %zu bytes left after token %d (vocabulary size mismatch?)",
                      fn, size - off, (int) count);
    if (count == 0)
        return sw_err(err, errlen, "%s: no tokens", fn);
    out->n_vocab = count;
    out->max_token_length = maxlen;
    out->tokens = calloc((size_t) count, sizeof(char *));
    out->token_lens = calloc((size_t) count, sizeof(size_t));
    out->scores = calloc((size_t) count, sizeof(float));
    out->types = calloc((size_t) count, sizeof(int32_t));
    if (!out->tokens || !out->token_lens || !out->scores || !out->types)
        goto oom;
    off = 4;
    for (int32_t i = 0; i < count; i++) {
        uint32_t sb = (uint32_t) s_rd_i32(p + off);
        memcpy(&out->scores[i], &sb, 4);
        size_t len = (size_t) s_rd_i32(p + off + 4);
        const char *s = (const char *) p + off + 8;
        off += 8 + len;
        /* control pieces are stored wrapped in newlines: "\n<s>\n" */
        int32_t type = SW_TOKTYPE_NORMAL;
        if (i == 0) {
            type = SW_TOKTYPE_UNKNOWN;
        } else if (i == 1 || i == 2) {
            type = SW_TOKTYPE_CONTROL;
            while (len > 0 && (s[0] == '\n' || s[0] == ' ')) { s++; len--; }
            while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ')) len--;
        } else if (s_is_byte_piece(s, len)) {
            type = SW_TOKTYPE_BYTE;
        }
        size_t spaces = 0;
        if (type == SW_TOKTYPE_NORMAL)
            for (size_t k = 0; k < len; k++)
                spaces += s[k] == ' ';
        char *t = malloc(len + 2 * spaces + 1);
        if (!t)
            goto oom;
        size_t w = 0;
        for (size_t k = 0; k < len; k++) {
            if (s[k] == ' ' && type == SW_TOKTYPE_NORMAL) {
                memcpy(t + w, "\xe2\x96\x81", 3);
                w += 3;
            } else {
                t[w++] = s[k];
            }
        }
        t[w] = 0;
        out->tokens[i] = t;
        out->token_lens[i] = w;
        out->types[i] = type;
    }
    return 0;
oom:
    sw_llama2c_vocab_free(out);
    return sw_err(err, errlen, "%s: out of memory", fn);
}

int sw_llama2c_vocab_load(const char *path, int32_t n_vocab, sw_llama2c_vocab_t *out,
                          char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f)
        return sw_err(err, errlen, "%s: cannot open %s: %s", __func__, path, strerror(errno));
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        sz = ftell(f);
    if (sz < 0 || (size_t) sz > SW_LLAMA2C_MAX_FILE || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return sw_err(err, errlen, "%s: %s: cannot size the file or larger than %zu bytes", __func__,
                      path, SW_LLAMA2C_MAX_FILE);
    }
    unsigned char *buf = malloc((size_t) sz + 1);
    if (!buf) {
        fclose(f);
        return sw_err(err, errlen, "%s: out of memory", __func__);
    }
    size_t got = fread(buf, 1, (size_t) sz, f);
    fclose(f);
    if (got != (size_t) sz) {
        free(buf);
        return sw_err(err, errlen, "%s: short read on %s", __func__, path);
    }
    int rc = sw_llama2c_vocab_parse(buf, (size_t) sz, n_vocab, out, err, errlen);
    free(buf);
    return rc;
}

void sw_llama2c_vocab_desc(const sw_llama2c_vocab_t *v, sw_vocab_desc_t *d)
{
    memset(d, 0, sizeof(*d));
    d->kind = SW_TOK_SPM;
    d->n_vocab = v->n_vocab;
    d->tokens = (const char *const *) v->tokens;
    d->token_lens = v->token_lens;
    d->scores = v->scores;
    d->types = v->types;
    d->bos_id = v->n_vocab > 1 ? 1 : -1;
    d->eos_id = v->n_vocab > 2 ? 2 : -1;
    d->unk_id = 0;
    d->pad_id = -1;
    d->add_bos = true;
    d->add_space_prefix = true;
}
