/*  sw_health.c: stage health for the gateway (see sw_health.h). */
#include "sw_health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SEC 1000000000ull
#define S_STRIKE_WINDOW (2 * S_SEC)   /* one strike per stage per window */
#define S_STRIKE_DECAY (60 * S_SEC)   /* a quiet minute forgets one strike */
#define S_MAX_STRIKES 7               /* back-off 1 s << (strikes - 1): at most 64 s */
#define S_PROBE_RETRY (1 * S_SEC)     /* a probe unanswered this long may be sent again */
#define S_PROBE_REFRESH (30 * S_SEC)  /* admitted stages are measured again this often */

typedef struct {
    char id[SW_HEALTH_ID_MAX + 1];    /* "" = free */
    uint64_t seen_ns;                 /* last call about it, for reuse */
    bool admitted;                    /* answered a probe once */
    bool probation;                   /* a step through it passed its deadline; cleared by an answer */
    int timeouts;                     /* timed-out routes it was on since its last completed real step */
    int strikes;
    uint64_t strike_ns;               /* last strike */
    uint64_t decay_ns;                /* strikes were last forgotten up to here */
    uint64_t until_ns;                /* backed off until */
    char probe_id[SW_HEALTH_PROBE_ID_MAX + 1];      /* outstanding probe, "" if none */
    char old_probe_id[SW_HEALTH_PROBE_ID_MAX + 1];  /* the one it replaced (late answers count) */
    uint64_t probe_ns;                /* when probe_id was sent */
    uint64_t measured_ns;             /* when ms_per_layer was last measured (0: never) */
    double ms_per_layer;              /* measured round trip per layer, ms (EMA) */
} s_entry_t;

#define S_BUCKETS 2048 /* hash index over e[] by id: the planner asks about every stage on every plan */

struct sw_health_t {
    s_entry_t e[SW_HEALTH_MAX];
    int head[S_BUCKETS];         /* 1 + index of the first entry of each bucket, 0: none */
    int next[SW_HEALTH_MAX];     /* 1 + index of the next entry in the same bucket, 0: none */
};

/* FNV-1a of the id, reduced to a bucket. */
static unsigned s_bucket(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *) id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % S_BUCKETS;
}

sw_health_t *sw_health_new(void) { return calloc(1, sizeof(sw_health_t)); }

