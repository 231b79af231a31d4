/*  sw_route.h: one session's route through the swarm (the chain of stages its
 *  steps go through) and its avoid list.
 *
 *  A route is chosen by the planner (sw_planner.h) over the stages the
 *  gateway may use now (admitted, not on probation, not backed off: see
 *  sw_health.h), first without the stages this session has on its avoid
 *  list; only when the swarm cannot cover every layer without them are they
 *  allowed back. The avoid list is a ring of the last SW_ROUTE_MAX_AVOID
 *  stage ids that were on routes whose step passed its deadline (which hop
 *  swallowed it is unknown, so every hop goes on the list).
 *
 *  Each hop also carries the activation codec of the link into it: the
 *  stage's own announced choice when the gateway can build it, else the
 *  gateway's codec (the caller resolves this into sw_route_view_t.inbound).
 *
 *  Pure state: no sockets, no clock. Thread safety: one thread per object.
 */
#ifndef SW_ROUTE_H
#define SW_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "sw_codec.h"
#include "sw_planner.h"

#define SW_ROUTE_MAX_AVOID 8     /* stage ids on one session's avoid list (ring) */
#define SW_ROUTE_ID_MAX 64       /* bytes of a stage id (= SW_WIRE_MAX_ID) */

/*  What the swarm offers right now, as the gateway sees it. Every pointer is
 *  borrowed for the duration of the call it is passed to. */
typedef struct {
    const sw_plan_stage_t *usable;      /* (n_usable) stages that may go on a new route now */
    const sw_codec_config_t *inbound;   /* (n_usable) codec of the link into each usable stage;
                                           NULL: `codec` for all */
    int n_usable;
    const sw_plan_stage_t *live;        /* (n_live) every live stage of the model, usable or not (gaps
                                           in errors, and whether a hop left the swarm) */
    int n_live;
    int32_t n_layer;                    /* layers of the model, > 0 */
    sw_codec_config_t codec;            /* the gateway's own link codec */
} sw_route_view_t;

/*  One hop of a route. */
typedef struct {
    char id[SW_ROUTE_ID_MAX + 1];       /* stage node id, NUL-terminated */
    int32_t begin, end;                 /* layers it runs, [begin, end) */
    sw_codec_config_t codec;            /* codec of the link into it */
} sw_route_hop_t;

typedef struct sw_route_t sw_route_t;

/*  An empty route with an empty avoid list. NULL when out of memory. Caller
 *  destroys. */
sw_route_t *sw_route_new(void);
/*  Frees; accepts NULL and *self_p == NULL; sets *self_p = NULL. */
void sw_route_destroy(sw_route_t **self_p);

/*  Chooses a route over view->usable (avoided stages left out when the rest
 *  still covers every layer). Returns 0 and replaces the hops, -1 when no
 *  chain covers every layer (hops cleared), -2 when out of memory (hops
 *  cleared). Stage ids longer than SW_ROUTE_ID_MAX are never chosen. */
int sw_route_choose(sw_route_t *self, const sw_route_view_t *view);

/*  Hops of the current route (0: none). */
int sw_route_n_hops(const sw_route_t *self);
/*  Hop i, 0 <= i < n_hops (borrowed until the route changes); NULL out of range. */
const sw_route_hop_t *sw_route_hop(const sw_route_t *self, int i);
/*  Index of the hop run by stage `id`, or -1. */
int sw_route_find(const sw_route_t *self, const char *id);
/*  The planner's expected decode step time of the current route, ms (0: none). */
double sw_route_cost_ms(const sw_route_t *self);
/*  True when every hop is in view->live (by id). */
bool sw_route_all_live(const sw_route_t *self, const sw_route_view_t *view, int *gone_hop);

/*  Forgets the hops (the avoid list stays). */
void sw_route_clear(sw_route_t *self);
/*  Puts every current hop on the avoid list (the oldest entries drop out). */
void sw_route_avoid_hops(sw_route_t *self);
/*  True when stage `id` is on the avoid list. */
bool sw_route_avoids(const sw_route_t *self, const char *id);

#endif
