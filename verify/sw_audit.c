/*  sw_audit.c: the audit book (see sw_audit.h). */
#include "sw_audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char node[SW_AUDIT_ID_MAX + 1];
    uint32_t begin, end;
    float *sketch;         /* (n_rows, K) */
    int n_ok;              /* rows compared with an independent host and agreeing */
} s_hop_t;

typedef struct {
    int64_t pos;
    int32_t n_rows;
    int32_t *tokens;       /* (n_rows) */
    int n_hops;
    s_hop_t *hops;
} s_step_t;

typedef struct s_sess {
    struct s_sess *next;
    char *sid;
    s_step_t *steps;       /* in record order */
    int n_steps, cap;
    int64_t rows;          /* recorded rows held */
    int64_t compared_end;  /* the audit's progress */
} s_sess_t;

typedef struct s_node {
    struct s_node *next;
    char id[SW_AUDIT_ID_MAX + 1];
    uint64_t verified, consecutive, failed;
} s_node_t;

struct sw_audit_t {
    sw_audit_config_t cfg;
    s_sess_t *sessions;
    s_node_t *nodes;
    uint64_t dropped_rows; /* recorded rows dropped over max_rows */
};

sw_audit_t *sw_audit_new(const sw_audit_config_t *cfg)
{
    sw_audit_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (cfg)
        self->cfg = *cfg;
    if (self->cfg.threshold <= 0)
        self->cfg.threshold = 0.05;
    if (self->cfg.n_trust <= 0)
        self->cfg.n_trust = 20;
    if (self->cfg.rate_floor <= 0)
        self->cfg.rate_floor = 0.05;
    if (self->cfg.max_rows <= 0)
        self->cfg.max_rows = 16384;
    return self;
}

static void s_step_free(s_step_t *st)
{
    for (int h = 0; h < st->n_hops; h++)
        free(st->hops[h].sketch);
    free(st->hops);
    free(st->tokens);
    memset(st, 0, sizeof *st);
}

static void s_sess_free(s_sess_t *s)
{
    for (int i = 0; i < s->n_steps; i++)
        s_step_free(&s->steps[i]);
    free(s->steps);
    free(s->sid);
    free(s);
}

void sw_audit_destroy(sw_audit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_audit_t *self = *self_p;
    while (self->sessions) {
        s_sess_t *s = self->sessions;
        self->sessions = s->next;
        s_sess_free(s);
    }
    while (self->nodes) {
        s_node_t *n = self->nodes;
        self->nodes = n->next;
        free(n);
    }
    free(self);
    *self_p = NULL;
}

static s_sess_t *s_find(const sw_audit_t *self, const char *sid)
{
    for (s_sess_t *s = self->sessions; s; s = s->next)
        if (!strcmp(s->sid, sid))
            return s;
    return NULL;
}

static s_node_t *s_node(const sw_audit_t *self, const char *id)
{
    for (s_node_t *n = self->nodes; n; n = n->next)
        if (!strcmp(n->id, id))
            return n;
    return NULL;
}

static s_node_t *s_node_add(sw_audit_t *self, const char *id)
{
    s_node_t *n = s_node(self, id);
    if (n || strlen(id) > SW_AUDIT_ID_MAX || !(n = calloc(1, sizeof *n)))
        return n;
    snprintf(n->id, sizeof n->id, "%s", id);
    n->next = self->nodes;
    self->nodes = n;
    return n;
}

/* Drops step i of s (keeps the order of the rest). */
static void s_drop_step(s_sess_t *s, int i)
{
    s->rows -= s->steps[i].n_rows;
    s_step_free(&s->steps[i]);
    memmove(&s->steps[i], &s->steps[i + 1], sizeof s->steps[0] * (size_t) (s->n_steps - i - 1));
    s->n_steps--;
}