void sw_health_destroy(sw_health_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static s_entry_t *s_find(const sw_health_t *self, const char *id)
{
    if (!id || !id[0])
        return NULL;
    for (int k = self->head[s_bucket(id)]; k; k = self->next[k - 1])
        if (!strcmp(self->e[k - 1].id, id))
            return (s_entry_t *) &self->e[k - 1];
    return NULL;
}

/* The entry for id, made (in a free slot or the least recently seen one) if
 * needed. Forgets strikes older than the decay period. */
static s_entry_t *s_get(sw_health_t *self, const char *id, uint64_t now)
{
    s_entry_t *x = s_find(self, id);
    if (!x) {
        x = &self->e[0];
        for (int i = 0; i < SW_HEALTH_MAX && x->id[0]; i++)
            if (!self->e[i].id[0] || self->e[i].seen_ns < x->seen_ns)
                x = &self->e[i];
        const int slot = (int) (x - self->e);
        if (x->id[0]) /* reused: unlink it from its bucket */
            for (int *k = &self->head[s_bucket(x->id)]; *k; k = &self->next[*k - 1])
                if (*k == slot + 1) {
                    *k = self->next[slot];
                    break;
                }
        memset(x, 0, sizeof *x);
        snprintf(x->id, sizeof x->id, "%s", id);
        const unsigned b = s_bucket(x->id);
        self->next[slot] = self->head[b];
        self->head[b] = slot + 1;
    }
    if (x->decay_ns < x->strike_ns)
        x->decay_ns = x->strike_ns;
    while (x->strikes > 0 && now > x->decay_ns + S_STRIKE_DECAY) {
        x->strikes--;
        x->decay_ns += S_STRIKE_DECAY;
    }
    x->seen_ns = now;
    return x;
}

const char *sw_health_why_not(const sw_health_t *self, const char *id, uint64_t now_ns)
{
    const s_entry_t *x = s_find(self, id);
    if (!x || !x->admitted)
        return "unprobed";
    if (x->until_ns > now_ns)
        return "backed off";
    if (x->probation)
        return "on probation";
    return NULL;
}

bool sw_health_usable(const sw_health_t *self, const char *id, uint64_t now_ns)
{
    return sw_health_why_not(self, id, now_ns) == NULL;
}

int sw_health_strike(sw_health_t *self, const char *id, uint64_t now_ns)
{
    if (!id || !id[0])
        return 0;
    s_entry_t *x = s_get(self, id, now_ns);
    if (x->strikes == 0 || now_ns >= x->strike_ns + S_STRIKE_WINDOW) {
        if (x->strikes < S_MAX_STRIKES)
            x->strikes++;
        x->strike_ns = now_ns;
        const uint64_t until = now_ns + (S_SEC << (x->strikes - 1));
        if (until > x->until_ns)
            x->until_ns = until;
    }
    return x->until_ns > now_ns ? (int) ((x->until_ns - now_ns + S_SEC - 1) / S_SEC) : 0;
}

bool sw_health_suspect(sw_health_t *self, const char *id, uint64_t now_ns)
{
    if (!id || !id[0])
        return false;
    s_entry_t *x = s_get(self, id, now_ns);
    x->probation = true;
    /* a stage that answers probes but swallows real steps: honest stages of the same
     * routes complete steps on other routes in between; it never does */
    if (++x->timeouts >= 2) {
        sw_health_strike(self, id, now_ns);
        return true;
    }
    return false;
}

bool sw_health_probe_due(sw_health_t *self, const char *id, uint64_t now_ns, uint64_t nonce,
                         sw_health_probe_t *out)
{
    if (!id || !id[0])
        return false;
    s_entry_t *x = s_get(self, id, now_ns);
    const bool want = !x->admitted || x->probation || now_ns >= x->measured_ns + S_PROBE_REFRESH;
    if (!want || (x->probe_id[0] && now_ns < x->probe_ns + S_PROBE_RETRY))
        return false;
    memcpy(x->old_probe_id, x->probe_id, sizeof x->probe_id);
    snprintf(x->probe_id, sizeof x->probe_id, "probe-%016llx", (unsigned long long) nonce);
    x->probe_ns = now_ns;
    memcpy(out->probe_id, x->probe_id, sizeof out->probe_id);
    return true;
}

static s_entry_t *s_by_probe(const sw_health_t *self, const char *probe_id)
{
    if (!probe_id || strncmp(probe_id, "probe-", 6))
        return NULL;
    for (int i = 0; i < SW_HEALTH_MAX; i++) {
        const s_entry_t *x = &self->e[i];
        if (x->id[0] && ((x->probe_id[0] && !strcmp(x->probe_id, probe_id)) ||
                         (x->old_probe_id[0] && !strcmp(x->old_probe_id, probe_id))))
            return (s_entry_t *) x;
    }
    return NULL;
}

const char *sw_health_probe_stage(const sw_health_t *self, const char *probe_id)
{
    const s_entry_t *x = s_by_probe(self, probe_id);
    return x ? x->id : NULL;
}

const char *sw_health_probe_answered(sw_health_t *self, const char *probe_id, int n_layers, double link_ms,
                                     uint64_t now_ns)
{
    s_entry_t *x = s_by_probe(self, probe_id);
    if (!x)
        return NULL;
    x->admitted = true;
    x->probation = false;
    x->seen_ns = now_ns;
    const bool latest = !strcmp(x->probe_id, probe_id);
    if (latest)
        x->probe_id[0] = 0;
    else
        x->old_probe_id[0] = 0;
    if (latest && n_layers > 0 && now_ns >= x->probe_ns) {
        double ms = (double) (now_ns - x->probe_ns) / 1e6;
        /* the link is the planner's to count; keep at least a tenth for the stage */
        ms = ms - link_ms > ms / 10 ? ms - link_ms : ms / 10;
        const double per = ms / n_layers;
        x->ms_per_layer = x->measured_ns ? 0.5 * x->ms_per_layer + 0.5 * per : per;
        x->measured_ns = now_ns;
    } else if (!x->measured_ns) {
        x->measured_ns = now_ns; /* alive without a timing: do not probe again at once */
    }
    return x->id;
}

void sw_health_alive(sw_health_t *self, const char *id, uint64_t now_ns)
{
    s_entry_t *x = s_find(self, id);
    if (x) {
        x->probation = false;
        x->timeouts = 0;
        x->seen_ns = now_ns;
    }
}

float sw_health_ms_per_layer(const sw_health_t *self, const char *id, float advertised, bool *lied)
{
    const s_entry_t *x = s_find(self, id);
    const double measured = x && x->measured_ns ? x->ms_per_layer : 0;
    if (lied)
        *lied = measured > 0 && advertised < measured / 4;
    return (float) (measured > advertised ? measured : advertised);
}

int sw_health_strikes(const sw_health_t *self, const char *id)
{
    const s_entry_t *x = s_find(self, id);
    return x ? x->strikes : 0;
}
