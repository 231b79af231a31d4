/*  sw_session_cache.h: the KV caches a stage keeps, one per session.
 *
 *  Sessions are looked up by id (the gateway's session id). Memory is capped:
 *  each session's cache is charged sw_kv_bytes (its full allocation), and
 *  creating a session that would pass the cap first evicts the least
 *  recently used sessions that are not pinned (in use by the current batch)
 *  and have been idle at least the eviction idle time (default 10 s): a
 *  full stage refuses new sessions (the caller answers OVERLOADED) rather
 *  than evict sessions in use, which would make their gateways replay and
 *  evict others in turn. Nothing is allocated before there is room.
 *  Sessions idle longer than idle_ms are dropped by sw_session_cache_expire.
 *  A gateway whose session was evicted gets ERROR_KV_MISSING on its next
 *  step and replays the history.
 *
 *  Thread safety: one thread.
 */
#ifndef SW_SESSION_CACHE_H
#define SW_SESSION_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sw_model.h"

typedef struct sw_session_cache_t sw_session_cache_t;

typedef struct {
    char id[65];        /* session id */
    char origin[65];    /* the gateway that opened it (set by the caller); only it may release or truncate */
    sw_kv_t *kv;        /* owned by the cache */
    uint64_t last_ns;   /* last use, monotonic ns */
    bool pinned;        /* in the batch being computed: never evicted */
} sw_session_t;

/*  A cache for KV caches over layers [begin, end) of model, n_ctx positions
 *  each, at most max_bytes in total and max_sessions sessions. */
sw_session_cache_t *sw_session_cache_new(const sw_model_t *model, int32_t begin, int32_t end, int32_t n_ctx,
                                         size_t max_bytes, int max_sessions);
void sw_session_cache_destroy(sw_session_cache_t **self_p);

/*  The session with this id, or NULL. Marks it used now. */
sw_session_t *sw_session_cache_find(sw_session_cache_t *self, const char *id);
/*  Creates a session (evicting idle unpinned ones when needed). Returns NULL
 *  when the cap cannot be met even after eviction, or on allocation failure. */
sw_session_t *sw_session_cache_create(sw_session_cache_t *self, const char *id);
/*  Drops one session (no-op if absent). */
void sw_session_cache_release(sw_session_cache_t *self, const char *id);
/*  Drops every unpinned session idle for more than idle_ms; returns how many. */
int sw_session_cache_expire(sw_session_cache_t *self, uint64_t idle_ms);
/*  Clears every pin. */
void sw_session_cache_unpin_all(sw_session_cache_t *self);

int sw_session_cache_count(const sw_session_cache_t *self);
size_t sw_session_cache_bytes(const sw_session_cache_t *self);
/*  Sessions evicted to make room since creation. */
uint64_t sw_session_cache_evictions(const sw_session_cache_t *self);
/*  Only sessions idle at least idle_ms may be evicted to make room (default
 *  10000; 0 gives plain LRU over unpinned sessions). */
void sw_session_cache_set_evict_idle(sw_session_cache_t *self, uint64_t idle_ms);

#endif
