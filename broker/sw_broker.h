/*  sw_broker.h: the swisd broker: registry of live nodes, directory of
 *  stages, relay of frames between nodes, and the link to a parent broker.
 *
 *  One ROUTER socket bound at `bind` (ROUTER_MANDATORY, SNDTIMEO 0: a send
 *  never blocks the loop); stages, gateways and child brokers connect to it
 *  outbound with a DEALER (sw_broker_client). With `parent`, the broker is
 *  itself a node (role BROKER, its region) of the parent: every heartbeat it
 *  sends a DirectoryReport of the stages below it (its own and its children's)
 *  and caches the parent's DirectoryReply (every other region's stages) for
 *  its own DirectoryQuery answers.
 *
 *  Registry: node id <-> routing id, role, region, model, layers, caps,
 *  topic (from Hello), load (from Heartbeat), last heard. A node silent for
 *  expiry_ms is forgotten; it then gets ERROR_UNKNOWN_NODE and re-registers.
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
 *  stage/gateway/client is set to its registered node id (no spoofing);
 *  child brokers relay their nodes' src unchanged.
 *  Failures: a peer that vanished (EHOSTUNREACH) -> Error UNREACHABLE to S and
 *  the node is dropped; a full peer queue (EAGAIN) -> Error OVERLOADED to S.
 *  Malformed frames -> Error BAD_FRAME (or UNSUPPORTED_VERSION) to the sender;
 *  a non-Hello from an unregistered peer -> Error UNKNOWN_NODE.
 *
 *  Thread safety: a broker belongs to the thread that created it.
 */
#ifndef SW_BROKER_H
#define SW_BROKER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *bind;        /* e.g. "tcp://0.0.0.0:5555" or "tcp://127.0.0.1:*" (free port) */
    const char *parent;      /* parent broker endpoint or NULL (root) */
    const char *region;      /* NULL: "default" (<= 128 bytes) */
    const char *id;          /* NULL: random 128-bit hex (<= 64 bytes) */
    int heartbeat_ms;        /* told to nodes in HelloAck; <= 0: SW_BROKER_HEARTBEAT_MS */
    int expiry_ms;           /* silence before a node is forgotten; <= 0: SW_BROKER_EXPIRY_MS */
    int max_nodes;           /* registry bound; <= 0: 10000 */
    int hwm;                 /* ROUTER SNDHWM/RCVHWM in messages; <= 0: 10000 */
} sw_broker_config_t;

typedef struct sw_broker_t sw_broker_t;

/*  Binds and (with a parent) connects. Returns NULL with a reason (bad
 *  config, bind failure). Caller destroys result. */
sw_broker_t *sw_broker_new(const sw_broker_config_t *cfg, char *err, size_t errlen);
/*  Closes sockets and frees everything; accepts NULL; sets *self_p = NULL. */
void sw_broker_destroy(sw_broker_t **self_p);

/*  The endpoint actually bound (a "*" port resolved), e.g.
 *  "tcp://127.0.0.1:41234". Borrowed while the broker lives. */
const char *sw_broker_endpoint(const sw_broker_t *self);
/*  This broker's node id. Borrowed. */
const char *sw_broker_id(const sw_broker_t *self);
/*  Registered nodes (all roles, including child brokers). */
size_t sw_broker_node_count(const sw_broker_t *self);

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
