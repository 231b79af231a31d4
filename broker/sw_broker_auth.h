/*  sw_broker_auth.h: who may connect to a broker and in which role: the
 *  broker's ZAP handler (ZeroMQ RFC 27) and its key lists.
 *
 *  A secure broker's ROUTER is a CURVE server (ZMQ RFC 26). libzmq asks the
 *  ZAP handler of its context (a socket bound at inproc://zeromq.zap.01)
 *  about every handshake; this handler answers from the broker's own loop
 *  (no thread) and replies with the client's Z85 public key as the ZAP user
 *  id, so every message of that connection carries it as the message property
 *  "User-Id" (sw_broker_auth_peer_key reads it). czmq's zauth cannot be used:
 *  with CURVE_ALLOW_ANY (the open policy) it replies with an empty user id,
 *  and the broker must know the key of every connection to bind ids to keys.
 *
 *  Policies (docs/security.md, "Running a swarm with keys"):
 *    open              any key completes the handshake (and may register as a
 *                      stage or client) unless denied
 *    allow DIR         only the keys of the public certificate files in DIR
 *                      (and of the gateway and broker lists) are accepted
 *    deny FILE         keys refused whatever the policy (a key list file:
 *                      Z85 keys or node ids), re-read when it changes
 *                      (checked every second by sw_broker_auth_tick); a
 *                      missing file is an empty list.
 *    gateways DIR      keys that may register as gateways
 *    brokers DIR       keys that may register as child brokers
 *    bans              the broker's runtime bans (sw_broker_bans.h: what
 *                      gateways banned), refused like the denylist's keys,
 *                      with the ban's end and reason in the log line
 *  The lists are sw_keyset sets (identity/sw_keyset.h: the folder and file
 *  formats, their limits, and how a change is picked up). Refusals are
 *  logged (rate-limited) with the key's node id and why.
 *
 *  Thread safety: one thread (the broker's).
 */
#ifndef SW_BROKER_AUTH_H
#define SW_BROKER_AUTH_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif


typedef struct {
    const char *allow_dir;     /* NULL: policy open */
    const char *deny_file;     /* NULL: no denylist */
    const char *gateways_dir;  /* NULL: no key may register as a gateway */
    const char *brokers_dir;   /* NULL: no key may register as a child broker */
    const char *log_name;      /* prefix of log lines, e.g. "broker 1a2b3c4d" (copied) */
    const struct sw_broker_bans_t *bans; /* NULL, or runtime bans refused at ZAP (borrowed: outlives the handler) */
    const uint8_t *also_allow; /* NULL, or one more key (32 bytes, copied) accepted under an allowlist: the
                                  process's own key, e.g. a gateway's HTTP front dialling its own RPC */
} sw_broker_auth_config_t;

typedef struct sw_broker_auth_t sw_broker_auth_t;

/*  Reads the lists and binds the ZAP handler in czmq's context (one per
 *  process: a second one fails with "address in use"). Call before the
 *  CURVE server socket is bound. Returns NULL with err set (a DIR that is not
 *  a readable folder, a ZAP endpoint already bound). Caller destroys. */
sw_broker_auth_t *sw_broker_auth_new(const sw_broker_auth_config_t *cfg, char *err, size_t errlen);
/*  Unbinds and frees; accepts NULL; sets *self_p = NULL. */
void sw_broker_auth_destroy(sw_broker_auth_t **self_p);

/*  The ZAP socket, for the broker's poller. */
zsock_t *sw_broker_auth_sock(sw_broker_auth_t *self);
/*  Answers the ZAP requests queued on the socket (never blocks). */
void sw_broker_auth_handle(sw_broker_auth_t *self);

/*  Watches the CURVE server socket for handshakes that fail before ZAP is
 *  asked (a plain client, a client with a wrong broker key, garbage bytes):
 *  libzmq reports those only as socket monitor events, which are logged
 *  (rate-limited) with their reason. Call once after the socket is bound.
 *  Returns 0 or -1 with err set. */
int sw_broker_auth_watch(sw_broker_auth_t *self, zsock_t *server, char *err, size_t errlen);
/*  The monitor socket for the poller (NULL before sw_broker_auth_watch). */
zsock_t *sw_broker_auth_monitor_sock(sw_broker_auth_t *self);
/*  Logs the monitor events queued (never blocks). */
void sw_broker_auth_handle_monitor(sw_broker_auth_t *self);
/*  Re-reads the denylist when it changed (at most once a second; call often).
 *  Returns true when it was re-read (the caller then drops nodes whose keys
 *  are now denied). */
bool sw_broker_auth_tick(sw_broker_auth_t *self);

/*  True when key (32 bytes) is denied. */
bool sw_broker_auth_denied(sw_broker_auth_t *self, const uint8_t key[32]);
/*  True when key may register as a gateway / as a child broker. */
bool sw_broker_auth_may_gateway(sw_broker_auth_t *self, const uint8_t key[32]);
bool sw_broker_auth_may_broker(sw_broker_auth_t *self, const uint8_t key[32]);

/*  The CURVE public key of the connection a received frame came from (its
 *  "User-Id" property set by this handler) into key[32]. Returns 0, or -1
 *  when the frame has none (a plain connection) or it is not a Z85 key. */
int sw_broker_auth_peer_key(zframe_t *frame, uint8_t key[32]);

/*  Counters since start: handshakes refused (denied or not allowed, or
 *  failed before ZAP), accepted. */
void sw_broker_auth_counts(const sw_broker_auth_t *self, uint64_t *refused, uint64_t *accepted);

#ifdef __cplusplus
}
#endif
#endif
