/*  sw_quant.c: the quantization policy (see sw_quant.h). */
#include "sw_quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>

sw_dtype_t sw_quant_type_for(uint32_t n_dims, int64_t ne0, sw_dtype_t target)
{
    const int64_t block = sw_dtype_block_size(target);
    if (n_dims < 2 || block <= 0 || ne0 <= 0 || ne0 % block != 0)
        return SW_DTYPE_F32;
    return target;
}

uint32_t sw_quant_file_type(sw_dtype_t type)
{
    switch (type) {
    case SW_DTYPE_F32: return 0;
    case SW_DTYPE_F16: return 1;
    case SW_DTYPE_Q4_0: return 2;
    case SW_DTYPE_Q4_1: return 3;
    case SW_DTYPE_Q8_0: return 7;
    case SW_DTYPE_Q5_0: return 8;
    case SW_DTYPE_Q5_1: return 9;
    case SW_DTYPE_Q2_K: return 10;
    case SW_DTYPE_Q3_K: return 11;
    case SW_DTYPE_Q4_K: return 15;
    case SW_DTYPE_Q5_K: return 17;
    case SW_DTYPE_Q6_K: return 18;
    case SW_DTYPE_IQ4_NL: return 25;
    case SW_DTYPE_IQ4_XS: return 30;
    case SW_DTYPE_BF16: return 32;
    default: return 0;
    }
}

int sw_quant_rows(sw_dtype_t type, const float *src, void *dst, int64_t ne0, int64_t n_rows)
{
    const size_t row = sw_dtype_row_size(type, ne0);
    if (row == 0 || n_rows < 0)
        return -1;
    for (int64_t r = 0; r < n_rows; r++)
        if (sw_quantize_row(type, src + r * ne0, (uint8_t *) dst + (size_t) r * row, ne0) != 0)
            return -1;
    return 0;
}

int sw_quant_recipe_parse(const char *name, sw_quant_recipe_t *out)
{
    if (!name || !out)
        return -1;
    memset(out, 0, sizeof *out);
    if (!strcasecmp(name, "q4_K_M") || !strcasecmp(name, "q5_K_M")) {
        out->base = (name[1] == '4') ? SW_DTYPE_Q4_K : SW_DTYPE_Q5_K;
        out->k_m = true;
    } else if (sw_dtype_from_name(name, &out->base) != 0 || out->base == SW_DTYPE_Q8_K) {
        return -1;
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    return 0;
}

/*  Block number of a "blk.<i>." name, or -1. */
static int s_block_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    char *end = NULL;
    long i = strtol(name + 4, &end, 10);
    return end != name + 4 && *end == '.' && i >= 0 && i < (1 << 20) ? (int) i : -1;
}

/*  True when name is "blk.<i>.<what>.weight" or "<what>.weight". */
static bool s_is(const char *name, const char *what)
{
    const char *dot = strncmp(name, "blk.", 4) == 0 ? strchr(name + 4, '.') : NULL;
    const char *base = dot ? dot + 1 : name;
    size_t n = strlen(what);
    return strncmp(base, what, n) == 0 && strcmp(base + n, ".weight") == 0;
}

/*  llama.cpp's use_more_bits: the first and last eighth and every third. */
static bool s_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/*  The fallback for rows that do not fit type's blocks (see sw_quant.h). */
static sw_dtype_t s_fallback(sw_dtype_t type, int64_t ne0)
{
    if (sw_quant_type_for(2, ne0, type) == type)
        return type;
    sw_dtype_t f = SW_DTYPE_F32;
    switch (type) {
    case SW_DTYPE_Q2_K:
    case SW_DTYPE_Q3_K:
    case SW_DTYPE_IQ4_XS: f = SW_DTYPE_IQ4_NL; break;
    case SW_DTYPE_Q4_K: f = SW_DTYPE_Q5_0; break;
    case SW_DTYPE_Q5_K: f = SW_DTYPE_Q5_1; break;
    case SW_DTYPE_Q6_K: f = SW_DTYPE_Q8_0; break;
    default: break;
    }
    return sw_quant_type_for(2, ne0, f);
}

