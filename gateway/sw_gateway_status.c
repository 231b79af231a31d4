/*  sw_gateway_status.c: the gateway's answers to the RPC's questions about
 *  the swarm: ListModels (servable, gaps), SwarmStatus (stages, sessions,
 *  recent generations, audits; what /api/swarm and the dashboard show) and
 *  TokenRequest (an API token for a contributor's key). Split from
 *  sw_gateway.c; the loop calls these (sw_gateway_internal.h). */
#include "sw_gateway.h"
#include "sw_gateway_internal.h"

#include <sodium.h>
#include <string.h>
#include <xxhash.h>

#include "sw_api_token.h"
#include "sw_broker_auth.h"
#include "sw_common.h"
#include "sw_identity.h"
#include "sw_planner.h"
#include "sw_recent.h"
#include "sw_reputation.h"
#include "sw_session.h"
#include "sw_state_db.h"
#include "sw_wire.h"

/* The layers no live stage holds, as half-open ranges; fills up to max
 * entries of gaps and gp (gp[i] = &gaps[i]) and returns the count. */
static size_t s_gaps(const sw_gateway_t *g, const sw_plan_stage_t *st, int n, Swisd__V1__LayerRange *gaps,
                     Swisd__V1__LayerRange **gp, size_t max)
{
    size_t ng = 0;
    for (int32_t l = 0; l < g->hp->n_layer && ng < max;) {
        bool held = false;
        for (int i = 0; i < n && !held; i++)
            held = st[i].begin <= l && l < st[i].end;
        if (held) {
            l++;
            continue;
        }
        swisd__v1__layer_range__init(&gaps[ng]);
        gaps[ng].begin = (uint32_t) l;
        while (l < g->hp->n_layer) {
            bool h2 = false;
            for (int i = 0; i < n && !h2; i++)
                h2 = st[i].begin <= l && l < st[i].end;
            if (h2)
                break;
            l++;
        }
        gaps[ng].end = (uint32_t) l;
        gp[ng] = &gaps[ng];
        ng++;
    }
    return ng;
}

void sw__gateway_on_list_models(sw_gateway_t *g, zframe_t *client)
{
    sw_plan_stage_t *st = g->v_usable;
    g->view_gen++; /* the view's arrays are reused here */
    int n = sw__gateway_stages(g, st, NULL, SW_WIRE_MAX_STAGES, true, NULL, 0);
    sw_plan_t plan;
    Swisd__V1__ModelInfo info = SWISD__V1__MODEL_INFO__INIT;
    info.model = &g->ref;
    info.servable = sw_plan(st, n, g->hp->n_layer, &plan) == 0;
    Swisd__V1__LayerRange gaps[64], *gp[64];
    n = sw__gateway_stages(g, st, NULL, SW_WIRE_MAX_STAGES, false, NULL, 0); /* gaps: layers no live stage holds */
    size_t ng = s_gaps(g, st, n, gaps, gp, 64);
    info.gaps = gp;
    info.n_gaps = ng;
    Swisd__V1__ModelInfo *models[1] = {&info};
    Swisd__V1__ListModelsReply r = SWISD__V1__LIST_MODELS_REPLY__INIT;
    r.models = models;
    r.n_models = 1;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_LIST_MODELS_REPLY;
    b.list_models_reply = &r;
    sw__gateway_rpc_send(g, client, &b);
}

