/*  sw_http_swarm.h: the swarm part of the dashboard's JSON (GET /api/swarm
 *  of the HTTP front, gateway/sw_http): the gateway, its model, stages with
 *  layers, load and latency, sessions, gaps, recent generations and the
 *  gateway's totals, from the gateway's SwarmStatusReply (sw_client_swarm).
 *  The shape is docs/protocol.md, "Dashboard JSON" (web/src reads it);
 *  sw_http adds the HTTP front's counters and the time to it.
 *
 *  Thread safety: a pure function of its argument.
 */
#ifndef SW_HTTP_SWARM_H
#define SW_HTTP_SWARM_H

#include "sw_client.h"

/*  The object {"gateway", "gateway_key", "model", "servable", "history",
 *  "gateway_totals", "unsealed_replies_total", "gaps", "stages",
 *  "sessions"} of w, as compact JSON
 *  text (caller frees), or NULL when out of memory. An entry (stage,
 *  session) whose strings are not valid UTF-8 (a peer's ids are outside
 *  input; jansson refuses them) is left out. */
char *sw_http_swarm_json(const sw_client_swarm_t *w);

#endif
