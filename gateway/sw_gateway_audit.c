/*  sw_gateway_audit.c: the gateway's side of verification (docs/security.md,
 *  "Verification"): commitments checked on every reply, sessions audited on
 *  an independent route at the rate the hops' trust sets, text held until
 *  verified while a hop is not trusted, and a caught stage banned with the
 *  sessions it touched started again.
 *
 *  An audit shadows one session: an audit session ("audit-<hex>") on a route
 *  with the same layer ranges on other hosts is fed the session's tokens as
 *  prefill chunks; each chunk's commitments are compared with what the
 *  session's own hops committed (verify/sw_audit.h). The shadow keeps its KV
 *  caches, so the next audit of the same session sends only the new rows.
 *  A disagreement is decided by an operator's trusted auditor (a key in
 *  --trusted-keys, e.g. a `swisd-stage --audit`) or, between two untrusted
 *  hosts, by a third host (a tie-break audit): two of three.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_ban_outbox.h"
#include "sw_bans.h"
#include "sw_common.h"
#include "sw_gateway_internal.h"
#include "sw_reputation.h"
#include "sw_route.h"
#include "sw_state_db.h"

#define S_MAX_JOBS 16             /* audits at once */
#define S_AUDIT_CHUNK 512         /* rows per audit step (SW_SESSION_PREFILL_CHUNK) */
#define S_MAX_AUDIT_BANNED 4096   /* nodes remembered as caught */
#define S_MAX_HELD 65536          /* chunks held per session */
#define S_MAX_ATTEMPTS 3          /* audits of one session that may fail to run before its text goes unverified */
#define S_CHUNK_SLACK_MS 2000     /* an audit chunk's deadline: this plus 3x its expected compute */
#define S_HOLD_BATCH 64           /* --audit-hold all, trusted route: rows audited at once (text comes out in
                                     batches of about this many tokens, and at the end) */

_Static_assert(S_AUDIT_CHUNK <= SW_SESSION_PREFILL_CHUNK, "audit chunks fit the gateway's row buffer");

/* Flushes the verified results gathered since the last flush into the
 * reputation (a database transaction per key: batched, at most once a
 * second from the tick, or when the table is full). */
static void s_flush_verified(sw_gateway_t *g)
{
    char err[200];
    for (int i = 0; i < g->n_verified_pending; i++)
        if (g->cfg.reputation && sw_reputation_verified(g->cfg.reputation, g->verified_pending[i].id,
                                                        g->verified_pending[i].n, sw_state_db_unix_s(), err,
                                                        sizeof err) != 0)
            sw_log(SW_LOG_WARN, "gateway: cannot record verified results of %.16s: %s", g->verified_pending[i].id,
                   err);
    g->n_verified_pending = 0;
    g->verified_flush_ns = sw_now_ns();
}

/* sw_audit's report: node's steps an independent host verified. */
static void s_on_verified(void *user, const char *node, uint64_t steps)
{
    sw_gateway_t *g = user;
    for (int i = 0; i < g->n_verified_pending; i++)
        if (!strcmp(g->verified_pending[i].id, node)) {
            g->verified_pending[i].n += steps;
            return;
        }
    if (g->n_verified_pending == SW__VERIFIED_PENDING)
        s_flush_verified(g);
    snprintf(g->verified_pending[g->n_verified_pending].id, sizeof g->verified_pending[0].id, "%s", node);
    g->verified_pending[g->n_verified_pending++].n = steps;
}

int sw__audit_init(sw_gateway_t *g, char *err, size_t errlen)
{
    const sw_audit_config_t cfg = {.threshold = g->cfg.audit_threshold, .on_verified = s_on_verified, .user = g};
    if (!(g->audit = sw_audit_new(&cfg)) ||
        !(g->audit_banned = calloc(S_MAX_AUDIT_BANNED, sizeof g->audit_banned[0]))) {
        sw_audit_destroy(&g->audit);
        return sw_err(err, errlen, "out of memory");
    }
    return 0;
}

