/*  sw_broker.h: the swisd broker: registry of live nodes, directory of
 *  stages, relay of frames between nodes, and the link to a parent broker.
 *
 *  One ROUTER socket bound at `bind` (ROUTER_MANDATORY, SNDTIMEO 0: a send
 *  never blocks the loop); stages, gateways and child brokers connect to it
 *  outbound with a DEALER (sw_broker_client). With `parent`, the broker is
 *  itself a node (role BROKER, its region) of the parent: every heartbeat it
 *  sends a DirectoryReport of the stages below it (its own and its children's)
 *  and of the ids of its other nodes (gateways, clients, child brokers and the
 *  nodes those reported; at most SW_WIRE_MAX_STAGES of each), and caches the
 *  parent's DirectoryReply (every other region's stages) for its own
 *  DirectoryQuery answers.
 *
 *  Registry: node id <-> routing id, role, region, model, layers, caps,
 *  topic (from Hello), load (from Heartbeat), last heard. A node silent for
 *  expiry_ms is forgotten; it then gets ERROR_UNKNOWN_NODE and re-registers.
 *
 *  Ownership of ids (docs/reliability.md, "Attacks on the broker"): a node id
 *  is bound to the connection (ZeroMQ routing id) that registered it until
 *  that registration expires or the node says Goodbye, and only frames from
 *  that connection count for it (heartbeats, Goodbye, relays). A Hello for
 *  the id from another connection gets Error UNAUTHORIZED, unless the
 *  holder's connection is gone (a probe send fails with EHOSTUNREACH: the
 *  node restarted), then the new connection takes the id. Also refused with
 *  UNAUTHORIZED: this broker's id, the parent's id, an id a child broker
 *  reported.
 *  A Hello whose role is not stage, gateway, broker or client gets
 *  BAD_REQUEST.
 *
 *  Routing of a frame with header {src S, dst D, hops H} (docs/protocol.md):
 *    D "" or this broker's id -> handled here (Hello, Heartbeat, Goodbye,
 *      DirectoryQuery, DirectoryReport; anything else -> Error BAD_REQUEST);
 *    D a local node          -> relayed to it with hops H+1;
 *    D below a child broker  -> relayed to that child (known from the child's
 *      reports, or learned from frames the child sent up with src D);
 *    otherwise               -> up to the parent; at the root, or for a frame
 *      that came down from the parent, Error UNREACHABLE to S.
 *  H+1 > SW_WIRE_MAX_HOPS -> Error UNREACHABLE. A frame is never sent back to
 *  the child it came from. Bodies are never decoded on the relay path; the
 *  body frame is moved into ZeroMQ without a copy. The src of frames from a
 *  stage/gateway/client is set to its registered node id (no spoofing).
 *  Child brokers relay their nodes' src unchanged, but only for ids nobody
 *  else holds: a src that is a node registered here, this broker's or the
 *  parent's id, an id another child broker reported, or a stage that the
 *  parent's directory lists (outside this broker's subtree) gets Error
 *  UNAUTHORIZED to the child and the frame is dropped; the
 *  same ids in a child's DirectoryReport are ignored (a report cannot steal
 *  a route).
 *  Failures: a peer that vanished (EHOSTUNREACH) -> Error UNREACHABLE to S and
 *  the node is dropped; a full peer queue (EAGAIN) -> the frame is dropped and
 *  counted for that peer, and S gets Error OVERLOADED at most once per second
 *  per sender. A peer whose queue stays full for expiry_ms (it does not read)
 *  is dropped from the registry. Malformed frames -> Error BAD_FRAME (or
 *  UNSUPPORTED_VERSION) to the sender; a non-Hello from an unregistered peer
 *  -> Error UNKNOWN_NODE. A body addressed to the broker itself is refused
 *  before unpacking when larger than 64 KiB (8 MiB for a child's
 *  DirectoryReport); directory queries and reports past 200 per second from
 *  one node get OVERLOADED.
 *
 *  The loop never blocks on a peer: the ROUTER has SNDTIMEO 0, the parent
 *  link too. Lines a peer can make repeat are rate-limited (sw_log_limited:
 *  one per second per kind, "(N similar suppressed)"); every 5 s with
 *  activity one INFO line sums up drops and refusals (sw_broker_stats).
 *
 *  Keys (docs/security.md): with an identity the ROUTER is a CURVE server and
 *  the broker answers ZAP itself (sw_broker_auth.h: open or allowlist policy,
 *  denylist, gateway and broker lists). A Hello is refused with UNAUTHORIZED
 *  and a logged reason when its connection has no CURVE key, when the key is
 *  denied, when the node id claimed is not the key's fingerprint
 *  (sw_identity_id_matches), or when the role is gateway or broker and the key
 *  is not on that role's list. When the denylist changes, registered nodes
 *  whose keys it now holds are told UNAUTHORIZED and dropped at once (within
 *  a second); their connections can no longer register.
 *
 *  Bans (docs/security.md, "Bans that reach every broker"): a BanNotice from
 *  a registered gateway, or the own frame (hops 0) of the parent or of a
 *  child broker, is checked (sw_broker_ban_check) and merged into the
 *  runtime bans (sw_broker_bans.h); when it changed them, a registered node
 *  with that id is told UNAUTHORIZED and dropped, and the notice goes on to
 *  the parent and to every child broker but the one it came from. From
 *  anyone else it is refused with UNAUTHORIZED, and a notice that fails the
 *  checks with BAD_REQUEST; both logged. A banned key is refused at ZAP, a
 *  banned id at Hello, until the ban ends (looked at every second).
 *  A child broker that registers is sent every ban held, and so is the
 *  parent when this broker registers there.
 *
 *  Thread safety: a broker belongs to the thread that created it.
 */
