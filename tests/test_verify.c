/*  test_verify.c: verify/ on its own: row sketches (against the formula in
 *  sw_sketch.h computed here independently, linearity, the random-projection
 *  distance property on random rows), sealed commitments (round trip; every
 *  field the nonce binds; another key; tampering; sizes; non-finite
 *  sketches), and the audit book (honest sessions, a liar named at its first
 *  wrong row and not its downstream victims, rows of rejected draft tokens
 *  skipped, a host never checks itself, the adaptive audit rate, bounded
 *  memory). */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_audit.h"
#include "sw_commit.h"
#include "sw_sketch.h"
#include "sw_test.h"

static uint64_t s_rng = 0x1234567;

static double s_gauss(void)
{
    /* Box-Muller over xorshift64* (test data only) */
    double u[2];
    for (int i = 0; i < 2; i++) {
        s_rng ^= s_rng >> 12, s_rng ^= s_rng << 25, s_rng ^= s_rng >> 27;
        u[i] = ((double) ((s_rng * 0x2545F4914F6CDD1Dull) >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]);
}

/* The sketch formula of sw_sketch.h, written out again from the header. */
static double s_formula(const float *y, int n, uint32_t layer_end, int j)
{
    uint64_t state = (uint64_t) layer_end * 0x9E3779B97F4A7C15ull + (uint64_t) j + 1, word = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (i % 64 == 0) {
            state += 0x9E3779B97F4A7C15ull;
            uint64_t z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            word = z ^ (z >> 31);
        }
        sum += ((word >> (i % 64)) & 1) ? y[i] : -y[i];
    }
    return sum / sqrt((double) n);
}

static void test_sketch(void)
{
    enum { N = 197, R = 3 }; /* an odd row length: a partial 64-bit word at the end */
    float y[R * N], y2[R * N], sum[R * N], s[R * SW_SKETCH_K], s2[R * SW_SKETCH_K], ss[R * SW_SKETCH_K];
    for (int i = 0; i < R * N; i++) {
        y[i] = (float) s_gauss();
        y2[i] = (float) s_gauss();
        sum[i] = y[i] + y2[i];
    }
    sw_sketch_rows(y, R, N, 7, s);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < SW_SKETCH_K; j++)
            CHECK_NEAR(s[r * SW_SKETCH_K + j], s_formula(y + r * N, N, 7, j), 1e-5);
    sw_sketch_rows(y2, R, N, 7, s2);
    sw_sketch_rows(sum, R, N, 7, ss);
    for (int i = 0; i < R * SW_SKETCH_K; i++) /* linear */
        CHECK_NEAR(ss[i], s[i] + s2[i], 1e-4);
    float other[R * SW_SKETCH_K]; /* another layer boundary: other directions */
    sw_sketch_rows(y, R, N, 8, other);
    CHECK(sw_sketch_distance(other, s) > 0.1);
    CHECK(sw_sketch_distance(s, s) == 0.0);
    float nan_row[SW_SKETCH_K];
    memcpy(nan_row, s, sizeof nan_row);
    nan_row[3] = NAN;
    CHECK(isinf(sw_sketch_distance(nan_row, s)));
    CHECK(isinf(sw_sketch_distance(s, nan_row)));
    sw_sketch_rows(y, 0, N, 7, s2); /* no rows: nothing written, no crash */
}

/* The distance of sketches tracks the relative distance of rows: with
 * perturbations of 1% and of 30% of a row's norm (n_embd 2048), the two
 * groups of distances do not overlap, and their medians are near 0.01 and 0.3. */
static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *) a, z = *(const double *) b;
    return x < z ? -1 : x > z;
}

