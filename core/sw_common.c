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

static void s_log_v(sw_log_level_t level, uint64_t suppressed, const char *fmt, va_list ap)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    if (suppressed)
        fprintf(stderr, "[swisd %s] %s (%llu similar suppressed)\n", names[level], line,
                (unsigned long long) suppressed);
    else
        fprintf(stderr, "[swisd %s] %s\n", names[level], line);
}

void sw_log(sw_log_level_t level, const char *fmt, ...)
{
    if ((int) level > s_log_threshold())
        return;
    va_list ap;
    va_start(ap, fmt);
    s_log_v(level, 0, fmt, ap);
    va_end(ap);
}

bool sw_log_limited(sw_log_gate_t *gate, sw_log_level_t level, const char *fmt, ...)
{
    if ((int) level > s_log_threshold())
        return false;
    uint64_t suppressed = 0;
    if (gate) {
        const uint64_t now = sw_now_ns();
        const uint64_t window = (uint64_t) (gate->window_ms ? gate->window_ms : 1000) * 1000000ull;
        const uint32_t burst = gate->burst ? gate->burst : 1;
        if (gate->start_ns == 0 || now - gate->start_ns >= window) {
            gate->start_ns = now;
            gate->used = 0;
        }
        if (gate->used >= burst) {
            gate->suppressed++;
            return false;
        }
        gate->used++;
        suppressed = gate->suppressed;
        gate->suppressed = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    s_log_v(level, suppressed, fmt, ap);
    va_end(ap);
    return true;
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