void sw__gateway_on_status(sw_gateway_t *g, zframe_t *client)
{
    Swisd__V1__SwarmStatusReply r = SWISD__V1__SWARM_STATUS_REPLY__INIT;
    if (g->dir) {
        r.stages = g->dir->directory_reply->stages;
        r.n_stages = g->dir->directory_reply->n_stages;
    }
    Swisd__V1__SessionStatus ss[256], *sp[256];
    size_t n = 0;
    const uint64_t now = sw_now_ns();
    char tags[256][17];
    for (sw__gw_session_t *c = g->sessions; c && n < 256; c = c->next, n++) {
        swisd__v1__session_status__init(&ss[n]);
        /* session ids are capabilities (they name KV caches on stages): never published;
         * the status shows a keyed hash instead, stable for the session's life */
        const char *sid = sw_session_id(c->ss);
        snprintf(tags[n], sizeof tags[n], "%016llx",
                 (unsigned long long) XXH3_64bits_withSeed(sid, strlen(sid), g->tag_seed));
        sw_session_stats_t st;
        sw_session_stats(c->ss, now, &st);
        ss[n].session_id = tags[n];
        ss[n].request_id = c->client_req;
        ss[n].tokens = st.completion_tokens;
        ss[n].tokens_per_s = st.decode_tokens_per_s;
        ss[n].acceptance_rate = st.acceptance_rate;
        ss[n].tokens_per_round_trip = st.tokens_per_round_trip;
        ss[n].gamma = st.gamma;
        ss[n].speedup = st.speedup;
        sp[n] = &ss[n];
    }
    r.sessions = sp;
    r.n_sessions = n;
    g->view_gen++; /* the view's arrays are reused here */
    const int n_st = sw__gateway_stages(g, g->v_live, NULL, SW_WIRE_MAX_STAGES, false, NULL, 0);
    Swisd__V1__LayerRange gaps[64], *gp[64];
    r.n_gaps = s_gaps(g, g->v_live, n_st, gaps, gp, 64);
    r.gaps = gp;
    const size_t n_recent = sw_recent_count(g->recent);
    Swisd__V1__GenerationSample recent[SW__GATEWAY_RECENT], *rp[SW__GATEWAY_RECENT];
    for (size_t i = 0; i < n_recent && i < SW__GATEWAY_RECENT; i++) {
        const sw_recent_sample_t *x = sw_recent_get(g->recent, i);
        swisd__v1__generation_sample__init(&recent[i]);
        recent[i].end_unix_ms = x->end_unix_ms;
        recent[i].prompt_tokens = x->prompt_tokens;
        recent[i].completion_tokens = x->completion_tokens;
        recent[i].decode_tokens_per_s = x->decode_tokens_per_s;
        recent[i].time_to_first_token_ms = x->time_to_first_token_ms;
        recent[i].acceptance_rate = x->acceptance_rate;
        rp[i] = &recent[i];
    }
    r.recent = rp;
    r.n_recent = n_recent;
    r.generations_total = sw_recent_generations_total(g->recent);
    r.tokens_generated_total = sw_recent_tokens_total(g->recent);
    r.unsealed_replies_total = g->unsealed_replies;
    Swisd__V1__NodeCount ucount[16], *up[16];
    for (int i = 0; i < 16; i++) {
        if (!g->unsealed_by[i].n)
            continue;
        swisd__v1__node_count__init(&ucount[r.n_unsealed_replies]);
        ucount[r.n_unsealed_replies].node_id = g->unsealed_by[i].id;
        ucount[r.n_unsealed_replies].count = g->unsealed_by[i].n;
        up[r.n_unsealed_replies] = &ucount[r.n_unsealed_replies];
        r.n_unsealed_replies++;
    }
    r.unsealed_replies = up;
    r.gateway_id = (char *) sw_gateway_id(g);
    r.region = g->cfg.region ? (char *) g->cfg.region : "default";
    r.model = &g->ref;
    sw__audit_status_t audit;
    sw__audit_status(g, &r, &audit);
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_SWARM_STATUS_REPLY;
    b.swarm_status_reply = &r;
    sw__gateway_rpc_send(g, client, &b);
    sw__audit_status_free(&audit);
}

/* TokenRequest: an API token bound to the key of the connection that asks
 * (its ZAP User-Id), for a key that has done work for this gateway. */
void sw__gateway_on_token(sw_gateway_t *g, const sw_wire_msg_t *m)
{
    uint8_t pk[32];
    char id[SW_IDENTITY_ID_LEN + 1], token[SW_API_TOKEN_HEX + 1], err[256];
    sw_reputation_row_t row;
    double expires = 0;
    int rc, code = SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED;
    if (!g->cfg.tokens) {
        code = SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST;
        snprintf(err, sizeof err, "this gateway makes no API tokens (it runs without keys or a state database)");
    } else if (!g->rpc_auth || sw_broker_auth_peer_key(m->body_frame, pk) != 0) {
        snprintf(err, sizeof err, "the connection carries no key: dial tcp://HOST:PORT#KEY with --key");
    } else if (sw_identity_fingerprint(pk, id),
               !g->cfg.reputation || sw_reputation_row(g->cfg.reputation, id, &row, err, sizeof err) != 1) {
        snprintf(err, sizeof err, "key %s has done no work for this gateway: tokens are for contributors", id);
    } else if ((rc = sw_api_token_issue(g->cfg.tokens, id, sw_state_db_unix_s(), token, &expires, err, sizeof err))) {
        code = rc == -2 ? SWISD__V1__ERROR_CODE__ERROR_OVERLOADED : SWISD__V1__ERROR_CODE__ERROR_INTERNAL;
    } else {
        Swisd__V1__TokenReply r = SWISD__V1__TOKEN_REPLY__INIT;
        r.token = token;
        r.node_id = id;
        r.expires_unix_s = (uint64_t) expires;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_TOKEN_REPLY;
        b.token_reply = &r;
        sw__gateway_rpc_send(g, m->identity, &b);
        sodium_memzero(token, sizeof token);
        sw_log(SW_LOG_INFO, "gateway: made an API token for key %s", id);
        return;
    }
    sw_wire_send_error(g->rpc, m->identity, sw_gateway_id(g), "", code, NULL, 0, "%s", err);
}
