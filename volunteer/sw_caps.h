/*  sw_caps.h: when a volunteer may serve: its schedule ("22:00-07:00") and
 *  its owner's load (other processes' demand for the CPU).
 *
 *  Schedule: "HH:MM-HH:MM" in local time, start inclusive, end exclusive; an
 *  end at or before the start wraps past midnight ("22:00-07:00" is 22:00 to
 *  06:59:59 the next morning); "00:00-24:00" (or no schedule) is always.
 *
 *  Owner's load: the run queue of the machine minus the volunteer's own
 *  share. /proc/loadavg's 1-minute average reacts in about a minute; this
 *  monitor reads instead the CPU time of the whole machine (/proc/stat,
 *  "cpu" line: user+nice+system+irq+softirq+steal jiffies, proc(5)) and of
 *  the volunteer's processes (/proc/PID/stat utime+stime of itself and of
 *  the pids it names, proc(5)) over each interval between samples: other
 *  processes' load = (machine busy - ours) / interval, in cores (1.0 = one
 *  core fully busy). A sample is a pure function of two snapshots
 *  (sw_owner_load_between), unit-tested.
 *
 *  Thread safety: pure functions; a sw_owner_load_t belongs to one thread.
 */
#ifndef SW_CAPS_H
#define SW_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    bool always;         /* no schedule */
    int start_min;       /* minutes after local midnight, 0..1439 */
    int end_min;         /* minutes after local midnight, 0..1440 (exclusive) */
} sw_schedule_t;

/*  Parses "HH:MM-HH:MM" (HH 0..24, MM 0..59, 24:00 only as an end) or NULL /
 *  "" / "always" into s. Returns 0, or -1 with a reason in err. */
int sw_schedule_parse(const char *text, sw_schedule_t *s, char *err, size_t errlen);

/*  True when minute_of_day (0..1439, local time) is inside the schedule. */
bool sw_schedule_contains(const sw_schedule_t *s, int minute_of_day);

/*  Minutes from minute_of_day until the schedule next opens (0 when open). */
int sw_schedule_wait_min(const sw_schedule_t *s, int minute_of_day);

/*  One snapshot of CPU time, in clock ticks (sysconf(_SC_CLK_TCK)). */
typedef struct {
    uint64_t machine_busy;  /* all CPUs' non-idle ticks since boot (/proc/stat) */
    uint64_t ours;          /* our processes' utime+stime ticks (/proc/PID/stat) */
    uint64_t at_ns;         /* sw_now_ns() when read */
} sw_cpu_snapshot_t;

/*  Reads a snapshot: the machine and the processes pids (n_pids; 0 = self
 *  only; self is always counted). A pid that vanished counts 0 (its ticks
 *  fall out of "ours" from then, so one interval may read a little high).
 *  Returns 0, or -1 when /proc/stat cannot be read or parsed. */
int sw_cpu_snapshot(const pid_t *pids, size_t n_pids, sw_cpu_snapshot_t *out);

/*  Other processes' load between two snapshots, in cores (>= 0); ticks per
 *  second from clk_tck. Returns -1 when b is not after a (then no sample). */
double sw_owner_load_between(const sw_cpu_snapshot_t *a, const sw_cpu_snapshot_t *b, long clk_tck);

#endif
