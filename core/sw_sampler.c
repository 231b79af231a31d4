/*  sw_sampler.c: logits -> token (chain and sources in sw_sampler.h).
 *
 *  Candidates are kept as an index list so that each stage touches only the
 *  tokens still alive: top-k is a quickselect (expected O(n)), top-p sorts
 *  only the candidates of one probability bucket (see s_top_p), so a 150k
 *  vocabulary costs O(n) plus a small sort.
 *  Candidates are ordered by (value descending, id ascending): a total order,
 *  so ties are resolved the same way every time.
 */
#include "sw_sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct sw_sampler_t {
    sw_sampler_params_t p;
    int32_t n_vocab;
    uint64_t s[4];     /* xoshiro256** state */
    float *val;        /* (n_vocab) working logits, then probabilities */
    int32_t *cand;     /* (n_vocab) candidate ids */
    uint8_t *mark;     /* (n_vocab) repetition-penalty marks, all 0 between calls */
};

sw_sampler_params_t sw_sampler_default_params(void)
{
    sw_sampler_params_t p;
    memset(&p, 0, sizeof(p));
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 0;
    return p;
}

/* ---- RNG: splitmix64 seeding, xoshiro256** (Blackman & Vigna 2018) ---- */

static uint64_t s_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t s_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t s_next(sw_sampler_t *self)
{
    uint64_t *s = self->s;
    uint64_t r = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return r;
}

double sw_sampler_uniform(sw_sampler_t *self)
{
    return (double) (s_next(self) >> 11) * 0x1.0p-53;
}

