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
 *  to stderr with a level tag. The threshold is read once from the environment
 *  variable SWISD_LOG (error|warn|info|debug), default info. */
typedef enum { SW_LOG_ERROR = 0, SW_LOG_WARN = 1, SW_LOG_INFO = 2, SW_LOG_DEBUG = 3 } sw_log_level_t;

/*  Prints one log line to stderr: "[swisd LEVEL] message". Thread-safe (one
 *  fprintf call per line). */
void sw_log(sw_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*  Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
uint64_t sw_now_ns(void);

/*  Allocates `size` bytes aligned to 64 bytes (a cache line, and the widest
 *  SIMD load). Returns NULL on failure or when size is 0. Free with sw_free. */
void *sw_alloc_aligned(size_t size);
void sw_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