/* Unlinks and frees job j (its KV caches released). */
static void s_job_drop(sw_gateway_t *g, sw__audit_job_t *j)
{
    for (sw__audit_job_t **pp = &g->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    for (int i = 0; g->bc && i < j->n_hops; i++) /* its shadow's KV caches */
        sw__gateway_kv_release(g, j->hops[i].node, j->asid);
    free(j);
}

void sw__audit_free(sw_gateway_t *g)
{
    s_flush_verified(g);
    while (g->jobs)
        s_job_drop(g, g->jobs);
    sw_audit_destroy(&g->audit);
    free(g->audit_banned);
    g->audit_banned = NULL;
}

bool sw__audit_banned(const sw_gateway_t *g, const char *node)
{
    for (int i = 0; i < g->n_audit_banned; i++)
        if (!strcmp(g->audit_banned[i], node))
            return true;
    return false;
}

/* True when node's word is taken without a second opinion: an operator's key
 * (--trusted-keys) or one with enough consecutive verified steps. */
/* node's reputation, from memory when read less than a second ago (the
 * loop asks per token and per hop; a database read each time would cost
 * more than the step). An unknown key, or no reputation: audited always. */
static const sw__trust_t *s_trust(sw_gateway_t *g, const char *node)
{
    const uint64_t now = sw_now_ns();
    sw__trust_t *t = NULL;
    for (int i = 0; i < SW__TRUST_CACHE && !t; i++)
        if (g->trust_cache[i].id[0] && !strcmp(g->trust_cache[i].id, node))
            t = &g->trust_cache[i];
    if (t && now - t->read_ns < 1000000000ull)
        return t;
    if (!t) {
        t = &g->trust_cache[g->trust_next];
        g->trust_next = (g->trust_next + 1) % SW__TRUST_CACHE;
    }
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", node);
    t->audit_rate = 1.0;
    t->read_ns = now;
    sw_reputation_row_t row;
    char err[200];
    if (g->cfg.reputation && sw_reputation_row(g->cfg.reputation, node, &row, err, sizeof err) == 1) {
        t->known = true;
        t->verified = row.verified;
        t->consecutive = row.consecutive;
        t->failed = row.failed;
        t->audit_rate = row.audit_rate;
        t->trusted = row.trusted;
    }
    return t;
}

/* Forgets node's cached reputation (after a verdict about it). */
static void s_trust_forget(sw_gateway_t *g, const char *node)
{
    for (int i = 0; i < SW__TRUST_CACHE; i++)
        if (!strcmp(g->trust_cache[i].id, node))
            g->trust_cache[i].id[0] = '\0';
}

static bool s_trusted(sw_gateway_t *g, const char *node)
{
    return (g->trusted && sw_keyset_contains(g->trusted, node)) || s_trust(g, node)->trusted;
}

/* The share of node's steps to audit: none for an operator's key, else its
 * reputation's rate (1 without a reputation: everything). */
static double s_rate(sw_gateway_t *g, const char *node)
{
    if (g->trusted && sw_keyset_contains(g->trusted, node))
        return 0;
    return s_trust(g, node)->audit_rate;
}

static bool s_operator(sw_gateway_t *g, const char *node)
{
    return g->trusted && sw_keyset_contains(g->trusted, node);
}

static sw__gw_session_t *s_session(sw_gateway_t *g, const char *sid)
{
    for (sw__gw_session_t *c = g->sessions; c; c = c->next)
        if (!strcmp(sw_session_id(c->ss), sid))
            return c;
    return NULL;
}

static sw__audit_job_t *s_job(sw_gateway_t *g, const char *sid, bool tiebreak)
{
    for (sw__audit_job_t *j = g->jobs; j; j = j->next)
        if (!strcmp(j->sid, sid) && j->tiebreak == tiebreak)
            return j;
    return NULL;
}

static void s_commits_free(sw__gw_session_t *c)
{
    for (int i = 0; i < c->n_commits; i++)
        sw_commit_free(&c->commits[i]);
    c->n_commits = 0;
}

/* Opens the commitment of every timing of a reply (route: hop node ids and
 * keys) and checks the chain of digests: sent (what hop 0 opened, as the
 * sender computed it), each hop's input = the previous one's output, the
 * last one's output = reply_plain. out[] gets the opened commitments (caller
 * frees with sw_commit_free). Returns 0, or -1 with err. */
static int s_open_commits(sw_gateway_t *g, const char *sid, uint64_t request_id, int64_t pos, int64_t n_rows,
                          Swisd__V1__HopTiming *const *timings, size_t n_timings, int n_hops,
                          const char *const *nodes, const uint8_t *const *keys, const uint32_t *begin,
                          const uint32_t *end, const uint8_t sent[SW_COMMIT_DIGEST_BYTES], const void *reply_plain,
                          size_t len, sw_commit_t *out, char *err, size_t errlen)
{
    if ((int) n_timings != n_hops)
        return sw_err(err, errlen, "%zu hop timings for a route of %d hops", n_timings, n_hops);
    uint8_t reply_digest[SW_COMMIT_DIGEST_BYTES];
    if (sw_commit_digest(reply_plain, len, reply_digest) != 0)
        return sw_err(err, errlen, "cannot hash the reply");
    for (int i = 0; i < n_hops; i++) {
        const ProtobufCBinaryData *cm = &timings[i]->commitment;
        const sw_seal_ctx_t ctx = {.dir = SW_SEAL_COMMIT, .session_id = sid, .session_len = strlen(sid),
                                   .request_id = request_id, .pos = (uint32_t) pos, .n_rows = (uint32_t) n_rows,
                                   .hop = (uint32_t) i};
        char why[200];
        if (!keys[i] ||
            sw_commit_open(g->seal, keys[i], &ctx, cm->data, cm->len, (uint32_t) n_rows, &out[i], why, sizeof why)) {
            for (int k = 0; k < i; k++)
                sw_commit_free(&out[k]);
            return sw_err(err, errlen, "hop %d (stage %.16s): %s", i, nodes[i], keys[i] ? why : "no key");
        }
        const uint8_t *want_in = i == 0 ? sent : out[i - 1].out_digest;
        const char *why_chain = out[i].layer_begin != begin[i] || out[i].layer_end != end[i]
                                    ? "committed to other layers than it was asked for"
                                : memcmp(out[i].in_digest, want_in, SW_COMMIT_DIGEST_BYTES)
                                    ? (i == 0 ? "says it received another activation than the gateway sent"
                                              : "says it received another activation than its predecessor sent")
                                : i == n_hops - 1 && memcmp(out[i].out_digest, reply_digest, SW_COMMIT_DIGEST_BYTES)
                                    ? "sent back another activation than it committed to"
                                    : NULL;
        if (why_chain) {
            for (int k = 0; k <= i; k++)
                sw_commit_free(&out[k]);
            g->chain_breaks++;
            return sw_err(err, errlen, "hop %d (stage %.16s) %s", i, nodes[i], why_chain);
        }
    }
    return 0;
}

int sw__audit_check_reply(sw_gateway_t *g, sw__gw_session_t *c, const Swisd__V1__ForwardReply *rep, int64_t n_rows,
                          const void *reply_plain, size_t len, char *err, size_t errlen)
{
    s_commits_free(c);
    if (!g->audit)
        return 0;
    const sw_route_t *rt = sw_session_route(c->ss);
    const int n_hops = sw_route_n_hops(rt);
    if (n_hops < 1 || n_hops > SW_PLAN_MAX_HOPS || c->sent_request != rep->request_id)
        return sw_err(err, errlen, "a reply for a step the gateway did not send");
    const char *nodes[SW_PLAN_MAX_HOPS];
    const uint8_t *keys[SW_PLAN_MAX_HOPS];
    uint32_t begin[SW_PLAN_MAX_HOPS], end[SW_PLAN_MAX_HOPS];
    for (int i = 0; i < n_hops; i++) {
        const sw_route_hop_t *h = sw_route_hop(rt, i);
        const Swisd__V1__StageInfo *si = sw__gateway_stage_info(g, h->id);
        nodes[i] = h->id;
        keys[i] = si && si->public_key.len == 32 ? si->public_key.data : NULL;
        begin[i] = (uint32_t) h->begin;
        end[i] = (uint32_t) h->end;
    }
    const int64_t pos = sw_session_pending_pos(c->ss);
    if (s_open_commits(g, sw_session_id(c->ss), rep->request_id, pos, n_rows, rep->timings, rep->n_timings, n_hops,
                       nodes, keys, begin, end, c->sent_digest, reply_plain, len, c->commits, err, errlen) != 0)
        return -1;
    c->n_commits = n_hops;
    c->step_pos = pos;
    c->step_rows = (int32_t) n_rows;
    for (int i = 0; i < n_hops; i++) {
        snprintf(c->step_hops[i].node, sizeof c->step_hops[i].node, "%s", nodes[i]);
        c->step_hops[i].begin = begin[i];
        c->step_hops[i].end = end[i];
    }
    return 0;
}

bool sw__audit_must_hold(sw_gateway_t *g, sw__gw_session_t *c)
{
    if (!g->audit)
        return false;
    if (c->n_held > 0 || c->finish_held)
        return true; /* in order */
    if (c->audit_failures >= S_MAX_ATTEMPTS)
        return false; /* it cannot be audited: its text goes out unverified (counted once, logged) */
    const sw_route_t *rt = sw_session_route(c->ss);
    for (int i = 0; i < sw_route_n_hops(rt); i++) {
        const char *id = sw_route_hop(rt, i)->id;
        if (g->cfg.audit_hold_all ? !s_operator(g, id) : !s_trusted(g, id))
            return true;
    }
    return false;
}

bool sw__audit_pace(sw_gateway_t *g, sw__gw_session_t *c)
{
    if (!g->audit || c->audit_failures >= S_MAX_ATTEMPTS)
        return false;
    const sw__audit_job_t *j = s_job(g, sw_session_id(c->ss), false);
    if (!j || !j->request_id)
        return false; /* nothing in flight to wait for */
    const sw_route_t *rt = sw_session_route(c->ss);
    for (int i = 0; i < sw_route_n_hops(rt) && i < j->n_hops; i++) {
        const char *id = sw_route_hop(rt, i)->id;
        if (s_operator(g, id) || !strcmp(j->hops[i].node, id))
            continue; /* the operator's, or a range no other host checks (its key earns no verdict to wait for) */
        bool pending = false; /* verified results not yet written to the reputation count too */
        for (int k = 0; k < g->n_verified_pending && !pending; k++)
            pending = !strcmp(g->verified_pending[k].id, id) && g->verified_pending[k].n > 0;
        const sw__trust_t *t = s_trust(g, id);
        if (!pending && !t->trusted && t->verified == 0)
            return true;
    }
    return false;
}

/* ---- audit routes and chunks ------------------------------------------------------------ */

/* Fills job j's hops: for every hop of c's route, another live stage of the
 * model whose layers hold the hop's (operator audit stages first, then
 * trusted keys, then the least busy), never a node in avoid[0..n_avoid) nor
 * the hop's own node; when no other stage holds a range, the hop's own node
 * computes it (that range is then not checked). Returns the number of hops
 * given to another host (0: nothing can be audited now). */
static int s_plan(sw_gateway_t *g, sw__gw_session_t *c, sw__audit_job_t *j, const char *const *avoid, int n_avoid)
{
    if (!g->dir)
        return 0;
    const Swisd__V1__DirectoryReply *d = g->dir->directory_reply;
    const sw_route_t *rt = sw_session_route(c->ss);
    const int n_hops = sw_route_n_hops(rt);
    const uint64_t now = sw_now_ns();
    int independent = 0;
    j->n_hops = 0;
    for (int i = 0; i < n_hops && i < SW_PLAN_MAX_HOPS; i++) {
        const sw_route_hop_t *h = sw_route_hop(rt, i);
        const Swisd__V1__StageInfo *best = NULL;
        double best_score = -1;
        for (size_t k = 0; k < d->n_stages; k++) {
            const Swisd__V1__StageInfo *s = d->stages[k];
            if (!s->model || !s->model->checksum || strcmp(s->model->checksum, g->checksum) || !s->layers ||
                (int32_t) s->layers->begin > h->begin || (int32_t) s->layers->end < h->end ||
                s->public_key.len != 32 || !strcmp(s->node_id, h->id) || sw__audit_banned(g, s->node_id) ||
                (g->cfg.bans && sw_bans_banned(g->cfg.bans, s->node_id)) ||
                !sw_health_usable(g->health, s->node_id, now)) /* admitted, not backed off: it answers */
                continue;
            bool avoided = false;
            for (int a = 0; a < n_avoid && !avoided; a++)
                avoided = !strcmp(avoid[a], s->node_id);
            for (int a = 0; a < i && !avoided; a++) /* a route names a node once */
                avoided = !strcmp(j->hops[a].node, s->node_id);
            if (avoided)
                continue;
            const double score = (s->caps && s->caps->audit ? 4.0 : 0.0) + (s_operator(g, s->node_id) ? 2.0 : 0.0) +
                                 (s_trusted(g, s->node_id) ? 1.0 : 0.0) +
                                 (s->load ? 0.5 * (1.0 - s->load->busy) : 0.5);
            if (score > best_score)
                best = s, best_score = score;
        }
        const Swisd__V1__StageInfo *use = best ? best : sw__gateway_stage_info(g, h->id);
        if (!use || use->public_key.len != 32)
            return 0;
        for (int a = 0; a < i; a++)
            if (!strcmp(j->hops[a].node, use->node_id))
                return 0; /* its own node again, already an auditor of another range: no route */
        snprintf(j->hops[i].node, sizeof j->hops[i].node, "%s", use->node_id);
        j->hops[i].begin = (uint32_t) h->begin;
        j->hops[i].end = (uint32_t) h->end;
        j->hops[i].codec = h->codec;
        memcpy(j->hops[i].key, use->public_key.data, 32);
        independent += best != NULL;
        j->n_hops = i + 1;
    }
    return independent;
}

/* Sends the next chunk of job j: rows [next_pos, min(target, next_pos + chunk))
 * of session c's history. Returns 0 or -1 (the job cannot go on). */
static int s_send_chunk(sw_gateway_t *g, sw__gw_session_t *c, sw__audit_job_t *j)
{
    const int64_t n_hist = sw_session_n_tokens(c->ss);
    int64_t target = j->target < n_hist ? j->target : n_hist;
    int32_t n = (int32_t) (target - j->next_pos < S_AUDIT_CHUNK ? target - j->next_pos : S_AUDIT_CHUNK);
    if (n < 1)
        return 0; /* nothing new */
    char err[256];
    if (sw_model_embed(g->model, sw_session_tokens(c->ss) + j->next_pos, n, g->hidden, err, sizeof err) != 0)
        return -1;
    sw_codec_t *tx = sw_codec_new(&j->hops[0].codec, g->hp->n_embd, S_AUDIT_CHUNK);
    sw_codec_header_t h;
    const void *payload;
    size_t len;
    if (!tx || sw_codec_encode(tx, g->hidden, n, &h, &payload, &len, err, sizeof err) != 0) {
        sw_codec_destroy(&tx);
        return -1;
    }
    Swisd__V1__Activation act;
    sw_wire_activation_to_msg(&h, payload, len, &act);
    Swisd__V1__CodecConfig codec = SWISD__V1__CODEC_CONFIG__INIT, hop_codec[SW_PLAN_MAX_HOPS];
    codec.dtype = SW_DTYPE_F32; /* the last auditor's reply: only its commitments matter */
    Swisd__V1__LayerRange lr[SW_PLAN_MAX_HOPS];
    Swisd__V1__Hop hops[SW_PLAN_MAX_HOPS], *route[SW_PLAN_MAX_HOPS];
    for (int i = 0; i < j->n_hops; i++) {
        swisd__v1__layer_range__init(&lr[i]);
        lr[i].begin = j->hops[i].begin;
        lr[i].end = j->hops[i].end;
        swisd__v1__codec_config__init(&hop_codec[i]);
        hop_codec[i].dtype = j->hops[i].codec.dtype;
        hop_codec[i].zstd_level = j->hops[i].codec.zstd_level;
        swisd__v1__hop__init(&hops[i]);
        hops[i].node_id = j->hops[i].node;
        hops[i].layers = &lr[i];
        hops[i].codec = &hop_codec[i];
        hops[i].public_key.data = j->hops[i].key;
        hops[i].public_key.len = 32;
        route[i] = &hops[i];
    }
    j->request_id = sw__gateway_rand(g) | 1;
    j->pending_pos = j->next_pos;
    j->pending_n = n;
    const int rc = sw__gateway_send_forward(g, j->asid, j->request_id, route, (size_t) j->n_hops,
                                            (uint32_t) j->next_pos, (uint32_t) n, &act, &codec, j->sent_digest);
    sw_codec_destroy(&tx);
    if (rc != 0) {
        j->request_id = 0;
        return -1;
    }
    /* the chunk's deadline: its expected compute (measured speed of each hop) three times, plus slack;
     * at most the gateway's step time-out. Text may wait for it: a stalled auditor must not hold it long. */
    double expect_ms = 0;
    for (int i = 0; i < j->n_hops; i++) {
        const Swisd__V1__StageInfo *si = sw__gateway_stage_info(g, j->hops[i].node);
        const float adv = si && si->caps ? si->caps->ms_per_layer : 0;
        expect_ms += (double) sw_health_ms_per_layer(g->health, j->hops[i].node, adv, NULL) *
                     (double) (j->hops[i].end - j->hops[i].begin) * (double) n;
    }
    double limit_ms = S_CHUNK_SLACK_MS + 3 * expect_ms;
    const int timeout_ms = g->cfg.timeout_ms > 0 ? g->cfg.timeout_ms : 30000;
    if (limit_ms > timeout_ms)
        limit_ms = timeout_ms;
    j->deadline_ns = sw_now_ns() + (uint64_t) (limit_ms * 1e6);
    return 0;
}

/* Starts (or extends to `target` rows) the audit of session c; a tie-break
 * avoids the two disputed nodes. Returns the job, or NULL when none can run. */
static sw__audit_job_t *s_audit(sw_gateway_t *g, sw__gw_session_t *c, int64_t target, bool tiebreak,
                                const char *const *avoid, int n_avoid)
{
    const char *sid = sw_session_id(c->ss);
    sw__audit_job_t *j = s_job(g, sid, tiebreak);
    if (!j) {
        int n_jobs = 0;
        for (sw__audit_job_t *x = g->jobs; x; x = x->next)
            n_jobs++;
        if (n_jobs >= S_MAX_JOBS || !(j = calloc(1, sizeof *j)))
            return NULL;
        snprintf(j->sid, sizeof j->sid, "%s", sid);
        snprintf(j->asid, sizeof j->asid, "audit-%016llx", (unsigned long long) sw__gateway_rand(g));
        j->tiebreak = tiebreak;
        if (s_plan(g, c, j, avoid, n_avoid) == 0) {
            free(j);
            c->audit_failures++;
            g->unverifiable++;
            const uint64_t now = sw_now_ns();
            if (!g->audit_log_ns || now - g->audit_log_ns > 10000000000ull) {
                sw_log(SW_LOG_INFO, "gateway: session %.8s cannot be audited now: no other live stage holds its "
                       "layer ranges (the dashboard shows them as unverified)", sid);
                g->audit_log_ns = now;
            }
            return NULL;
        }
        j->next = g->jobs;
        g->jobs = j;
        g->audits_started++;
    }
    if (target > j->target)
        j->target = target;
    if (!j->request_id && s_send_chunk(g, c, j) != 0) {
        c->audit_failures++;
        sw_log(SW_LOG_INFO, "gateway: audit of session %.8s: its first chunk could not be sent (queue to the "
               "broker full?)", sid);
        s_job_drop(g, j);
        return NULL;
    }
    return j;
}

/* ---- verdicts ---------------------------------------------------------------------- */

static void s_hold_free(sw__gw_session_t *c)
{
    for (int i = 0; i < c->n_held; i++)
        free(c->held[i].text);
    c->n_held = 0;
}

/* Starts session c again from its first row, as it started (same prompt,
 * sampling and seed), under a new session id: its stages' KV caches are
 * released, its held text is dropped, and the text the client already has is
 * compared with the new text instead of being sent again. */
static void s_restart(sw_gateway_t *g, sw__gw_session_t *c)
{
    const sw__restart_t *r = &c->restart;
    if (!r->prompt) { /* its start could not be kept (out of memory): it ends with an error instead */
        g->acts.n = 0;
        sw_session_abort(c->ss, &g->acts);
        sw_wire_send_error(g->rpc, c->client, sw_gateway_id(g), "", SWISD__V1__ERROR_CODE__ERROR_INTERNAL,
                           sw_session_id(c->ss), c->client_req, "%s", "a stage on the route failed an audit");
        sw__gateway_drive(g, c);
        return;
    }
    sw__gateway_abort(g, c);
    sw__audit_session_gone(g, c);
    s_hold_free(c);
    c->finish_held = false;
    c->paced = false;
    char id[33];
    sw_wire_new_id(id, sizeof id);
    const char *stops[SW_SESSION_MAX_STOPS];
    for (int i = 0; i < r->n_stops; i++)
        stops[i] = r->stops[i];
    const sw_session_config_t scfg = {.id = id, .prompt = r->prompt, .n_prompt = r->n_prompt,
                                      .max_tokens = r->max_tokens, .sampling = r->sampling,
                                      .ignore_eos = r->ignore_eos, .stops = stops, .n_stops = r->n_stops,
                                      .rng_seed = sw__gateway_rand(g), .now_ns = sw_now_ns()};
    int code = 0;
    char err[256];
    sw_session_t *ss = sw_session_new(g->env, &scfg, &code, err, sizeof err);
    if (!ss) { /* cannot happen for a request that started once, except out of memory */
        sw_log(SW_LOG_WARN, "gateway: cannot start session %.8s again: %s", sw_session_id(c->ss), err);
        return;
    }
    sw_log(SW_LOG_INFO, "gateway: session %.8s starts again as %.8s (a stage on its route failed an audit; "
           "%zu bytes already delivered are checked, not resent)", sw_session_id(c->ss), id, c->n_delivered);
    sw_session_destroy(&c->ss);
    c->ss = ss;
    c->restarts++;
    c->replaying = true;
    c->replay_off = 0;
    sw_route_view_t v;
    sw__gateway_view(g, &v);
    g->acts.n = 0;
    sw_session_on_tick(ss, &v, sw_now_ns(), &g->acts);
    sw__gateway_drive(g, c);
}

/* node failed an audit: banned here, by the operator's state (sw_bans) and
 * at every broker (a BanNotice, sw_gateway_ban; docs/security.md "Bans that
 * reach every broker"),
 * its trust reset, and every session it may have touched since its last
 * verified result started again through other stages. */
static void s_caught(sw_gateway_t *g, const char *node, const char *why)
{
    g->audits_failed++;
    s_flush_verified(g); /* its verified results so far come before the failure */
    s_trust_forget(g, node);
    if (!sw__audit_banned(g, node)) {
        const int slot = g->n_audit_banned < S_MAX_AUDIT_BANNED ? g->n_audit_banned++ : S_MAX_AUDIT_BANNED - 1;
        snprintf(g->audit_banned[slot], sizeof g->audit_banned[slot], "%s", node);
    }
    char err[200];
    if (sw_ban_outbox_ban(g->ban_out, g->cfg.bans, node, true, SW_BAN_DEFAULT_S, why, err, sizeof err) < 0)
        sw_log(SW_LOG_WARN, "gateway: cannot record the ban of %.16s: %s", node, err); /* also at every broker */
    /* the persisted reputation: run reset, banned for its ban_s, its pending and unverified credit clawed back */
    if (g->cfg.reputation && sw_reputation_failed(g->cfg.reputation, node, sw_state_db_unix_s(), why, err,
                                                  sizeof err) != 0)
        sw_log(SW_LOG_WARN, "gateway: cannot record the failed audit of %.16s: %s", node, err);
    sw_log(SW_LOG_WARN, "gateway: stage %s failed an audit (%s): banned; its sessions start again elsewhere", node,
           why);
    /* audits that used it are void */
    for (sw__audit_job_t *j = g->jobs, *next; j; j = next) {
        next = j->next;
        for (int i = 0; i < j->n_hops; i++)
            if (!strcmp(j->hops[i].node, node)) {
                s_job_drop(g, j);
                break;
            }
    }
    for (sw__gw_session_t *c = g->sessions, *next; c; c = next) {
        next = c->next;
        bool touched = sw_audit_unverified_through(g->audit, sw_session_id(c->ss), node);
        const sw_route_t *rt = sw_session_route(c->ss);
        for (int i = 0; !touched && i < sw_route_n_hops(rt); i++)
            touched = !strcmp(sw_route_hop(rt, i)->id, node);
        if (touched && !sw_session_done(c->ss))
            s_restart(g, c);
        else if (touched) /* finished, its text held: the held part is the liar's: start again */
            s_restart(g, c);
    }
}

/* Releases c's held chunks whose rows are verified (all of them when
 * `all`), then its FINISH when nothing is held any more. */
static void s_release(sw_gateway_t *g, sw__gw_session_t *c, bool all)
{
    const int64_t verified = sw_audit_compared_end(g->audit, sw_session_id(c->ss));
    int k = 0;
    for (; k < c->n_held && (all || c->held[k].need_row < verified); k++) {
        sw__held_t *h = &c->held[k];
        sw__gateway_emit(g, c, h->index, h->token, h->text, h->len);
        free(h->text);
    }
    if (k) {
        memmove(c->held, c->held + k, sizeof c->held[0] * (size_t) (c->n_held - k));
        c->n_held -= k;
    }
    if (c->n_held == 0 && c->finish_held) {
        c->finish_held = false;
        sw__gateway_summary(g, c, c->finish_reason);
    }
}

/* A disagreement found by job j (res): decide who lied, or ask a third host. */
static void s_disagreement(sw_gateway_t *g, sw__gw_session_t *c, sw__audit_job_t *j, const sw_audit_result_t *res)
{
    char why[256];
    if (j->tiebreak) {
        const bool same = res->mismatch && res->pos == j->disputed_pos && res->begin == j->disputed_begin &&
                          !strcmp(res->node, j->disputed_node);
        const char *liar = same ? j->disputed_node : j->disputed_auditor;
        snprintf(why, sizeof why, "layers %u-%u at position %lld: a third host (%.16s) agrees with %.16s",
                 j->disputed_begin, j->disputed_end - 1, (long long) j->disputed_pos,
                 same ? res->auditor : "the session's stage", same ? j->disputed_auditor : j->disputed_node);
        char who[SW_WIRE_MAX_ID + 1];
        snprintf(who, sizeof who, "%s", liar);
        s_job_drop(g, j);
        s_caught(g, who, why);
        return;
    }
    snprintf(why, sizeof why, "layers %u-%u at position %lld differ from %.16s's by %.3g (threshold %.3g)",
             res->begin, res->end - 1, (long long) res->pos, res->auditor, res->distance,
             g->cfg.audit_threshold > 0 ? g->cfg.audit_threshold : 0.05);
    if (s_operator(g, res->auditor) || (s_trusted(g, res->auditor) && !s_trusted(g, res->node))) {
        char who[SW_WIRE_MAX_ID + 1];
        snprintf(who, sizeof who, "%s", res->node);
        s_job_drop(g, j);
        s_caught(g, who, why);
        return;
    }
    /* two hosts of equal standing disagree: a third one decides */
    const char *avoid[2] = {res->node, res->auditor};
    sw_log(SW_LOG_INFO, "gateway: session %.8s: stages %.16s and %.16s disagree (%s); asking a third host",
           j->sid, res->node, res->auditor, why);
    char sid[sizeof j->sid];
    snprintf(sid, sizeof sid, "%s", j->sid);
    sw__audit_job_t tb = {0};
    snprintf(tb.disputed_node, sizeof tb.disputed_node, "%s", res->node);
    snprintf(tb.disputed_auditor, sizeof tb.disputed_auditor, "%s", res->auditor);
    tb.disputed_pos = res->pos;
    tb.disputed_begin = res->begin;
    tb.disputed_end = res->end;
    s_job_drop(g, j);
    sw__audit_job_t *t = s_audit(g, c, res->pos + 1, true, avoid, 2);
    bool third = false;
    for (int i = 0; t && i < t->n_hops; i++)
        third |= t->hops[i].begin == tb.disputed_begin && strcmp(t->hops[i].node, tb.disputed_node) &&
                 strcmp(t->hops[i].node, tb.disputed_auditor);
    if (t && third) {
        memcpy(t->disputed_node, tb.disputed_node, sizeof t->disputed_node);
        memcpy(t->disputed_auditor, tb.disputed_auditor, sizeof t->disputed_auditor);
        t->disputed_pos = tb.disputed_pos;
        t->disputed_begin = tb.disputed_begin;
        t->disputed_end = tb.disputed_end;
        return;
    }
    if (t)
        s_job_drop(g, t);
    /* no third host: nobody is banned on one word against another (no verdict is recorded) */
    sw_log(SW_LOG_WARN, "gateway: session %.8s: no third host to decide between %.16s and %.16s; the session "
           "starts again", sid, tb.disputed_node, tb.disputed_auditor);
    s_restart(g, c);
}

void sw__audit_on_reply(sw_gateway_t *g, const char *src, const Swisd__V1__ForwardReply *rep)
{
    sw__audit_job_t *j = g->jobs;
    while (j && strcmp(j->asid, rep->session_id))
        j = j->next;
    if (!j || !j->request_id || rep->request_id != j->request_id || strcmp(src, j->hops[j->n_hops - 1].node))
        return; /* stale, duplicate or forged */
    sw__gw_session_t *c = s_session(g, j->sid);
    if (!c) {
        s_job_drop(g, j);
        return;
    }
    j->request_id = 0;
    sw_codec_header_t h;
    sw_wire_activation_from_msg(rep->activation, &h);
    uint8_t *opened = NULL;
    size_t len = 0;
    char err[300];
    sw_commit_t commits[SW_PLAN_MAX_HOPS];
    const char *nodes[SW_PLAN_MAX_HOPS];
    const uint8_t *keys[SW_PLAN_MAX_HOPS];
    uint32_t begin[SW_PLAN_MAX_HOPS], end[SW_PLAN_MAX_HOPS];
    for (int i = 0; i < j->n_hops; i++) {
        nodes[i] = j->hops[i].node;
        keys[i] = j->hops[i].key;
        begin[i] = j->hops[i].begin;
        end[i] = j->hops[i].end;
    }
    if (!rep->activation ||
        sw__gateway_open_reply(g, src, rep->session_id, rep->request_id, rep->activation, (uint32_t) (j->n_hops - 1),
                               (uint32_t) j->pending_pos, (uint32_t) j->pending_n, &h, &opened, &len) != 0 ||
        s_open_commits(g, j->asid, rep->request_id, j->pending_pos, j->pending_n, rep->timings, rep->n_timings,
                       j->n_hops, nodes, keys, begin, end, j->sent_digest, opened, len, commits, err,
                       sizeof err) != 0) {
        free(opened);
        sw_log(SW_LOG_INFO, "gateway: audit of session %.8s: a bad answer from its route; the audit starts over",
               j->sid);
        c->audit_failures++;
        s_job_drop(g, j);
        return;
    }
    free(opened);
    sw_audit_hop_t ah[SW_PLAN_MAX_HOPS];
    for (int i = 0; i < j->n_hops; i++)
        ah[i] = (sw_audit_hop_t){.node_id = nodes[i], .begin = begin[i], .end = end[i], .sketch = commits[i].sketch};
    sw_audit_result_t res;
    sw_audit_compare(g->audit, j->sid, sw_session_tokens(c->ss), sw_session_n_tokens(c->ss), j->pending_pos,
                     j->pending_n, ah, j->n_hops, &res);
    for (int i = 0; i < j->n_hops; i++)
        sw_commit_free(&commits[i]);
    j->next_pos = j->pending_pos + j->pending_n;
    if (res.mismatch)
        return s_disagreement(g, c, j, &res);
    if (j->tiebreak && j->next_pos > j->disputed_pos) { /* the third host agrees with the session's stage */
        sw_audit_result_t none = {0};
        return s_disagreement(g, c, j, &none);
    }
    g->audits_passed++;
    if (res.max_ok_distance > g->audit_max_ok)
        g->audit_max_ok = res.max_ok_distance;
    s_release(g, c, false);
    if (j->next_pos < j->target && s_send_chunk(g, c, j) != 0) {
        c->audit_failures++;
        s_job_drop(g, j);
    }
}

void sw__audit_on_error(sw_gateway_t *g, const char *src, const Swisd__V1__Error *e)
{
    (void) src;
    for (sw__audit_job_t *j = g->jobs; j; j = j->next)
        if (e->session_id && !strcmp(j->asid, e->session_id) && e->request_id == j->request_id) {
            sw__gw_session_t *c = s_session(g, j->sid);
            if (c)
                c->audit_failures++;
            sw_log(SW_LOG_INFO, "gateway: audit of session %.8s failed to run (%s); it starts over later", j->sid,
                   e->message ? e->message : "?");
            s_job_drop(g, j);
            return;
        }
}

/* True when c's held text waits for its batch to fill: --audit-hold all on a
 * route of trusted stages only, whose steps are audited at their floor rate
 * and whose held rows together, S_HOLD_BATCH at a time and at the end,
 * instead of an audit chunk per step. False when nothing is batched or the
 * batch is due (the session is done, or S_HOLD_BATCH rows wait). */
static bool s_batched(sw_gateway_t *g, sw__gw_session_t *c)
{
    if (!g->cfg.audit_hold_all)
        return false;
    const sw_route_t *rt = sw_session_route(c->ss);
    for (int i = 0; i < sw_route_n_hops(rt); i++)
        if (!s_trusted(g, sw_route_hop(rt, i)->id))
            return false; /* held for the hop's own sake: every step audited */
    const int64_t waiting = sw_session_n_tokens(c->ss) - sw_audit_compared_end(g->audit, sw_session_id(c->ss));
    return !sw_session_done(c->ss) && waiting < S_HOLD_BATCH;
}

void sw__audit_after_step(sw_gateway_t *g, sw__gw_session_t *c)
{
    if (!g->audit || c->n_commits == 0)
        return;
    sw_audit_hop_t hops[SW_PLAN_MAX_HOPS];
    double rate = 0;
    for (int i = 0; i < c->n_commits; i++) {
        hops[i] = (sw_audit_hop_t){.node_id = c->step_hops[i].node, .begin = c->step_hops[i].begin,
                                   .end = c->step_hops[i].end, .sketch = c->commits[i].sketch};
        const double r = s_rate(g, c->step_hops[i].node);
        rate = r > rate ? r : rate;
    }
    sw_audit_record(g->audit, sw_session_id(c->ss), c->step_pos, c->step_rows, c->sent_tokens, hops, c->n_commits);
    s_commits_free(c);
    /* rows whose tokens are final: all of the step's that the history kept (a rejected draft's are not) */
    const int64_t n_hist = sw_session_n_tokens(c->ss);
    int64_t target = c->step_pos + c->step_rows;
    if (target > n_hist - 1 && !sw_session_done(c->ss))
        target = n_hist - 1;
    if (target > n_hist)
        target = n_hist;
    const bool held = c->n_held > 0 || c->finish_held;
    const double u = (double) (sw__gateway_rand(g) >> 11) / 9007199254740992.0;
    if (c->audit_failures < S_MAX_ATTEMPTS && ((held && !s_batched(g, c)) || u < rate))
        s_audit(g, c, target, false, NULL, 0);
}

void sw__audit_tick(sw_gateway_t *g)
{
    if (!g->audit)
        return;
    const uint64_t now = sw_now_ns();
    if (g->n_verified_pending && now - g->verified_flush_ns >= 1000000000ull)
        s_flush_verified(g);
    for (sw__audit_job_t *j = g->jobs, *next; j; j = next) {
        next = j->next;
        if (j->request_id && now > j->deadline_ns) {
            sw__gw_session_t *c = s_session(g, j->sid);
            if (c)
                c->audit_failures++;
            sw_log(SW_LOG_INFO, "gateway: audit of session %.8s timed out; it starts over on other stages", j->sid);
            for (int i = 0; i < j->n_hops; i++) /* as a session's timed-out route: twice and it is backed off */
                if (sw_health_suspect(g->health, j->hops[i].node, now))
                    sw_log(SW_LOG_INFO, "gateway: stage %.8s was on two timed-out routes (audit routes count) "
                           "without completing a step; backing it off", j->hops[i].node);
            s_job_drop(g, j);
        }
    }
    for (sw__gw_session_t *c = g->sessions, *next; c; c = next) {
        next = c->next;
        if (c->paced && !sw__audit_pace(g, c)) { /* its audit answered: the held-back step goes now */
            c->paced = false;
            const sw_route_t *rt = sw_session_route(c->ss);
            const int nh = sw_route_n_hops(rt);
            /* unless the session gave that step up meanwhile (its time-out, a new route: a newer step replaced it) */
            if (!sw_session_done(c->ss) && nh > 0 &&
                sw_session_wants(c->ss, sw_route_hop(rt, nh - 1)->id, c->paced_step.request_id, NULL)) {
                g->acts.n = 1;
                g->acts.a[0] = c->paced_step;
                sw__gateway_drive(g, c); /* may end and free c */
                continue;
            }
        }
        if (!c->n_held && !c->finish_held) {
            if (sw_session_done(c->ss))
                sw__gateway_remove(g, c);
            continue;
        }
        const bool stuck = c->audit_failures >= S_MAX_ATTEMPTS;
        if (stuck) { /* it cannot be audited: its text goes out unverified (counted, shown on the dashboard) */
            if (c->n_held && (!g->audit_log_ns || now - g->audit_log_ns > 10000000000ull)) { /* at most every 10 s */
                sw_log(SW_LOG_INFO, "gateway: session %.8s: %d audits could not run; its text goes out unverified "
                       "from here on (%llu such times so far)", sw_session_id(c->ss), c->audit_failures,
                       (unsigned long long) g->unverifiable);
                g->audit_log_ns = now;
            }
            s_release(g, c, true);
        } else if (!s_job(g, sw_session_id(c->ss), true)) {
            /* started, or extended when one waits idle with its target reached (a finished session's last
             * row comes after the target its last step set): held text must not wait for nothing */
            const sw__audit_job_t *j = s_job(g, sw_session_id(c->ss), false);
            const int64_t n_hist = sw_session_n_tokens(c->ss);
            if ((!j || !j->request_id) && !s_batched(g, c))
                s_audit(g, c, sw_session_done(c->ss) ? n_hist : n_hist - 1, false, NULL, 0);
        }
        if (!c->n_held && !c->finish_held && sw_session_done(c->ss))
            sw__gateway_remove(g, c);
    }
}

void sw__audit_session_gone(sw_gateway_t *g, sw__gw_session_t *c)
{
    if (!g->audit)
        return;
    const char *sid = sw_session_id(c->ss);
    for (sw__audit_job_t *j = g->jobs, *next; j; j = next) {
        next = j->next;
        if (!strcmp(j->sid, sid))
            s_job_drop(g, j);
    }
    sw_audit_forget(g->audit, sid);
    s_commits_free(c);
}

void sw__audit_status(sw_gateway_t *g, Swisd__V1__SwarmStatusReply *r, sw__audit_status_t *buf)
{
    memset(buf, 0, sizeof *buf);
    if (!g->audit)
        return;
    Swisd__V1__AuditStatus *a = &buf->audit;
    swisd__v1__audit_status__init(a);
    a->started = g->audits_started;
    a->passed = g->audits_passed;
    a->failed = g->audits_failed;
    a->chain_breaks = g->chain_breaks;
    a->unverifiable = g->unverifiable;
    a->delivered_differs = g->delivered_differs;
    a->max_agreeing_distance = (float) g->audit_max_ok;
    a->threshold = (float) (g->cfg.audit_threshold > 0 ? g->cfg.audit_threshold : 0.05);
    const int n_caught = g->n_audit_banned < 64 ? g->n_audit_banned : 64;
    for (int i = 0; i < n_caught; i++)
        buf->caught[i] = g->audit_banned[g->n_audit_banned - n_caught + i];
    a->caught = buf->caught;
    a->n_caught = (size_t) n_caught;
    r->audit = a;
    if (!g->dir)
        return;
    const Swisd__V1__DirectoryReply *d = g->dir->directory_reply;
    buf->trust = calloc(d->n_stages ? d->n_stages : 1, sizeof *buf->trust);
    buf->trust_p = calloc(d->n_stages ? d->n_stages : 1, sizeof *buf->trust_p);
    int32_t L = (int32_t) g->hp->n_layer;
    int *hosts = calloc((size_t) (L > 0 ? L : 1), sizeof *hosts);
    if (!buf->trust || !buf->trust_p || !hosts) {
        free(hosts);
        return;
    }
    for (size_t i = 0; i < d->n_stages; i++) {
        const Swisd__V1__StageInfo *s = d->stages[i];
        if (!s->model || !s->model->checksum || strcmp(s->model->checksum, g->checksum) || !s->layers ||
            s->layers->end > (uint32_t) L)
            continue;
        Swisd__V1__NodeTrust *t = &buf->trust[r->n_trust];
        swisd__v1__node_trust__init(t);
        t->node_id = s->node_id;
        const sw__trust_t *tr = s_trust(g, s->node_id);
        t->verified = tr->verified;
        t->consecutive = tr->consecutive;
        t->failed = tr->failed;
        t->trusted = s_trusted(g, s->node_id);
        t->audit_rate = (float) s_rate(g, s->node_id);
        buf->trust_p[r->n_trust++] = t;
        if (!sw__audit_banned(g, s->node_id) && !(g->cfg.bans && sw_bans_banned(g->cfg.bans, s->node_id)))
            for (uint32_t l = s->layers->begin; l < s->layers->end; l++)
                hosts[l]++;
    }
    r->trust = buf->trust_p;
    for (int32_t l = 0; l < L && r->n_unverified < 64;) { /* runs of layers with exactly one host */
        if (hosts[l] != 1) {
            l++;
            continue;
        }
        int32_t e = l;
        while (e < L && hosts[e] == 1)
            e++;
        Swisd__V1__LayerRange *u = &buf->unverified[r->n_unverified];
        swisd__v1__layer_range__init(u);
        u->begin = (uint32_t) l;
        u->end = (uint32_t) e;
        buf->unverified_p[r->n_unverified++] = u;
        l = e;
    }
    r->unverified = buf->unverified_p;
    free(hosts);
}

void sw__audit_status_free(sw__audit_status_t *buf)
{
    free(buf->trust);
    free(buf->trust_p);
    buf->trust = NULL;
    buf->trust_p = NULL;
}
