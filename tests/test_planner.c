/*  test_planner.c: chain planning against an exhaustive search written here.
 *  For random directories (overlaps, gaps, sub-ranges) the planner's cost must
 *  equal the minimum over every chain the brute force enumerates, its hops
 *  must be contiguous, cover [0, n_layer) and stay inside their stages. */
#include <math.h>
#include <string.h>

#include "sw_planner.h"
#include "sw_test.h"

static double s_cost(const sw_plan_stage_t *s, int i, int j)
{
    double link = s->link_ms > 0 ? s->link_ms : 1.0, per = s->ms_per_layer > 0 ? s->ms_per_layer : 1.0;
    return link + per * (j - i) * (1.0 + s->busy + s->queued / 4.0);
}

/* cheapest chain from layer i to n by trying everything */
static double s_brute(const sw_plan_stage_t *st, int n_st, int i, int n)
{
    if (i == n)
        return 0;
    double best = INFINITY;
    for (int s = 0; s < n_st; s++)
        for (int j = i + 1; j <= n; j++)
            if (st[s].begin <= i && st[s].end >= j) {
                double c = s_cost(&st[s], i, j) + s_brute(st, n_st, j, n);
                if (c < best) best = c;
            }
    return best;
}

int main(void)
{
    uint64_t rng = 12345;
#define RND(n) ((int) (((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 33) % (uint64_t) (n)))
    for (int trial = 0; trial < 400; trial++) {
        const int n_layer = 1 + RND(7), n_st = 1 + RND(5);
        sw_plan_stage_t st[5];
        for (int s = 0; s < n_st; s++) {
            int a = RND(n_layer), b = a + 1 + RND(n_layer - a);
            st[s] = (sw_plan_stage_t){.node_id = "x", .begin = a, .end = b, .ms_per_layer = (float) (1 + RND(5)),
                                      .link_ms = (float) RND(4), .busy = RND(3) * 0.25f, .queued = (uint32_t) RND(3)};
        }
        sw_plan_t plan;
        const double want = s_brute(st, n_st, 0, n_layer);
        int rc = sw_plan(st, n_st, n_layer, &plan);
        if (isinf(want)) {
            CHECK(rc == -1);
            CHECK(plan.gap_begin < plan.gap_end && plan.gap_end <= n_layer);
            continue;
        }
        CHECK(rc == 0);
        if (rc != 0)
            continue;
        CHECK_NEAR(plan.cost_ms, want, 1e-6);
        int32_t at = 0;
        double sum = 0;
        for (int h = 0; h < plan.n_hops; h++) {
            const sw_plan_hop_t *hp = &plan.hops[h];
            CHECK(hp->begin == at && hp->end > hp->begin);
            CHECK(st[hp->stage].begin <= hp->begin && hp->end <= st[hp->stage].end);
            sum += s_cost(&st[hp->stage], hp->begin, hp->end);
            at = hp->end;
        }
        CHECK(at == n_layer);
        CHECK_NEAR(sum, plan.cost_ms, 1e-6);
    }
    /* a gap is named */
    sw_plan_stage_t two[2] = {{.node_id = "a", .begin = 0, .end = 2}, {.node_id = "b", .begin = 4, .end = 5}};
    sw_plan_t plan;
    CHECK(sw_plan(two, 2, 5, &plan) == -1 && plan.gap_begin == 2 && plan.gap_end == 4);
    char gaps[64];
    CHECK(sw_plan_gaps(two, 2, 5, gaps, sizeof gaps) == 1 && !strcmp(gaps, "2-3"));
    CHECK(sw_plan_gaps(two, 0, 3, gaps, sizeof gaps) == 1 && !strcmp(gaps, "0-2"));
    /* coverage of a draining stage's range by the others: 0-1 and 4 held, 2-3 not */
    CHECK(sw_plan_covers(two, 2, 0, 2) && sw_plan_covers(two, 2, 4, 5) && sw_plan_covers(two, 2, 1, 1));
    CHECK(!sw_plan_covers(two, 2, 2, 4) && !sw_plan_covers(two, 2, 1, 3) && !sw_plan_covers(two, 2, 0, 5));
    CHECK(!sw_plan_covers(two, 0, 0, 1) && sw_plan_covers(two, 0, 3, 3));
    /* a fast stage holding everything beats a chain of slow ones; ties prefer fewer hops */
    sw_plan_stage_t three[3] = {{.node_id = "all", .begin = 0, .end = 4, .ms_per_layer = 1, .link_ms = 1},
                                {.node_id = "lo", .begin = 0, .end = 2, .ms_per_layer = 1, .link_ms = 1},
                                {.node_id = "hi", .begin = 2, .end = 4, .ms_per_layer = 1, .link_ms = 1}};
    CHECK(sw_plan(three, 3, 4, &plan) == 0 && plan.n_hops == 1 && plan.hops[0].stage == 0);
    return sw_test_report("planner");
}
