/*  sw_health.h: what the gateway knows of each stage's health.
 *
 *  A public swarm holds stages that crash, freeze, lie about their speed or
 *  swallow requests. The gateway keeps, per stage id:
 *  - admission: a stage is used for sessions only after it has answered one
 *    probe (a one-token forward pass over its layers sent by the gateway);
 *  - probation: a stage on a route whose step passed its deadline is not
 *    chosen again until it answers a probe (the gateway cannot tell which hop
 *    swallowed the step, so every hop of the route is probed; honest ones
 *    answer within one round trip);
 *  - back-off: a stage that raised a failure of its own (not overload, not a
 *    missing KV cache) is left out for 1 s, doubling per strike up to 64 s;
 *    at most one strike per stage per S_STRIKE_WINDOW, so one incident that
 *    hits many sessions at once counts once; strikes decay after a quiet
 *    minute;
 *  - measured speed: the probe's round trip over the stage's layers, used by
 *    the planner in place of an advertised speed that is lower.
 *
 *  Pure state: no sockets, no clock (every call takes now_ns, a monotonic
 *  time in ns). Bounded: at most SW_HEALTH_MAX stages; the entry seen least
 *  recently is reused. Look-ups by stage id go through a hash index (the
 *  planner asks about every stage of the directory on every plan); probe
 *  answers, which are rare, are matched by a scan. Thread safety: one
 *  thread.
 */
#ifndef SW_HEALTH_H
#define SW_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#define SW_HEALTH_MAX 1024            /* stages remembered */
#define SW_HEALTH_ID_MAX 64           /* bytes of a stage id (= SW_WIRE_MAX_ID) */
#define SW_HEALTH_PROBE_ID_MAX 40     /* bytes of a probe's session id */

typedef struct sw_health_t sw_health_t;

/*  What to do about one stage's probe, from sw_health_probe_due. */
typedef struct {
    char probe_id[SW_HEALTH_PROBE_ID_MAX + 1];  /* session id to send the probe under */
} sw_health_probe_t;

/*  A new, empty table. Returns NULL when out of memory. Caller destroys. */
sw_health_t *sw_health_new(void);
/*  Frees the table; accepts NULL and *self_p == NULL; sets *self_p = NULL. */
void sw_health_destroy(sw_health_t **self_p);

/*  True when the stage may be put on a new route at now_ns: admitted (it
 *  answered a probe), not on probation, not backed off. */
bool sw_health_usable(const sw_health_t *self, const char *id, uint64_t now_ns);

/*  Why a stage is not usable: "unprobed", "on probation", "backed off", or
 *  NULL when it is usable. Static strings. */
const char *sw_health_why_not(const sw_health_t *self, const char *id, uint64_t now_ns);

/*  The stage raised a failure of its own (an error that is not overload or
 *  a missing KV cache, a bad reply). Backs it off; a second strike within
 *  S_STRIKE_WINDOW of the last does not escalate. Returns the back-off in
 *  seconds now in force. */
int sw_health_strike(sw_health_t *self, const char *id, uint64_t now_ns);

/*  A step through the stage passed its deadline: probation until it answers
 *  a probe. The second such time-out without a completed real step through
 *  it in between (sw_health_alive) is also a strike (a stage may answer
 *  probes and swallow real work); returns true when it struck. */
bool sw_health_suspect(sw_health_t *self, const char *id, uint64_t now_ns);

/*  Whether a probe should be sent to the stage now (never probed, on
 *  probation, or its last measurement is older than the refresh period), and
 *  none is outstanding younger than the probe retry interval. When it returns
 *  true it has recorded the probe as sent at now_ns under a fresh id written
 *  to *out (made from `nonce`, a random number the caller draws). */
bool sw_health_probe_due(sw_health_t *self, const char *id, uint64_t now_ns, uint64_t nonce,
                         sw_health_probe_t *out);

/*  Looks up an outstanding (or recently superseded) probe by its session id.
 *  Returns the stage id (borrowed until the next call that changes the
 *  table) or NULL. */
const char *sw_health_probe_stage(const sw_health_t *self, const char *probe_id);

/*  The probe answered: clears probation and admits the stage. With
 *  n_layers > 0 and when probe_id is the stage's latest probe, also records
 *  its speed: (now_ns - time sent) in ms, less link_ms (the stage's own round
 *  trip to its broker, from the directory), per layer; n_layers <= 0 means
 *  alive but untimed (e.g. it answered "overloaded"). Returns the stage id
 *  (borrowed as above) or NULL for an unknown probe id. */
const char *sw_health_probe_answered(sw_health_t *self, const char *probe_id, int n_layers, double link_ms,
                                     uint64_t now_ns);

/*  A real step through the stage completed: it is alive (clears probation
 *  and the time-out count). */
void sw_health_alive(sw_health_t *self, const char *id, uint64_t now_ns);

/*  The stage's per-layer speed for planning, ms: the larger of `advertised`
 *  and the measured probe time per layer (the gateway trusts no stage to be
 *  faster than it measured). `*lied` (may be NULL) is set when the advertised
 *  figure is below a quarter of the measured one. */
float sw_health_ms_per_layer(const sw_health_t *self, const char *id, float advertised, bool *lied);

/*  Strikes now held by the stage (0 when unknown), for logs and tests. */
int sw_health_strikes(const sw_health_t *self, const char *id);

#endif
