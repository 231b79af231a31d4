/*  sw_tokenizer.c: vocabulary storage, construction (from arrays or GGUF),
 *  decoding, and the SentencePiece-BPE encoder. The byte-level BPE encoder
 *  lives in sw_tokenizer_bpe.c; both share sw_tokenizer_internal.h.
 *
 *  SPM encoding (SentencePiece BPE mode, Kudo & Richardson 2018):
 *    1. if the text is not empty and add_space_prefix: prepend ' '
 *    2. replace every ' ' by U+2581 ("\xe2\x96\x81")
 *    3. split into UTF-8 characters (an invalid byte is a one-byte symbol)
 *    4. repeatedly merge the adjacent pair whose concatenation is a normal or
 *       user-defined piece with the highest score (ties: leftmost), using a
 *       binary heap of candidate pairs with lazy invalidation: O(n log n)
 *    5. each final symbol that is not a piece becomes its bytes as <0xXX>
 *       byte tokens (byte fallback), or <unk> when a byte token is missing.
 */
#include "sw_tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

#include "sw_common.h"

/* ---- hashing of piece strings ---------------------------------------- */

uint64_t sw__tok_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char) s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

int32_t sw__tok_lookup(const sw_tokenizer_t *self, const char *s, size_t n)
{
    uint64_t h = sw__tok_hash(s, n);
    size_t mask = self->ht_cap - 1;
    for (size_t i = (size_t) h & mask;; i = (i + 1) & mask) {
        int32_t id = self->ht[i];
        if (id < 0)
            return -1;
        if (self->tok_len[id] == n && memcmp(self->blob + self->tok_off[id], s, n) == 0)
            return id;
    }
}

/*  Length of the valid UTF-8 character at s (1..4), or 0 if the bytes at s
 *  do not start a valid, shortest-form, non-surrogate character <= U+10FFFF. */
