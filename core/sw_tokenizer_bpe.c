/*  sw_tokenizer_bpe.c: byte-level BPE (GPT-2 style, Radford et al. 2019).
 *
 *  1. Pre-tokenize: the text is split by a chain of regexes chosen by
 *     `tokenizer.ggml.pre`; both matches and the gaps between them become
 *     pre-tokens, and each regex of the chain splits the pieces of the one
 *     before (the Hugging Face `Split(..., behavior=Isolated)` semantics).
 *     The patterns (facts of each model's tokenizer.json):
 *       gpt2 / default: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *       llama3 / llama-bpe: case-insensitive contractions, [^\r\n\p{L}\p{N}]?\p{L}+,
 *         \p{N}{1,3}, ` ?[^\s\p{L}\p{N}]+[\r\n]*`, \s*[\r\n]+, \s+(?!\S), \s+
 *       qwen2: as llama3 with single digits \p{N}
 *       smollm: \p{N} (each digit alone), then the gpt2 pattern without the final \s+
 *     Compiled with PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, so bytes
 *     that are not valid UTF-8 never match and end up as their own gap pieces.
 *  2. Each byte of a pre-token maps to a printable code point (GPT-2's
 *     bytes_to_unicode: 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to themselves, the
 *     other 68 bytes to 256, 257, ... in byte order).
 *  3. Merges "left right" from tokenizer.ggml.merges are applied by rank,
 *     lowest first (ties: leftmost), with a binary heap and lazy invalidation.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_tokenizer_internal.h"

static const char s_re_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char s_re_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char s_re_qwen2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char s_re_digit[] = "\\p{N}";
static const char s_re_smollm[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";

static size_t s_put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (char) cp; return 1; }
    if (cp < 0x800) { o[0] = (char) (0xC0 | (cp >> 6)); o[1] = (char) (0x80 | (cp & 0x3F)); return 2; }
    o[0] = (char) (0xE0 | (cp >> 12));
    o[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char) (0x80 | (cp & 0x3F));
    return 3;
}

static uint64_t s_mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

static uint64_t s_mkey(int32_t l, int32_t r) { return ((uint64_t) (uint32_t) (l + 1) << 32) | (uint32_t) r; }

static int s_compile(sw_tokenizer_t *self, const char *pat, char *err, size_t errlen)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        return sw_err(err, errlen, "sw_tokenizer_new: pre-tokenizer regex failed at %zu: %s", (size_t) eo,
                      (const char *) msg);
    }
    (void) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up */
    self->re[self->n_re++] = re;
    return 0;
}

int sw__tok_bpe_init(sw_tokenizer_t *self, const sw_vocab_desc_t *d, char *err, size_t errlen)
{
    /* byte alphabet */
    uint32_t byte2cp[256];
    uint32_t extra = 256;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte2cp[b] = keep ? (uint32_t) b : extra++;
    }
    for (int i = 0; i < SW_TOK_CP2BYTE_N; i++)
        self->cp2byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        self->cp2byte[byte2cp[b]] = (int16_t) b;
        self->byte2cp[b] = (uint16_t) byte2cp[b];
        char u[4];
        size_t un = s_put_utf8(u, byte2cp[b]);
        self->byte_tok[b] = sw__tok_lookup(self, u, un);
    }

    /* pre-tokenizer */
    const char *pre = d->pre ? d->pre : "";
    if (!*pre || !strcmp(pre, "default") || !strcmp(pre, "gpt2") || !strcmp(pre, "gpt-2")) {
        if (s_compile(self, s_re_gpt2, err, errlen)) return -1;
    } else if (!strcmp(pre, "llama3") || !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama-v3")) {
        if (s_compile(self, s_re_llama3, err, errlen)) return -1;
        self->ignore_merges = true;
    } else if (!strcmp(pre, "qwen2")) {
        if (s_compile(self, s_re_qwen2, err, errlen)) return -1;
    } else if (!strcmp(pre, "smollm")) {
        if (s_compile(self, s_re_digit, err, errlen) || s_compile(self, s_re_smollm, err, errlen))
            return -1;
    } else {
        return sw_err(err, errlen, "sw_tokenizer_new: pre-tokenizer '%s' (tokenizer.ggml.pre) is not "
                      "supported (gpt2, llama3, llama-bpe, qwen2, smollm)", pre);
    }

    /* merges: "left right" -> (left id, right id) -> (rank, merged id) */
    int32_t nm = d->n_merges > 0 ? d->n_merges : 0;
    size_t cap = 16;
    while (cap < (size_t) nm * 2)
        cap <<= 1;
    self->m_cap = cap;
    self->mkey = calloc(cap, sizeof(uint64_t));
    self->mrank = malloc(cap * sizeof(int32_t));
    self->mres = malloc(cap * sizeof(int32_t));
    char *tmp = malloc(2 * SW_TOK_MAX_PIECE + 2);
    if (!self->mkey || !self->mrank || !self->mres || !tmp) {
        free(tmp);
        return sw_err(err, errlen, "sw_tokenizer_new: out of memory");
    }
    int32_t skipped = 0;
    for (int32_t m = 0; m < nm; m++) {
        const char *s = d->merges[m];
        size_t n = d->merge_lens[m];
        if (!s || n < 3 || n > 2 * SW_TOK_MAX_PIECE) {
            free(tmp);
            return sw_err(err, errlen, "sw_tokenizer_new: merge %d (tokenizer.ggml.merges) is malformed", (int) m);
        }
        const char *sp = memchr(s + 1, ' ', n - 1);
        if (!sp || sp == s + n - 1) {
            free(tmp);
            return sw_err(err, errlen, "sw_tokenizer_new: merge %d (tokenizer.ggml.merges) has no "
                          "'left right' form", (int) m);
        }
        size_t ln = (size_t) (sp - s), rn = n - ln - 1;
        int32_t l = sw__tok_lookup(self, s, ln), r = sw__tok_lookup(self, sp + 1, rn);
        memcpy(tmp, s, ln);
        memcpy(tmp + ln, sp + 1, rn);
        int32_t res = sw__tok_lookup(self, tmp, ln + rn);
        if (l < 0 || r < 0 || res < 0) {
            skipped++;
            continue;
        }
        uint64_t key = s_mkey(l, r);
        for (size_t j = s_mix(key) & (cap - 1);; j = (j + 1) & (cap - 1)) {
            if (self->mkey[j] == key)
                break; /* duplicate: the first (lowest) rank stays */
            if (self->mkey[j] == 0) {
                self->mkey[j] = key;
                self->mrank[j] = m;
                self->mres[j] = res;
                break;
            }
        }
    }
    free(tmp);
    if (skipped)
        sw_log(SW_LOG_DEBUG, "%s: %d merges name pieces missing from the vocabulary; ignored",
               __func__, (int) skipped);
    return 0;
}

