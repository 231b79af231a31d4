/*  test_data_dir.c: data folder lookup selftest (core/sw_data_dir.h).
 *
 *  1. From the build tree (this program runs as build/tests/test_data_dir): a
 *     file of the source tree is found at its path in the source tree; NULL,
 *     empty, absolute and ".." paths and a missing file give -1 and an empty
 *     out; an out too small for the path gives -1 and an empty out.
 *  2. Installed: a copy of this program at TMP + SWISD_BINDIR (the layout of
 *     a package unpacked under TMP), run with --find REL, finds
 *     TMP + SWISD_DATADIR/REL, ahead of the source tree's file of the same
 *     name; a file only the source tree holds is still found there.
 *  usage: test_data_dir              the selftest
 *         test_data_dir --find REL   print sw_data_find(REL) or "-1" (the copy's job)
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sw_data_dir.h"
#include "sw_test.h"

/* mkdir -p */
static int s_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755);
            *p = '/';
        }
    return mkdir(tmp, 0755) == 0 || access(tmp, F_OK) == 0 ? 0 : -1;
}

static int s_copy(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc == 0 ? chmod(to, 0755) : -1;
}

/* What `exe --find rel` prints, without its newline, into out[outlen]. */
static void s_find_in_child(const char *exe, const char *rel, char *out, size_t outlen)
{
    char cmd[PATH_MAX * 3];
    snprintf(cmd, sizeof cmd, "'%s' --find '%s'", exe, rel);
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    if (fgets(out, (int) outlen, p))
        out[strcspn(out, "\n")] = 0;
    pclose(p);
}

int main(int argc, char **argv)
{
    char out[PATH_MAX], want[PATH_MAX];
    if (argc == 3 && strcmp(argv[1], "--find") == 0) {
        if (sw_data_find(argv[2], out, sizeof out) == 0)
            puts(out);
        else
            puts("-1");
        return 0;
    }

    /* 1. build tree */
    CHECK(realpath(SWISD_SOURCE_DIR "/models/stories260K.gguf", want) != NULL);
    CHECK(sw_data_find("models/stories260K.gguf", out, sizeof out) == 0 && strcmp(out, want) == 0);
    const char *bad[] = {NULL, "", "/etc/passwd", "../models/stories260K.gguf", "models/../models/stories260K.gguf",
                         "models/no-such-model.gguf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(out, "x");
        CHECK_MSG(sw_data_find(bad[i], out, sizeof out) == -1 && out[0] == 0, "bad path %zu (%s)", i,
                  bad[i] ? bad[i] : "NULL");
    }
    strcpy(out, "x");
    CHECK(sw_data_find("models/stories260K.gguf", out, 8) == -1 && out[0] == 0);
    char roots[4096];
    sw_data_dir_describe(roots, sizeof roots);
    char src[PATH_MAX];
    CHECK(realpath(SWISD_SOURCE_DIR, src) != NULL && strstr(roots, src) != NULL);
    sw_data_dir_describe(roots, 5);
    CHECK(strlen(roots) < 5);

    /* 2. installed under a scratch root */
    char tmp[] = "/tmp/swisd-data-dir-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    char bindir[PATH_MAX], datadir[PATH_MAX], exe[PATH_MAX + 32], self[PATH_MAX], planted[PATH_MAX + 32];
    snprintf(bindir, sizeof bindir, "%s%s", tmp, SWISD_BINDIR);
    snprintf(datadir, sizeof datadir, "%s%s/models", tmp, SWISD_DATADIR);
    snprintf(exe, sizeof exe, "%s/test_data_dir", bindir);
    snprintf(planted, sizeof planted, "%s/stories260K.gguf", datadir);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0);
    self[n > 0 ? n : 0] = 0;
    CHECK(s_mkdirs(bindir) == 0 && s_mkdirs(datadir) == 0 && s_copy(self, exe) == 0);
    FILE *f = fopen(planted, "w");
    CHECK(f != NULL && fputs("not a model: the installed copy\n", f) >= 0 && fclose(f) == 0);
    CHECK(realpath(planted, want) != NULL);
    s_find_in_child(exe, "models/stories260K.gguf", out, sizeof out);
    CHECK_MSG(strcmp(out, want) == 0, "installed copy finds %s (got %s)", want, out);
    CHECK(realpath(SWISD_SOURCE_DIR "/tests/data/stories260K_greedy.tsv", want) != NULL);
    s_find_in_child(exe, "tests/data/stories260K_greedy.tsv", out, sizeof out);
    CHECK_MSG(strcmp(out, want) == 0, "a file only in the source tree: %s (got %s)", want, out);
    s_find_in_child(exe, "models/no-such-model.gguf", out, sizeof out);
    CHECK(strcmp(out, "-1") == 0);

    char rm[PATH_MAX + 16];
    snprintf(rm, sizeof rm, "rm -rf '%s'", tmp);
    CHECK(system(rm) == 0);
    return sw_test_report("data_dir");
}
