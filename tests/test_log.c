/*  test_log.c: the log line prefix selftest (core/sw_common.h, sw_log).
 *
 *  Every line reads "TIME PROGRAM[PID] ROLE NODE LEVEL: message": TIME is
 *  UTC ISO 8601 with milliseconds and a Z, within a minute of the test's own
 *  clock; PROGRAM and PID are this process's; ROLE and NODE are "-" until
 *  set; a 32-hex node id shows its first 8 characters, a short chosen id
 *  shows in full, a space in an id cannot split the field; the message comes
 *  after the prefix exactly as formatted, with the gate's suppressed count
 *  after it; lines below the threshold do not appear.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sw_common.h"
#include "sw_test.h"

/*  The first line fn writes to fd 2, without its newline (caller frees). */
static char *s_capture(void (*fn)(void), char *all, size_t all_len)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    if (!tmp)
        return NULL;
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(all, 1, all_len - 1, tmp);
    all[n] = '\0';
    fclose(tmp);
    char *nl = strchr(all, '\n');
    return nl ? strndup(all, (size_t) (nl - all)) : strdup(all);
}

/*  Checks line's TIME PROGRAM[PID] fields and returns what follows them
 *  (" ROLE NODE LEVEL: message"), or NULL. */
static const char *s_after_pid(const char *line)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = line ? strptime(line, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    CHECK_MSG(p != NULL, "no timestamp at the start of '%s'", line ? line : "");
    if (!p)
        return NULL;
    CHECK_MSG(p[0] == '.' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[3] >= '0' &&
                  p[3] <= '9' && p[4] == 'Z' && p[5] == ' ',
              "milliseconds and Z: '%s'", line);
    const time_t when = timegm(&tm), now = time(NULL);
    CHECK_MSG(when > now - 60 && when < now + 60, "timestamp %lld is not now (%lld): UTC?", (long long) when,
              (long long) now);
    char want[128];
    snprintf(want, sizeof want, " %s[%ld]", program_invocation_short_name, (long) getpid());
    CHECK_MSG(!strncmp(p + 5, want, strlen(want)), "'%s' lacks '%s'", line, want);
    return p + 5 + strlen(want);
}

static void s_plain(void) { sw_log(SW_LOG_INFO, "hello %d", 42); }
static void s_warn(void) { sw_log(SW_LOG_WARN, "stage %s: shutting down", "abc"); }
static void s_debug(void) { sw_log(SW_LOG_DEBUG, "hidden"); }
static void s_gated(void)
{
    sw_log_gate_t g = SW_LOG_GATE(60000, 1);
    sw_log_limited(&g, SW_LOG_ERROR, "flood");
    sw_log_limited(&g, SW_LOG_ERROR, "flood");
    g.start_ns = 1; /* a window long past: the next line passes and reports the one dropped */
    sw_log_limited(&g, SW_LOG_ERROR, "flood again");
}

int main(void)
{
    setenv("SWISD_LOG", "info", 1);
    char all[4096];

    char *line = s_capture(s_plain, all, sizeof all);
    const char *rest = s_after_pid(line);
    CHECK_MSG(rest && !strcmp(rest, " - - INFO: hello 42"), "no identity yet: '%s'", line ? line : "");
    free(line);

    sw_log_set_role("stage");
    sw_log_set_node("3f9a1c2e5b6d7e8f9a0b1c2d3e4f5a6b");
    line = s_capture(s_warn, all, sizeof all);
    rest = s_after_pid(line);
    CHECK_MSG(rest && !strcmp(rest, " stage 3f9a1c2e WARN: stage abc: shutting down"), "random id: '%s'",
              line ? line : "");
    free(line);

    sw_log_set_node("st-real-1");
    line = s_capture(s_plain, all, sizeof all);
    rest = s_after_pid(line);
    CHECK_MSG(rest && !strcmp(rest, " stage st-real-1 INFO: hello 42"), "chosen id: '%s'", line ? line : "");
    free(line);

    sw_log_set_role("gate way");
    sw_log_set_node("a b");
    line = s_capture(s_plain, all, sizeof all);
    rest = s_after_pid(line);
    CHECK_MSG(rest && !strcmp(rest, " gate_way a_b INFO: hello 42"), "spaces: '%s'", line ? line : "");
    free(line);

    sw_log_set_role(NULL);
    sw_log_set_node("");
    line = s_capture(s_debug, all, sizeof all);
    CHECK_MSG(line && line[0] == '\0', "a debug line passed the info threshold: '%s'", all);
    free(line);

    line = s_capture(s_gated, all, sizeof all);
    CHECK(line != NULL);
    free(line);
    CHECK_MSG(strstr(all, " - - ERROR: flood\n") && strstr(all, " - - ERROR: flood again (1 similar suppressed)\n"),
              "gated lines: '%s'", all);
    int lines = 0;
    for (const char *p = all; (p = strchr(p, '\n')); p++)
        lines++;
    CHECK_MSG(lines == 2, "%d gated lines, want 2: '%s'", lines, all);
    return sw_test_report("log");
}
