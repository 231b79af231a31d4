/*  sw_ban_outbox.h: bans a gateway decided, on their way to its broker.
 *
 *  A ban decided in the gateway (an operator's /admin/ban from the HTTP
 *  front's threads, or the gateway's own audits on its loop) has two
 *  effects (docs/security.md, "Bans that reach every broker"): the gateway
 *  stops planning the node (sw_bans, at once), and a BanNotice
 *  (protos/node.proto) goes to the gateway's broker, which refuses the node
 *  and passes the notice on to every broker of the tree. Only the gateway's
 *  loop owns the broker socket, so notices wait here in order (at most
 *  SW_BAN_OUTBOX_MAX) until the loop sends them, with the node's public key
 *  from its directory when it knows it (sw_gateway.c).
 *
 *  Thread safety: every function may be called from any thread (one mutex).
 */
#ifndef SW_BAN_OUTBOX_H
#define SW_BAN_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_bans.h"

#define SW_BAN_OUTBOX_MAX 1024                   /* notices waiting at once */
#define SW_BAN_DEFAULT_S (30u * 86400u)          /* how long brokers keep a ban unless told otherwise */
#define SW_BAN_MAX_S (400u * 86400u)             /* the longest ban a broker accepts (SW_BROKER_BANS_MAX_S) */

/*  One notice to send. */
typedef struct {
    char id[SW_BANS_ID_MAX + 1];          /* node id */
    uint64_t until_unix_s;                /* end of the ban, s since 1970; 0: lift it */
    uint64_t issued_unix_ms;              /* when it was decided, ms since 1970 (the later decision wins) */
    char reason[SW_BANS_REASON_MAX + 1];  /* the operator's or the audit's words */
} sw_ban_notice_t;

typedef struct sw_ban_outbox_t sw_ban_outbox_t;

/*  An empty outbox, or NULL (out of memory). Caller destroys. */
sw_ban_outbox_t *sw_ban_outbox_new(void);
/*  Frees; accepts NULL; sets *self_p = NULL. */
void sw_ban_outbox_destroy(sw_ban_outbox_t **self_p);

/*  Bans node id for duration_s seconds from now (on) or lifts its ban (off):
 *  sets the flag in bans (may be NULL: nothing kept locally; the gateway's
 *  own ban lasts until it is lifted, whatever duration_s says) and queues a
 *  notice with until = now + duration_s (on; 1..SW_BAN_MAX_S) or 0 (off).
 *  reason: NULL, or cut to SW_BANS_REASON_MAX bytes. Returns sw_bans_set's
 *  result (1 changed, 0 already so; the notice is queued either way,
 *  brokers ignore what they hold already), or -1 with err set (a bad id or
 *  duration, the database, the outbox full). */
int sw_ban_outbox_ban(sw_ban_outbox_t *self, struct sw_bans_t *bans, const char *id, bool on, uint64_t duration_s,
                      const char *reason, char *err, size_t errlen);

/*  Copies the oldest waiting notice into *out without removing it; false
 *  when none waits. */
bool sw_ban_outbox_front(sw_ban_outbox_t *self, sw_ban_notice_t *out);
/*  Removes the oldest waiting notice (after it was sent). */
void sw_ban_outbox_pop(sw_ban_outbox_t *self);
/*  Notices waiting. */
size_t sw_ban_outbox_size(sw_ban_outbox_t *self);

#endif