size_t sw__utf8_len(const unsigned char *s, size_t avail, uint32_t *cp_out)
{
    unsigned c = s[0];
    uint32_t cp;
    size_t n;
    if (c < 0x80) {
        if (cp_out) *cp_out = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    if (cp_out) *cp_out = cp;
    return n;
}

/*  Parses "<0xXX>" (hex digits of either case); returns the byte or -1. */
static int s_parse_byte_piece(const char *s, size_t n)
{
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* ---- construction ------------------------------------------------------ */

static bool s_piece_is(const sw_tokenizer_t *self, int32_t id, const char *lit)
{
    size_t n = strlen(lit);
    return self->tok_len[id] == n && memcmp(self->blob + self->tok_off[id], lit, n) == 0;
}

sw_tokenizer_t *sw_tokenizer_new(const sw_vocab_desc_t *d, char *err, size_t errlen)
{
    if (!d) {
        sw_err(err, errlen, "%s: no vocabulary description", __func__);
        return NULL;
    }
    if (d->kind != SW_TOK_SPM && d->kind != SW_TOK_BPE) {
        sw_err(err, errlen, "%s: unknown tokenizer kind %d", __func__, (int) d->kind);
        return NULL;
    }
    if (d->n_vocab <= 0 || d->n_vocab > SW_TOK_MAX_VOCAB || !d->tokens || !d->token_lens) {
        sw_err(err, errlen, "%s: bad vocabulary size %d (1..%d) or missing tokens", __func__,
               (int) d->n_vocab, SW_TOK_MAX_VOCAB);
        return NULL;
    }
    if (d->kind == SW_TOK_SPM && !d->scores) {
        sw_err(err, errlen, "%s: SentencePiece vocabulary needs scores", __func__);
        return NULL;
    }
    if (d->kind == SW_TOK_BPE && d->n_merges > 0 && (!d->merges || !d->merge_lens)) {
        sw_err(err, errlen, "%s: BPE vocabulary declares %d merges but none given", __func__,
               (int) d->n_merges);
        return NULL;
    }
    const int32_t n = d->n_vocab;
    int32_t ids[4] = { d->bos_id, d->eos_id, d->unk_id, d->pad_id };
    static const char *const id_names[4] = { "bos", "eos", "unk", "pad" };
    for (int i = 0; i < 4; i++) {
        if (ids[i] < -1 || ids[i] >= n) {
            sw_err(err, errlen, "%s: %s id %d out of range [0, %d)", __func__, id_names[i],
                   (int) ids[i], (int) n);
            return NULL;
        }
    }
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (d->token_lens[i] > SW_TOK_MAX_PIECE || (d->token_lens[i] > 0 && !d->tokens[i])) {
            sw_err(err, errlen, "%s: token %d has bad length %zu (max %d)", __func__, (int) i,
                   d->token_lens[i], SW_TOK_MAX_PIECE);
            return NULL;
        }
        total += d->token_lens[i];
    }
    if (d->types) {
        for (int32_t i = 0; i < n; i++) {
            if (d->types[i] < SW_TOKTYPE_NORMAL || d->types[i] > SW_TOKTYPE_BYTE) {
                sw_err(err, errlen, "%s: token %d has unknown type %d", __func__, (int) i,
                       (int) d->types[i]);
                return NULL;
            }
        }
    }

    sw_tokenizer_t *self = calloc(1, sizeof(*self));
    if (!self)
        goto oom;
    self->kind = d->kind;
    self->n_vocab = n;
    self->bos_id = d->bos_id;
    self->eos_id = d->eos_id;
    self->unk_id = d->unk_id;
    self->pad_id = d->pad_id;
    self->add_bos = d->add_bos;
    self->add_space_prefix = d->add_space_prefix;
    self->blob = malloc(total + 1);
    self->tok_off = malloc(sizeof(size_t) * (size_t) n);
    self->tok_len = malloc(sizeof(uint32_t) * (size_t) n);
    self->scores = malloc(sizeof(float) * (size_t) n);
    self->types = malloc(sizeof(int32_t) * (size_t) n);
    self->eog = calloc((size_t) n, 1);
    if (!self->blob || !self->tok_off || !self->tok_len || !self->scores || !self->types || !self->eog)
        goto oom;
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        self->tok_off[i] = off;
        self->tok_len[i] = (uint32_t) d->token_lens[i];
        if (d->token_lens[i])
            memcpy(self->blob + off, d->tokens[i], d->token_lens[i]);
        off += d->token_lens[i];
        self->scores[i] = d->scores ? d->scores[i] : 0.0f;
        if (d->types) {
            self->types[i] = d->types[i];
        } else {
            /* no types given: infer control for bos/eos/unk, byte for <0xXX> (SPM) */
            self->types[i] = SW_TOKTYPE_NORMAL;
            if (i == d->bos_id || i == d->eos_id)
                self->types[i] = SW_TOKTYPE_CONTROL;
            else if (i == d->unk_id)
                self->types[i] = SW_TOKTYPE_UNKNOWN;
            else if (d->kind == SW_TOK_SPM && s_parse_byte_piece(d->tokens[i], d->token_lens[i]) >= 0)
                self->types[i] = SW_TOKTYPE_BYTE;
        }
    }
    self->blob[total] = 0;

    /* piece hash: SPM indexes only pieces a merge may produce (normal and
     * user-defined); BPE indexes every piece. First occurrence wins. */
    size_t cap = 16;
    while (cap < (size_t) n * 2)
        cap <<= 1;
    self->ht_cap = cap;
    self->ht = malloc(sizeof(int32_t) * cap);
    if (!self->ht)
        goto oom;
    for (size_t i = 0; i < cap; i++)
        self->ht[i] = -1;
    for (int32_t i = 0; i < n; i++) {
        int32_t t = self->types[i];
        if (self->kind == SW_TOK_SPM && t != SW_TOKTYPE_NORMAL && t != SW_TOKTYPE_USER)
            continue;
        const char *s = self->blob + self->tok_off[i];
        size_t len = self->tok_len[i];
        if (len == 0)
            continue;
        uint64_t h = sw__tok_hash(s, len);
        size_t j = (size_t) h & (cap - 1);
        bool dup = false;
        while (self->ht[j] >= 0) {
            int32_t o = self->ht[j];
            if (self->tok_len[o] == len && memcmp(self->blob + self->tok_off[o], s, len) == 0) {
                dup = true;
                break;
            }
            j = (j + 1) & (cap - 1);
        }
        if (!dup)
            self->ht[j] = i;
    }
    /* SPM word split is exact when no mergeable piece has U+2581 after
     * another character (see s_spm_encode) */
    self->spm_word_split = self->kind == SW_TOK_SPM;
    for (int32_t i = 0; i < n && self->spm_word_split; i++) {
        int32_t t = self->types[i];
        if (t != SW_TOKTYPE_NORMAL && t != SW_TOKTYPE_USER)
            continue;
        const unsigned char *p = (const unsigned char *) self->blob + self->tok_off[i];
        size_t len = self->tok_len[i];
        bool seen_other = false;
        for (size_t k = 0; k < len;) {
            bool ws = k + 3 <= len && p[k] == 0xE2 && p[k + 1] == 0x96 && p[k + 2] == 0x81;
            if (ws && seen_other) {
                self->spm_word_split = false;
                break;
            }
            if (!ws)
                seen_other = true;
            k += ws ? 3 : 1;
        }
    }
    for (int b = 0; b < 256; b++)
        self->byte_id[b] = -1;
    if (self->kind == SW_TOK_SPM) {
        for (int32_t i = 0; i < n; i++) {
            if (self->types[i] != SW_TOKTYPE_BYTE)
                continue;
            int b = s_parse_byte_piece(self->blob + self->tok_off[i], self->tok_len[i]);
            if (b >= 0 && self->byte_id[b] < 0)
                self->byte_id[b] = i;
        }
    }

    /* end-of-generation set */
    if (self->eos_id >= 0)
        self->eog[self->eos_id] = 1;
    static const char *const eog_names[] = { "<|eot_id|>", "<|im_end|>", "<|endoftext|>", "</s>",
                                              "<|end|>", "<end_of_turn>", "<|end_of_text|>" };
    for (int32_t i = 0; i < n; i++) {
        if (self->types[i] != SW_TOKTYPE_CONTROL)
            continue;
        for (size_t k = 0; k < sizeof(eog_names) / sizeof(eog_names[0]); k++)
            if (s_piece_is(self, i, eog_names[k]))
                self->eog[i] = 1;
    }

    /* special tokens, longest piece first (so "<|im_start|>" wins over a shorter prefix) */
    for (int32_t i = 0; i < n; i++)
        if ((self->types[i] == SW_TOKTYPE_CONTROL || self->types[i] == SW_TOKTYPE_USER) && self->tok_len[i] >= 2)
            self->n_special++;
    if (self->n_special) {
        if (!(self->special = malloc(sizeof(int32_t) * (size_t) self->n_special)))
            goto oom;
        int32_t k = 0;
        for (int32_t i = 0; i < n; i++)
            if ((self->types[i] == SW_TOKTYPE_CONTROL || self->types[i] == SW_TOKTYPE_USER) &&
                self->tok_len[i] >= 2) {
                int32_t j = k++;
                while (j > 0 && self->tok_len[self->special[j - 1]] < self->tok_len[i]) {
                    self->special[j] = self->special[j - 1];
                    j--;
                }
                self->special[j] = i;
                self->special_first[(unsigned char) self->blob[self->tok_off[i]]] = 1;
            }
    }

    if (self->kind == SW_TOK_BPE && sw__tok_bpe_init(self, d, err, errlen) != 0) {
        sw_tokenizer_destroy(&self);
        return NULL;
    }
    return self;
oom:
    sw_tokenizer_destroy(&self);
    sw_err(err, errlen, "%s: out of memory", __func__);
    return NULL;
}