void sw__tok_bpe_free(sw_tokenizer_t *self)
{
    for (int i = 0; i < self->n_re; i++)
        pcre2_code_free((pcre2_code *) self->re[i]);
    self->n_re = 0;
    free(self->mkey);
    free(self->mrank);
    free(self->mres);
    self->mkey = NULL;
    self->mrank = self->mres = NULL;
}

static bool s_merge_find(const sw_tokenizer_t *self, int32_t l, int32_t r, int32_t *rank, int32_t *res)
{
    uint64_t key = s_mkey(l, r);
    size_t mask = self->m_cap - 1;
    for (size_t j = s_mix(key) & mask;; j = (j + 1) & mask) {
        if (self->mkey[j] == 0)
            return false;
        if (self->mkey[j] == key) {
            *rank = self->mrank[j];
            *res = self->mres[j];
            return true;
        }
    }
}

/* ---- pre-tokenization -------------------------------------------------- */

typedef struct {
    size_t *v; /* pairs (start, end) */
    size_t n, cap;
} s_ranges_t;

static int s_ranges_add(s_ranges_t *rs, size_t a, size_t b)
{
    if (a >= b)
        return 0;
    if (rs->n + 2 > rs->cap) {
        size_t nc = rs->cap ? rs->cap * 2 : 64;
        size_t *nv = realloc(rs->v, nc * sizeof(size_t));
        if (!nv)
            return -1;
        rs->v = nv;
        rs->cap = nc;
    }
    rs->v[rs->n++] = a;
    rs->v[rs->n++] = b;
    return 0;
}

/*  Splits text[a, b) by re into matches and gaps, appended to out. */
static int s_split(const pcre2_code *re, pcre2_match_data *md, const char *text, size_t a, size_t b,
                   s_ranges_t *out)
{
    const PCRE2_SPTR subj = (PCRE2_SPTR) (text + a);
    size_t n = b - a, pos = 0;
    while (pos < n) {
        int rc = pcre2_match(re, subj, n, pos, 0, md, NULL);
        if (rc < 0)
            break; /* no further match (or a matcher limit): rest is a gap */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > pos && s_ranges_add(out, a + pos, a + ms))
            return -1;
        if (me <= ms) {
            /* empty match (none of our patterns has one): step one byte on */
            me = ms + 1;
        }
        if (s_ranges_add(out, a + ms, a + me))
            return -1;
        pos = me;
    }
    if (pos < n && s_ranges_add(out, a + pos, b))
        return -1;
    return 0;
}

/* ---- merging ------------------------------------------------------------ */

typedef struct {
    int32_t id;          /* current piece id (-1: byte not in the vocabulary) */
    int32_t prev, next;  /* neighbours, -1 at the ends */
    bool dead;
} s_bsym_t;

typedef struct {
    int32_t rank, pos;   /* lower rank first, then leftmost */
    int32_t l, r;
    int32_t lid, rid, res;
} s_bmerge_t;

