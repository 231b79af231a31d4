/*  sw_broker.h: the swisd broker: registry of live nodes, directory of
 *  stages, relay of frames between nodes, and the link to a parent broker.
 *
 *  One ROUTER socket bound at `bind`; stages, gateways and child brokers
 *  connect to it outbound. With `parent`, the broker is itself a node (role
 *  BROKER) of the parent and reports its region's stages every heartbeat;
 *  the parent answers with the other regions' stages, which this broker
 *  serves in DirectoryReply and uses for routing (see docs/protocol.md).
 *
 *  Routing of a frame with header dst D: D empty -> handled here; D a local
 *  node -> relayed to it; D known in a child's region (root) -> relayed to
 *  that child broker; otherwise -> up to the parent, or Error UNREACHABLE to
 *  the sender. Frames are relayed without decoding the body.
 *
 *  Thread safety: a broker runs in one thread (sw_broker_run).
 */
#ifndef SW_BROKER_H
#define SW_BROKER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *bind;        /* e.g. "tcp://0.0.0.0:5555" or "tcp://127.0.0.1:*" */
    const char *parent;      /* parent broker endpoint or NULL */
    const char *region;      /* NULL: "default" */
    const char *id;          /* NULL: random */
    int heartbeat_ms;        /* told to nodes in HelloAck; <= 0: 1000 */
    int expiry_ms;           /* silence before a node is forgotten; <= 0: 3500 */
    int max_nodes;           /* <= 0: 10000 */
} sw_broker_config_t;

typedef struct sw_broker_t sw_broker_t;

/*  Binds and (with a parent) connects. Returns NULL with a reason. */
sw_broker_t *sw_broker_new(const sw_broker_config_t *cfg, char *err, size_t errlen);
void sw_broker_destroy(sw_broker_t **self_p);

/*  The endpoint actually bound (a "*" port resolved). Borrowed. */
const char *sw_broker_endpoint(const sw_broker_t *self);
const char *sw_broker_id(const sw_broker_t *self);

/*  Serves until *stop becomes non-zero or the process is interrupted
 *  (SIGINT/SIGTERM). Returns 0. */
int sw_broker_run(sw_broker_t *self, volatile int *stop);

#ifdef __cplusplus
}
#endif
#endif