void sw_tokenizer_destroy(sw_tokenizer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_tokenizer_t *self = *self_p;
    sw__tok_bpe_free(self);
    free(self->blob);
    free(self->tok_off);
    free(self->tok_len);
    free(self->scores);
    free(self->types);
    free(self->eog);
    free(self->ht);
    free(self->special);
    free(self);
    *self_p = NULL;
}

/* ---- GGUF -------------------------------------------------------------- */

static int s_gguf_id(const sw_gguf_t *g, const char *key, int32_t *out, char *err, size_t errlen)
{
    *out = -1;
    if (sw_gguf_find_key(g, key) < 0)
        return 0;
    int64_t v;
    if (sw_gguf_get_i64(g, key, &v) != 0 || v < -1 || v > SW_TOK_MAX_VOCAB)
        return sw_err(err, errlen, "sw_tokenizer_from_gguf: %s is not a valid token id", key);
    *out = (int32_t) v;
    return 0;
}

sw_tokenizer_t *sw_tokenizer_from_gguf(const sw_gguf_t *g, char *err, size_t errlen)
{
    const char *fn = "sw_tokenizer_from_gguf";
    char model[64];
    if (!g) {
        sw_err(err, errlen, "%s: no GGUF", fn);
        return NULL;
    }
    if (sw_gguf_get_str_buf(g, "tokenizer.ggml.model", model, sizeof(model)) != 0) {
        sw_err(err, errlen, "%s: missing or non-string key tokenizer.ggml.model", fn);
        return NULL;
    }
    sw_vocab_desc_t d;
    memset(&d, 0, sizeof(d));
    if (strcmp(model, "llama") == 0)
        d.kind = SW_TOK_SPM;
    else if (strcmp(model, "gpt2") == 0)
        d.kind = SW_TOK_BPE;
    else {
        sw_err(err, errlen, "%s: tokenizer.ggml.model '%s' is not supported (llama, gpt2)", fn, model);
        return NULL;
    }
    sw_gguf_vtype_t et;
    uint64_t nt = 0, n2 = 0;
    if (sw_gguf_get_arr_info(g, "tokenizer.ggml.tokens", &et, &nt) != 0 || et != SW_GGUF_STRING) {
        sw_err(err, errlen, "%s: missing or non-string-array key tokenizer.ggml.tokens", fn);
        return NULL;
    }
    if (nt == 0 || nt > SW_TOK_MAX_VOCAB) {
        sw_err(err, errlen, "%s: tokenizer.ggml.tokens has %llu entries (1..%d)", fn,
               (unsigned long long) nt, SW_TOK_MAX_VOCAB);
        return NULL;
    }
    d.n_vocab = (int32_t) nt;
    sw_tokenizer_t *tok = NULL;
    const char **strs = calloc(nt, sizeof(char *));
    size_t *lens = calloc(nt, sizeof(size_t));
    float *scores = NULL;
    int32_t *types = NULL;
    const char **mstrs = NULL;
    size_t *mlens = NULL;
    char pre[64] = "";
    if (!strs || !lens)
        goto oom;
    for (uint64_t i = 0; i < nt; i++) {
        if (sw_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &strs[i], &lens[i]) != 0) {
            sw_err(err, errlen, "%s: tokenizer.ggml.tokens[%llu] unreadable", fn, (unsigned long long) i);
            goto fail;
        }
    }
    d.tokens = strs;
    d.token_lens = lens;
    if (sw_gguf_find_key(g, "tokenizer.ggml.scores") >= 0) {
        const void *p = sw_gguf_get_arr_data(g, "tokenizer.ggml.scores");
        if (sw_gguf_get_arr_info(g, "tokenizer.ggml.scores", &et, &n2) != 0 || et != SW_GGUF_F32 || !p) {
            sw_err(err, errlen, "%s: tokenizer.ggml.scores is not an f32 array", fn);
            goto fail;
        }
        if (n2 != nt) {
            sw_err(err, errlen, "%s: tokenizer.ggml.scores has %llu entries, tokens has %llu", fn,
                   (unsigned long long) n2, (unsigned long long) nt);
            goto fail;
        }
        if (!(scores = malloc(sizeof(float) * nt)))
            goto oom;
        memcpy(scores, p, sizeof(float) * nt);
        d.scores = scores;
    } else if (d.kind == SW_TOK_SPM) {
        sw_err(err, errlen, "%s: missing key tokenizer.ggml.scores (needed by model llama)", fn);
        goto fail;
    }
    if (sw_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
        const void *p = sw_gguf_get_arr_data(g, "tokenizer.ggml.token_type");
        if (sw_gguf_get_arr_info(g, "tokenizer.ggml.token_type", &et, &n2) != 0 || !p ||
            (et != SW_GGUF_I32 && et != SW_GGUF_U32)) {
            sw_err(err, errlen, "%s: tokenizer.ggml.token_type is not an i32 array", fn);
            goto fail;
        }
        if (n2 != nt) {
            sw_err(err, errlen, "%s: tokenizer.ggml.token_type has %llu entries, tokens has %llu", fn,
                   (unsigned long long) n2, (unsigned long long) nt);
            goto fail;
        }
        if (!(types = malloc(sizeof(int32_t) * nt)))
            goto oom;
        memcpy(types, p, sizeof(int32_t) * nt);
        for (uint64_t i = 0; i < nt; i++) {
            if (types[i] < SW_TOKTYPE_NORMAL || types[i] > SW_TOKTYPE_BYTE) {
                sw_err(err, errlen, "%s: tokenizer.ggml.token_type[%llu] = %d is not a known type", fn,
                       (unsigned long long) i, (int) types[i]);
                goto fail;
            }
        }
        d.types = types;
    }
    if (sw_gguf_find_key(g, "tokenizer.ggml.merges") >= 0) {
        if (sw_gguf_get_arr_info(g, "tokenizer.ggml.merges", &et, &n2) != 0 || et != SW_GGUF_STRING) {
            sw_err(err, errlen, "%s: tokenizer.ggml.merges is not a string array", fn);
            goto fail;
        }
        if (n2 > SW_TOK_MAX_MERGES) {
            sw_err(err, errlen, "%s: tokenizer.ggml.merges has %llu entries (max %d)", fn,
                   (unsigned long long) n2, SW_TOK_MAX_MERGES);
            goto fail;
        }
        if (n2 > 0) {
            mstrs = calloc(n2, sizeof(char *));
            mlens = calloc(n2, sizeof(size_t));
            if (!mstrs || !mlens)
                goto oom;
            for (uint64_t i = 0; i < n2; i++) {
                if (sw_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &mstrs[i], &mlens[i]) != 0) {
                    sw_err(err, errlen, "%s: tokenizer.ggml.merges[%llu] unreadable", fn,
                           (unsigned long long) i);
                    goto fail;
                }
            }
        }
        d.merges = mstrs;
        d.merge_lens = mlens;
        d.n_merges = (int32_t) n2;
    } else if (d.kind == SW_TOK_BPE) {
        sw_err(err, errlen, "%s: missing key tokenizer.ggml.merges (needed by model gpt2)", fn);
        goto fail;
    }
    if (s_gguf_id(g, "tokenizer.ggml.bos_token_id", &d.bos_id, err, errlen) ||
        s_gguf_id(g, "tokenizer.ggml.eos_token_id", &d.eos_id, err, errlen) ||
        s_gguf_id(g, "tokenizer.ggml.unknown_token_id", &d.unk_id, err, errlen) ||
        s_gguf_id(g, "tokenizer.ggml.padding_token_id", &d.pad_id, err, errlen))
        goto fail;
    static const char *const idkeys[4] = { "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                           "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id" };
    int32_t idv[4] = { d.bos_id, d.eos_id, d.unk_id, d.pad_id };
    for (int i = 0; i < 4; i++) {
        if (idv[i] >= (int32_t) nt) {
            sw_err(err, errlen, "%s: %s = %d is out of range (vocabulary of %llu)", fn, idkeys[i],
                   (int) idv[i], (unsigned long long) nt);
            goto fail;
        }
    }
    d.add_bos = d.kind == SW_TOK_SPM; /* llama.cpp's default per model */
    d.add_space_prefix = d.kind == SW_TOK_SPM;
    if (sw_gguf_find_key(g, "tokenizer.ggml.add_bos_token") >= 0 &&
        sw_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &d.add_bos) != 0) {
        sw_err(err, errlen, "%s: tokenizer.ggml.add_bos_token is not a bool", fn);
        goto fail;
    }
    if (sw_gguf_find_key(g, "tokenizer.ggml.add_space_prefix") >= 0 &&
        sw_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &d.add_space_prefix) != 0) {
        sw_err(err, errlen, "%s: tokenizer.ggml.add_space_prefix is not a bool", fn);
        goto fail;
    }
    if (sw_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
        if (sw_gguf_get_str_buf(g, "tokenizer.ggml.pre", pre, sizeof(pre)) != 0) {
            sw_err(err, errlen, "%s: tokenizer.ggml.pre is not a string", fn);
            goto fail;
        }
        d.pre = pre;
    }
    tok = sw_tokenizer_new(&d, err, errlen);
    goto done;
