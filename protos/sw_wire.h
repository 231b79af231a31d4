/*  sw_wire.h: framing, limits and validation of swisd.v1 messages on ZeroMQ.
 *
 *  A message is a ZeroMQ multipart message (docs/protocol.md, "Framing"):
 *    1. [ROUTER sockets only] the peer's routing id (added/removed by ZeroMQ)
 *    2. header: a packed swisd.v1.Header (<= SW_WIRE_MAX_HEADER bytes)
 *    3. body:   a packed swisd.v1.Body   (<= SW_WIRE_MAX_FRAME bytes)
 *  Brokers parse only the header and relay the body frame unchanged.
 *
 *  Limits are enforced before anything is allocated from a peer's word:
 *  sockets get ZMQ_MAXMSGSIZE = SW_WIRE_MAX_FRAME (sw_wire_socket_setup),
 *  frames are size-checked before protobuf-c unpacks them (unpack allocates in
 *  proportion to its input), and every field is validated after unpacking
 *  (sw_wire_validate_body): proto3 cannot tell an absent scalar from 0.
 *
 *  Thread safety: functions are reentrant; a zsock_t belongs to one thread.
 */
#ifndef SW_WIRE_H
#define SW_WIRE_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "body.pb-c.h"
#include "sw_codec.h"
#include "common.pb-c.h"
#include "directory.pb-c.h"
#include "forward.pb-c.h"
#include "node.pb-c.h"
#include "rpc.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SW_WIRE_VERSION_MAJOR 1
#define SW_WIRE_VERSION_MINOR 0
#define SW_WIRE_MAX_FRAME (64u << 20)  /* bytes of one body frame */
#define SW_WIRE_MAX_HEADER 1024        /* bytes of one header frame */
#define SW_WIRE_MAX_HOPS 8             /* brokers one message may cross */
#define SW_WIRE_MAX_ROUTE 64           /* hops in a ForwardRequest route */
#define SW_WIRE_MAX_TOKENS 4096        /* tokens in one forward step */
#define SW_WIRE_MAX_ID 64              /* bytes of a node, session or broker id */
#define SW_WIRE_MAX_NAME 128           /* bytes of a model id, region, topic, checksum */
#define SW_WIRE_MAX_DISPLAY_NAME 32    /* bytes of a node's display name (printable ASCII) */
#define SW_WIRE_MAX_COMMITMENT (160u << 10) /* bytes of a sealed commitment (4096 rows: 131,160) */
#define SW_WIRE_MAX_TEXT 1024          /* bytes of an error message or reason */
#define SW_WIRE_MAX_BAN_REASON 200     /* bytes of a BanNotice's reason */
#define SW_WIRE_MAX_PROMPT (1u << 20)  /* bytes of a prompt */
#define SW_WIRE_MAX_PROMPT_PARTS 4096  /* parts of a templated prompt */
#define SW_WIRE_MAX_STAGES 4096        /* entries in a directory */
#define SW_WIRE_MAX_GEN_TOKENS 65536   /* max_tokens of one GenerateRequest */

/*  One received message. Fields are owned by the struct; free with
 *  sw_wire_msg_free. */
typedef struct {
    zframe_t *identity;          /* ROUTER: the peer's routing id; NULL on DEALER */
    Swisd__V1__Header *header;   /* unpacked header; NULL if it was malformed */
    zframe_t *body_frame;        /* the raw body frame (relay it as is) */
    Swisd__V1__Body *body;       /* set by sw_wire_body */
} sw_wire_msg_t;

/*  Sets LINGER (linger_ms), MAXMSGSIZE (SW_WIRE_MAX_FRAME), SNDHWM and RCVHWM
 *  (hwm messages), SNDTIMEO 0 (a send to a peer whose queue is full fails at
 *  once with EAGAIN instead of blocking the caller's event loop: callers count
 *  it as a drop) and, for ROUTER sockets, ROUTER_MANDATORY. */
