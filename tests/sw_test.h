/*  sw_test.h: minimal assertions for the unit tests (one executable per class).
 *
 *  CHECK(cond) records a failure with file:line and goes on; CHECK_NEAR checks
 *  |a - b| <= tol. A test's main ends with `return sw_test_report("name");`,
 *  which prints "name: N checks, M failed" and returns non-zero when M > 0, so
 *  meson counts the executable as failed. Test data: sw_test_data.h.
 */
#ifndef SW_TEST_H
#define SW_TEST_H

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_test_data.h"

static int sw_test_checks = 0;
static int sw_test_failures = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        sw_test_checks++;                                                              \
        if (!(cond)) {                                                                 \
            sw_test_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        sw_test_checks++;                                                              \
        if (!(cond)) {                                                                 \
            sw_test_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
        }                                                                              \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                          \
    do {                                                                               \
        double sw_a_ = (double) (a), sw_b_ = (double) (b);                             \
        sw_test_checks++;                                                              \
        if (!(fabs(sw_a_ - sw_b_) <= (double) (tol))) {                                \
            sw_test_failures++;                                                        \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %g, %s = %g, tol %g\n",    \
                    __FILE__, __LINE__, #a, sw_a_, #b, sw_b_, (double) (tol));         \
        }                                                                              \
    } while (0)

/* Path of an optional third-party test file (sw_test_data.h) in path[len].
 * Returns true when it is there. When it is not, the miss has been announced
 * and the caller skips the part that needs it. Under CI the miss is also
 * counted as a failed check. */
static inline bool sw_test_optional(const char *rel, const char *what, char *path, size_t len)
{
    int rc = sw_test_data_path(rel, what, path, len);
    if (rc < 0) {
        sw_test_checks++;
        sw_test_failures++;
    }
    return rc == 0;
}

/*  Removes an SQLite database file and its WAL and shared-memory files. */
static inline void sw_test_rm_db(const char *path)
{
    char p[512];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/*  Replaces path with a corrupt database: the SQLite files removed, then 4096
 *  bytes of (i x 7919) mod 256 (no SQLite header). Returns true when written. */
static inline bool sw_test_corrupt_db(const char *path)
{
    sw_test_rm_db(path);
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    for (int i = 0; i < 4096; i++)
        fputc((i * 7919) & 0xff, f);
    return fclose(f) == 0;
}

/* dir/name in one of 16 rotating buffers (valid until 16 more calls): a
 * test's paths inside its temporary folder. */
static inline const char *sw_test_path(const char *dir, const char *name)
{
    static char buf[16][512];
    static int i = 0;
    i = (i + 1) % 16;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

/* Writes text to path (a test's fixture file); on failure says why and ends
 * the test program (a fixture it cannot make is not a result). */
static inline void sw_test_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fclose(f);
}

static inline int sw_test_report(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, sw_test_checks, sw_test_failures);
    return sw_test_failures > 0 ? 1 : 0;
}

#endif
