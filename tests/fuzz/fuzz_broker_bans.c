/*  fuzz_broker_bans.c: fuzz target for a broker's ban-state file
 *  (broker/sw_broker_bans.h), which a restarted broker reads back.
 *
 *  Input layout: byte 0 bit 0 selects the rules (1: a secure broker, 0: an
 *  --insecure one); the rest is the file. Besides not crashing: a file that
 *  is accepted must come back the same after the set rewrites it (one more
 *  ban applied, then the file read again holds one more ban): what the
 *  broker writes it can read. abort() when not.
 *  Build with libFuzzer (-Dfuzz=true, clang) or with fuzz_main.c (the test
 *  suite runs the latter over tests/fuzz/broker_bans_seeds).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sw_broker_bans.h"
#include "sw_common.h"

#define NOW 1800000000ull /* the wall clock the file is read at (2027-01-15) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char s_dir[200]; /* the temporary folder of the file, removed at exit */

static void s_cleanup(void)
{
    char p[256];
    snprintf(p, sizeof p, "%s/bans.txt", s_dir);
    unlink(p);
    rmdir(s_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[256];
    if (!path[0]) {
        snprintf(s_dir, sizeof s_dir, "%s/swisd-fuzz-bans-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(s_dir))
            abort();
        snprintf(path, sizeof path, "%s/bans.txt", s_dir);
        atexit(s_cleanup);
        setenv("SWISD_LOG", "error", 0); /* before the first log line: the level is read once */
    }
    if (size < 1 || size > (1u << 20))
        return 0;
    const bool secure = data[0] & 1;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data + 1, 1, size - 1, f) != size - 1)
        abort();
    fclose(f);
    char err[512];
    sw_broker_bans_t *bs = sw_broker_bans_new(path, secure, NOW, "fuzz", err, sizeof err);
    if (!bs)
        return 0;
    const size_t n = sw_broker_bans_count(bs);
    sw_broker_ban_t b;
    memset(&b, 0, sizeof b);
    snprintf(b.id, sizeof b.id, "fedcba9876543210");
    b.until_unix_s = NOW + 1000;
    b.issued_unix_ms = NOW * 1000 + 1;
    const int rc = sw_broker_bans_find(bs, b.id, NOW) ? 0 : sw_broker_bans_apply(bs, &b, NOW, err, sizeof err);
    const size_t want = n + (rc == 1);
    sw_broker_bans_destroy(&bs);
    bs = sw_broker_bans_new(path, secure, NOW, "fuzz", err, sizeof err);
    if (!bs || sw_broker_bans_count(bs) != want || (rc >= 0 && !sw_broker_bans_find(bs, "fedcba9876543210", NOW)))
        abort(); /* a file it wrote that it cannot read back */
    sw_broker_bans_destroy(&bs);
    unlink(path);
    return 0;
}
