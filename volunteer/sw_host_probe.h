/*  sw_host_probe.h: what a volunteer's machine has to give: cores, memory
 *  available, free disk, and a measured memory bandwidth.
 *
 *  Sources (proc(5), statvfs(3)): cores = sysconf(_SC_NPROCESSORS_ONLN);
 *  memory available = MemAvailable of /proc/meminfo (the kernel's estimate of
 *  what can be allocated without swapping, Linux >= 3.14); free disk =
 *  f_bavail * f_frsize of the cache folder's file system (what an
 *  unprivileged user may fill). Bandwidth: bytes read per second summing a
 *  buffer of 64 MiB (four passes after a warm-up; larger than any cache
 *  here), the figure that bounds a memory-bound decode step (one read of a
 *  layer's weights per token): est. ms per layer = layer bytes / bandwidth.
 *  The stage measures its real per-layer time again once loaded
 *  (Capabilities.ms_per_layer).
 *
 *  Thread safety: pure reads of the system; sw_host_probe takes ~0.1 s.
 */
#ifndef SW_HOST_PROBE_H
#define SW_HOST_PROBE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int cores;                 /* online CPUs */
    uint64_t mem_available;    /* bytes (MemAvailable) */
    uint64_t mem_total;        /* bytes (MemTotal) */
    uint64_t disk_free;        /* bytes free to us on the cache folder's file system */
    double mem_bandwidth_Bps;  /* measured reads, bytes/s (0 when not measured) */
} sw_host_t;

/*  Fills h. cache_dir: the folder whose file system's free space counts (it
 *  need not exist yet: its nearest existing parent is used); measure: also
 *  measure the bandwidth. Returns 0, or -1 with a reason when /proc/meminfo
 *  cannot be read. */
int sw_host_probe(const char *cache_dir, int measure, sw_host_t *h, char *err, size_t errlen);

/*  MemAvailable and MemTotal parsed from the text of /proc/meminfo (values in
 *  kB there). Returns 0, or -1 when either line is missing or malformed. */
int sw_host_parse_meminfo(const char *text, uint64_t *available, uint64_t *total);

#endif
