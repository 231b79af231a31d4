/*  sw_caps.c: schedule and owner's load (see sw_caps.h). */
#include "sw_caps.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sw_common.h"

static int s_hhmm(const char *p, int *minutes, bool end)
{
    int h, m, n = 0;
    if (sscanf(p, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 || p[2] != ':' || h < 0 || m < 0 || m > 59 ||
        h > 24 || (h == 24 && (m != 0 || !end)))
        return -1;
    *minutes = h * 60 + m;
    return 0;
}

int sw_schedule_parse(const char *text, sw_schedule_t *s, char *err, size_t errlen)
{
    *s = (sw_schedule_t){.always = true, .start_min = 0, .end_min = 1440};
    if (!text || !text[0] || !strcmp(text, "always"))
        return 0;
    if (strlen(text) != 11 || text[5] != '-' || s_hhmm(text, &s->start_min, false) != 0 ||
        s_hhmm(text + 6, &s->end_min, true) != 0)
        return sw_err(err, errlen, "schedule '%.40s': expected HH:MM-HH:MM (e.g. 22:00-07:00)", text);
    s->always = (s->start_min == 0 && s->end_min == 1440) || (s->start_min == s->end_min);
    return 0;
}

bool sw_schedule_contains(const sw_schedule_t *s, int minute_of_day)
{
    if (s->always)
        return true;
    const int m = ((minute_of_day % 1440) + 1440) % 1440;
    if (s->start_min < s->end_min)
        return m >= s->start_min && m < s->end_min;
    return m >= s->start_min || m < s->end_min; /* wraps past midnight */
}

int sw_schedule_wait_min(const sw_schedule_t *s, int minute_of_day)
{
    if (sw_schedule_contains(s, minute_of_day))
        return 0;
    const int m = ((minute_of_day % 1440) + 1440) % 1440;
    return ((s->start_min - m) % 1440 + 1440) % 1440;
}

/* utime + stime of pid (fields 14 and 15 of /proc/PID/stat, after the
 * parenthesised command name, which may hold spaces). 0 when unreadable. */
static uint64_t s_proc_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return ut + st;
}

int sw_cpu_snapshot(const pid_t *pids, size_t n_pids, sw_cpu_snapshot_t *out)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]);
    fclose(f);
    if (n < 4)
        return -1;
    /* user nice system idle iowait irq softirq steal: busy = all but idle and iowait */
    out->machine_busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    out->ours = s_proc_ticks(getpid());
    for (size_t i = 0; i < n_pids; i++)
        if (pids[i] > 0 && pids[i] != getpid())
            out->ours += s_proc_ticks(pids[i]);
    out->at_ns = sw_now_ns();
    return 0;
}

double sw_owner_load_between(const sw_cpu_snapshot_t *a, const sw_cpu_snapshot_t *b, long clk_tck)
{
    if (b->at_ns <= a->at_ns || clk_tck <= 0)
        return -1;
    const double secs = (double) (b->at_ns - a->at_ns) / 1e9;
    const double machine = b->machine_busy >= a->machine_busy ? (double) (b->machine_busy - a->machine_busy) : 0;
    const double ours = b->ours >= a->ours ? (double) (b->ours - a->ours) : 0;
    const double other = (machine - ours) / (double) clk_tck / secs;
    return other > 0 ? other : 0;
}
