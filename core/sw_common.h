/*  sw_common.h: small shared definitions for libswisd.
 *
 *  Error reporting convention (house style): actions return 0 on success and
 *  -1 on failure; constructors return NULL on failure. Functions that can fail
 *  on outside input take `char *err, size_t errlen` and write a one-line,
 *  human-readable reason there (NUL-terminated, truncated to errlen). err may be
 *  NULL when the caller does not want the text.
 *
 *  Thread safety: everything here is reentrant.
 */
#ifndef SW_COMMON_H
#define SW_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  Writes a formatted message into err[0..errlen) when err is not NULL.
 *  Always returns -1 so callers can write `return sw_err(err, errlen, ...)`. */
int sw_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  Log levels for sw_log; messages at or above the process-wide threshold go
 *  to stderr. The threshold is read once from the environment variable
 *  SWISD_LOG (error|warn|info|debug), default info. */
typedef enum { SW_LOG_ERROR = 0, SW_LOG_WARN = 1, SW_LOG_INFO = 2, SW_LOG_DEBUG = 3 } sw_log_level_t;

/*  Prints one log line to stderr, with a prefix that names the writer:
 *
 *    TIME PROGRAM[PID] ROLE NODE LEVEL: message
 *    2026-11-26T16:05:01.123Z swisd-stage[12345] stage 3f9a1c2e INFO: message
 *
 *  TIME     wall clock, UTC, ISO 8601 with milliseconds and a Z
 *  PROGRAM  program_invocation_short_name (swisd-broker, swisd-stage, ...)
 *  PID      the process id
 *  ROLE     what the process is (sw_log_set_role: broker, stage, gateway); "-"
 *           until set
 *  NODE     the node id (sw_log_set_node), shortened: ids of at most 16
 *           characters in full, longer ones (the random 32-hex default) as
 *           their first 8; "-" until set
 *  LEVEL    ERROR, WARN, INFO or DEBUG
 *
 *  Six space-separated fields, then the message exactly as formatted (tests
 *  and operators search it by substring). Messages longer than ~1 KiB are cut.
 *  Thread-safe (one fprintf call per line). */
void sw_log(sw_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*  Sets the ROLE field of every later log line of this process: a short word
 *  without spaces ("broker", "stage", "gateway"), copied (at most 15
 *  characters kept); NULL or "" resets it to "-". Called once by a daemon's
 *  main (sw_daemon_setup). Thread-safe. */
void sw_log_set_role(const char *role);

/*  Sets the NODE field of every later log line of this process from a node
 *  id (copied and shortened as described at sw_log); NULL or "" resets it to
 *  "-". Called by a daemon's main once its node id is known. Thread-safe. */
void sw_log_set_node(const char *node_id);

/*  Rate limit for one kind of log line (a "key": one call site, or one
 *  message that can repeat per received frame). A line logged through a gate
 *  passes when fewer than `burst` lines passed in the current window of
 *  `window_ms`; otherwise it is counted and dropped. The first line that
 *  passes after drops ends with " (N similar suppressed)". One flooding peer
 *  thus costs at most `burst` lines per window per key, never one per frame.
 *
 *  Set window_ms and burst (or use SW_LOG_GATE(window_ms, burst)); zero
 *  means 1000 ms and 1 line. The other fields start at 0.
 *  Thread safety: a gate belongs to one thread (keep it in the object that
 *  logs, e.g. the broker); different gates may be used concurrently. */
typedef struct {
    uint32_t window_ms;   /* length of a window, ms; 0: 1000 */
    uint32_t burst;       /* lines allowed per window; 0: 1 */
    uint32_t used;        /* lines passed in the current window */
    uint64_t start_ns;    /* start of the current window, sw_now_ns() */
    uint64_t suppressed;  /* lines dropped since the last one that passed */
} sw_log_gate_t;

#define SW_LOG_GATE(window_ms, burst) ((sw_log_gate_t){(window_ms), (burst), 0, 0, 0})

/*  sw_log through a gate (see sw_log_gate_t). A line below the process's log
 *  threshold is neither printed nor counted. gate may be NULL (then this is
 *  sw_log). Returns true when the line was printed. */
bool sw_log_limited(sw_log_gate_t *gate, sw_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
uint64_t sw_now_ns(void);

/*  Allocates `size` bytes aligned to 64 bytes (a cache line, and the widest
 *  SIMD load). Returns NULL on failure or when size is 0. Free with sw_free. */
void *sw_alloc_aligned(size_t size);
void sw_free(void *p);

/*  Appends n bytes at p to a growing NUL-terminated byte buffer: *buf holds
 *  *len bytes plus a NUL in *cap bytes (all three 0/NULL for an empty one;
 *  the caller owns *buf and frees it with free()). Grows by doubling. On
 *  failure (out of memory, or a size that would overflow) returns -1 and
 *  leaves the buffer as it was, so the caller can fail the whole answer
 *  instead of keeping part of it; else 0. p may be NULL when n is 0. */
int sw_text_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
