/*  sw_session_cache.c: per-session KV caches with a memory cap and LRU of idle sessions. */
#include "sw_session_cache.h"

#include <czmq.h>
#include <string.h>

#include "sw_common.h"

struct sw_session_cache_t {
    const sw_model_t *model;
    int32_t begin, end, n_ctx;
    size_t max_bytes, bytes;
    int max_sessions;
    zhashx_t *sessions; /* id -> sw_session_t */
    uint64_t evictions;
    size_t kv_bytes;    /* bytes of one session's KV cache (all are the same size) */
    uint64_t evict_idle_ns; /* only sessions idle at least this long may be evicted */
};

static void s_session_free(void **item)
{
    sw_session_t *s = *item;
    if (s) {
        sw_kv_destroy(&s->kv);
        free(s);
    }
    *item = NULL;
}

sw_session_cache_t *sw_session_cache_new(const sw_model_t *model, int32_t begin, int32_t end, int32_t n_ctx,
                                         size_t max_bytes, int max_sessions)
{
    sw_session_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->model = model;
    c->begin = begin;
    c->end = end;
    c->n_ctx = n_ctx;
    c->max_bytes = max_bytes;
    c->max_sessions = max_sessions > 0 ? max_sessions : 1;
    c->sessions = zhashx_new();
    if (!c->sessions) {
        free(c);
        return NULL;
    }
    zhashx_set_destructor(c->sessions, s_session_free);
    c->evict_idle_ns = 10000000000ull;
    sw_kv_t *probe = sw_kv_new(model, begin, end, n_ctx); /* its size, before any request asks */
    c->kv_bytes = probe ? sw_kv_bytes(probe) : 0;
    sw_kv_destroy(&probe);
    if (!c->kv_bytes) {
        zhashx_destroy(&c->sessions);
        free(c);
        return NULL;
    }
    return c;
}

void sw_session_cache_destroy(sw_session_cache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zhashx_destroy(&(*self_p)->sessions);
    free(*self_p);
    *self_p = NULL;
}

sw_session_t *sw_session_cache_find(sw_session_cache_t *self, const char *id)
{
    sw_session_t *s = zhashx_lookup(self->sessions, id);
    if (s)
        s->last_ns = sw_now_ns();
    return s;
}

static void s_drop(sw_session_cache_t *self, sw_session_t *s)
{
    self->bytes -= sw_kv_bytes(s->kv);
    zhashx_delete(self->sessions, s->id);
}

/* Evicts the least recently used unpinned session idle for at least
 * evict_idle_ns; false if none. */
static bool s_evict_one(sw_session_cache_t *self)
{
    sw_session_t *oldest = NULL;
    const uint64_t now = sw_now_ns();
    for (sw_session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        if (!s->pinned && now - s->last_ns >= self->evict_idle_ns && (!oldest || s->last_ns < oldest->last_ns))
            oldest = s;
    if (!oldest)
        return false;
    sw_log(SW_LOG_INFO, "stage: evicting the KV cache of session %.16s to make room", oldest->id);
    s_drop(self, oldest);
    self->evictions++;
    return true;
}

sw_session_t *sw_session_cache_create(sw_session_cache_t *self, const char *id)
{
    sw_session_cache_release(self, id);
    const size_t need = self->kv_bytes; /* room first: nothing is allocated for a session that cannot stay */
    while ((self->bytes + need > self->max_bytes || (int) zhashx_size(self->sessions) >= self->max_sessions) &&
           s_evict_one(self))
        ;
    if (self->bytes + need > self->max_bytes || (int) zhashx_size(self->sessions) >= self->max_sessions)
        return NULL;
    sw_kv_t *kv = sw_kv_new(self->model, self->begin, self->end, self->n_ctx);
    if (!kv)
        return NULL;
    sw_session_t *s = calloc(1, sizeof *s);
    if (!s) {
        sw_kv_destroy(&kv);
        return NULL;
    }
    snprintf(s->id, sizeof s->id, "%s", id);
    s->kv = kv;
    s->last_ns = sw_now_ns();
    zhashx_insert(self->sessions, s->id, s);
    self->bytes += need;
    return s;
}

void sw_session_cache_release(sw_session_cache_t *self, const char *id)
{
    sw_session_t *s = zhashx_lookup(self->sessions, id);
    if (s)
        s_drop(self, s);
}

int sw_session_cache_expire(sw_session_cache_t *self, uint64_t idle_ms)
{
    const uint64_t now = sw_now_ns();
    zlist_t *gone = zlist_new();
    for (sw_session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        if (!s->pinned && now - s->last_ns > idle_ms * 1000000ull)
            zlist_append(gone, s);
    int n = 0;
    for (sw_session_t *s = zlist_first(gone); s; s = zlist_next(gone), n++)
        s_drop(self, s);
    zlist_destroy(&gone);
    return n;
}

void sw_session_cache_unpin_all(sw_session_cache_t *self)
{
    for (sw_session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions))
        s->pinned = false;
}

int sw_session_cache_count(const sw_session_cache_t *self) { return (int) zhashx_size(self->sessions); }
size_t sw_session_cache_bytes(const sw_session_cache_t *self) { return self->bytes; }
uint64_t sw_session_cache_evictions(const sw_session_cache_t *self) { return self->evictions; }

void sw_session_cache_set_evict_idle(sw_session_cache_t *self, uint64_t idle_ms)
{
    self->evict_idle_ns = idle_ms * 1000000ull;
}