static void test_sketch_distance(void)
{
    enum { N = 2048, T = 101 };
    float *y = malloc(sizeof(float) * N), *z = malloc(sizeof(float) * N);
    double small[T], large[T];
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < 2; k++) {
            const double eps = k ? 0.3 : 0.01;
            double ny = 0;
            for (int i = 0; i < N; i++)
                y[i] = (float) s_gauss(), ny += (double) y[i] * y[i];
            double nd = 0;
            float d[N];
            for (int i = 0; i < N; i++)
                d[i] = (float) s_gauss(), nd += (double) d[i] * d[i];
            for (int i = 0; i < N; i++)
                z[i] = y[i] + (float) (eps * sqrt(ny / nd)) * d[i];
            float a[SW_SKETCH_K], b[SW_SKETCH_K];
            sw_sketch_rows(z, 1, N, 3, a);
            sw_sketch_rows(y, 1, N, 3, b);
            (k ? large : small)[t] = sw_sketch_distance(a, b);
        }
    }
    qsort(small, T, sizeof small[0], s_cmp);
    qsort(large, T, sizeof large[0], s_cmp);
    CHECK_MSG(small[T - 1] < large[0], "1%% perturbations reach %g, 30%% ones start at %g", small[T - 1], large[0]);
    CHECK_MSG(small[T / 2] > 0.004 && small[T / 2] < 0.025, "median at 1%%: %g", small[T / 2]);
    CHECK_MSG(large[T / 2] > 0.15 && large[T / 2] < 0.6, "median at 30%%: %g", large[T / 2]);
    free(y);
    free(z);
}

static void test_commit(void)
{
    uint8_t gw_pk[32], gw_sk[32], st_pk[32], st_sk[32], other_pk[32], other_sk[32];
    crypto_box_keypair(gw_pk, gw_sk);
    crypto_box_keypair(st_pk, st_sk);
    crypto_box_keypair(other_pk, other_sk);
    sw_seal_peers_t *stage = sw_seal_peers_new(st_sk), *gw = sw_seal_peers_new(gw_sk),
                    *other = sw_seal_peers_new(other_sk);
    enum { ROWS = 5 };
    float sk[ROWS * SW_SKETCH_K];
    for (int i = 0; i < ROWS * SW_SKETCH_K; i++)
        sk[i] = (float) s_gauss();
    sw_commit_t c = {.layer_begin = 2, .layer_end = 4, .n_rows = ROWS, .sketch = sk};
    CHECK(sw_commit_digest("in", 2, c.in_digest) == 0);
    CHECK(sw_commit_digest("out", 3, c.out_digest) == 0);
    CHECK(memcmp(c.in_digest, c.out_digest, SW_COMMIT_DIGEST_BYTES) != 0);
    const sw_seal_ctx_t ctx = {.dir = SW_SEAL_COMMIT, .session_id = "s1", .session_len = 2, .request_id = 77,
                               .pos = 10, .n_rows = ROWS, .hop = 1};
    uint8_t *sealed = NULL;
    size_t len = 0;
    CHECK(sw_commit_seal(stage, gw_pk, &ctx, &c, &sealed, &len) == 0);
    CHECK(len == SW_COMMIT_HEADER_BYTES + 4 * ROWS * SW_SKETCH_K + 8 + SW_SEAL_MAC_BYTES);
    char err[200];
    sw_commit_t o;
    CHECK_MSG(sw_commit_open(gw, st_pk, &ctx, sealed, len, ROWS, &o, err, sizeof err) == 0, "%s", err);
    CHECK(o.layer_begin == 2 && o.layer_end == 4 && o.n_rows == ROWS);
    CHECK(!memcmp(o.in_digest, c.in_digest, 16) && !memcmp(o.out_digest, c.out_digest, 16));
    CHECK(o.sketch && !memcmp(o.sketch, sk, sizeof sk));
    sw_commit_free(&o);
    CHECK(o.sketch == NULL);
    /* every bound field, another key, a flipped byte: does not open */
    sw_seal_ctx_t bad[5] = {ctx, ctx, ctx, ctx, ctx};
    bad[0].hop = 2, bad[1].request_id = 78, bad[2].pos = 11, bad[3].session_id = "s2", bad[4].dir = SW_SEAL_TO_GATEWAY;
    for (int i = 0; i < 4; i++)
        CHECK(sw_commit_open(gw, st_pk, &bad[i], sealed, len, ROWS, &o, err, sizeof err) != 0);
    CHECK(sw_commit_open(gw, st_pk, &bad[4], sealed, len, ROWS, &o, err, sizeof err) != 0);
    CHECK(sw_commit_open(gw, other_pk, &ctx, sealed, len, ROWS, &o, err, sizeof err) != 0); /* not that stage */
    CHECK(sw_commit_open(other, st_pk, &ctx, sealed, len, ROWS, &o, err, sizeof err) != 0); /* not for us */
    sealed[len / 2] ^= 1;
    CHECK(sw_commit_open(gw, st_pk, &ctx, sealed, len, ROWS, &o, err, sizeof err) != 0);
    sealed[len / 2] ^= 1;
    CHECK(sw_commit_open(gw, st_pk, &ctx, sealed, len, ROWS + 1, &o, err, sizeof err) != 0); /* size first */
    CHECK(strstr(err, "bytes") != NULL);
    CHECK(sw_commit_open(gw, st_pk, &ctx, sealed, len - 1, ROWS, &o, err, sizeof err) != 0);
    CHECK(sw_commit_open(gw, st_pk, &ctx, sealed, 0, ROWS, &o, err, sizeof err) != 0);
    CHECK(sw_commit_open(gw, st_pk, &ctx, sealed, len, 0, &o, err, sizeof err) != 0);
    free(sealed);
    /* what a stage may not commit to */
    sw_commit_t empty = c;
    empty.layer_end = empty.layer_begin;
    CHECK(sw_commit_seal(stage, gw_pk, &ctx, &empty, &sealed, &len) != 0);
    sw_commit_t wrong_dir = c;
    sw_seal_ctx_t to_gw = ctx;
    to_gw.dir = SW_SEAL_TO_GATEWAY;
    CHECK(sw_commit_seal(stage, gw_pk, &to_gw, &wrong_dir, &sealed, &len) != 0);
    /* a sketch that is not finite is refused when opened */
    sk[7] = INFINITY;
    CHECK(sw_commit_seal(stage, gw_pk, &ctx, &c, &sealed, &len) == 0);
    CHECK(sw_commit_open(gw, st_pk, &ctx, sealed, len, ROWS, &o, err, sizeof err) != 0);
    CHECK(strstr(err, "finite") != NULL);
    free(sealed);
    sw_seal_peers_destroy(&stage);
    sw_seal_peers_destroy(&gw);
    sw_seal_peers_destroy(&other);
}

