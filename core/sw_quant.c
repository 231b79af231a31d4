/*  sw_quant.c: the quantization policy (see sw_quant.h). */
#include "sw_quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
