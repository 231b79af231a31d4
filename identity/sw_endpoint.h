/*  sw_endpoint.h: a broker's address with its public key, and bootstrap files.
 *
 *  Endpoint syntax (what a node dials):
 *      tcp://HOST:PORT#KEY
 *    HOST  a name or IPv4 address of [A-Za-z0-9.-_] (1..253 characters), or an
 *          IPv6 address in brackets, [0-9A-Fa-f:.%] inside (e.g. [::1])
 *    PORT  decimal 1..65535, no sign, no leading zero
 *    KEY   the broker's CURVE public key: 40 characters of the Z85 alphabet
 *          (ZMQ RFC 32) that decode to 32 bytes
 *  "#KEY" may be left out only when the caller does not require a key
 *  (the --insecure mode); then has_key is false. Whole string at most
 *  SW_ENDPOINT_MAX_TEXT bytes; nothing may follow the key.
 *
 *  Bootstrap file: UTF-8 text, one endpoint per line; a line whose first
 *  non-blank character is '#' is a comment; blank lines are skipped; spaces and
 *  tabs around an endpoint are ignored; CR LF line ends are accepted. At most
 *  SW_ENDPOINT_MAX_FILE bytes and SW_ENDPOINT_MAX_LINE bytes per line.
 *  Example:
 *      # the two brokers of the lab
 *      tcp://10.0.0.2:5556#fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}CY
 *      tcp://[fd00::3]:5556#fs/gyRwa3732Du8@77iI+L@0FpLS^zoz+ele4}CY
 *
 *  Errors: one line in err (no newline): the input (or FILE:LINE) and why.
 *  Thread safety: reentrant; no global state.
 */
#ifndef SW_ENDPOINT_H
#define SW_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct _sw_identity_t; /* sw_identity.h */

#ifdef __cplusplus
extern "C" {
#endif

#define SW_ENDPOINT_MAX_TEXT 320        /* bytes of "tcp://HOST:PORT#KEY" */
#define SW_ENDPOINT_MAX_ADDR 272        /* bytes of "tcp://HOST:PORT", NUL included */
#define SW_ENDPOINT_MAX_HOST 253        /* characters of HOST (brackets included) */
#define SW_ENDPOINT_MAX_FILE 65536      /* bytes of a bootstrap file */
#define SW_ENDPOINT_MAX_LINE 512        /* bytes of one bootstrap line */
#define SW_ENDPOINT_MAX_ENTRIES 64      /* endpoints in a bootstrap file */

/*  One parsed endpoint. */
typedef struct {
    char addr[SW_ENDPOINT_MAX_ADDR];  /* "tcp://HOST:PORT", what zmq_connect takes */
    char host[SW_ENDPOINT_MAX_HOST + 1]; /* HOST as written (IPv6 with its brackets) */
    uint16_t port;                    /* 1..65535 */
    bool has_key;                     /* a "#KEY" part was given */
    char server_txt[41];              /* KEY in Z85 (40 characters), "" without a key */
    uint8_t server_key[32];           /* KEY decoded; zeros without a key */
} sw_endpoint_t;

/*  Parses text (NUL-terminated, any bytes) into *out. require_key: fail when
 *  there is no "#KEY". Returns 0, or -1 with err set and *out zeroed. */
int sw_endpoint_parse(const char *text, bool require_key, sw_endpoint_t *out, char *err, size_t errlen);

/*  Parses bootstrap text (len bytes, need not be NUL-terminated; a NUL byte
 *  is an error) into out[0..max). `name` names the source in errors (a file
 *  path). Every endpoint must carry a key when require_key. Fails on the first
 *  bad line, on more than min(max, SW_ENDPOINT_MAX_ENTRIES) endpoints, and when
 *  there is none. Returns the number of endpoints (>= 1), or -1 with err set
 *  ("NAME:LINE: reason"). */
int sw_endpoint_parse_bootstrap(const char *name, const char *text, size_t len, bool require_key,
                                sw_endpoint_t *out, size_t max, char *err, size_t errlen);

/*  Reads the bootstrap file at path (a regular file of at most
 *  SW_ENDPOINT_MAX_FILE bytes) and parses it as sw_endpoint_parse_bootstrap.
 *  Returns the number of endpoints (>= 1), or -1 with err set. */
int sw_endpoint_read_bootstrap(const char *path, bool require_key, sw_endpoint_t *out, size_t max,
                               char *err, size_t errlen);

/*  Formats ep back as "tcp://HOST:PORT#KEY" (or without "#KEY") into
 *  out[len]. Returns 0, or -1 when it does not fit. */
int sw_endpoint_format(const sw_endpoint_t *ep, char *out, size_t len);

/*  Connects sock (a czmq zsock_t, passed as void * so this header needs no
 *  czmq) to text: with a "#KEY" the connection is CURVE to that server key,
 *  as `identity` (borrowed; applied to the socket) or, when identity is NULL,
 *  as a fresh throw-away keypair (an anonymous client: the gateway's RPC does
 *  not authenticate its clients); without a key, plain TCP. Call before any
 *  other connect on sock (the CURVE options apply to the socket).
 *  Returns 0, or -1 with err set (bad endpoint, connect failure). */
int sw_endpoint_connect(void *sock, const char *text, const struct _sw_identity_t *identity, char *err,
                        size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
