/*  sw_planner.c: least-latency chain of stages (see sw_planner.h). */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_planner.h"

static double s_cost(const sw_plan_stage_t *s, int32_t i, int32_t j)
{
    const double link = s->link_ms > 0 ? s->link_ms : 1.0;
    const double per = s->ms_per_layer > 0 ? s->ms_per_layer : 1.0;
    const double load = 1.0 + (s->busy > 0 ? s->busy : 0) + s->queued / 4.0;
    return link + per * (double) (j - i) * load;
}

int sw_plan(const sw_plan_stage_t *stages, int n_stages, int32_t n_layer, sw_plan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    if (n_layer <= 0)
        return -1;
    double *best = malloc(sizeof(double) * (size_t) (n_layer + 1));
    int *hops = malloc(sizeof(int) * (size_t) (n_layer + 1));
    int *from = malloc(sizeof(int) * (size_t) (n_layer + 1));  /* previous boundary */
    int *via = malloc(sizeof(int) * (size_t) (n_layer + 1));   /* stage used */
    if (!best || !hops || !from || !via) {
        free(best), free(hops), free(from), free(via);
        return -1;
    }
    for (int32_t j = 0; j <= n_layer; j++) {
        best[j] = j == 0 ? 0 : INFINITY;
        hops[j] = 0;
        from[j] = via[j] = -1;
    }
    for (int32_t j = 1; j <= n_layer; j++)
        for (int32_t i = 0; i < j; i++) {
            if (!isfinite(best[i]))
                continue;
            for (int s = 0; s < n_stages; s++) {
                if (stages[s].begin > i || stages[s].end < j)
                    continue;
                const double c = best[i] + s_cost(&stages[s], i, j);
                const int h = hops[i] + 1;
                if (c < best[j] - 1e-9 || (fabs(c - best[j]) <= 1e-9 && h < hops[j])) {
                    best[j] = c;
                    hops[j] = h;
                    from[j] = i;
                    via[j] = s;
                }
            }
        }
    int rc = -1;
    if (isfinite(best[n_layer]) && hops[n_layer] <= SW_PLAN_MAX_HOPS) {
        plan->n_hops = hops[n_layer];
        plan->cost_ms = best[n_layer];
        for (int32_t j = n_layer, k = plan->n_hops - 1; j > 0; j = from[j], k--)
            plan->hops[k] = (sw_plan_hop_t){.stage = via[j], .begin = from[j], .end = j};
        rc = 0;
    } else {
        /* the first layer no stage holds, and where coverage resumes */
        int32_t g = 0;
        while (g < n_layer) {
            bool held = false;
            for (int s = 0; s < n_stages && !held; s++)
                held = stages[s].begin <= g && g < stages[s].end;
            if (!held)
                break;
            g++;
        }
        int32_t e = g;
        for (; e < n_layer; e++) {
            bool held = false;
            for (int s = 0; s < n_stages && !held; s++)
                held = stages[s].begin <= e && e < stages[s].end;
            if (held)
                break;
        }
        plan->gap_begin = g;
        plan->gap_end = e;
    }
    free(best), free(hops), free(from), free(via);
    return rc;
}

bool sw_plan_covers(const sw_plan_stage_t *stages, int n_stages, int32_t begin, int32_t end)
{
    for (int32_t l = begin; l < end; l++) {
        bool held = false;
        for (int s = 0; s < n_stages && !held; s++)
            held = stages[s].begin <= l && l < stages[s].end;
        if (!held)
            return false;
    }
    return true;
}

int sw_plan_gaps(const sw_plan_stage_t *stages, int n_stages, int32_t n_layer, char *buf, size_t buflen)
{
    int n = 0;
    size_t used = 0;
    if (buflen)
        buf[0] = 0;
    for (int32_t l = 0; l < n_layer;) {
        bool held = false;
        for (int s = 0; s < n_stages && !held; s++)
            held = stages[s].begin <= l && l < stages[s].end;
        if (held) {
            l++;
            continue;
        }
        int32_t e = l;
        while (e + 1 < n_layer) {
            bool h2 = false;
            for (int s = 0; s < n_stages && !h2; s++)
                h2 = stages[s].begin <= e + 1 && e + 1 < stages[s].end;
            if (h2)
                break;
            e++;
        }
        if (used < buflen) {
            int w = snprintf(buf + used, buflen - used, "%s%d-%d", n ? ", " : "", (int) l, (int) e);
            used += w > 0 ? (size_t) w : 0;
        }
        n++;
        l = e + 1;
    }
    return n;
}