oom:
    sw_err(err, errlen, "%s: out of memory", fn);
fail:
    tok = NULL;
done:
    free(strs);
    free(lens);
    free(scores);
    free(types);
    free(mstrs);
    free(mlens);
    return tok;
}

/* ---- accessors --------------------------------------------------------- */

sw_tok_kind_t sw_tokenizer_kind(const sw_tokenizer_t *self) { return self->kind; }
int32_t sw_tokenizer_n_vocab(const sw_tokenizer_t *self) { return self->n_vocab; }
int32_t sw_tokenizer_bos(const sw_tokenizer_t *self) { return self->bos_id; }
int32_t sw_tokenizer_eos(const sw_tokenizer_t *self) { return self->eos_id; }
bool sw_tokenizer_add_bos(const sw_tokenizer_t *self) { return self->add_bos; }

bool sw_tokenizer_is_eog(const sw_tokenizer_t *self, int32_t token)
{
    return token >= 0 && token < self->n_vocab && self->eog[token];
}

const char *sw_tokenizer_piece(const sw_tokenizer_t *self, int32_t token, size_t *len)
{
    if (token < 0 || token >= self->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = self->tok_len[token];
    return self->blob + self->tok_off[token];
}

/* ---- decoding ---------------------------------------------------------- */

int sw_tokenizer_decode_token(const sw_tokenizer_t *self, int32_t prev, int32_t token,
                              char *buf, size_t buflen)
{
    if (token < 0 || token >= self->n_vocab)
        return -1;
    int32_t t = self->types[token];
    if (t == SW_TOKTYPE_CONTROL || t == SW_TOKTYPE_UNKNOWN || t == SW_TOKTYPE_UNUSED)
        return 0;
    const char *s = self->blob + self->tok_off[token];
    size_t n = self->tok_len[token];
    size_t w = 0;
#define PUT(ch)                                                                          \
    do {                                                                                 \
        if (w < buflen) buf[w] = (char) (ch);                                            \
        w++;                                                                             \
    } while (0)
    if (self->kind == SW_TOK_SPM) {
        if (t == SW_TOKTYPE_BYTE) {
            int b = s_parse_byte_piece(s, n);
            if (b >= 0) {
                PUT(b);
                return 1;
            }
        }
        bool strip = self->add_space_prefix && (prev < 0 || prev == self->bos_id);
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && (unsigned char) s[i] == 0xE2 && (unsigned char) s[i + 1] == 0x96 &&
                (unsigned char) s[i + 2] == 0x81) {
                if (!(strip && i == 0))
                    PUT(' ');
                i += 3;
            } else {
                PUT(s[i]);
                i++;
            }
        }
        return (int) w;
    }
    /* BPE: user-defined (added) tokens are raw text; others go back through
     * the byte-level alphabet; a code point outside it is copied as UTF-8. */
    if (t == SW_TOKTYPE_USER) {
        for (size_t i = 0; i < n; i++)
            PUT(s[i]);
        return (int) w;
    }
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t cl = sw__utf8_len((const unsigned char *) s + i, n - i, &cp);
        if (cl == 0) {
            PUT(s[i]);
            i++;
            continue;
        }
        int b = cp < SW_TOK_CP2BYTE_N ? self->cp2byte[cp] : -1;
        if (b >= 0) {
            PUT(b);
        } else {
            for (size_t k = 0; k < cl; k++)
                PUT(s[i + k]);
        }
        i += cl;
    }
    return (int) w;
