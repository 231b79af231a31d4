/*  sw_link.h: a TCP proxy that emulates a wide-area link (delay, jitter,
 *  rate cap, connection drops) between two processes on one machine.
 *
 *  Why: this machine's kernel has no `tc netem`, so swisd brings its own WAN
 *  emulation to place brokers, stages and gateways "far apart" for demos,
 *  benchmarks and chaos tests. See docs/link-emulator.md for the user view.
 *
 *  Model (per connection, per direction; "up" = client->server, "down" =
 *  server->client). Bytes are read from the source socket in chunks ("packets")
 *  of at most 64 KiB, or, when a rate cap is set, of at most
 *  max(1500 bytes, 1 ms of wire time). A chunk read at time t_arr is
 *
 *      ser_end   = max(ser_end_prev, t_arr) + len / rate      (rate 0: + 0)
 *      deliver   = max(deliver_prev, ser_end + delay + jitter_sample)
 *
 *  i.e. it is serialised onto a wire of `rate` bytes/s behind earlier chunks
 *  (store and forward), then propagates for the one-way delay. jitter_sample
 *  is uniform in [-jitter, +jitter] per chunk, clamped so delay+jitter >= 0;
 *  the max() keeps bytes in order (TCP is ordered), so jitter can only add to
 *  the mean. A half-close (FIN) is delivered the same way after the last byte.
 *  Reading from the source stops while the direction buffers `buffer_bytes`
 *  or while the wire is more than `queue_ms` ahead of now (the bottleneck
 *  queue): that is backpressure into the sender's TCP buffers, never
 *  unbounded growth.
 *
 *  Drops emulate a peer that vanishes: both sockets are closed with
 *  SO_LINGER {1, 0}, so both peers see a TCP RST. `drop_after` counts bytes
 *  delivered in both directions together and the drop happens exactly when
 *  the budget is spent; `drop_prob` P is the probability that a connection is
 *  dropped within any given second (exponential lifetime with rate
 *  -ln(1-P) per second, sampled at accept from the seeded generator).
 *
 *  Threading: one thread runs the event loop (Linux epoll + timerfd). A
 *  sw_link_t is not thread-safe except sw_link_request(), which is also
 *  async-signal-safe.
 */
#ifndef SW_LINK_H
#define SW_LINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sw_link_t sw_link_t;

enum { SW_LINK_UP = 0, SW_LINK_DOWN = 1 };      /* direction index */

/*  Parameters of one direction. */
typedef struct {
    double delay_ms;    /* one-way propagation delay, ms, [0, 3600000] */
    double jitter_ms;   /* half-width of the uniform jitter, ms, [0, 3600000] */
    double rate_Bps;    /* wire rate, bytes/s; 0 = unlimited */
} sw_link_dir_conf_t;

/*  Whole configuration. Fill with sw_link_conf_defaults, then sw_link_conf_set. */
typedef struct {
    char listen[256];               /* "HOST:PORT" or "[V6]:PORT"; port 0 = pick a free one */
    char connect[256];              /* "HOST:PORT" each accepted connection is relayed to */
    sw_link_dir_conf_t dir[2];      /* [SW_LINK_UP], [SW_LINK_DOWN] */
    uint64_t drop_after;            /* bytes delivered (both directions) before RST; 0 = never */
    double drop_prob;               /* per-second drop probability, [0, 1); 0 = never */
    uint64_t seed;                  /* PRNG seed for jitter and random drops */
    size_t buffer_bytes;            /* max bytes buffered per direction per connection */
    double queue_ms;                /* max wire backlog (rate cap only) before reading pauses, ms */
    char control[108];              /* Unix socket path for run-time commands; "" = none */
} sw_link_conf_t;

/*  Counters since sw_link_new. All plain totals. */
typedef struct {
    uint64_t accepted;        /* client connections accepted */
    uint64_t active;          /* connections open now */
    uint64_t closed;          /* ended by FIN in both directions */
    uint64_t dropped_budget;  /* reset by the emulator: drop_after reached */
    uint64_t dropped_random;  /* reset by the emulator: drop_prob fired, or "reset-all" */
    uint64_t failed;          /* upstream connect failed (client was reset) */
    uint64_t aborted;         /* a peer reset or errored; the other side was reset */
    uint64_t bytes_up;        /* bytes delivered client->server */
    uint64_t bytes_down;      /* bytes delivered server->client */
} sw_link_stats_t;

/*  Requests for sw_link_request. */
enum { SW_LINK_REQ_STOP = 1, SW_LINK_REQ_STATS = 2 };

/*  Fills conf with defaults: no delay, no jitter, no rate cap, no drops,
 *  seed 1, buffer 16 MiB, queue 10 ms, no control socket, empty addresses. */
void sw_link_conf_defaults(sw_link_conf_t *conf);

/*  Sets one parameter from text, with the same names as the command-line
 *  options (without "--"):
 *    listen, connect, control            address text (see conf fields)
 *    delay, jitter                       ms (may be fractional), both directions
 *    up-delay, down-delay, up-jitter, down-jitter   ms, one direction
 *    rate, up-rate, down-rate            bytes/s, or with a unit: B, kB|k, MB|M,
 *                                        GB|G (x1000), KiB, MiB, GiB, bit, kbit,
 *                                        mbit, gbit (bits/s, x1000), kbps|mbps|gbps
 *                                        (tc style: bytes/s x1000); 0 = unlimited
 *    drop-after, buffer                  bytes, optional k|M|G or KiB|MiB|GiB
 *    drop-prob                           probability per second, [0, 1)
 *    seed                                unsigned 64-bit integer
 *    queue                               ms
 *  Returns 0, or -1 with a reason in err for an unknown key or a malformed or
 *  out-of-range value (conf unchanged then). */
int sw_link_conf_set(sw_link_conf_t *conf, const char *key, const char *value, char *err, size_t errlen);

/*  Creates the link: resolves both addresses, binds and listens (and the
 *  control socket, when set). Does not connect upstream until a client
 *  arrives. conf is copied. Returns NULL with a reason in err on failure.
 *  Caller destroys the result with sw_link_destroy. */
sw_link_t *sw_link_new(const sw_link_conf_t *conf, char *err, size_t errlen);

/*  Closes every socket (open connections are closed without RST) and frees.
 *  Accepts NULL and *self_p == NULL; sets *self_p to NULL. */
void sw_link_destroy(sw_link_t **self_p);

/*  Local TCP port the link listens on (useful with port 0), host order. */
int sw_link_port(const sw_link_t *self);

/*  Runs the event loop until SW_LINK_REQ_STOP is requested. Prints stats to
 *  stderr on each SW_LINK_REQ_STATS. Returns 0 on a requested stop, -1 on an
 *  unrecoverable epoll/timer error (logged). */
int sw_link_run(sw_link_t *self);

/*  Asks the running loop to stop or to print stats. Async-signal-safe and
 *  thread-safe (an atomic flag and a write to an eventfd). */
void sw_link_request(sw_link_t *self, int req);

/*  Copies the counters into *out. Call from the loop thread or after run. */
void sw_link_stats(const sw_link_t *self, sw_link_stats_t *out);

/*  Formats the counters as one line (no newline) into buf[0..len).
 *  Returns buf. */
char *sw_link_stats_format(const sw_link_stats_t *st, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