static bool s_before(const s_bmerge_t *a, const s_bmerge_t *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void s_push(s_bmerge_t *h, size_t *n, s_bmerge_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!s_before(&v, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static s_bmerge_t s_pop(s_bmerge_t *h, size_t *n)
{
    s_bmerge_t top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && s_before(&h[c + 1], &h[c]))
            c++;
        if (!s_before(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m > 0)
        h[i] = last;
    return top;
}

static void s_try(const sw_tokenizer_t *self, const s_bsym_t *sym, int32_t l, int32_t r,
                  s_bmerge_t *h, size_t *hn)
{
    if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0)
        return;
    int32_t rank, res;
    if (!s_merge_find(self, sym[l].id, sym[r].id, &rank, &res))
        return;
    s_bmerge_t m = { rank, l, l, r, sym[l].id, sym[r].id, res };
    s_push(h, hn, m);
}

#define EMIT(id)                                                                         \
    do {                                                                                 \
        if (cnt < max_out) out[cnt] = (id);                                              \
        cnt++;                                                                           \
    } while (0)

/*  Pre-tokenizes text into ranges (start, end pairs) in *ranges (caller
 *  frees); *n_out = 2 * number of pieces. Returns 0, or -1 on failure. */
int sw__tok_bpe_pretokenize(const sw_tokenizer_t *self, const char *text, size_t len,
                            size_t **ranges, size_t *n_out)
{
    s_ranges_t a = { 0 }, b = { 0 };
    pcre2_match_data *md = NULL;
    *ranges = NULL;
    *n_out = 0;
    if (len == 0)
        return 0;
    if (s_ranges_add(&a, 0, len))
        goto fail;
    for (int k = 0; k < self->n_re; k++) {
        const pcre2_code *re = self->re[k];
        md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!md)
            goto fail;
        b.n = 0;
        for (size_t i = 0; i < a.n; i += 2)
            if (s_split(re, md, text, a.v[i], a.v[i + 1], &b))
                goto fail;
        pcre2_match_data_free(md);
        md = NULL;
        s_ranges_t t = a;
        a = b;
        b = t;
    }
    free(b.v);
    *ranges = a.v;
    *n_out = a.n;
    return 0;
fail:
    if (md)
        pcre2_match_data_free(md);
    free(a.v);
    free(b.v);
    return -1;
}

int64_t sw__tok_bpe_encode(const sw_tokenizer_t *self, const char *text, size_t len,
                           int32_t *out, int64_t max_out, int64_t cnt)
{
    if (len == 0)
        return cnt;
    if (len > INT32_MAX / 4)
        return -1;
    s_ranges_t a = { 0 };
    s_bsym_t *sym = malloc(sizeof(s_bsym_t) * len);
    s_bmerge_t *heap = malloc(sizeof(s_bmerge_t) * (2 * len + 2));
    char *mapped = self->ignore_merges ? malloc(len * 2 + 1) : NULL;
    int64_t ret = -1;
    if (!sym || !heap || (self->ignore_merges && !mapped))
        goto done;
    if (sw__tok_bpe_pretokenize(self, text, len, &a.v, &a.n))
        goto done;
    for (size_t i = 0; i < a.n; i += 2) {
        size_t s0 = a.v[i], n = a.v[i + 1] - s0;
        if (self->ignore_merges) {
            size_t mn = 0;
            for (size_t k = 0; k < n; k++) {
                unsigned char c = (unsigned char) text[s0 + k];
                mn += s_put_utf8(mapped + mn, self->byte2cp[c]);
            }
            int32_t whole = sw__tok_lookup(self, mapped, mn);
            if (whole >= 0) {
                EMIT(whole);
                continue;
            }
        }
        for (size_t k = 0; k < n; k++) {
            sym[k].id = self->byte_tok[(unsigned char) text[s0 + k]];
            sym[k].prev = (int32_t) k - 1;
            sym[k].next = k + 1 < n ? (int32_t) k + 1 : -1;
            sym[k].dead = false;
        }
        size_t hn = 0;
        for (size_t k = 0; k + 1 < n; k++)
            s_try(self, sym, (int32_t) k, (int32_t) k + 1, heap, &hn);
        while (hn > 0) {
            s_bmerge_t m = s_pop(heap, &hn);
            s_bsym_t *L = &sym[m.l], *R = &sym[m.r];
            if (L->dead || R->dead || L->next != m.r || L->id != m.lid || R->id != m.rid)
                continue;
            L->id = m.res;
            R->dead = true;
            L->next = R->next;
            if (R->next >= 0)
                sym[R->next].prev = m.l;
            if (hn + 2 > 2 * len + 2)
                break; /* cannot happen: at most n - 1 + merges entries live */
            s_try(self, sym, L->prev, m.l, heap, &hn);
            s_try(self, sym, m.l, L->next, heap, &hn);
        }
        for (int32_t k = 0; k >= 0; k = sym[k].next) {
            int32_t id = sym[k].id >= 0 ? sym[k].id : self->unk_id;
            if (id >= 0)
                EMIT(id);
        }
    }
    ret = cnt;
done:
    free(a.v);
    free(sym);
    free(heap);
    free(mapped);
    return ret;
}