sw_sampler_t *sw_sampler_new(const sw_sampler_params_t *params, int32_t n_vocab)
{
    if (!params || n_vocab <= 0)
        return NULL;
    const sw_sampler_params_t *p = params;
    if (isnan(p->temperature) || isnan(p->top_p) || isnan(p->min_p) || !(p->repeat_penalty > 0) ||
        !isfinite(p->repeat_penalty) || p->repeat_last_n < 0 || isinf(p->temperature))
        return NULL;
    sw_sampler_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->p = *p;
    self->n_vocab = n_vocab;
    self->val = malloc(sizeof(float) * (size_t) n_vocab);
    self->cand = malloc(sizeof(int32_t) * (size_t) n_vocab);
    self->mark = calloc((size_t) n_vocab, 1);
    if (!self->val || !self->cand || !self->mark) {
        sw_sampler_destroy(&self);
        return NULL;
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        self->s[i] = s_splitmix64(&x);
    return self;
}

void sw_sampler_destroy(sw_sampler_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_sampler_t *self = *self_p;
    free(self->val);
    free(self->cand);
    free(self->mark);
    free(self);
    *self_p = NULL;
}

/* ---- selection helpers --------------------------------------------------- */

/* a before b: larger value first, then smaller id */
static inline bool s_before(const float *v, int32_t a, int32_t b)
{
    return v[a] > v[b] || (v[a] == v[b] && a < b);
}

static inline void s_swap(int32_t *x, size_t i, size_t j)
{
    int32_t t = x[i];
    x[i] = x[j];
    x[j] = t;
}

/*  Rearranges c[0, n) so that its first k entries are the k first in
 *  (value desc, id asc) order (unsorted among themselves). Quickselect with
 *  median-of-three pivots; expected O(n). */
static void s_select(const float *v, int32_t *c, size_t n, size_t k)
{
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    while (hi - lo > 16) {
        size_t mid = lo + (hi - lo) / 2;
        /* order c[lo], c[mid], c[hi-1]; pivot = median */
        if (s_before(v, c[mid], c[lo])) s_swap(c, mid, lo);
        if (s_before(v, c[hi - 1], c[lo])) s_swap(c, hi - 1, lo);
        if (s_before(v, c[hi - 1], c[mid])) s_swap(c, hi - 1, mid);
        int32_t piv = c[mid];
        /* partition [lo, hi) into before-pivot | pivot | after */
        s_swap(c, mid, hi - 1);
        size_t st = lo;
        for (size_t i = lo; i < hi - 1; i++)
            if (s_before(v, c[i], piv))
                s_swap(c, i, st++);
        s_swap(c, st, hi - 1);
        if (st == k || st + 1 == k)
            return;
        if (st > k)
            hi = st;
        else
            lo = st + 1;
    }
    /* small range: insertion sort */
    for (size_t i = lo + 1; i < hi; i++) {
        int32_t x = c[i];
        size_t j = i;
        while (j > lo && s_before(v, x, c[j - 1])) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

/*  Sorts c[0, n) in (value desc, id asc) order; insertion sort for short
 *  runs, heap sort otherwise (O(n log n), no extra memory). */
static void s_sift(const float *v, int32_t *c, size_t i, size_t n)
{
    for (;;) {
        size_t m = i, l = 2 * i + 1, r = l + 1;
        /* max-heap on "after": the root is the last in order */
        if (l < n && s_before(v, c[m], c[l])) m = l;
        if (r < n && s_before(v, c[m], c[r])) m = r;
        if (m == i)
            return;
        s_swap(c, i, m);
        i = m;
    }
}

static void s_sort(const float *v, int32_t *c, size_t n)
{
    if (n < 2)
        return;
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            int32_t x = c[i];
            size_t j = i;
            while (j > 0 && s_before(v, x, c[j - 1])) {
                c[j] = c[j - 1];
                j--;
            }
            c[j] = x;
        }
        return;
    }
    for (size_t i = n / 2; i-- > 0;)
        s_sift(v, c, i, n);
    for (size_t end = n - 1; end > 0; end--) {
        s_swap(c, 0, end);
        s_sift(v, c, 0, end);
    }
}

/*  Top-p over c[0, nc) with probabilities v[id] (mass of the whole top-k
 *  set is 1): keeps the shortest prefix in (p desc, id asc) order whose mass
 *  reaches top_p, and returns its length; c[0, keep) holds that prefix
 *  (sorted only within the boundary bucket).
 *  Probabilities are bucketed by the bits of their float representation
 *  (monotonic for positive floats; 4 buckets per octave), so only the bucket
 *  holding the boundary is sorted: O(n) plus a small sort. */
#define S_NBUCKET 1024
static inline uint32_t s_bucket(float p)
{
    uint32_t bits;
    memcpy(&bits, &p, 4);
    if (bits >= 0x3F800000u) /* p >= 1 */
        return 0;
    uint32_t b = (0x3F800000u - bits) >> 21;
    return b < S_NBUCKET - 1 ? b : S_NBUCKET - 1;
}

static size_t s_top_p(sw_sampler_t *self, size_t nc)
{
    const float *v = self->val;
    int32_t *c = self->cand;
    const double top_p = self->p.top_p;
    double mass[S_NBUCKET];
    memset(mass, 0, sizeof(mass));
    for (size_t i = 0; i < nc; i++) {
        uint32_t b = s_bucket(v[c[i]]);
        mass[b] += v[c[i]];
    }
    double cum = 0;
    uint32_t B = 0;
    for (; B < S_NBUCKET - 1; B++) {
        if (cum + mass[B] >= top_p)
            break;
        cum += mass[B];
    }
    /* partition: buckets < B first, then bucket B, the rest dropped */
    size_t w = 0;
    for (size_t i = 0; i < nc; i++)
        if (s_bucket(v[c[i]]) < B)
            s_swap(c, i, w++);
    size_t wb = w;
    for (size_t i = w; i < nc; i++)
        if (s_bucket(v[c[i]]) == B)
            s_swap(c, i, wb++);
    s_sort(v, c + w, wb - w);
    for (size_t i = w; i < wb; i++) {
        cum += v[c[i]];
        if (cum >= top_p)
            return i + 1;
    }
    return wb > 0 ? wb : 1; /* rounding: the mass fell just short of top_p */
}

/* ---- the chain ------------------------------------------------------------ */

/*  Runs the chain on logits. Returns the number of kept candidates (>= 1)
 *  in self->cand with their probabilities (summing to 1) in self->val[id],
 *  or 0 if logits hold no finite value. For greedy, one candidate. */
static size_t s_chain(sw_sampler_t *self, const float *logits, const int32_t *history, int64_t n_hist)
{
    const sw_sampler_params_t *p = &self->p;
    const int32_t n = self->n_vocab;
    float *v = self->val;
    int32_t *c = self->cand;
    size_t nc = 0;
    for (int32_t i = 0; i < n; i++) {
        float x = logits[i];
        v[i] = x;
        if (isfinite(x))
            c[nc++] = i;
    }
    if (nc == 0)
        return 0;
    /* repetition penalty, once per distinct token of the recent history */
    if (p->repeat_penalty != 1.0f && history && n_hist > 0 && p->repeat_last_n > 0) {
        int64_t from = n_hist > p->repeat_last_n ? n_hist - p->repeat_last_n : 0;
        for (int64_t h = from; h < n_hist; h++) {
            int32_t t = history[h];
            if (t < 0 || t >= n || self->mark[t])
                continue;
            self->mark[t] = 1;
            if (isfinite(v[t]))
                v[t] = v[t] > 0 ? v[t] / p->repeat_penalty : v[t] * p->repeat_penalty;
        }
        for (int64_t h = from; h < n_hist; h++)
            if (history[h] >= 0 && history[h] < n)
                self->mark[history[h]] = 0;
    }
    if (p->temperature <= 0) {
        int32_t best = c[0];
        for (size_t i = 1; i < nc; i++)
            if (v[c[i]] > v[best])
                best = c[i];
        c[0] = best;
        v[best] = 1.0f;
        return 1;
    }
    /* top-k */
    if (p->top_k > 0 && (size_t) p->top_k < nc) {
        s_select(v, c, nc, (size_t) p->top_k);
        nc = (size_t) p->top_k;
    }
    /* softmax with temperature (order-preserving, so selection above holds) */
    float mx = -INFINITY;
    for (size_t i = 0; i < nc; i++)
        if (v[c[i]] > mx)
            mx = v[c[i]];
    double sum = 0;
    const float inv_t = 1.0f / p->temperature;
    for (size_t i = 0; i < nc; i++) {
        float e = expf((v[c[i]] - mx) * inv_t);
        v[c[i]] = e;
        sum += e;
    }
    for (size_t i = 0; i < nc; i++)
        v[c[i]] = (float) (v[c[i]] / sum);
    /* min-p, then top-p. Both keep a prefix of the (p desc, id asc) order
     * (min-p's reference p_max is the first element, which top-p always
     * keeps), so their intersection does not depend on the order; min-p
     * first is O(n) and shrinks top-p's work. */
    if (p->min_p > 0 && nc > 1) {
        float pmax = 0;
        for (size_t i = 0; i < nc; i++)
            if (v[c[i]] > pmax)
                pmax = v[c[i]];
        float thr = p->min_p * pmax;
        size_t w = 0;
        for (size_t i = 0; i < nc; i++)
            if (v[c[i]] >= thr)
                c[w++] = c[i];
        nc = w;
    }
    if (p->top_p < 1.0f && nc > 1)
        nc = s_top_p(self, nc);
    /* renormalise the kept set */
    sum = 0;
    for (size_t i = 0; i < nc; i++)
        sum += v[c[i]];
    for (size_t i = 0; i < nc; i++)
        v[c[i]] = (float) (v[c[i]] / sum);
    return nc;
}

int32_t sw_sampler_sample(sw_sampler_t *self, const float *logits, const int32_t *history, int64_t n_hist)
{
    size_t nc = s_chain(self, logits, history, n_hist);
    if (nc == 0)
        return -1;
    if (nc == 1)
        return self->cand[0];
    double u = sw_sampler_uniform(self), cum = 0;
    for (size_t i = 0; i < nc; i++) {
        cum += self->val[self->cand[i]];
        if (u < cum)
            return self->cand[i];
    }
    return self->cand[nc - 1]; /* rounding: the sum fell just short of 1 */
}

int sw_sampler_probs(sw_sampler_t *self, const float *logits, const int32_t *history, int64_t n_hist,
                     float *probs)
{
    size_t nc = s_chain(self, logits, history, n_hist);
    if (nc == 0)
        return -1;
    memset(probs, 0, sizeof(float) * (size_t) self->n_vocab);
    for (size_t i = 0; i < nc; i++)
        probs[self->cand[i]] = self->val[self->cand[i]];
    return 0;
}

int32_t sw_sampler_draw(sw_sampler_t *self, const float *probs, int32_t n)
{
    if (!probs || n <= 0)
        return -1;
    double sum = 0;
    int32_t last = -1;
    for (int32_t i = 0; i < n; i++) {
        if (probs[i] > 0 && isfinite(probs[i])) {
            sum += probs[i];
            last = i;
        }
    }
    if (!(sum > 0))
        return -1;
    double u = sw_sampler_uniform(self) * sum, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        if (probs[i] > 0 && isfinite(probs[i])) {
            cum += probs[i];
            if (u < cum)
                return i;
        }
    }
    return last;
}
