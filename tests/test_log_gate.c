/*  test_log_gate.c: sw_log_limited selftest (core/sw_common.h).
 *
 *  Logs through gates with stderr redirected to a temporary file and checks
 *  the lines that came out: a burst of 10,000 identical lines passes `burst`
 *  lines per window; the first line after the window says how many were
 *  suppressed; two gates do not share a budget; a NULL gate always logs; a
 *  line below the threshold is neither printed nor counted. Windows are long
 *  (60 s) where a slow machine must not let a new window start, and short
 *  (20 ms, then a 60 ms sleep) where one must: no check depends on speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_test.h"

/*  Lines written to fd 2 by fn, as one string (caller frees). */
static char *s_capture(void (*fn)(void *), void *arg)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    if (!tmp)
        return NULL;
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp);
    if (n < 0)
        n = 0;
    char *out = calloc((size_t) n + 1, 1);
    rewind(tmp);
    if (out && n > 0 && fread(out, 1, (size_t) n, tmp) != (size_t) n)
        out[0] = '\0';
    fclose(tmp);
    return out;
}

static int s_count(const char *text, const char *needle)
{
    int c = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
        c++;
    return c;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct {
    sw_log_gate_t a, b;
} gates_t;

static void s_flood(void *arg)
{
    gates_t *g = arg;
    for (int i = 0; i < 10000; i++) {
        sw_log_limited(&g->a, SW_LOG_WARN, "flood a %d", i);
        sw_log_limited(&g->b, SW_LOG_WARN, "flood b %d", i);
    }
}

static void s_resume(void *arg)
{
    gates_t *g = arg;
    s_sleep_ms(60); /* past a's 20 ms window */
    sw_log_limited(&g->a, SW_LOG_WARN, "resumed a");
}

static void s_misc(void *arg)
{
    (void) arg;
    for (int i = 0; i < 3; i++)
        sw_log_limited(NULL, SW_LOG_WARN, "no gate %d", i);
    sw_log_gate_t g = SW_LOG_GATE(60000, 1);
    for (int i = 0; i < 5; i++)
        sw_log_limited(&g, SW_LOG_DEBUG, "below the threshold %d", i); /* SWISD_LOG=info: not counted */
    sw_log_limited(&g, SW_LOG_WARN, "first warn");
    sw_log_limited(&g, SW_LOG_WARN, "second warn");
    fprintf(stderr, "suppressed so far: %llu\n", (unsigned long long) g.suppressed);
}

int main(void)
{
    setenv("SWISD_LOG", "info", 1);
    gates_t g = {SW_LOG_GATE(20, 1), SW_LOG_GATE(60000, 3)};
    char *out = s_capture(s_flood, &g);
    CHECK(out != NULL);
    const int a = s_count(out, "flood a"), b = s_count(out, "flood b");
    /* a's window is 20 ms: a slow run may start a few new windows, never 10,000 */
    CHECK_MSG(a >= 1 && a < 100, "gate a passed %d of 10000 lines", a);
    CHECK_MSG(b == 3, "gate b (burst 3 per 60 s) passed %d of 10000 lines", b);
    CHECK(strstr(out, "flood a 0\n") != NULL && strstr(out, "flood b 0\n") != NULL);
    CHECK(g.b.suppressed == 9997);
    free(out);

    const unsigned long long held = (unsigned long long) g.a.suppressed;
    out = s_capture(s_resume, &g);
    char want[64];
    snprintf(want, sizeof want, "resumed a (%llu similar suppressed)\n", held);
    CHECK_MSG(held > 0 && out && strstr(out, want), "after the window: %s (want \"%s\")", out ? out : "", want);
    CHECK(g.a.suppressed == 0);
    free(out);

    out = s_capture(s_misc, NULL);
    CHECK(out && s_count(out, "no gate") == 3);
    CHECK(out && !strstr(out, "below the threshold"));
    CHECK(out && strstr(out, "first warn\n") && !strstr(out, "second warn"));
    CHECK(out && strstr(out, "suppressed so far: 1\n"));
    free(out);
    return sw_test_report("log_gate");
}