void sw_wire_socket_setup(zsock_t *sock, int linger_ms, int hwm);

/*  Receives one message (blocking; poll first). `router` says whether the
 *  socket is a ROUTER (then frame 1 is the identity). Checks the frame count
 *  and sizes, unpacks and validates the header (version, id lengths, hops).
 *  Returns 0, or -1 with *code set to a swisd.v1 ErrorCode and the reason in
 *  err; msg then holds whatever could be read (identity and, if it parsed,
 *  the header) so the caller can answer with an Error. Either way the caller
 *  frees msg. */
int sw_wire_recv(zsock_t *sock, bool router, sw_wire_msg_t *msg, int *code, char *err, size_t errlen);

/*  Unpacks and validates the body (sw_wire_validate_body) once; returns it
 *  (owned by msg) or NULL with *code and err set. */
const Swisd__V1__Body *sw_wire_body(sw_wire_msg_t *msg, int *code, char *err, size_t errlen);

/*  Frees everything msg holds and zeroes it; accepts a zeroed msg. */
void sw_wire_msg_free(sw_wire_msg_t *msg);

/*  Checks a body's fields against the protocol's limits (string lengths,
 *  route length, token counts, activation shape fields, directory sizes).
 *  Returns 0 or -1 with the reason. Codec-level checks (payload sizes,
 *  checksum) belong to sw_codec. */
/*  True when s is NULL, empty, or at most SW_WIRE_MAX_DISPLAY_NAME bytes of
 *  printable ASCII (0x20..0x7e): a node's display name (Hello.display_name),
 *  which dashboards and logs show as is, so no control or escape bytes. */
bool sw_wire_display_name_ok(const char *s);

int sw_wire_validate_body(const Swisd__V1__Body *body, char *err, size_t errlen);

/*  Packs and sends header {version, src, dst, hops} + body. identity
 *  (borrowed, may be NULL) is sent first for ROUTER sockets.
 *  Returns 0, or -1 if the body exceeds the limits or the send fails
 *  (EHOSTUNREACH on a ROUTER_MANDATORY socket when the peer is gone). */
int sw_wire_send(zsock_t *sock, zframe_t *identity, const char *src, const char *dst, uint32_t hops,
                 const Swisd__V1__Body *body);

/*  A packed Header frame {version, src, dst, hops}; NULL if it would exceed
 *  SW_WIRE_MAX_HEADER (ids too long). Caller destroys the frame. */
zframe_t *sw_wire_header_frame(const char *src, const char *dst, uint32_t hops);

/*  Activation message fields <-> codec header (sw_codec.h). to_msg points
 *  the message's payload at payload (borrowed, not copied). */
void sw_wire_activation_to_msg(const sw_codec_header_t *hdr, const void *payload, size_t len,
                               Swisd__V1__Activation *msg);
void sw_wire_activation_from_msg(const Swisd__V1__Activation *msg, sw_codec_header_t *hdr);

/*  Re-sends a received body frame unchanged behind a new header (relay).
 *  body_frame is borrowed (duplicated for the send). Returns 0 or -1. */
int sw_wire_relay(zsock_t *sock, zframe_t *identity, const char *src, const char *dst, uint32_t hops,
                  zframe_t *body_frame);

/*  Sends an Error body. message is printf-formatted and truncated to
 *  SW_WIRE_MAX_TEXT bytes. Returns 0 or -1. */
int sw_wire_send_error(zsock_t *sock, zframe_t *identity, const char *src, const char *dst, int code,
                       const char *session_id, uint64_t request_id, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/*  Name of a Body's message kind for logs ("forward_request", ...). */
const char *sw_wire_kind_name(const Swisd__V1__Body *body);

/*  Short name of an ErrorCode ("KV_MISSING", ...). */
const char *sw_wire_error_name(int code);

/*  Fills id with a random 128-bit node id as 32 hex digits (id: >= 33 bytes). */
void sw_wire_new_id(char *id, size_t len);

#ifdef __cplusplus
}
#endif
#endif
