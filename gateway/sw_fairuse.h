/*  sw_fairuse.h: per-address fair-use meters (token buckets) for the HTTP API.
 *
 *  A bounded table of client addresses. Each address has its own entry,
 *  keyed by the whole address (4 bytes of IPv4 or 16 of IPv6), holding:
 *    - n_meters token buckets ("meters": requests, generated tokens, reads of
 *      the dashboard endpoints, ... as the caller configures them);
 *    - the number of the address's generations in progress.
 *  No two addresses ever share an entry, so one address's traffic never
 *  resets or spends another's budget.
 *
 *  Token bucket (one meter of one address):
 *    level(t) = min(burst, level(t0) + rate * (t - t0))
 *  A new address starts with every level at its burst. A take of cost c is
 *  allowed when level >= need and subtracts c; the level may go below zero
 *  (an overdraft: a generation charged after it ran), which the address repays
 *  by waiting. The wait until a take of need would pass is
 *    (need - level) / rate  seconds.
 *
 *  Bounded memory: at most `capacity` addresses. An entry is dropped only when
 *  it is indistinguishable from a fresh one: every meter refilled to its burst
 *  and no generation in progress. When the table is full, a new address makes
 *  the table scan for such entries (at most once per sweep_every_s); when none
 *  can be dropped the new address is refused (SW_FAIRUSE_FULL), and no one's
 *  bucket is ever reset to make room.
 *
 *  Time is injected: every call takes `now` in seconds (any monotonic origin),
 *  so tests drive the clock. Hash: keyed by a seed (pick it at random) so
 *  clients cannot aim their addresses at one chain.
 *
 *  Thread safety: none; the caller serializes (sw_http holds its mutex).
 */
#ifndef SW_FAIRUSE_H
#define SW_FAIRUSE_H

#include <stddef.h>
#include <stdint.h>

#define SW_FAIRUSE_MAX_METERS 4
#define SW_FAIRUSE_MAX_CAPACITY (1u << 24)

typedef struct {
    double rate;  /* units refilled per second, > 0 */
    double burst; /* bucket size in units, > 0; a new address starts full */
} sw_fairuse_meter_t;

typedef struct {
    size_t capacity;      /* addresses tracked at once, 1..SW_FAIRUSE_MAX_CAPACITY; 0: 65536 */
    int n_meters;         /* 1..SW_FAIRUSE_MAX_METERS */
    sw_fairuse_meter_t meters[SW_FAIRUSE_MAX_METERS];
    uint64_t seed;        /* hash key; random in production, fixed in tests */
    double sweep_every_s; /* when full: least seconds between two scans for entries to drop; <= 0: 1 */
} sw_fairuse_config_t;

typedef struct {
    uint8_t bytes[16]; /* the address in network order: IPv4 in bytes[0..4), IPv6 in bytes[0..16) */
    uint8_t len;       /* 4 or 16 */
} sw_fairuse_addr_t;

typedef enum {
    SW_FAIRUSE_OK = 0,   /* allowed; the costs were taken */
    SW_FAIRUSE_WAIT = 1, /* a meter is short: *wait_s says for how long */
    SW_FAIRUSE_BUSY = 2, /* the address has max_active generations in progress */
    SW_FAIRUSE_FULL = 3, /* a new address and no room: every tracked address is still in use */
} sw_fairuse_result_t;

typedef struct sw_fairuse_t sw_fairuse_t;

/*  A table for cfg. Returns NULL with a reason in err for a bad config
 *  (capacity, meter count, a rate or burst not > 0) or out of memory.
 *  Memory: about 72 bytes per address of capacity, allocated up front.
 *  Caller destroys result. */
sw_fairuse_t *sw_fairuse_new(const sw_fairuse_config_t *cfg, char *err, size_t errlen);
void sw_fairuse_destroy(sw_fairuse_t **self_p);

/*  Asks for one request of addr at time now (seconds).
 *  need, cost: n_meters values each (NULL: all 0): the request passes when
 *  every meter m holds at least need[m]; it then takes cost[m] from each.
 *  max_active: 0 for a request that is not a generation; > 0 for one that
 *  starts a generation, allowed while fewer than max_active of the address's
 *  are in progress (end it with sw_fairuse_end).
 *  Returns SW_FAIRUSE_OK, or WAIT with *wait_s (seconds, > 0; wait_s may be
 *  NULL), BUSY, or FULL; on anything but OK nothing was taken. */
sw_fairuse_result_t sw_fairuse_take(sw_fairuse_t *self, const sw_fairuse_addr_t *addr, const double *need,
                                    const double *cost, int max_active, double now, double *wait_s);

/*  Ends one generation of addr (started by an OK take with max_active > 0)
 *  and charges cost units to meter (0..n_meters-1; the level may go
 *  negative). Does nothing for an address that has no generation running. */
void sw_fairuse_end(sw_fairuse_t *self, const sw_fairuse_addr_t *addr, int meter, double cost, double now);

/*  Addresses tracked now. */
size_t sw_fairuse_size(const sw_fairuse_t *self);

/*  Level of meter m of addr at now: burst for an address not tracked. */
double sw_fairuse_level(const sw_fairuse_t *self, const sw_fairuse_addr_t *addr, int meter, double now);

/*  Changes meter m (0..n_meters-1) at run time (an operator's new limits):
 *  rate and burst must be > 0. Every address keeps its level, cut to the new
 *  burst at its next take. Returns 0, or -1 with a reason in err. */
int sw_fairuse_set_meter(sw_fairuse_t *self, int m, sw_fairuse_meter_t meter, char *err, size_t errlen);

/*  Meter m's rate and burst now ({0, 0} for a bad m). */
sw_fairuse_meter_t sw_fairuse_meter(const sw_fairuse_t *self, int m);

#endif