#undef PUT
}

/* ---- SPM encoding ------------------------------------------------------ */

typedef struct {
    uint32_t start; /* byte offset in the normalised text */
    uint32_t n;     /* bytes; 0 once merged into its left neighbour */
    int32_t prev, next;
} s_sym_t;

typedef struct {
    float score;
    uint32_t pos;   /* start of the left symbol: ties go to the leftmost */
    int32_t l, r;
    uint32_t len;   /* combined length when queued, to detect stale entries */
} s_bigram_t;

static bool s_bigram_before(const s_bigram_t *a, const s_bigram_t *b)
{
    return a->score > b->score || (a->score == b->score && a->pos < b->pos);
}

static void s_heap_push(s_bigram_t *h, size_t *n, s_bigram_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!s_bigram_before(&v, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static s_bigram_t s_heap_pop(s_bigram_t *h, size_t *n)
{
    s_bigram_t top = h[0];
    s_bigram_t last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && s_bigram_before(&h[c + 1], &h[c]))
            c++;
        if (!s_bigram_before(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m > 0)
        h[i] = last;
    return top;
}

static void s_try_bigram(const sw_tokenizer_t *self, const char *text, const s_sym_t *sym,
                         int32_t l, int32_t r, s_bigram_t *heap, size_t *hn)
{
    if (l < 0 || r < 0)
        return;
    uint32_t len = sym[l].n + sym[r].n;
    int32_t id = sw__tok_lookup(self, text + sym[l].start, len);
    if (id < 0)
        return;
    s_bigram_t b = { self->scores[id], sym[l].start, l, r, len };
    s_heap_push(heap, hn, b);
}

static bool s_is_ws(const char *buf, const s_sym_t *sy)
{
    return sy->n == 3 && memcmp(buf + sy->start, "\xe2\x96\x81", 3) == 0;
}

#define EMIT(id)                                                                         \
    do {                                                                                 \
        if (cnt < max_out) out[cnt] = (id);                                              \
        cnt++;                                                                           \
    } while (0)

static int64_t s_spm_encode(const sw_tokenizer_t *self, const char *text, size_t len, bool space_prefix,
                            int32_t *out, int64_t max_out, int64_t cnt)
{
    if (len == 0)
        return cnt;
    if (len > (UINT32_MAX - 3) / 3)
        return -1;
    size_t cap = len * 3 + 3;
    char *buf = malloc(cap);
    s_sym_t *sym = malloc(sizeof(s_sym_t) * (len + 1));
    s_bigram_t *heap = malloc(sizeof(s_bigram_t) * (2 * len + 2));
    if (!buf || !sym || !heap) {
        free(buf);
        free(sym);
        free(heap);
        return -1;
    }
    size_t bn = 0;
    if (space_prefix) {
        memcpy(buf, "\xe2\x96\x81", 3);
        bn = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + bn, "\xe2\x96\x81", 3);
            bn += 3;
        } else {
            buf[bn++] = text[i];
        }
    }
    int32_t ns = 0;
    for (size_t i = 0; i < bn;) {
        size_t cl = sw__utf8_len((const unsigned char *) buf + i, bn - i, NULL);
        if (cl == 0)
            cl = 1;
        sym[ns].start = (uint32_t) i;
        sym[ns].n = (uint32_t) cl;
        sym[ns].prev = ns - 1;
        sym[ns].next = (i + cl < bn) ? ns + 1 : -1;
        ns++;
        i += cl;
    }
    /* Words: when no mergeable piece has U+2581 after another character,
     * no merge can cross the point where a U+2581 follows a non-U+2581
     * character, so each such segment is merged on its own (same result,
     * small cache-friendly heaps). Otherwise the whole text is one segment. */
    for (int32_t s0 = 0; s0 < ns;) {
        int32_t s1 = s0 + 1;
        if (self->spm_word_split)
            while (s1 < ns && !(s_is_ws(buf, &sym[s1]) && !s_is_ws(buf, &sym[s1 - 1])))
                s1++;
        else
            s1 = ns;
        sym[s0].prev = -1;
        sym[s1 - 1].next = -1;
        size_t hn = 0;
        for (int32_t i = s0; i + 1 < s1; i++)
            s_try_bigram(self, buf, sym, i, i + 1, heap, &hn);
        /* each merge pops one entry and pushes at most two: the heap holds
         * at most 2 * (s1 - s0) <= 2 * len + 2 entries. Guarded anyway. */
        while (hn > 0) {
            s_bigram_t b = s_heap_pop(heap, &hn);
            s_sym_t *L = &sym[b.l], *R = &sym[b.r];
            if (L->n == 0 || R->n == 0 || L->n + R->n != b.len || L->next != b.r)
                continue;
            L->n += R->n;
            R->n = 0;
            L->next = R->next;
            if (R->next >= 0)
                sym[R->next].prev = b.l;
            if (hn + 2 > 2 * len + 2)
                break; /* cannot happen; keeps the heap in bounds */
            s_try_bigram(self, buf, sym, L->prev, b.l, heap, &hn);
            s_try_bigram(self, buf, sym, b.l, L->next, heap, &hn);
        }
        for (int32_t i = s0; i >= 0; i = sym[i].next) {
            int32_t id = sw__tok_lookup(self, buf + sym[i].start, sym[i].n);
            if (id >= 0) {
                EMIT(id);
                continue;
            }
            for (uint32_t k = 0; k < sym[i].n; k++) {
                int32_t bid = self->byte_id[(unsigned char) buf[sym[i].start + k]];
                if (bid < 0)
                    bid = self->unk_id;
                if (bid >= 0)
                    EMIT(bid);
            }
        }
        s0 = s1;
    }
    free(buf);
    free(sym);
    free(heap);
    return cnt;
}

