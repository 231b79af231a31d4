/*  sw_common.c: error text, logging, clock and aligned allocation. */
#include "sw_common.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int sw_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int s_log_threshold(void)
{
    static int threshold = -1; /* benign race: every thread computes the same value */
    if (threshold < 0) {
        const char *v = getenv("SWISD_LOG");
        int t = SW_LOG_INFO;
        if (v) {
            if (!strcmp(v, "error")) t = SW_LOG_ERROR;
            else if (!strcmp(v, "warn")) t = SW_LOG_WARN;
            else if (!strcmp(v, "debug")) t = SW_LOG_DEBUG;
        }
        threshold = t;
    }
    return threshold;
}

void sw_log(sw_log_level_t level, const char *fmt, ...)
{
    if ((int) level > s_log_threshold())
        return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[swisd %s] %s\n", names[level], line);
}

uint64_t sw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

void *sw_alloc_aligned(size_t size)
{
    if (size == 0)
        return NULL;
    void *p = NULL;
    size_t rounded = (size + 63) & ~(size_t) 63;
    if (rounded < size || posix_memalign(&p, 64, rounded) != 0)
        return NULL;
    return p;
}

void sw_free(void *p)
{
    free(p);
}