#ifndef SW_BROKER_H
#define SW_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_identity.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *bind;        /* e.g. "tcp://0.0.0.0:5555" or "tcp://127.0.0.1:*" (free port) */
    const char *parent;      /* parent broker endpoint or NULL (root) */
    const char *region;      /* NULL: "default" (<= 128 bytes) */
    const char *display_name; /* NULL: none; sent to the parent beside the id (sw_broker_client.h) */
    const char *id;          /* insecure only; NULL: random 128-bit hex (<= 64 bytes). With an identity
                                the id is the key's fingerprint and this must be NULL */
    const sw_identity_t *identity; /* the broker's key (borrowed for the broker's life); NULL: insecure
                                (plain TCP, no authentication: only behind an explicit --insecure) */
    const char *allow_dir;   /* secure: NULL = policy open, else the allowlist folder (sw_broker_auth.h) */
    const char *deny_file;   /* secure: denylist file re-read while running; NULL: none */
    const char *gateways_dir; /* secure: keys that may register as gateways; NULL: none may */
    const char *brokers_dir; /* secure: keys that may register as child brokers; NULL: none may */
    const char *ban_state;   /* file of the bans gateways sent (sw_broker_bans.h), read at start and rewritten
                                on every change; NULL: kept in memory only */
    int heartbeat_ms;        /* told to nodes in HelloAck; <= 0: SW_BROKER_HEARTBEAT_MS */
    int expiry_ms;           /* silence before a node is forgotten; <= 0: SW_BROKER_EXPIRY_MS */
    int max_nodes;           /* registry bound; <= 0: 10000 */
    int hwm;                 /* ROUTER SNDHWM/RCVHWM in messages; <= 0: 10000 */
} sw_broker_config_t;

typedef struct sw_broker_t sw_broker_t;

/*  Counters since the broker started (all are event counts). */
typedef struct {
    uint64_t dropped_full;     /* frames dropped because the next hop's queue was full */
    uint64_t overloaded_sent;  /* OVERLOADED errors sent to senders (<= 1 per sender per second) */
    uint64_t hello_refused;    /* Hellos refused (id held elsewhere, reserved id, bad role, registry full) */
    uint64_t claims_refused;   /* ids a child broker claimed (src or report) that others hold */
    uint64_t bad_frames;       /* malformed frames and bodies received */
    uint64_t requests_limited; /* directory queries/reports over the per-node rate */
    uint64_t evicted_full;     /* nodes dropped because their queue stayed full (not reading) */
} sw_broker_stats_t;

/*  Binds and (with a parent) connects. Returns NULL with a reason (bad
 *  config, bind failure). Caller destroys result. */
sw_broker_t *sw_broker_new(const sw_broker_config_t *cfg, char *err, size_t errlen);
/*  Closes sockets and frees everything; accepts NULL; sets *self_p = NULL. */
void sw_broker_destroy(sw_broker_t **self_p);

/*  The endpoint actually bound (a "*" port resolved), e.g.
 *  "tcp://127.0.0.1:41234", followed by "#KEY" (the broker's Z85 public key,
 *  sw_endpoint.h) when it is secure: what a node dials. Borrowed while the
 *  broker lives. */
const char *sw_broker_endpoint(const sw_broker_t *self);
/*  This broker's node id. Borrowed. */
const char *sw_broker_id(const sw_broker_t *self);
/*  Registered nodes (all roles, including child brokers). */
size_t sw_broker_node_count(const sw_broker_t *self);

/*  Copies the counters into *out (see sw_broker_stats_t). */
void sw_broker_stats(const sw_broker_t *self, sw_broker_stats_t *out);

/*  Waits up to max_wait_ms (and never past the next timer) for traffic,
 *  handles what arrived (bounded batch) and the timers (expiry, heartbeats
 *  and reports to the parent). Returns 0, or -1 when the ZeroMQ context was
 *  terminated. A signal interrupting the wait returns 0. */
int sw_broker_step(sw_broker_t *self, int max_wait_ms);

/*  Calls sw_broker_step until *stop (may be NULL) becomes non-zero, czmq's
 *  zsys_interrupted is set, or the context terminates. Returns 0. */
int sw_broker_run(sw_broker_t *self, volatile int *stop);

#ifdef __cplusplus
}
#endif
#endif