/* ---- the audit book ---- */

enum { HOPS = 2, MAXR = 16 };
static float s_true[MAXR][HOPS][SW_SKETCH_K]; /* the honest sketch of row p at hop h */

static void s_truth(void)
{
    for (int p = 0; p < MAXR; p++)
        for (int h = 0; h < HOPS; h++)
            for (int j = 0; j < SW_SKETCH_K; j++)
                s_true[p][h][j] = (float) s_gauss();
}

/* Sketches of rows [pos, pos + n) at hop h into out, honest except rows >=
 * lie_from at hop >= lie_hop, which get noise (a liar and its victims). */
static void s_rows(int pos, int n, int h, int lie_hop, int lie_from, float *out)
{
    for (int r = 0; r < n; r++)
        for (int j = 0; j < SW_SKETCH_K; j++)
            out[r * SW_SKETCH_K + j] = s_true[pos + r][h][j] * (h >= lie_hop && pos + r >= lie_from ? -3.0f : 1.0f) +
                                       (float) (1e-6 * s_gauss());
}

/* Records a session of steps: prefill [0, 5) then one row per step up to
 * `rows`, through a (0-2) and b (2-4). */
static void s_record(sw_audit_t *a, const char *sid, const int32_t *tokens, int rows, int lie_hop, int lie_from)
{
    const char *nodes[HOPS] = {"node-a", "node-b"};
    for (int pos = 0; pos < rows;) {
        const int n = pos == 0 ? 5 : 1;
        float sk[HOPS][MAXR * SW_SKETCH_K];
        sw_audit_hop_t hops[HOPS];
        for (int h = 0; h < HOPS; h++) {
            s_rows(pos, n, h, lie_hop, lie_from, sk[h]);
            hops[h] = (sw_audit_hop_t){.node_id = nodes[h], .begin = (uint32_t) (2 * h), .end = (uint32_t) (2 * h + 2),
                                       .sketch = sk[h]};
        }
        CHECK(sw_audit_record(a, sid, pos, n, tokens + pos, hops, HOPS) == 0);
        pos += n;
    }
}

