/*  sw_route.c: a session's route and avoid list (see sw_route.h). */
#include "sw_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sw_route_t {
    int n_hops;
    sw_route_hop_t hops[SW_PLAN_MAX_HOPS];
    double cost_ms;                                   /* planner's expected step time, ms */
    char avoid[SW_ROUTE_MAX_AVOID][SW_ROUTE_ID_MAX + 1]; /* ring of avoided stage ids */
    int n_avoid;                                      /* entries ever added (ring index = n % MAX) */
};

sw_route_t *sw_route_new(void)
{
    return calloc(1, sizeof(sw_route_t));
}

void sw_route_destroy(sw_route_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

bool sw_route_avoids(const sw_route_t *self, const char *id)
{
    const int n = self->n_avoid < SW_ROUTE_MAX_AVOID ? self->n_avoid : SW_ROUTE_MAX_AVOID;
    for (int k = 0; k < n; k++)
        if (!strcmp(self->avoid[k], id))
            return true;
    return false;
}

int sw_route_choose(sw_route_t *self, const sw_route_view_t *view)
{
    self->n_hops = 0;
    self->cost_ms = 0;
    const int n = view->n_usable > 0 ? view->n_usable : 0;
    /* the usable stages reordered: the ones not avoided first; idx maps back to the view */
    sw_plan_stage_t *st = malloc(sizeof *st * (size_t) (n ? n : 1));
    int *idx = malloc(sizeof *idx * (size_t) (n ? n : 1));
    if (!st || !idx) {
        free(st);
        free(idx);
        return -2;
    }
    int m = 0, n_clear = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            const char *id = view->usable[i].node_id;
            if (!id || strlen(id) > SW_ROUTE_ID_MAX)
                continue;
            if (sw_route_avoids(self, id) == (pass == 0))
                continue;
            st[m] = view->usable[i];
            idx[m++] = i;
            if (pass == 0)
                n_clear++;
        }
    sw_plan_t plan;
    int rc = -1;
    if ((n_clear < m && sw_plan(st, n_clear, view->n_layer, &plan) == 0) || sw_plan(st, m, view->n_layer, &plan) == 0)
        rc = 0;
    if (rc == 0) {
        self->n_hops = plan.n_hops;
        self->cost_ms = plan.cost_ms;
        for (int i = 0; i < plan.n_hops; i++) {
            sw_route_hop_t *h = &self->hops[i];
            const int k = idx[plan.hops[i].stage];
            snprintf(h->id, sizeof h->id, "%s", view->usable[k].node_id);
            h->begin = plan.hops[i].begin;
            h->end = plan.hops[i].end;
            h->codec = view->inbound ? view->inbound[k] : view->codec;
        }
    }
    free(st);
    free(idx);
    return rc;
}

int sw_route_n_hops(const sw_route_t *self)
{
    return self->n_hops;
}

const sw_route_hop_t *sw_route_hop(const sw_route_t *self, int i)
{
    return i >= 0 && i < self->n_hops ? &self->hops[i] : NULL;
}

int sw_route_find(const sw_route_t *self, const char *id)
{
    for (int i = 0; id && i < self->n_hops; i++)
        if (!strcmp(self->hops[i].id, id))
            return i;
    return -1;
}

double sw_route_cost_ms(const sw_route_t *self)
{
    return self->cost_ms;
}

bool sw_route_all_live(const sw_route_t *self, const sw_route_view_t *view, int *gone_hop)
{
    for (int h = 0; h < self->n_hops; h++) {
        bool live = false;
        for (int i = 0; i < view->n_live && !live; i++)
            live = view->live[i].node_id && !strcmp(view->live[i].node_id, self->hops[h].id);
        if (!live) {
            if (gone_hop)
                *gone_hop = h;
            return false;
        }
    }
    return true;
}

void sw_route_clear(sw_route_t *self)
{
    self->n_hops = 0;
    self->cost_ms = 0;
}

void sw_route_avoid_hops(sw_route_t *self)
{
    for (int i = 0; i < self->n_hops; i++)
        snprintf(self->avoid[self->n_avoid++ % SW_ROUTE_MAX_AVOID], SW_ROUTE_ID_MAX + 1, "%s", self->hops[i].id);
}