int sw_audit_record(sw_audit_t *self, const char *sid, int64_t pos, int32_t n_rows, const int32_t *tokens,
                    const sw_audit_hop_t *hops, int n_hops)
{
    if (!self || !sid || pos < 0 || n_rows < 1 || n_rows > self->cfg.max_rows || !tokens || !hops || n_hops < 1 ||
        n_hops > SW_AUDIT_MAX_HOPS)
        return -1;
    for (int h = 0; h < n_hops; h++)
        if (!hops[h].node_id || strlen(hops[h].node_id) > SW_AUDIT_ID_MAX || !hops[h].sketch ||
            hops[h].begin >= hops[h].end)
            return -1;
    s_sess_t *s = s_find(self, sid);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)) || !(s->sid = strdup(sid))) {
            free(s);
            return -1;
        }
        s->next = self->sessions;
        self->sessions = s;
    }
    if (s->n_steps == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        s_step_t *p = realloc(s->steps, sizeof *p * (size_t) cap);
        if (!p)
            return -1;
        s->steps = p;
        s->cap = cap;
    }
    s_step_t st = {.pos = pos, .n_rows = n_rows, .n_hops = n_hops};
    st.tokens = malloc(sizeof(int32_t) * (size_t) n_rows);
    st.hops = calloc((size_t) n_hops, sizeof *st.hops);
    bool ok = st.tokens && st.hops;
    for (int h = 0; ok && h < n_hops; h++) {
        snprintf(st.hops[h].node, sizeof st.hops[h].node, "%s", hops[h].node_id);
        st.hops[h].begin = hops[h].begin;
        st.hops[h].end = hops[h].end;
        size_t bytes = sizeof(float) * SW_SKETCH_K * (size_t) n_rows;
        if ((st.hops[h].sketch = malloc(bytes)))
            memcpy(st.hops[h].sketch, hops[h].sketch, bytes);
        else
            ok = false;
        st.n_hops = h + 1;
    }
    if (!ok) {
        s_step_free(&st);
        return -1;
    }
    memcpy(st.tokens, tokens, sizeof(int32_t) * (size_t) n_rows);
    s->steps[s->n_steps++] = st;
    s->rows += n_rows;
    while (s->rows > self->cfg.max_rows && s->n_steps > 1) { /* bounded: the oldest unverified go first */
        self->dropped_rows += (uint64_t) s->steps[0].n_rows;
        s_drop_step(s, 0);
    }
    return 0;
}

/* The audit hop with exactly layers [begin, end), or NULL. */
static const sw_audit_hop_t *s_same_range(const sw_audit_hop_t *hops, int n, uint32_t begin, uint32_t end)
{
    for (int i = 0; i < n; i++)
        if (hops[i].begin == begin && hops[i].end == end)
            return &hops[i];
    return NULL;
}

