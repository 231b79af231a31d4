/*  sw_fairuse.c: per-address token buckets in a bounded chained hash table
 *  (see sw_fairuse.h). */
#include "sw_fairuse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"

typedef struct {
    sw_fairuse_addr_t addr;
    double level[SW_FAIRUSE_MAX_METERS]; /* units at time `last` (may be < 0: overdrawn) */
    double last;                         /* seconds, the caller's clock */
    uint32_t next;                       /* next entry of the chain or of the free list, index + 1; 0: none */
    int32_t active;                      /* generations in progress */
} s_entry_t;

struct sw_fairuse_t {
    sw_fairuse_config_t cfg;
    s_entry_t *entries;  /* (capacity) */
    uint32_t *heads;     /* (n_heads) first entry of each chain, index + 1; 0: empty */
    uint32_t mask;       /* n_heads - 1; n_heads: the power of two >= capacity */
    uint32_t free_head;  /* first free entry, index + 1 */
    size_t used;         /* entries in chains */
    double last_sweep;   /* when the table was last scanned, seconds */
    bool swept;          /* whether it ever was */
};

/* The splitmix64 finalizer (Steele, Lea, Flood, "Fast splittable
 * pseudorandom number generators", OOPSLA 2014). */
static uint64_t s_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint32_t s_hash(const sw_fairuse_t *f, const sw_fairuse_addr_t *a)
{
    uint64_t w0 = 0, w1 = 0;
    memcpy(&w0, a->bytes, 8);
    memcpy(&w1, a->bytes + 8, 8);
    const uint64_t h = s_mix(s_mix(f->cfg.seed ^ w0 ^ a->len) ^ w1);
    return (uint32_t) (h >> 32) & f->mask;
}

static bool s_same(const sw_fairuse_addr_t *a, const sw_fairuse_addr_t *b)
{
    return a->len == b->len && !memcmp(a->bytes, b->bytes, a->len);
}

sw_fairuse_t *sw_fairuse_new(const sw_fairuse_config_t *cfg, char *err, size_t errlen)
{
    const size_t cap = cfg->capacity ? cfg->capacity : 65536;
    if (cap > SW_FAIRUSE_MAX_CAPACITY || cfg->n_meters < 1 || cfg->n_meters > SW_FAIRUSE_MAX_METERS) {
        sw_err(err, errlen, "fair use: capacity 1..%u and 1..%d meters", SW_FAIRUSE_MAX_CAPACITY,
               SW_FAIRUSE_MAX_METERS);
        return NULL;
    }
    for (int m = 0; m < cfg->n_meters; m++)
        if (!(cfg->meters[m].rate > 0) || !(cfg->meters[m].burst > 0)) {
            sw_err(err, errlen, "fair use: meter %d needs a rate and a burst > 0", m);
            return NULL;
        }
    uint32_t n_heads = 1;
    while (n_heads < cap)
        n_heads <<= 1;
    sw_fairuse_t *f = calloc(1, sizeof *f);
    if (f) {
        f->entries = calloc(cap, sizeof *f->entries);
        f->heads = calloc(n_heads, sizeof *f->heads);
    }
    if (!f || !f->entries || !f->heads) {
        sw_fairuse_destroy(&f);
        sw_err(err, errlen, "fair use: out of memory");
        return NULL;
    }
    f->cfg = *cfg;
    f->cfg.capacity = cap;
    if (f->cfg.sweep_every_s <= 0)
        f->cfg.sweep_every_s = 1;
    f->mask = n_heads - 1;
    for (size_t i = 0; i < cap; i++) /* the free list: every entry, in order */
        f->entries[i].next = i + 1 < cap ? (uint32_t) (i + 2) : 0;
    f->free_head = 1;
    return f;
}

void sw_fairuse_destroy(sw_fairuse_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->entries);
    free((*self_p)->heads);
    free(*self_p);
    *self_p = NULL;
}

/* Brings e's levels to now (refill, capped at the burst). A clock that went
 * backwards refills nothing. */
static void s_refill(const sw_fairuse_t *f, s_entry_t *e, double now)
{
    const double dt = now > e->last ? now - e->last : 0;
    for (int m = 0; m < f->cfg.n_meters; m++) {
        const double l = e->level[m] + dt * f->cfg.meters[m].rate;
        e->level[m] = l < f->cfg.meters[m].burst ? l : f->cfg.meters[m].burst;
    }
    if (now > e->last)
        e->last = now;
}

/* Whether e is the same as a fresh entry at now (so dropping it loses nothing). */
static bool s_fresh(const sw_fairuse_t *f, s_entry_t *e, double now)
{
    if (e->active > 0)
        return false;
    s_refill(f, e, now);
    for (int m = 0; m < f->cfg.n_meters; m++)
        if (e->level[m] < f->cfg.meters[m].burst)
            return false;
    return true;
}

