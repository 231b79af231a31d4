/*  sw_bootstrap.h: a volunteer's starting point: a list of regional brokers
 *  (with their public keys) and of the models the swarm serves, read from a
 *  file or a URL, and the choice of the broker with the lowest round trip.
 *
 *  Format (JSON, UTF-8, at most SW_BOOTSTRAP_MAX_BYTES):
 *    {
 *      "brokers": [ {"endpoint": "tcp://HOST:PORT#Z85KEY", "region": "eu"}, ... ],   1..32 entries
 *      "models":  [ {"id": "stories260K", "manifest": "URL or path",
 *                    "signer": "64 hex digits: the manifest's signing key"}, ... ] 0..32 entries
 *    }
 *  or, as the daemons' --bootstrap FILE (packaging/etc/bootstrap.txt), plain
 *  text: one endpoint per line, blank lines and lines starting with '#'
 *  skipped, no models (any text whose first non-blank byte is not '{').
 *  "endpoint" is sw_endpoint.h's text (the key after '#' is required when the
 *  volunteer has a key); "region" is optional (<= 32 bytes); every "models"
 *  field is optional but "id". A model with "manifest" (a signed manifest,
 *  fetch/sw_manifest.h, by http(s) URL or path) and "signer" (the Ed25519 key
 *  it must be signed by, `swisd manifest --show-signer`) can be fetched by
 *  URL: a volunteer without --model serves the one of them the swarm needs most. Unknown
 *  members are ignored (later additions).
 *
 *  Round trip (sw_bootstrap_pick): every broker is dialled at once as a
 *  client (sw_broker_client: TCP connect, CURVE handshake, Hello/HelloAck);
 *  a broker's figure is the time from dialling to its HelloAck, which counts
 *  the same number of round trips for every broker, so the order is the
 *  order of their round trips. A broker that does not answer within the
 *  time-out is not chosen.
 *
 *  Thread safety: none (one thread); libcurl's global init is done once by
 *  the first URL load (curl_global_init is not thread-safe: call the first
 *  load before starting threads).
 */
#ifndef SW_BOOTSTRAP_H
#define SW_BOOTSTRAP_H

#include <stddef.h>

#include "sw_identity.h"

#define SW_BOOTSTRAP_MAX_BYTES (1u << 20) /* a longer file or body is refused */
#define SW_BOOTSTRAP_MAX_BROKERS 32
#define SW_BOOTSTRAP_MAX_MODELS 32

typedef struct {
    char endpoint[400];  /* "tcp://HOST:PORT#KEY" */
    char region[33];     /* "" when not given */
    double rtt_ms;       /* dial to HelloAck, ms, after sw_bootstrap_pick; < 0: no answer */
} sw_bootstrap_broker_t;

typedef struct {
    char id[129];        /* model id */
    char manifest[1024]; /* URL or path of its manifest, "" when not given */
    char signer[65];     /* hex key of the manifest's signer, "" when not given */
} sw_bootstrap_model_t;

typedef struct sw_bootstrap_t sw_bootstrap_t;

/*  Reads the list from source with sw_fetch_text (fetch/sw_fetch_text.h):
 *  "http://" and "https://" URLs through libcurl (time-out timeout_s,
 *  redirects followed up to 5, a status other than 200 refused), "file://PATH"
 *  or anything else as a file path; at most SW_BOOTSTRAP_MAX_BYTES. Returns NULL with a
 *  reason (unreadable, too large, not JSON, a field missing, too long or of
 *  the wrong type, a bad endpoint). Caller destroys. */
sw_bootstrap_t *sw_bootstrap_load(const char *source, int timeout_s, char *err, size_t errlen);

/*  Parses the JSON text (len bytes, need not be NUL-terminated); `name`
 *  labels errors. Same returns as sw_bootstrap_load. */
sw_bootstrap_t *sw_bootstrap_parse(const char *name, const char *text, size_t len, char *err, size_t errlen);
void sw_bootstrap_destroy(sw_bootstrap_t **self_p);

size_t sw_bootstrap_n_brokers(const sw_bootstrap_t *self);
/*  Broker i (borrowed until destroy), or NULL when out of range. */
const sw_bootstrap_broker_t *sw_bootstrap_broker(const sw_bootstrap_t *self, size_t i);
size_t sw_bootstrap_n_models(const sw_bootstrap_t *self);
const sw_bootstrap_model_t *sw_bootstrap_model(const sw_bootstrap_t *self, size_t i);

/*  Measures every broker's round trip (see above) within timeout_ms, as
 *  `identity` (borrowed; NULL: plain TCP) and returns the index of the
 *  fastest that answered, or -1 with a reason when none did. Each broker's
 *  rtt_ms is set. Watches zsys_interrupted. */
int sw_bootstrap_pick(sw_bootstrap_t *self, const sw_identity_t *identity, int timeout_ms, char *err, size_t errlen);

#endif
