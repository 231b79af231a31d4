/*  sw_data_dir.c: the data folder of an installed or a build-tree program
 *  (sw_data_dir.h). */
#include "sw_data_dir.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* set by core/meson.build from meson's prefix, bindir and datadir */
#ifndef SWISD_BINDIR
#define SWISD_BINDIR "/usr/local/bin"
#endif
#ifndef SWISD_DATADIR
#define SWISD_DATADIR "/usr/local/share/swisd"
#endif
#ifndef SWISD_SOURCE_DIR
#define SWISD_SOURCE_DIR "."
#endif

enum { N_ROOTS = 4 };

/* The folder of the running program (no trailing '/') into dir[PATH_MAX];
 * 0, or -1 when /proc/self/exe cannot be read. */
static int s_exe_dir(char *dir)
{
    ssize_t n = readlink("/proc/self/exe", dir, PATH_MAX - 1);
    if (n <= 0)
        return -1;
    dir[n] = 0;
    char *slash = strrchr(dir, '/');
    if (!slash)
        return -1;
    *slash = 0;
    return 0;
}

/* The roots of sw_data_find in order, each "" when it does not apply. */
static void s_roots(char roots[N_ROOTS][PATH_MAX])
{
    for (int i = 0; i < N_ROOTS; i++)
        roots[i][0] = 0;
    char dir[PATH_MAX];
    if (s_exe_dir(dir) == 0) {
        /* 1. ROOT/usr/bin/PROG -> ROOT/usr/share/swisd */
        const size_t dl = strlen(dir), bl = strlen(SWISD_BINDIR);
        if (bl > 0 && dl >= bl && strcmp(dir + dl - bl, SWISD_BINDIR) == 0 &&
            (dl == bl || SWISD_BINDIR[0] == '/')) {
            if (dl - bl + strlen(SWISD_DATADIR) < PATH_MAX)
                snprintf(roots[0], PATH_MAX, "%.*s%s", (int) (dl - bl), dir, SWISD_DATADIR);
        }
        /* 2. SRC/build/cli/PROG -> SRC */
        if (strlen(dir) + 6 < PATH_MAX)
            snprintf(roots[1], PATH_MAX, "%s/../..", dir);
    }
    snprintf(roots[2], PATH_MAX, "%s", SWISD_SOURCE_DIR); /* 3. */
    snprintf(roots[3], PATH_MAX, "%s", SWISD_DATADIR);    /* 4. */
}

int sw_data_find(const char *rel, char *out, size_t outlen)
{
    if (outlen > 0)
        out[0] = 0;
    if (!rel || !rel[0] || rel[0] == '/' || strstr(rel, "..") || outlen == 0)
        return -1;
    char roots[N_ROOTS][PATH_MAX];
    s_roots(roots);
    for (int i = 0; i < N_ROOTS; i++) {
        if (!roots[i][0])
            continue;
        char path[PATH_MAX];
        if ((size_t) snprintf(path, sizeof path, "%s/%s", roots[i], rel) >= sizeof path)
            continue;
        if (access(path, R_OK) != 0)
            continue;
        char *real = realpath(path, NULL); /* build/cli/../../models -> models */
        const char *found = real ? real : path;
        const size_t len = strlen(found);
        if (len < outlen)
            memcpy(out, found, len + 1);
        free(real);
        return len < outlen ? 0 : -1;
    }
    return -1;
}

void sw_data_dir_describe(char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = 0;
    char roots[N_ROOTS][PATH_MAX];
    s_roots(roots);
    size_t used = 0;
    for (int i = 0; i < N_ROOTS && used < outlen; i++) {
        if (!roots[i][0])
            continue;
        char *real = realpath(roots[i], NULL);
        int n = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", real ? real : roots[i]);
        free(real);
        if (n < 0)
            break;
        used += (size_t) n;
    }
}