/* Compares rows [pos, pos + n) as computed honestly by auditors x (0-2) and y (2-4). */
static void s_compare(sw_audit_t *a, const char *sid, const int32_t *hist, int n_hist, int pos, int n,
                      const char *x, const char *y, sw_audit_result_t *res)
{
    float sk[HOPS][MAXR * SW_SKETCH_K];
    sw_audit_hop_t hops[HOPS];
    const char *nodes[HOPS] = {x, y};
    for (int h = 0; h < HOPS; h++) {
        s_rows(pos, n, h, 99, 99, sk[h]);
        hops[h] = (sw_audit_hop_t){.node_id = nodes[h], .begin = (uint32_t) (2 * h), .end = (uint32_t) (2 * h + 2),
                                   .sketch = sk[h]};
    }
    CHECK(sw_audit_compare(a, sid, hist, n_hist, pos, n, hops, HOPS, res) == 0);
}

static void test_audit(void)
{
    s_truth();
    int32_t tok[MAXR];
    for (int i = 0; i < MAXR; i++)
        tok[i] = 100 + i;
    sw_audit_config_t cfg = {.threshold = 0.05, .n_trust = 4, .rate_floor = 0.25};
    sw_audit_t *a = sw_audit_new(&cfg);
    sw_audit_result_t res;
    /* honest: everything agrees; 4 steps (1 prefill + 3 decode) verified per node */
    s_record(a, "honest", tok, 8, 99, 99);
    CHECK(sw_audit_pending_rows(a, "honest") == 8);
    CHECK(sw_audit_rate(a, "node-a") == 1.0 && !sw_audit_trusted(a, "node-a"));
    s_compare(a, "honest", tok, 9, 0, 8, "aud-x", "aud-y", &res);
    CHECK(!res.mismatch && res.n_compared == 16 && res.compared_end == 8);
    CHECK(res.max_ok_distance < 1e-3);
    uint64_t v = 0, cons = 0, f = 0;
    sw_audit_counts(a, "node-a", &v, &cons, &f);
    CHECK(v == 4 && cons == 4 && f == 0);
    CHECK(sw_audit_trusted(a, "node-b") && sw_audit_rate(a, "node-b") == 1.0); /* n_trust / 4 */
    sw_audit_counts(a, "aud-x", &v, NULL, NULL);
    CHECK(v == 0); /* an auditor earns nothing for auditing */
    CHECK(sw_audit_pending_rows(a, "honest") == 0 && sw_audit_compared_end(a, "honest") == 8);
    s_record(a, "honest2", tok, 16, 99, 99); /* 12 more steps: rate n_trust / 16 = 0.25 = the floor */
    s_compare(a, "honest2", tok, 17, 0, 16, "aud-x", "aud-y", &res);
    CHECK(!res.mismatch);
    sw_audit_counts(a, "node-a", &v, &cons, NULL);
    CHECK(v == 16 && cons == 16);
    CHECK_NEAR(sw_audit_rate(a, "node-a"), 0.25, 1e-12);

    /* a liar at hop 0 from row 9 on: named there, not hop 1 (its victim), even audited in two chunks */
    s_record(a, "lie", tok, 14, 0, 9);
    s_compare(a, "lie", tok, 15, 0, 6, "aud-x", "aud-y", &res);
    CHECK(!res.mismatch && res.compared_end == 6);
    s_compare(a, "lie", tok, 15, 6, 8, "aud-x", "aud-y", &res);
    CHECK(res.mismatch && res.pos == 9 && res.begin == 0 && res.end == 2 && !strcmp(res.node, "node-a") &&
          !strcmp(res.auditor, "aud-x") && res.distance > 1.0);
    CHECK(sw_audit_unverified_through(a, "lie", "node-a") && sw_audit_unverified_through(a, "lie", "node-b"));
    sw_audit_counts(a, "node-a", NULL, &cons, NULL);
    CHECK(cons > 0); /* compare names; the caller decides */
    sw_audit_fail(a, "node-a");
    sw_audit_counts(a, "node-a", NULL, &cons, &f);
    CHECK(cons == 0 && f == 1 && sw_audit_rate(a, "node-a") == 1.0);
    /* the victim: a liar at hop 1 only is named as hop 1 */
    s_record(a, "lie1", tok, 10, 1, 7);
    s_compare(a, "lie1", tok, 11, 0, 10, "aud-x", "aud-y", &res);
    CHECK(res.mismatch && res.pos == 7 && res.begin == 2 && !strcmp(res.node, "node-b"));

    /* rows of draft tokens the history rejected are not compared */
    int32_t hist[MAXR];
    memcpy(hist, tok, sizeof hist);
    hist[7] = 999; /* the step that fed tok[6..] had draft tok[7] at row 7: rejected */
    sw_audit_t *b = sw_audit_new(&cfg);
    const char *nodes[HOPS] = {"node-a", "node-b"};
    float sk[HOPS][3 * SW_SKETCH_K];
    sw_audit_hop_t hops[HOPS];
    for (int h = 0; h < HOPS; h++) {
        s_rows(6, 3, h, 99, 99, sk[h]);
        for (int j = 0; j < SW_SKETCH_K; j++) /* rows 7-8 were computed for other tokens: other values */
            sk[h][SW_SKETCH_K + j] += 5, sk[h][2 * SW_SKETCH_K + j] += 5;
        hops[h] = (sw_audit_hop_t){.node_id = nodes[h], .begin = (uint32_t) (2 * h), .end = (uint32_t) (2 * h + 2),
                                   .sketch = sk[h]};
    }
    CHECK(sw_audit_record(b, "draft", 6, 3, tok + 6, hops, HOPS) == 0);
    s_compare(b, "draft", hist, 9, 6, 3, "aud-x", "aud-y", &res);
    CHECK(!res.mismatch && res.n_compared == 2 && res.n_skipped == 2);
    /* a host never checks itself */
    for (int h = 0; h < HOPS; h++)
        s_rows(0, 2, h, 99, 99, sk[h]);
    CHECK(sw_audit_record(b, "self", 0, 2, tok, hops, HOPS) == 0);
    s_compare(b, "self", tok, 3, 0, 2, "node-a", "aud-y", &res);
    CHECK(!res.mismatch && res.n_compared == 2 && res.n_skipped == 2);
    sw_audit_counts(b, "node-a", &v, NULL, NULL);
    CHECK(v == 1); /* from "draft" only, not from checking itself */
    /* bad arguments */
    CHECK(sw_audit_record(b, "x", -1, 1, tok, hops, HOPS) != 0);
    CHECK(sw_audit_record(b, "x", 0, 0, tok, hops, HOPS) != 0);
    CHECK(sw_audit_record(b, "x", 0, 1, tok, hops, 0) != 0);
    CHECK(sw_audit_compare(b, "x", tok, 3, 0, 0, hops, HOPS, &res) != 0);
    s_compare(b, "unknown", tok, 3, 0, 2, "aud-x", "aud-y", &res); /* nothing recorded: nothing compared */
    CHECK(!res.mismatch && res.n_compared == 0);
    sw_audit_forget(b, "draft");
    CHECK(sw_audit_pending_rows(b, "draft") == 0);
    sw_audit_destroy(&b);
    CHECK(b == NULL);

    /* bounded: at most max_rows recorded rows per session */
    sw_audit_config_t small = {.max_rows = 6};
    sw_audit_t *m = sw_audit_new(&small);
    s_record(m, "long", tok, 12, 99, 99);
    CHECK(sw_audit_pending_rows(m, "long") <= 6);
    sw_audit_destroy(&m);
    sw_audit_destroy(&a);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_sketch();
    test_sketch_distance();
    test_commit();
    test_audit();
    return sw_test_report("verify");
}
