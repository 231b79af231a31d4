/*  run_logits.c: the --dump-logits collector of `swisd run` (see
 *  run_logits.h). */
#include "run_logits.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN_TOP 40    /* logits listed per position, as the reference files */
#define RUN_PROBES 64 /* probe ids floor(k * V / 64) */
#define RUN_TOP5 5    /* best logits listed per greedy step */

struct run_logits_t {
    int32_t n_vocab;
    bool full;         /* list every logit per position */
    json_t *positions; /* array of {top, probe} */
    json_t *ids;       /* greedy ids */
    json_t *margins;   /* greedy top-1 minus top-2 */
    json_t *top5;      /* greedy five best per step */
};

run_logits_t *run_logits_new(int32_t n_vocab, bool full)
{
    run_logits_t *d = n_vocab > 0 ? calloc(1, sizeof *d) : NULL;
    if (!d)
        return NULL;
    d->n_vocab = n_vocab;
    d->full = full;
    d->positions = json_array();
    d->ids = json_array();
    d->margins = json_array();
    d->top5 = json_array();
    if (!d->positions || !d->ids || !d->margins || !d->top5)
        run_logits_destroy(&d);
    return d;
}

void run_logits_destroy(run_logits_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    json_decref((*self_p)->positions);
    json_decref((*self_p)->ids);
    json_decref((*self_p)->margins);
    json_decref((*self_p)->top5);
    free(*self_p);
    *self_p = NULL;
}

/* The k largest finite logits, largest first, ties to the lower id (ids are
 * visited in increasing order, so an equal value never displaces an earlier
 * one). Returns how many were found (< k only when fewer are finite). */
static int s_top(const float *logits, int32_t n, int k, int32_t *id, float *val)
{
    int m = 0;
    for (int32_t t = 0; t < n; t++) {
        const float x = logits[t];
        if (!isfinite(x) || (m == k && !(x > val[m - 1])))
            continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && x > val[j - 1]) {
            val[j] = val[j - 1];
            id[j] = id[j - 1];
            j--;
        }
        val[j] = x;
        id[j] = t;
    }
    return m;
}

static json_t *s_pairs(const int32_t *id, const float *val, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_pack("[i,f]", (json_int_t) id[i], (double) val[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static int32_t s_probe_id(int32_t n_vocab, int k) { return (int32_t) ((int64_t) k * n_vocab / RUN_PROBES); }

int run_logits_position(run_logits_t *self, const float *logits)
{
    int32_t id[RUN_TOP];
    float val[RUN_TOP];
    const int m = s_top(logits, self->n_vocab, RUN_TOP, id, val);
    json_t *probe = json_array();
    for (int k = 0; probe && k < RUN_PROBES; k++)
        if (json_array_append_new(probe, isfinite(logits[s_probe_id(self->n_vocab, k)])
                                             ? json_real((double) logits[s_probe_id(self->n_vocab, k)])
                                             : json_null()) != 0)
            json_decref(probe), probe = NULL;
    json_t *pos = json_pack("{s:o*,s:o*}", "top", s_pairs(id, val, m), "probe", probe);
    if (pos && self->full) {
        json_t *all = json_array();
        for (int32_t t = 0; all && t < self->n_vocab; t++)
            if (json_array_append_new(all, isfinite(logits[t]) ? json_real((double) logits[t]) : json_null()) != 0)
                json_decref(all), all = NULL;
        if (json_object_set_new(pos, "logits", all) != 0)
            json_decref(pos), pos = NULL;
    }
    return pos && json_array_append_new(self->positions, pos) == 0 ? 0 : -1;
}

int32_t run_logits_greedy(run_logits_t *self, const float *logits)
{
    int32_t id[RUN_TOP5];
    float val[RUN_TOP5];
    const int m = s_top(logits, self->n_vocab, RUN_TOP5, id, val);
    if (m == 0)
        return -1;
    const double margin = m > 1 ? (double) val[0] - (double) val[1] : 0.0;
    json_t *pairs = s_pairs(id, val, m);
    if (!pairs || json_array_append_new(self->top5, pairs) != 0 ||
        json_array_append_new(self->ids, json_integer(id[0])) != 0 ||
        json_array_append_new(self->margins, json_real(margin)) != 0)
        return -1;
    return id[0];
}

int run_logits_write(const run_logits_t *self, const char *path, const char *model, const int32_t *tokens,
                     int64_t n_tok)
{
    json_t *toks = json_array(), *probes = json_array();
    for (int64_t i = 0; toks && i < n_tok; i++)
        json_array_append_new(toks, json_integer(tokens[i]));
    for (int k = 0; probes && k < RUN_PROBES; k++)
        json_array_append_new(probes, json_integer(s_probe_id(self->n_vocab, k)));
    json_t *root = json_pack("{s:s,s:s,s:s,s:o*,s:i,s:o*,s:O,s:{s:O,s:O,s:O},s:O}", "model", model, "numerics",
                             "swisd", "kv_cache", "f32", "tokens", toks, "n_vocab", (json_int_t) self->n_vocab,
                             "probe_ids", probes, "positions", self->positions, "greedy", "ids", self->ids, "margins",
                             self->margins, "top5", self->top5, "generated", self->ids);
    int rc = -1;
    if (!root)
        fprintf(stderr, "swisd run: --dump-logits: out of memory\n");
    else if ((rc = json_dump_file(root, path, JSON_COMPACT | JSON_REAL_PRECISION(9))) != 0)
        fprintf(stderr, "swisd run: --dump-logits: cannot write %s\n", path);
    json_decref(root);
    return rc;
}
