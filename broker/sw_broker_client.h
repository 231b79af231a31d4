/*  sw_broker_client.h: a node's (stage's, gateway's, client broker's) link to
 *  its broker.
 *
 *  One DEALER socket connected outbound to the broker (so the node works
 *  behind NAT). The client registers with Hello, re-sends it until a HelloAck
 *  arrives and again whenever the broker answers ERROR_UNKNOWN_NODE (broker
 *  restarted, or the node was expired after a pause), sends a Heartbeat every
 *  heartbeat_ms with the load the owner reports, and measures the round trip
 *  from HeartbeatAcks. Messages for the application are handed back by
 *  sw_broker_client_recv; registration traffic is handled inside, and only
 *  when the broker itself sent it (header hops 0: whatever another node sends
 *  through the broker arrives with hops >= 1), so no node can forge a
 *  HelloAck, HeartbeatAck or UNKNOWN_NODE to us. If the broker refuses our
 *  Hello with UNAUTHORIZED (our id is still held by our previous connection),
 *  the Hello is re-sent every retry period until the broker frees the id.
 *  The broker counts as alive while frames it relayed (hops >= 1) or its own
 *  frames (src = the id of its HelloAck) arrive; other answers from its
 *  endpoint (a process that took a dead broker's port) do not keep the node
 *  from moving to the next broker. Lines a peer can make repeat (malformed
 *  messages) are rate-limited.
 *
 *  Use: add sw_broker_client_sock() to your poller; when it is readable call
 *  sw_broker_client_recv; call sw_broker_client_tick at least every
 *  sw_broker_client_timeout_ms() milliseconds.
 *
 *  Thread safety: one thread (the socket's owner).
 */
#ifndef SW_BROKER_CLIENT_H
#define SW_BROKER_CLIENT_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "sw_identity.h"
#include "sw_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/*  Liveness defaults (docs/protocol.md "Registration"); the broker's HelloAck
 *  overrides heartbeat and expiry for its nodes. */
#define SW_BROKER_HEARTBEAT_MS 1000     /* node -> broker Heartbeat period */
#define SW_BROKER_EXPIRY_MS 3500        /* silence after which a node is forgotten */
#define SW_BROKER_HELLO_RETRY_MS 1000   /* Hello re-sent until acknowledged */
#define SW_BROKER_HWM 1000              /* SNDHWM/RCVHWM of node sockets, messages */
#define SW_BROKER_GOODBYE_LINGER_MS 200 /* time a destroy waits to flush the Goodbye */
#define SW_BROKER_HANDSHAKE_MS 3000     /* unregistered this long after dialing: say why it may be */
#define SW_BROKER_HANDSHAKE_IVL_MS 2000 /* ZMQ_HANDSHAKE_IVL of node sockets */

typedef struct {
    const char *endpoint;                     /* broker, e.g. "tcp://127.0.0.1:5555#KEY" (sw_endpoint.h); or a
                                                 comma-separated list of up to 8 brokers of the region: the
                                                 next is used when the current one falls silent. With an
                                                 identity every endpoint must carry the broker's key */
    const sw_identity_t *identity;            /* our key (borrowed for the client's life): the link is CURVE,
                                                 and the node id is the key's fingerprint unless node_id is
                                                 set (a broker refuses a mismatch: tests use that). NULL:
                                                 plain TCP (--insecure) */
    Swisd__V1__Role role;                     /* ROLE_STAGE, ROLE_GATEWAY, ROLE_BROKER */
    const char *node_id;                      /* NULL: the key's fingerprint, or a random id when insecure */
    const char *region;                       /* NULL: "default" */
    const char *display_name;                 /* NULL or "": none; else shown beside the id (Hello.display_name:
                                                 <= SW_WIRE_MAX_DISPLAY_NAME bytes of printable ASCII) */
    const Swisd__V1__ModelRef *model;         /* copied; NULL if none */
    uint32_t layer_begin, layer_end;          /* stages: [begin, end) */
    const Swisd__V1__Capabilities *caps;      /* copied; NULL if none */
    int heartbeat_ms;                         /* <= 0: 1000 */
} sw_broker_client_config_t;

typedef struct sw_broker_client_t sw_broker_client_t;

/*  Creates the socket (DEALER, SNDTIMEO 0: sends never block), connects and
 *  sends the first Hello. The broker assigns the routing id; the node id is
 *  carried in Hello and in every header's src.
 *  Returns NULL with a reason (no endpoint, id/region too long, a bad
 *  display name, a stage
 *  without model or layers, connect failure). Caller destroys result. */
sw_broker_client_t *sw_broker_client_new(const sw_broker_client_config_t *cfg, char *err, size_t errlen);
/*  Sends Goodbye (best effort) and closes; accepts NULL; sets *self_p = NULL. */
void sw_broker_client_destroy(sw_broker_client_t **self_p);