sw_dtype_t sw_quant_recipe_type(const sw_quant_recipe_t *r, const char *name, uint32_t n_dims, int64_t ne0,
                                int32_t n_layer, bool tied)
{
    if (!r || !name || n_dims < 2 || ne0 <= 0 || strstr(name, "ffn_gate_inp"))
        return SW_DTYPE_F32;
    sw_dtype_t t = r->base;
    if (r->k_m) {
        const int blk = s_block_of(name);
        if (s_is(name, "output") || (tied && s_is(name, "token_embd")))
            t = SW_DTYPE_Q6_K;
        else if (blk >= 0 && n_layer > 0 &&
                 (s_is(name, "attn_v") || s_is(name, "attn_qkv") || s_is(name, "ffn_down") ||
                  s_is(name, "ffn_down_exps")) &&
                 s_more_bits(blk, n_layer))
            t = SW_DTYPE_Q6_K;
    }
    return s_fallback(t, ne0);
}

uint32_t sw_quant_recipe_file_type(const sw_quant_recipe_t *r)
{
    if (!r)
        return 0;
    if (r->k_m)
        return r->base == SW_DTYPE_Q4_K ? 15 : 17;
    return sw_quant_file_type(r->base);
}

/* ------------------------------------------------------------------------ */
/*  Importance-weighted rounding                                            */

/*  Byte offsets of the f16 scale d and of the second f16 factor (Q4_1/Q5_1
 *  m, K-quant dmin; -1 if none) in a block (layouts in sw_dtype.h). Returns
 *  false for types without a block scale. */
static bool s_scale_fields(sw_dtype_t type, int *d_off, int *m_off)
{
    *m_off = -1;
    switch (type) {
    case SW_DTYPE_Q8_0:
    case SW_DTYPE_Q4_0:
    case SW_DTYPE_Q5_0:
    case SW_DTYPE_IQ4_NL:
    case SW_DTYPE_IQ4_XS: *d_off = 0; return true;
    case SW_DTYPE_Q4_1:
    case SW_DTYPE_Q5_1:
    case SW_DTYPE_Q4_K:
    case SW_DTYPE_Q5_K: *d_off = 0; *m_off = 2; return true;
    case SW_DTYPE_Q2_K: *d_off = 80; *m_off = 82; return true;
    case SW_DTYPE_Q3_K: *d_off = 108; return true;
    case SW_DTYPE_Q6_K: *d_off = 208; return true;
    default: return false;
    }
}

static void s_put_f16(uint8_t *blk, int off, float v)
{
    sw_f16_t h = sw_f32_to_f16(v);
    memcpy(blk + off, &h, 2);
}

/*  Decodes one block with its scale fields set to (a, b) (b ignored when
 *  the type has no second factor). */
static void s_decode_with(sw_dtype_t type, uint8_t *blk, int d_off, int m_off, float a, float b, float *y, int64_t bs)
{
    s_put_f16(blk, d_off, a);
    if (m_off >= 0)
        s_put_f16(blk, m_off, b);
    sw_dequantize_row(type, blk, y, bs);
}

/*  The best block of `type` for x[bs] under weights w[bs] (see sw_quant.h),
 *  written to out (bb bytes). scratch: 4 * bs floats, blk: 2 * bb bytes. */