/* Drops every fresh entry. */
static void s_sweep(sw_fairuse_t *f, double now)
{
    f->last_sweep = now;
    f->swept = true;
    for (uint32_t h = 0; h <= f->mask; h++) {
        uint32_t *link = &f->heads[h];
        while (*link) {
            s_entry_t *e = &f->entries[*link - 1];
            if (s_fresh(f, e, now)) {
                const uint32_t idx = *link;
                *link = e->next;
                e->next = f->free_head;
                f->free_head = idx;
                f->used--;
            } else {
                link = &e->next;
            }
        }
    }
}

/* addr's entry, or NULL. */
static s_entry_t *s_lookup(const sw_fairuse_t *f, const sw_fairuse_addr_t *addr)
{
    for (uint32_t i = f->heads[s_hash(f, addr)]; i; i = f->entries[i - 1].next)
        if (s_same(&f->entries[i - 1].addr, addr))
            return &f->entries[i - 1];
    return NULL;
}

/* addr's entry, or a fresh one when it has none (NULL when the table is
 * full of entries still in use). */
static s_entry_t *s_find(sw_fairuse_t *f, const sw_fairuse_addr_t *addr, double now)
{
    s_entry_t *found = s_lookup(f, addr);
    if (found)
        return found;
    const uint32_t h = s_hash(f, addr);
    if (!f->free_head && (!f->swept || now - f->last_sweep >= f->cfg.sweep_every_s || now < f->last_sweep))
        s_sweep(f, now);
    if (!f->free_head)
        return NULL;
    const uint32_t idx = f->free_head;
    s_entry_t *e = &f->entries[idx - 1];
    f->free_head = e->next;
    memset(e, 0, sizeof *e);
    e->addr = *addr;
    e->last = now;
    for (int m = 0; m < f->cfg.n_meters; m++)
        e->level[m] = f->cfg.meters[m].burst;
    e->next = f->heads[h];
    f->heads[h] = idx;
    f->used++;
    return e;
}

sw_fairuse_result_t sw_fairuse_take(sw_fairuse_t *self, const sw_fairuse_addr_t *addr, const double *need,
                                    const double *cost, int max_active, double now, double *wait_s)
{
    if (wait_s)
        *wait_s = 0;
    s_entry_t *e = s_find(self, addr, now);
    if (!e)
        return SW_FAIRUSE_FULL;
    s_refill(self, e, now);
    double wait = 0;
    for (int m = 0; need && m < self->cfg.n_meters; m++)
        if (e->level[m] < need[m]) {
            const double w = (need[m] - e->level[m]) / self->cfg.meters[m].rate;
            wait = w > wait ? w : wait;
        }
    if (wait > 0) {
        if (wait_s)
            *wait_s = wait;
        return SW_FAIRUSE_WAIT;
    }
    if (max_active > 0 && e->active >= max_active)
        return SW_FAIRUSE_BUSY;
    for (int m = 0; cost && m < self->cfg.n_meters; m++)
        e->level[m] -= cost[m];
    if (max_active > 0)
        e->active++;
    return SW_FAIRUSE_OK;
}

void sw_fairuse_end(sw_fairuse_t *self, const sw_fairuse_addr_t *addr, int meter, double cost, double now)
{
    s_entry_t *e = s_lookup(self, addr);
    if (!e || e->active <= 0)
        return;
    e->active--;
    s_refill(self, e, now);
    if (meter >= 0 && meter < self->cfg.n_meters)
        e->level[meter] -= cost;
}

size_t sw_fairuse_size(const sw_fairuse_t *self) { return self->used; }

double sw_fairuse_level(const sw_fairuse_t *self, const sw_fairuse_addr_t *addr, int meter, double now)
{
    if (meter < 0 || meter >= self->cfg.n_meters)
        return 0;
    const s_entry_t *e = s_lookup(self, addr);
    if (!e)
        return self->cfg.meters[meter].burst;
    const double dt = now > e->last ? now - e->last : 0;
    const double l = e->level[meter] + dt * self->cfg.meters[meter].rate;
    return l < self->cfg.meters[meter].burst ? l : self->cfg.meters[meter].burst;
}

int sw_fairuse_set_meter(sw_fairuse_t *self, int m, sw_fairuse_meter_t meter, char *err, size_t errlen)
{
    if (m < 0 || m >= self->cfg.n_meters || !(meter.rate > 0) || !(meter.burst > 0)) {
        sw_err(err, errlen, "fair use: meter %d needs a rate and a burst > 0", m);
        return -1;
    }
    self->cfg.meters[m] = meter; /* levels above the new burst are cut at their next refill */
    return 0;
}

sw_fairuse_meter_t sw_fairuse_meter(const sw_fairuse_t *self, int m)
{
    return m >= 0 && m < self->cfg.n_meters ? self->cfg.meters[m] : (sw_fairuse_meter_t){0, 0};
}
