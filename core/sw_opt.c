/*  sw_opt.c: values of command-line options (see sw_opt.h). */
#include "sw_opt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int sw_opt_i64(const char *opt, const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < min || v > max) {
        fprintf(stderr, "%s: %s: expected an integer in [%lld, %lld], got '%s'\n", program_invocation_short_name, opt,
                (long long) min, (long long) max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int sw_opt_int(const char *opt, const char *s, int min, int max, int *out)
{
    int64_t v;
    if (sw_opt_i64(opt, s, min, max, &v) != 0)
        return -1;
    *out = (int) v;
    return 0;
}

int sw_opt_i32_list(const char *opt, const char *s, int32_t min, int32_t max, int64_t max_n, int32_t **out,
                    int64_t *n_out)
{
    int64_t n = 1;
    for (const char *p = s ? s : ""; *p; p++)
        n += *p == ',';
    if (!s || !*s || n > max_n) {
        fprintf(stderr, "%s: %s: expected 1 to %lld comma-separated integers, got '%.40s'\n",
                program_invocation_short_name, opt, (long long) max_n, s ? s : "");
        return -1;
    }
    int32_t *v = malloc(sizeof(int32_t) * (size_t) n);
    if (!v) {
        fprintf(stderr, "%s: %s: out of memory\n", program_invocation_short_name, opt);
        return -1;
    }
    const char *p = s;
    for (int64_t i = 0; i < n; i++) {
        char *end = NULL;
        errno = 0;
        long long x = (*p >= '0' && *p <= '9') || *p == '-' ? strtoll(p, &end, 10) : 0;
        if (!end || end == p || errno || (*end != ',' && *end != 0) || x < min || x > max) {
            fprintf(stderr, "%s: %s: item %lld is not an integer in [%lld, %lld] in '%.40s'\n",
                    program_invocation_short_name, opt, (long long) i + 1, (long long) min, (long long) max, s);
            free(v);
            return -1;
        }
        v[i] = (int32_t) x;
        p = end + (*end == ',');
    }
    *out = v;
    *n_out = n;
    return 0;
}

int sw_opt_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *s == '-' || *end || errno) {
        fprintf(stderr, "%s: %s: expected a non-negative integer, got '%s'\n", program_invocation_short_name, opt,
                s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int sw_opt_f32(const char *opt, const char *s, float min, float max, float *out)
{
    char *end = NULL;
    errno = 0;
    float v = s ? strtof(s, &end) : 0.0f;
    if (!s || !*s || *end || errno || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "%s: %s: expected a number in [%g, %g], got '%s'\n", program_invocation_short_name, opt, min,
                max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int sw_opt_size(const char *opt, const char *s, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = (s && *s != '-') ? strtoull(s, &end, 10) : 0;
    unsigned long long unit = 1ull << 20;
    if (end && end != s) {
        if (*end == 'K' || *end == 'k') unit = 1ull << 10, end++;
        else if (*end == 'M' || *end == 'm') unit = 1ull << 20, end++;
        else if (*end == 'G' || *end == 'g') unit = 1ull << 30, end++;
    }
    if (!s || !*s || !end || end == s || *end || errno || x == 0 || x > (1ull << 40) / unit) {
        fprintf(stderr, "%s: %s: expected a size like 512, 400K, 2G (MiB without a suffix), got '%s'\n",
                program_invocation_short_name, opt, s ? s : "");
        return -1;
    }
    *out = (size_t) (x * unit);
    return 0;
}

int sw_opt_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 256 ? 256 : (int) n);
}
