/*  cli_util.c: argument parsing helpers. */
#include "cli_util.h"

#include <errno.h>
#include <string.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int cli_parse_i64(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < min || v > max) {
        fprintf(stderr, "%s: %s: expected an integer in [%lld, %lld], got '%s'\n", program_invocation_short_name, opt, (long long) min,
                (long long) max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_f32(const char *opt, const char *s, float min, float max, float *out)
{
    char *end = NULL;
    errno = 0;
    float v = s ? strtof(s, &end) : 0.0f;
    if (!s || !*s || *end || errno || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "%s: %s: expected a number in [%g, %g], got '%s'\n", program_invocation_short_name, opt, min, max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *s == '-' || *end || errno) {
        fprintf(stderr, "%s: %s: expected a non-negative integer, got '%s'\n", program_invocation_short_name, opt, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 256 ? 256 : (int) n);
}

sw_dtype_t cli_quant_type_for(uint32_t n_dims, int64_t ne0, sw_dtype_t target)
{
    if (n_dims < 2 || ne0 % sw_dtype_block_size(target) != 0)
        return SW_DTYPE_F32;
    return target;
}

uint32_t cli_file_type_for(sw_dtype_t type)
{
    switch (type) {
    case SW_DTYPE_F32: return 0;
    case SW_DTYPE_F16: return 1;
    case SW_DTYPE_Q4_0: return 2;
    case SW_DTYPE_Q8_0: return 7;
    case SW_DTYPE_Q4_K: return 15;
    case SW_DTYPE_Q6_K: return 18;
    case SW_DTYPE_BF16: return 32;
    default: return 0;
    }
}

int cli_quantize_rows(sw_dtype_t type, const float *src, void *dst, int64_t ne0, int64_t n_rows)
{
    const size_t row = sw_dtype_row_size(type, ne0);
    if (row == 0)
        return -1;
    for (int64_t r = 0; r < n_rows; r++)
        if (sw_quantize_row(type, src + r * ne0, (uint8_t *) dst + (size_t) r * row, ne0) != 0)
            return -1;
    return 0;
}
