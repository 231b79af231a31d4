/*  sw_rate.h: a token bucket that caps a byte rate (a volunteer's
 *  --upload-kbps on a stage's outgoing activations, --download-kbps on
 *  fetches).
 *
 *  The classic token bucket (Turner 1986; RFC 2697 uses the same meter):
 *  tokens, in bytes, grow at `rate` bytes/s up to `burst` bytes. A sender
 *  spends the size of what it sends (sw_rate_spend) and may overdraw: the
 *  balance goes negative and sw_rate_wait_ns says how long until it is back
 *  to zero; sending nothing more until then keeps the long-run rate at most
 *  rate bytes/s, whatever the message sizes (a message is delayed, never
 *  split or dropped). Over any interval of T seconds the bytes spent are at
 *  most burst + rate * T + the largest message.
 *
 *  Units: kbps are kilobits per second (1 kbps = 1000 bit/s = 125 bytes/s),
 *  as link speeds are quoted. Times are sw_now_ns() values passed in by the
 *  caller (pure: unit-testable with any clock).
 *
 *  A value type (no allocation): zero-initialise, then sw_rate_init.
 *  Thread safety: one thread per bucket.
 */
#ifndef SW_RATE_H
#define SW_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    double rate_Bps;     /* bytes per second; 0 = no cap */
    double burst_bytes;  /* most tokens held: what may go out at once after a pause */
    double tokens;       /* balance in bytes; negative = debt to wait out */
    uint64_t last_ns;    /* time of the last update, ns (sw_now_ns clock) */
} sw_rate_t;

/*  Sets a cap of kbps kilobits per second (0 = none) with a burst of 1/8 s
 *  of the rate (at least 1500 bytes, one Ethernet frame), starting full at
 *  now_ns. */
void sw_rate_init(sw_rate_t *r, uint32_t kbps, uint64_t now_ns);

/*  True when the bucket caps anything (kbps > 0). */
bool sw_rate_enabled(const sw_rate_t *r);

/*  Spends `bytes` sent at now_ns (may leave a debt). No-op without a cap. */
void sw_rate_spend(sw_rate_t *r, size_t bytes, uint64_t now_ns);

/*  Nanoseconds until the balance is back to >= 0 at now_ns (0: send now).
 *  Always 0 without a cap. */
uint64_t sw_rate_wait_ns(sw_rate_t *r, uint64_t now_ns);

#endif