int64_t sw_tokenizer_encode(const sw_tokenizer_t *self, const char *text, size_t len,
                            bool add_bos, int32_t *out, int64_t max_out)
{
    int64_t cnt = 0;
    if (!out)
        max_out = 0;
    if (!text)
        len = 0;
    if (add_bos && self->bos_id >= 0)
        EMIT(self->bos_id);
    if (self->kind == SW_TOK_SPM)
        return s_spm_encode(self, text, len, self->add_space_prefix, out, max_out, cnt);
    return sw__tok_bpe_encode(self, text, len, out, max_out, cnt);
}

/* The special token whose piece starts at text[i] (longest first), or -1. */
static int32_t s_special_at(const sw_tokenizer_t *self, const char *text, size_t len, size_t i)
{
    if (!self->special_first[(unsigned char) text[i]])
        return -1;
    for (int32_t k = 0; k < self->n_special; k++) {
        const int32_t id = self->special[k];
        const size_t n = self->tok_len[id];
        if (n <= len - i && !memcmp(text + i, self->blob + self->tok_off[id], n))
            return id;
    }
    return -1;
}

int64_t sw_tokenizer_encode_parts(const sw_tokenizer_t *self, const sw_tok_part_t *parts, size_t n_parts,
                                  bool add_bos, int32_t *out, int64_t max_out)
{
    int64_t cnt = 0;
    if (!out)
        max_out = 0;
    size_t len = 0;
    for (size_t p = 0; p < n_parts; p++) {
        if (parts[p].len > ((size_t) 1 << 30) - len)
            return -1;
        len += parts[p].text ? parts[p].len : 0;
    }
    /* the parts back to back, and where a special token may start and end */
    char *text = malloc(len + 1);
    uint32_t *part_end = malloc(sizeof(uint32_t) * (len + 1)); /* for special bytes: end of their part; else 0 */
    if (!text || !part_end) {
        free(text);
        free(part_end);
        return -1;
    }
    size_t o = 0;
    for (size_t p = 0; p < n_parts; p++) {
        if (!parts[p].text)
            continue;
        memcpy(text + o, parts[p].text, parts[p].len);
        for (size_t k = 0; k < parts[p].len; k++)
            part_end[o + k] = parts[p].special ? (uint32_t) (o + parts[p].len) : 0;
        o += parts[p].len;
    }
    if (add_bos && self->bos_id >= 0)
        EMIT(self->bos_id);
    bool after_special = true; /* SPM: the dummy prefix starts the text and follows each special */
    size_t seg = 0;
    for (size_t i = 0; i <= len;) {
        const int32_t id = i < len && part_end[i] ? s_special_at(self, text, part_end[i], i) : -1;
        if (id < 0 && i < len) {
            i++;
            continue;
        }
        if (i > seg) {
            cnt = self->kind == SW_TOK_SPM
                      ? s_spm_encode(self, text + seg, i - seg, self->add_space_prefix && after_special, out,
                                     max_out, cnt)
                      : sw__tok_bpe_encode(self, text + seg, i - seg, out, max_out, cnt);
            if (cnt < 0)
                break;
            after_special = false;
        }
        if (i == len)
            break;
        EMIT(id);
        after_special = true;
        i += self->tok_len[id];
        seg = i;
    }
    free(text);
    free(part_end);
    return cnt;
}

int64_t sw_tokenizer_encode_special(const sw_tokenizer_t *self, const char *text, size_t len, bool add_bos,
                                    int32_t *out, int64_t max_out)
{
    const sw_tok_part_t part = {.text = text, .len = text ? len : 0, .special = true};
    return sw_tokenizer_encode_parts(self, &part, 1, add_bos, out, max_out);
}
#undef EMIT
