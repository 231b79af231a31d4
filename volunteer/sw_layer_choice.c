/*  sw_layer_choice.c: a volunteer's layers (see sw_layer_choice.h). */
#include "sw_layer_choice.h"

#include <stdlib.h>

/* Layers of the longest window starting at `start` whose bytes fit in cap,
 * at most `limit` layers. */
static int32_t s_fit_from(const uint64_t *bytes, int32_t start, int32_t limit, uint64_t cap)
{
    uint64_t used = 0;
    int32_t n = 0;
    while (n < limit && bytes[start + n] <= cap - used) {
        used += bytes[start + n];
        n++;
    }
    return n;
}

int sw_layer_choose(int32_t n_layer, const uint64_t *layer_bytes, const sw_layer_host_t *hosts, size_t n_hosts,
                    uint64_t mem_cap_bytes, sw_layer_pick_t *pick)
{
    if (n_layer < 1 || n_layer > SW_LAYER_CHOICE_MAX_LAYERS || !layer_bytes || !pick || (n_hosts && !hosts))
        return -1;
    int *count = calloc((size_t) n_layer, sizeof(int));   /* (n_layer,) hosts of each layer */
    double *spare = calloc((size_t) n_layer, sizeof(double)); /* (n_layer,) sum of (1 - busy) over its hosts */
    if (!count || !spare) {
        free(count);
        free(spare);
        return -1;
    }
    for (size_t i = 0; i < n_hosts; i++) {
        int32_t a = hosts[i].begin < 0 ? 0 : hosts[i].begin, b = hosts[i].end > n_layer ? n_layer : hosts[i].end;
        float busy = hosts[i].busy > 0 ? (hosts[i].busy < 1 ? hosts[i].busy : 1) : 0; /* NaN -> 0 too */
        for (int32_t l = a; l < b; l++) {
            count[l]++;
            spare[l] += 1.0 - busy;
        }
    }
    /* 2. the first longest run of uncovered layers */
    int32_t gap_a = -1, gap_len = 0;
    for (int32_t l = 0; l < n_layer;) {
        if (count[l]) {
            l++;
            continue;
        }
        int32_t e = l;
        while (e < n_layer && !count[e])
            e++;
        if (e - l > gap_len)
            gap_a = l, gap_len = e - l;
        l = e;
    }
    int rc = -1;
    if (gap_len > 0) {
        int32_t n = s_fit_from(layer_bytes, gap_a, gap_len, mem_cap_bytes);
        if (n > 0) {
            *pick = (sw_layer_pick_t){.begin = gap_a, .end = gap_a + n, .uncovered = n};
            rc = 0;
        }
    } else { /* 3. the window of the most layers that fit with the least spare capacity per layer */
        int32_t best = -1, best_n = 0;
        double best_spare = 0;
        for (int32_t s = 0; s < n_layer; s++) {
            int32_t n = s_fit_from(layer_bytes, s, n_layer - s, mem_cap_bytes);
            if (n == 0 || n < best_n)
                continue;
            double sum = 0;
            for (int32_t l = s; l < s + n; l++)
                sum += spare[l];
            if (best < 0 || n > best_n || sum / n < best_spare / best_n) {
                best = s, best_n = n, best_spare = sum;
            }
        }
        if (best >= 0) {
            *pick = (sw_layer_pick_t){.begin = best, .end = best + best_n, .uncovered = 0};
            rc = 0;
        }
    }
    free(count);
    free(spare);
    return rc;
}
