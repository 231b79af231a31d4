/*  sw_test_data.h: where the tests find their data (tests/data/README.md).
 *
 *  - In the repository: the default model `models/stories260K.gguf` with its
 *    tokenizer files (models/README.md), and the reference figures in
 *    `tests/data/`. sw_test_src_path() names them. They are always there.
 *  - Outside it: optional third-party files too large to ship (the Llama 2
 *    32000-token tokenizer, the llama2.c checkpoint). They live under
 *    $SWISD_TEST_DATA, which defaults to <source>/../shared. sw_test_data_path()
 *    names one of them. When the file is missing, it prints
 *    "SKIP: <rel> is missing; put it at <path> ..." so that the caller can skip
 *    the part that needs it. Under CI (CI=true) it prints "FAIL: ..." instead,
 *    and the caller counts a failure.
 *
 *  The source folder is $SWISD_SOURCE_DIR when that is set, else the one the
 *  test was compiled from (-DSWISD_SOURCE_DIR, set by tests/meson.build).
 *  Thread safety: reads the environment only. Call these from main's thread.
 */
#ifndef SW_TEST_DATA_H
#define SW_TEST_DATA_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SWISD_SOURCE_DIR
#define SWISD_SOURCE_DIR "."
#endif

/* True when running under CI (CI=true or 1): then missing optional data is a failure. */
static inline bool sw_test_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && (!strcmp(ci, "true") || !strcmp(ci, "1"));
}

/* The source tree's root, without a trailing slash. Borrowed: environment or literal. */
static inline const char *sw_test_src_dir(void)
{
    const char *s = getenv("SWISD_SOURCE_DIR");
    return s && *s ? s : SWISD_SOURCE_DIR;
}

/* Writes <source>/<rel> into path[len]: a file of the repository, e.g.
 * "models/stories260K.gguf". Returns path. */
static inline const char *sw_test_src_path(const char *rel, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", sw_test_src_dir(), rel);
    return path;
}

/* Writes $SWISD_TEST_DATA/<rel> (default <source>/../shared/<rel>) into
 * path[len]. Returns 0 when that file is readable. When it is not, it announces
 * this on stdout and returns 1 ("SKIP: ...", skip the part that needs it), or
 * -1 under CI ("FAIL: ...", count a failure). `what` says what the file is for. */
static inline int sw_test_data_path(const char *rel, const char *what, char *path, size_t len)
{
    const char *d = getenv("SWISD_TEST_DATA");
    if (d && *d) {
        snprintf(path, len, "%s/%s", d, rel);
    } else {
        /* <source>/../shared, spelled as <parent of source>/shared when the source path has a parent */
        const char *src = sw_test_src_dir(), *slash = strrchr(src, '/');
        if (slash && slash != src && slash[1] && strcmp(slash + 1, "..") && strcmp(slash + 1, "."))
            snprintf(path, len, "%.*s/shared/%s", (int) (slash - src), src, rel);
        else
            snprintf(path, len, "%s/../shared/%s", src, rel);
    }
    if (access(path, R_OK) == 0)
        return 0;
    const bool ci = sw_test_in_ci();
    printf("%s: %s is missing; put it at %s (optional third-party test data under $SWISD_TEST_DATA, "
           "see tests/data/README.md); %s %s\n",
           ci ? "FAIL" : "SKIP", rel, path, ci ? "CI=true, so this counts as a failure:" : "skipped:", what);
    fflush(stdout);
    return ci ? -1 : 1;
}

#endif