static void s_weighted_block(sw_dtype_t type, const float *x, const float *w, int64_t bs, size_t bb, int d_off,
                             int m_off, uint8_t *out, float *scratch, uint8_t *blk)
{
    float *xc = scratch, *u = scratch + bs, *v = scratch + 2 * bs, *y = scratch + 3 * bs;
    double best = INFINITY;
    /* the K types search their sub-block scales themselves (scaling x only
     * scales what they choose): one candidate, c = 1 */
    const bool own_search = w && (type == SW_DTYPE_Q2_K || type == SW_DTYPE_Q3_K || type == SW_DTYPE_Q4_K ||
                                  type == SW_DTYPE_Q5_K || type == SW_DTYPE_Q6_K);
    for (int k = own_search ? 4 : 0; k < (own_search ? 5 : 9); k++) {
        const float c = 0.8f + 0.05f * (float) k;
        for (int64_t i = 0; i < bs; i++)
            xc[i] = x[i] * c;
        /* K-quants with weights also search their sub-block scales */
        if ((w ? sw_quantize_row_weighted(type, xc, blk, bs, w) : sw_quantize_row(type, xc, blk, bs)) != 0)
            return;
        /* y = a * u + b * v for the codes chosen: decode with (1, 0), (0, 1) */
        s_decode_with(type, blk, d_off, m_off, 1.0f, 0.0f, u, bs);
        if (m_off >= 0)
            s_decode_with(type, blk, d_off, m_off, 0.0f, 1.0f, v, bs);
        double suu = 0, suv = 0, svv = 0, sxu = 0, sxv = 0;
        for (int64_t i = 0; i < bs; i++) {
            const double wi = w ? w[i] : 1.0;
            suu += wi * u[i] * u[i];
            sxu += wi * x[i] * u[i];
            if (m_off >= 0) {
                suv += wi * u[i] * v[i];
                svv += wi * v[i] * v[i];
                sxv += wi * x[i] * v[i];
            }
        }
        double a = 0, b = 0;
        if (m_off >= 0) {
            const double det = suu * svv - suv * suv;
            if (det > 1e-30 * (suu * svv + 1e-300)) {
                a = (sxu * svv - sxv * suv) / det;
                b = (suu * sxv - suv * sxu) / det;
            } else if (suu > 0) {
                a = sxu / suu;
            }
        } else if (suu > 0) {
            a = sxu / suu;
        }
        /* K-quant dmin and d stay non-negative, as their quantizers write them */
        if ((type == SW_DTYPE_Q4_K || type == SW_DTYPE_Q5_K || type == SW_DTYPE_Q2_K) && (a < 0 || b < 0))
            continue;
        if (!isfinite(a) || !isfinite(b) || fabs(a) > 65000 || fabs(b) > 65000)
            continue;
        s_decode_with(type, blk, d_off, m_off, (float) a, (float) b, y, bs);
        double err = 0;
        for (int64_t i = 0; i < bs; i++) {
            const double e = (double) x[i] - y[i];
            err += (w ? w[i] : 1.0) * e * e;
        }
        if (err < best) {
            best = err;
            memcpy(out, blk, bb);
        }
    }
    if (best == INFINITY) /* no candidate fitted: the plain rounding */
        sw_quantize_row(type, x, out, bs);
}

int sw_quant_rows_weighted(sw_dtype_t type, const float *src, void *dst, int64_t ne0, int64_t n_rows,
                           const float *imp)
{
    int d_off, m_off;
    if (!s_scale_fields(type, &d_off, &m_off))
        return sw_quant_rows(type, src, dst, ne0, n_rows);
    const size_t row = sw_dtype_row_size(type, ne0);
    const int64_t bs = sw_dtype_block_size(type);
    const size_t bb = sw_dtype_block_bytes(type);
    if (row == 0 || n_rows < 0 || bs <= 0)
        return -1;
    float *scratch = malloc(sizeof(float) * 4 * (size_t) bs);
    uint8_t *blk = malloc(2 * bb);
    float *wt = malloc(sizeof(float) * (size_t) ne0);
    if (!scratch || !blk || !wt) {
        free(scratch);
        free(blk);
        free(wt);
        return -1;
    }
    /* the weights: imp (negative or non-finite values count as 0) plus 1%
     * of the block's mean, so that no column is ignored; a block whose
     * columns all have 0, or no imp at all: weight 1 */
    for (int64_t b = 0; b < ne0 / bs; b++) {
        double mean = 0;
        for (int64_t i = b * bs; i < (b + 1) * bs; i++) {
            wt[i] = imp && isfinite(imp[i]) && imp[i] > 0 ? imp[i] : 0.0f;
            mean += wt[i];
        }
        mean /= (double) bs;
        const bool unit = !(mean > 0) || !isfinite(mean);
        for (int64_t i = b * bs; i < (b + 1) * bs; i++)
            wt[i] = unit ? 1.0f : wt[i] + (float) (0.01 * mean);
    }
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t b = 0; b < ne0 / bs; b++)
            s_weighted_block(type, src + r * ne0 + b * bs, wt + b * bs, bs, bb, d_off, m_off,
                             (uint8_t *) dst + (size_t) r * row + (size_t) b * bb, scratch, blk);
    free(scratch);
    free(blk);
    free(wt);
    return 0;
}