int sw_audit_compare(sw_audit_t *self, const char *sid, const int32_t *history, int64_t n_history, int64_t pos,
                     int32_t n_rows, const sw_audit_hop_t *hops, int n_hops, sw_audit_result_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self || !sid || !history || n_history < 0 || pos < 0 || n_rows < 1 || !hops || n_hops < 1 ||
        n_hops > SW_AUDIT_MAX_HOPS)
        return -1;
    s_sess_t *s = s_find(self, sid);
    out->compared_end = pos + n_rows;
    if (!s)
        return 0;
    const int64_t end = pos + n_rows < n_history ? pos + n_rows : n_history;
    for (int64_t p = pos; p < end; p++) {
        for (int i = 0; i < s->n_steps; i++) {
            const s_step_t *st = &s->steps[i];
            if (p < st->pos || p >= st->pos + st->n_rows)
                continue;
            const int32_t r = (int32_t) (p - st->pos);
            bool same = st->pos + r < n_history;
            for (int32_t q = 0; same && q <= r; q++) /* the row's tokens are the history's */
                same = st->tokens[q] == history[st->pos + q];
            if (!same) {
                out->n_skipped++;
                continue;
            }
            for (int h = 0; h < st->n_hops; h++) {
                s_hop_t *oh = &st->hops[h];
                const sw_audit_hop_t *ah = s_same_range(hops, n_hops, oh->begin, oh->end);
                if (!ah || !strcmp(ah->node_id, oh->node)) { /* no independent host computed these layers */
                    out->n_skipped++;
                    continue;
                }
                const double d = sw_sketch_distance(oh->sketch + (size_t) r * SW_SKETCH_K,
                                                    ah->sketch + (size_t) (p - pos) * SW_SKETCH_K);
                out->n_compared++;
                if (d > self->cfg.threshold) {
                    out->mismatch = true;
                    out->pos = p;
                    out->begin = oh->begin;
                    out->end = oh->end;
                    out->distance = d;
                    snprintf(out->node, sizeof out->node, "%s", oh->node);
                    snprintf(out->auditor, sizeof out->auditor, "%s", ah->node_id);
                    out->compared_end = p;
                    s->compared_end = p;
                    return 0; /* later disagreements are its consequences */
                }
                if (d > out->max_ok_distance)
                    out->max_ok_distance = d;
                oh->n_ok++;
            }
        }
    }
    if (end > s->compared_end)
        s->compared_end = end;
    out->compared_end = s->compared_end;
    /* steps whose every row is compared now: each of their hops has one more verified result */
    for (int i = 0; i < s->n_steps;) {
        s_step_t *st = &s->steps[i];
        if (st->pos + st->n_rows <= s->compared_end) {
            for (int h = 0; h < st->n_hops; h++) {
                s_node_t *n = st->hops[h].n_ok ? s_node_add(self, st->hops[h].node) : NULL;
                if (n) /* a hop no independent host checked earns nothing */
                    n->verified++, n->consecutive++;
            }
            s_drop_step(s, i);
        } else {
            i++;
        }
    }
    return 0;
}

int64_t sw_audit_compared_end(const sw_audit_t *self, const char *sid)
{
    const s_sess_t *s = self && sid ? s_find(self, sid) : NULL;
    return s ? s->compared_end : 0;
}

int64_t sw_audit_pending_rows(const sw_audit_t *self, const char *sid)
{
    const s_sess_t *s = self && sid ? s_find(self, sid) : NULL;
    return s ? s->rows : 0;
}

bool sw_audit_unverified_through(const sw_audit_t *self, const char *sid, const char *node)
{
    const s_sess_t *s = self && sid && node ? s_find(self, sid) : NULL;
    for (int i = 0; s && i < s->n_steps; i++)
        for (int h = 0; h < s->steps[i].n_hops; h++)
            if (!strcmp(s->steps[i].hops[h].node, node))
                return true;
    return false;
}

void sw_audit_forget(sw_audit_t *self, const char *sid)
{
    if (!self || !sid)
        return;
    for (s_sess_t **pp = &self->sessions; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->sid, sid)) {
            s_sess_t *s = *pp;
            *pp = s->next;
            s_sess_free(s);
            return;
        }
}

double sw_audit_rate(const sw_audit_t *self, const char *node)
{
    const s_node_t *n = self && node ? s_node(self, node) : NULL;
    if (!n || n->consecutive < (uint64_t) self->cfg.n_trust)
        return 1.0;
    const double r = (double) self->cfg.n_trust / (double) n->consecutive;
    return r > self->cfg.rate_floor ? r : self->cfg.rate_floor;
}

bool sw_audit_trusted(const sw_audit_t *self, const char *node)
{
    const s_node_t *n = self && node ? s_node(self, node) : NULL;
    return n && n->consecutive >= (uint64_t) self->cfg.n_trust;
}

void sw_audit_counts(const sw_audit_t *self, const char *node, uint64_t *verified, uint64_t *consecutive,
                     uint64_t *failed)
{
    const s_node_t *n = self && node ? s_node(self, node) : NULL;
    if (verified)
        *verified = n ? n->verified : 0;
    if (consecutive)
        *consecutive = n ? n->consecutive : 0;
    if (failed)
        *failed = n ? n->failed : 0;
}

void sw_audit_fail(sw_audit_t *self, const char *node)
{
    s_node_t *n = self && node ? s_node_add(self, node) : NULL;
    if (n) {
        n->failed++;
        n->consecutive = 0;
    }
}
