/*  sw_common.c: error text, logging, clock and aligned allocation. */
#include "sw_common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* The process's identity in log lines (sw_log_set_role, sw_log_set_node):
 * process-wide by nature, written rarely, read on every line under s_id_lock. */
static pthread_mutex_t s_id_lock = PTHREAD_MUTEX_INITIALIZER;
static char s_role[16] = "-";
static char s_node[17] = "-";

static void s_set_field(char *field, size_t cap, const char *value, size_t keep)
{
    pthread_mutex_lock(&s_id_lock);
    if (!value || !*value) {
        snprintf(field, cap, "-");
    } else {
        size_t n = strlen(value);
        if (n > keep)
            n = keep;
        if (n > cap - 1)
            n = cap - 1;
        for (size_t i = 0; i < n; i++) /* one field: no spaces or control characters */
            field[i] = (value[i] > ' ' && value[i] != 0x7f) ? value[i] : '_';
        field[n] = '\0';
    }
    pthread_mutex_unlock(&s_id_lock);
}

void sw_log_set_role(const char *role)
{
    s_set_field(s_role, sizeof s_role, role, sizeof s_role - 1);
}

void sw_log_set_node(const char *node_id)
{
    const size_t len = node_id ? strlen(node_id) : 0;
    s_set_field(s_node, sizeof s_node, node_id, len <= 16 ? 16 : 8);
}

static void s_log_v(sw_log_level_t level, uint64_t suppressed, const char *fmt, va_list ap)
{
    static const char *names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    struct timespec ts;
    struct tm tm;
    char stamp[32] = "-";
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm)) {
        size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    }
    char role[sizeof s_role], node[sizeof s_node];
    pthread_mutex_lock(&s_id_lock);
    memcpy(role, s_role, sizeof role);
    memcpy(node, s_node, sizeof node);
    pthread_mutex_unlock(&s_id_lock);
    char tail[48] = "";
    if (suppressed)
        snprintf(tail, sizeof tail, " (%llu similar suppressed)", (unsigned long long) suppressed);
    fprintf(stderr, "%s %s[%ld] %s %s %s: %s%s\n", stamp, program_invocation_short_name, (long) getpid(), role, node,
            names[level], line, tail);
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

int sw_text_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (n > SIZE_MAX / 2 - *len - 2)
        return -1;
    if (*len + n + 1 > *cap || !*buf) {
        const size_t want = (*len + n + 1) * 2;
        char *b = realloc(*buf, want < 64 ? 64 : want);
        if (!b)
            return -1;
        *buf = b;
        *cap = want < 64 ? 64 : want;
    }
    if (n)
        memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}