zsock_t *sw_broker_client_sock(sw_broker_client_t *self);
const char *sw_broker_client_id(const sw_broker_client_t *self);
/*  True once a HelloAck arrived (and no UNKNOWN_NODE since). A secure
 *  client still unregistered SW_BROKER_HANDSHAKE_MS after dialing a broker
 *  logs (rate-limited) that the broker did not complete the CURVE handshake
 *  or refused us: a wrong broker key, or our key not allowed there (a client
 *  cannot see a failed handshake itself: ZeroMQ retries it silently). */
bool sw_broker_client_registered(const sw_broker_client_t *self);
/*  Last measured round trip to the broker in ms (0 before the first ack). */
double sw_broker_client_rtt_ms(const sw_broker_client_t *self);
/*  The broker's id and region from its HelloAck ("" before). */
const char *sw_broker_client_broker_id(const sw_broker_client_t *self);
const char *sw_broker_client_broker_region(const sw_broker_client_t *self);
/*  How many times a HelloAck (re-)registered this node (1 after the first). */
uint64_t sw_broker_client_registrations(const sw_broker_client_t *self);

/*  Sets the load reported in the next heartbeats (copied). */
void sw_broker_client_set_load(sw_broker_client_t *self, const Swisd__V1__Load *load);
/*  Sends a Heartbeat (with the load last set) now, when registered, so a
 *  change such as Load.draining reaches the directory before the next
 *  interval; the schedule of later heartbeats is unchanged. */
void sw_broker_client_heartbeat_now(sw_broker_client_t *self);
/*  Changes the announced layer range (stages with --layers auto) and
 *  re-registers. */
void sw_broker_client_set_layers(sw_broker_client_t *self, uint32_t begin, uint32_t end);

/*  Receives one message (call when the socket is readable; returns 0 at once
 *  when nothing is queued). Returns 1 when msg holds a validated message for
 *  the application (header and body set; caller frees msg with
 *  sw_wire_msg_free), 0 when the message was registration traffic handled
 *  here (from the broker: HelloAck, HeartbeatAck, Error UNKNOWN_NODE ->
 *  Hello again, Error UNAUTHORIZED while unregistered -> Hello retried; from
 *  another node: any of those kinds, dropped), or a malformed frame (logged,
 *  rate-limited, and answered with an Error to the header's src when it
 *  parsed); msg is then empty. -1 if the receive was interrupted. Other
 *  errors (e.g. UNREACHABLE from the broker) are returned to the
 *  application. */
int sw_broker_client_recv(sw_broker_client_t *self, sw_wire_msg_t *msg);

/*  Blocks until the broker acknowledged this node (or timeout_ms passed),
 *  handling registration traffic and discarding any application message that
 *  arrives meanwhile. For tools and tests that only need to be registered
 *  before they act; daemons poll the socket in their own loop instead.
 *  Returns true when registered. */
bool sw_broker_client_wait_registered(sw_broker_client_t *self, int timeout_ms);

/*  Sends Hello / Heartbeat when due. */
void sw_broker_client_tick(sw_broker_client_t *self);
/*  Milliseconds until the next tick is needed (for the poller's timeout). */
int sw_broker_client_timeout_ms(const sw_broker_client_t *self);

/*  Sends a body to node dst ("" = the broker itself) through the broker.
 *  Returns 0 or -1 (queue full or socket error). */
int sw_broker_client_send(sw_broker_client_t *self, const char *dst, const Swisd__V1__Body *body);
/*  Sends an Error to dst (message printf-formatted, <= SW_WIRE_MAX_TEXT). */
int sw_broker_client_send_error(sw_broker_client_t *self, const char *dst, int code, const char *session_id,
                                uint64_t request_id, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*  Relay mode (for child brokers): sw_broker_client_recv returns messages
 *  whose header dst is neither "" nor this node's id with msg->body == NULL
 *  (the body frame is not decoded), so they can be relayed unchanged. */
void sw_broker_client_set_relay_mode(sw_broker_client_t *self, bool on);

/*  Sends a raw body frame behind a header {src, dst, hops} (src NULL = this
 *  node). Takes the frame: on success *body_frame is NULL (moved into ZeroMQ,
 *  no copy); on failure (-1, errno EAGAIN when the queue is full) the caller
 *  still owns it. Used by brokers to relay upward and by tests to send
 *  arbitrary bodies. */
int sw_broker_client_relay(sw_broker_client_t *self, const char *src, const char *dst, uint32_t hops,
                           zframe_t **body_frame);


#ifdef __cplusplus
}
#endif
#endif
