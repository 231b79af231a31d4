/*  sw_host_probe.c: cores, memory, disk, bandwidth (see sw_host_probe.h). */
#include "sw_host_probe.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "sw_common.h"

static int s_kb_line(const char *text, const char *key, uint64_t *bytes)
{
    const char *p = text;
    const size_t kl = strlen(key);
    while (p && *p) {
        if (!strncmp(p, key, kl) && p[kl] == ':') {
            char *end;
            unsigned long long kb = strtoull(p + kl + 1, &end, 10);
            if (end == p + kl + 1 || kb > (UINT64_MAX >> 10))
                return -1;
            *bytes = (uint64_t) kb << 10;
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

int sw_host_parse_meminfo(const char *text, uint64_t *available, uint64_t *total)
{
    if (!text || s_kb_line(text, "MemAvailable", available) != 0 || s_kb_line(text, "MemTotal", total) != 0)
        return -1;
    return 0;
}

/* Bytes per second reading a 64 MiB buffer (sum of 64-bit words). */
static double s_bandwidth(void)
{
    const size_t n = (64u << 20) / sizeof(uint64_t);
    uint64_t *buf = malloc(n * sizeof *buf);
    if (!buf)
        return 0;
    for (size_t i = 0; i < n; i++)
        buf[i] = i;
    volatile uint64_t sink = 0;
    uint64_t t0 = 0;
    for (int pass = 0; pass < 5; pass++) {
        if (pass == 1)
            t0 = sw_now_ns();
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i < n; i += 4)
            s0 += buf[i], s1 += buf[i + 1], s2 += buf[i + 2], s3 += buf[i + 3];
        sink += s0 + s1 + s2 + s3;
    }
    const uint64_t dt = sw_now_ns() - t0;
    free(buf);
    (void) sink;
    return dt ? 4.0 * (double) (n * sizeof(uint64_t)) / ((double) dt / 1e9) : 0;
}

int sw_host_probe(const char *cache_dir, int measure, sw_host_t *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    h->cores = c > 0 ? (int) c : 1;
    char text[8192];
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return sw_err(err, errlen, "cannot read /proc/meminfo");
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    if (sw_host_parse_meminfo(text, &h->mem_available, &h->mem_total) != 0)
        return sw_err(err, errlen, "/proc/meminfo has no MemAvailable/MemTotal (Linux >= 3.14 needed)");
    /* the nearest existing folder on the way to cache_dir */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", cache_dir && cache_dir[0] ? cache_dir : ".");
    struct statvfs vfs;
    while (statvfs(dir, &vfs) != 0) {
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir) {
            snprintf(dir, sizeof dir, "%s", slash == dir ? "/" : ".");
            if (statvfs(dir, &vfs) != 0)
                memset(&vfs, 0, sizeof vfs);
            break;
        }
        *slash = 0;
    }
    h->disk_free = (uint64_t) vfs.f_bavail * (uint64_t) vfs.f_frsize;
    if (measure)
        h->mem_bandwidth_Bps = s_bandwidth();
    return 0;
}
