/*  bench_credits.c: what the gateway's credit bookkeeping costs
 *  (gateway/sw_reputation, gateway/sw_api_token) on a real SQLite file.
 *
 *  Times, one thread, best of 3 runs each:
 *    credit_work    one call (in memory), with S (key, session) sums held:
 *                   the gateway's loop makes one per hop per forward step
 *    tick           one write of S sums and the grant of the due ones (one
 *                   transaction, synchronous=FULL: an fsync)
 *    verified, failed  one verdict (one transaction each)
 *    row            one key's record (the HTTP front per request with a token)
 *    token check    one API token look-up (the same)
 *    list           the leaderboard of K keys (GET /api/credits)
 *  Prints a Markdown table; never fails on a timing.
 *
 *  usage: bench_credits [--dir DIR] [--keys K]   (DIR: where the database goes,
 *  default /tmp; K: keys in the table, default 1000)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sw_api_token.h"
#include "sw_reputation.h"

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* Removes the database and its WAL and shared-memory files. */
static void s_rm(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

static double s_min(double a, double b) { return a < b ? a : b; }

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    int n_keys = 1000;
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'}, {"keys", required_argument, NULL, 'k'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "d:k:", opts, NULL)) != -1) {
        if (c == 'd')
            dir = optarg;
        else if (c == 'k' && atoi(optarg) >= 1 && atoi(optarg) <= 100000)
            n_keys = atoi(optarg);
        else {
            fprintf(stderr, "usage: bench_credits [--dir DIR] [--keys K]\n");
            return 2;
        }
    }
    char path[512], err[512], id[32], sid[32];
    snprintf(path, sizeof path, "%s/bench-credits-%d.db", dir, (int) getpid());
    s_rm(path);
    const sw_reputation_policy_t pol = {.audit_window_s = 120};
    sw_reputation_t *r = sw_reputation_open(path, &pol, err, sizeof err);
    sw_api_token_t *t = r ? sw_api_token_open(path, 0, err, sizeof err) : NULL;
    if (!r || !t) {
        fprintf(stderr, "bench_credits: %s\n", err);
        return 1;
    }
    double now = 1e6;
    for (int k = 0; k < n_keys; k++) { /* K keys with a record each */
        snprintf(id, sizeof id, "%016x", k * 2654435761u);
        sw_reputation_credit_work(r, id, "warm-up", 1.0 + k, now, err, sizeof err);
        if (k % 1000 == 999)
            sw_reputation_tick(r, now += 1, err, sizeof err);
    }
    sw_reputation_tick(r, now += 200, err, sizeof err);
    sw_reputation_tick(r, now += 200, err, sizeof err); /* all granted */
    char token[SW_API_TOKEN_HEX + 1], who[SW_API_TOKEN_ID_MAX + 1];
    snprintf(id, sizeof id, "%016x", 7 * 2654435761u);
    sw_api_token_issue(t, id, now, token, NULL, err, sizeof err);

    printf("| operation | setting | time |\n|---|---|---|\n");
    const int sums[] = {128, 2048};
    for (size_t si = 0; si < sizeof sums / sizeof sums[0]; si++) {
        const int S = sums[si];
        double best_work = 1e9, best_tick = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            const int calls = 20 * S;
            now += 1.5;
            double t0 = s_now();
            for (int i = 0; i < calls; i++) { /* S sessions x hops over 8 keys, round robin */
                snprintf(id, sizeof id, "%016x", (i % 8) * 2654435761u);
                snprintf(sid, sizeof sid, "session-%d", i % S);
                sw_reputation_credit_work(r, id, sid, 0.25, now, err, sizeof err);
            }
            best_work = s_min(best_work, (s_now() - t0) / calls);
            t0 = s_now();
            if (sw_reputation_tick(r, now += 1.5, err, sizeof err) < 0)
                fprintf(stderr, "bench_credits: %s\n", err);
            best_tick = s_min(best_tick, s_now() - t0);
        }
        printf("| credit_work | %d sums held | %.0f ns |\n", S, best_work * 1e9);
        printf("| tick: write the sums (one transaction) | %d sums | %.2f ms |\n", S, best_tick * 1e3);
    }
    double best_v = 1e9, best_f = 1e9, best_row = 1e9, best_tok = 1e9, best_list = 1e9;
    sw_reputation_row_t *rows = malloc(sizeof *rows * (size_t) n_keys), row;
    for (int rep = 0; rep < 3 && rows; rep++) {
        const int n = 20;
        double t0 = s_now();
        for (int i = 0; i < n; i++) {
            snprintf(id, sizeof id, "%016x", (i % 8) * 2654435761u);
            sw_reputation_verified(r, id, 1, now += 0.01, err, sizeof err);
        }
        best_v = s_min(best_v, (s_now() - t0) / n);
        t0 = s_now();
        for (int i = 0; i < n; i++) {
            snprintf(id, sizeof id, "%016x", (100 + i) * 2654435761u);
            sw_reputation_failed(r, id, now += 0.01, "bench", err, sizeof err);
        }
        best_f = s_min(best_f, (s_now() - t0) / n);
        const int m = 2000;
        t0 = s_now();
        for (int i = 0; i < m; i++) {
            snprintf(id, sizeof id, "%016x", (i % n_keys) * 2654435761u);
            sw_reputation_row(r, id, &row, err, sizeof err);
        }
        best_row = s_min(best_row, (s_now() - t0) / m);
        t0 = s_now();
        for (int i = 0; i < m; i++)
            if (sw_api_token_check(t, token, now, who, err, sizeof err) != SW_API_TOKEN_VALID)
                fprintf(stderr, "bench_credits: the token does not check\n");
        best_tok = s_min(best_tok, (s_now() - t0) / m);
        t0 = s_now();
        sw_reputation_list(r, rows, n_keys, err, sizeof err);
        best_list = s_min(best_list, s_now() - t0);
    }
    printf("| verified (one transaction) | | %.2f ms |\n", best_v * 1e3);
    printf("| failed (one transaction, claw-back) | | %.2f ms |\n", best_f * 1e3);
    printf("| row (one key's record) | %d keys | %.1f us |\n", n_keys, best_row * 1e6);
    printf("| API token check | | %.1f us |\n", best_tok * 1e6);
    printf("| list (GET /api/credits) | %d keys | %.2f ms |\n", n_keys, best_list * 1e3);
    free(rows);
    sw_api_token_destroy(&t);
    sw_reputation_destroy(&r);
    s_rm(path);
    return 0;
}
