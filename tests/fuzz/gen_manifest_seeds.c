/*  gen_manifest_seeds.c: seeds of fuzz_manifest: OUTDIR/manifest.bin (0x00
 *  + a manifest of models/stories260K.gguf signed with the node secret key
 *  32 x 0x07) and OUTDIR/range_*.bin (0x01 + a Range value).
 *  usage: gen_manifest_seeds OUTDIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_manifest.h"

static int s_write(const char *dir, const char *name, const void *p, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        perror(path);
        return -1;
    }
    return fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    uint8_t key[32];
    memset(key, 7, sizeof key);
    char err[512], tmp[1024];
    sw_manifest_t *m = sw_manifest_build(SWISD_SOURCE_DIR "/models/stories260K.gguf",
                                         "http://127.0.0.1:8080/models/stories260K.gguf", 1, key, err, sizeof err);
    snprintf(tmp, sizeof tmp, "%s/manifest.json", argv[1]);
    if (!m || sw_manifest_save(m, tmp, err, sizeof err) != 0) {
        fprintf(stderr, "gen_manifest_seeds: %s\n", err);
        return 1;
    }
    sw_manifest_destroy(&m);
    FILE *f = fopen(tmp, "rb");
    char *buf = malloc(1 << 20);
    size_t n = f && buf ? fread(buf + 1, 1, (1 << 20) - 1, f) : 0;
    if (f)
        fclose(f);
    if (!n)
        return 1;
    buf[0] = 0;
    int rc = s_write(argv[1], "manifest.bin", buf, n + 1);
    free(buf);
    const char *ranges[] = {"bytes=0-99", "bytes=100-", "bytes=-10", "bytes=0-1,5-6", "bytes=18446744073709551615-"};
    for (int i = 0; i < 5; i++) {
        char name[32], val[64];
        snprintf(name, sizeof name, "range_%d.bin", i);
        val[0] = 1;
        size_t k = strlen(ranges[i]);
        memcpy(val + 1, ranges[i], k);
        rc |= s_write(argv[1], name, val, k + 1);
    }
    return rc ? 1 : 0;
}
