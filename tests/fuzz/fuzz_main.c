/*  fuzz_main.c: plain driver for the fuzz targets, for builds without
 *  libFuzzer (the normal test suite).
 *
 *  usage: fuzz_gguf_driver [--seconds S] [--mutations N] [--seed X]
 *                          [--save-last PATH] [--test-data REL]... FILE...
 *
 *  Runs LLVMFuzzerTestOneInput on each FILE as is (corpus regression), then
 *  on up to N random mutations of the files (bit flips, interesting integers
 *  written over 1/2/4/8 bytes, truncation, chunk duplication), stopping after
 *  S seconds. Each input is passed in a buffer of exactly its size. Mutations
 *  are biased towards the first 64 KiB, where GGUF headers live. The PRNG is
 *  seeded with X (default 1) so a failure reproduces; a crash aborts the
 *  process (the test fails). With --save-last each input is written to PATH
 *  before it runs, so after a crash PATH holds the reproducer.
 *  --test-data REL adds an optional third-party file, $SWISD_TEST_DATA/REL
 *  (tests/sw_test_data.h): when it is missing the driver says so ("SKIP: ...")
 *  and goes on without it, except under CI=true, where that is an error.
 *  Exit code: 0 when everything ran, 1 on bad arguments, unreadable files or
 *  (under CI) missing optional files.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../sw_test_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint8_t *p;
    size_t n;
} s_file_t;

static uint64_t s_rng;

static uint64_t s_next(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static int s_read(const char *path, s_file_t *f)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->p = malloc(n > 0 ? (size_t) n : 1);
    f->n = n > 0 ? (size_t) n : 0;
    if (!f->p || fread(f->p, 1, f->n, fp) != f->n) {
        fclose(fp);
        return -1;
    }
    fclose(fp);
    return 0;
}

/*  Saves the input about to run, so a crash leaves a reproducer. Only when
 *  asked (it costs a write per input). */
static const char *s_save_path;

static void s_run(const uint8_t *p, size_t n)
{
    if (s_save_path) {
        FILE *fp = fopen(s_save_path, "wb");
        if (fp) {
            fwrite(p, 1, n, fp);
            fclose(fp);
        }
    }
    LLVMFuzzerTestOneInput(p, n);
}

static size_t s_pos(size_t n)
{
    if (n == 0)
        return 0;
    size_t lim = (s_next() & 7) ? (n < 65536 ? n : 65536) : n;
    return (size_t) (s_next() % lim);
}

/*  Mutates src into a fresh buffer; returns its size. */
static uint8_t *s_mutate(const s_file_t *src, size_t *out_n)
{
    static const uint64_t interesting[] = {
        0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 31, 32, 33, 63, 64, 255, 256, 0x7fff, 0x8000, 0xffff,
        0x7fffffff, 0x80000000u, 0xffffffffu, 0x100000000ull, 0x7fffffffffffffffull,
        0x8000000000000000ull, 0xffffffffffffffffull, 0xfffffffffffffff0ull,
    };
    size_t n = src->n, cap = src->n + 64;
    uint8_t *p = malloc(cap);
    memcpy(p, src->p, n);
    int edits = 1 + (int) (s_next() % 4);
    for (int e = 0; e < edits; e++) {
        switch (s_next() % 6) {
        case 0: case 1: /* bit flip */
            if (n) p[s_pos(n)] ^= (uint8_t) (1u << (s_next() % 8));
            break;
        case 2: case 3: { /* interesting integer over 1/2/4/8 bytes */
            size_t w = (size_t) 1 << (s_next() % 4);
            if (n < w)
                break;
            size_t at = s_pos(n - w + 1);
            uint64_t v = interesting[s_next() % (sizeof interesting / sizeof interesting[0])];
            if (s_next() & 1)
                v += (s_next() % 3) - 1;
            for (size_t i = 0; i < w; i++)
                p[at + i] = (uint8_t) (v >> (8 * i));
            break;
        }
        case 4: /* truncate */
            if (n) n = s_pos(n);
            break;
        case 5: { /* duplicate a short chunk into the tail slack */
            size_t len = 1 + (size_t) (s_next() % 16);
            if (n < len || n + len > cap)
                break;
            uint8_t chunk[16];
            size_t from = s_pos(n - len + 1), to = s_pos(n - len + 1);
            memcpy(chunk, p + from, len);
            memmove(p + to + len, p + to, n - to);
            memcpy(p + to, chunk, len);
            n += len;
            break;
        }
        }
    }
    /* exact-size buffer so over-reads are visible to sanitizers */
    uint8_t *q = malloc(n ? n : 1);
    memcpy(q, p, n);
    free(p);
    *out_n = n;
    return q;
}

int main(int argc, char **argv)
{
    double seconds = 10;
    long mutations = 100000;
    uint64_t seed = 1;
    int nfiles = 0;
    s_file_t *files = calloc((size_t) argc, sizeof *files);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--mutations") && i + 1 < argc)
            mutations = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--save-last") && i + 1 < argc)
            s_save_path = argv[++i];
        else if (!strcmp(argv[i], "--test-data") && i + 1 < argc) {
            char path[4096];
            int rc = sw_test_data_path(argv[++i], "a fuzz seed", path, sizeof path);
            if (rc < 0)
                return 1;
            if (rc == 0 && s_read(path, &files[nfiles]) != 0) {
                fprintf(stderr, "%s: cannot read %s\n", argv[0], path);
                return 1;
            }
            nfiles += rc == 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--seconds S] [--mutations N] [--seed X] [--save-last PATH] "
                            "[--test-data REL]... FILE...\n", argv[0]);
            return 1;
        } else if (s_read(argv[i], &files[nfiles]) != 0) {
            fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i]);
            return 1;
        } else {
            nfiles++;
        }
    }
    s_rng = seed * 0x9E3779B97F4A7C15ull + 1;
    double t0 = s_now();
    for (int i = 0; i < nfiles; i++) {
        uint8_t *q = malloc(files[i].n ? files[i].n : 1);
        memcpy(q, files[i].p, files[i].n);
        s_run(q, files[i].n);
        free(q);
    }
    long done = 0;
    while (nfiles > 0 && done < mutations && s_now() - t0 < seconds) {
        size_t n;
        uint8_t *q = s_mutate(&files[s_next() % (uint64_t) nfiles], &n);
        s_run(q, n);
        free(q);
        done++;
    }
    printf("fuzz driver: %d files, %ld mutations in %.1f s, no crash\n", nfiles, done, s_now() - t0);
    for (int i = 0; i < nfiles; i++)
        free(files[i].p);
    free(files);
    return 0;
}
