/*  sw_gateway.c: the gateway (see sw_gateway.h): the event loop that turns
 *  socket events (broker link, RPC socket, time) into session events
 *  (sw_session.h) and carries out the actions sessions return, plus RPC
 *  dispatch, the directory, and stage probes. */
#include "sw_gateway.h"
#include "sw_gateway_internal.h"

#include <math.h>
#include <sodium.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "sw_broker_auth.h"
#include "sw_broker_client.h"
#include "sw_codec.h"
#include "sw_chat.h"
#include "sw_common.h"
#include "sw_api_token.h"
#include "sw_ban_outbox.h"
#include "sw_bans.h"
#include "sw_health.h"
#include "sw_identity.h"
#include "sw_keyset.h"
#include "sw_model.h"
#include "sw_planner.h"
#include "sw_recent.h"
#include "sw_reputation.h"
#include "sw_route.h"
#include "sw_sampler.h"
#include "sw_seal_peers.h"
#include "sw_session.h"
#include "sw_state_db.h"
#include "sw_tokenizer.h"
#include "sw_wire.h"

#define S_DIRECTORY_MS 1000     /* directory refresh period */

/* A 64-bit random number (splitmix64 over a getrandom seed). */
uint64_t sw__gateway_rand(sw_gateway_t *g)
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const char *sw_gateway_rpc_endpoint(const sw_gateway_t *self) { return self->rpc_ep; }
const char *sw_gateway_id(const sw_gateway_t *self) { return sw_broker_client_id(self->bc); }
const char *sw_gateway_model_id(const sw_gateway_t *self) { return self->model_id; }
int sw_gateway_chat_format(const sw_gateway_t *self) { return self->chat_format; }
struct sw_ban_outbox_t *sw_gateway_ban_outbox(sw_gateway_t *self) { return self->ban_out; }

int sw_gateway_ban(sw_gateway_t *self, const char *id, bool on, uint64_t duration_s, const char *reason, char *err,
                   size_t errlen)
{
    return sw_ban_outbox_ban(self->ban_out, self->cfg.bans, id, on, duration_s, reason, err, errlen);
}

/* Sends the waiting ban notices to the broker (once registered), each with
 * the node's public key when the directory lists it; one that does not
 * leave (link full) waits for the next turn. */
static void s_send_bans(sw_gateway_t *g)
{
    sw_ban_notice_t b;
    while (sw_broker_client_registered(g->bc) && sw_ban_outbox_front(g->ban_out, &b)) {
        Swisd__V1__BanNotice n = SWISD__V1__BAN_NOTICE__INIT;
        n.node_id = b.id;
        n.until_unix_s = b.until_unix_s;
        n.issued_unix_ms = b.issued_unix_ms;
        n.reason = b.reason;
        const Swisd__V1__DirectoryReply *d = g->dir ? g->dir->directory_reply : NULL;
        for (size_t i = 0; d && i < d->n_stages; i++)
            if (d->stages[i]->node_id && !strcmp(d->stages[i]->node_id, b.id) && d->stages[i]->public_key.len == 32)
                n.public_key = d->stages[i]->public_key;
        Swisd__V1__Body body = SWISD__V1__BODY__INIT;
        body.msg_case = SWISD__V1__BODY__MSG_BAN_NOTICE;
        body.ban_notice = &n;
        if (sw_broker_client_send(g->bc, "", &body) != 0)
            return;
        sw_log(SW_LOG_INFO, "gateway: %s node %s%s at the brokers%s%s", b.until_unix_s ? "banned" : "lifted the ban of",
               b.id, n.public_key.len ? " (key from the directory)" : "", b.reason[0] ? ": " : "", b.reason);
        sw_ban_outbox_pop(g->ban_out);
    }
}

/* Loads the draft model and checks that it shares the target's vocabulary
 * (same size and the same piece for every id). */
static int s_load_draft(sw_gateway_t *g, const char *path, char *err, size_t errlen)
{
    char e2[256];
    if (!(g->draft = sw_model_load(path, NULL, e2, sizeof e2)))
        return sw_err(err, errlen, "draft %s: %s", path, e2);
    sw_tokenizer_t *dt = sw_tokenizer_from_gguf(sw_model_gguf(g->draft), e2, sizeof e2);
    if (!dt)
        return sw_err(err, errlen, "draft %s: tokenizer: %s", path, e2);
    int bad = sw_tokenizer_n_vocab(dt) != sw_tokenizer_n_vocab(g->tok) ||
              sw_model_hparams(g->draft)->n_vocab != g->hp->n_vocab;
    for (int32_t i = 0; !bad && i < sw_tokenizer_n_vocab(dt); i++) {
        size_t la, lb;
        const char *a = sw_tokenizer_piece(dt, i, &la), *b = sw_tokenizer_piece(g->tok, i, &lb);
        bad = la != lb || memcmp(a, b, la) != 0;
    }
    sw_tokenizer_destroy(&dt);
    if (bad)
        return sw_err(err, errlen, "draft %s does not share the target's vocabulary", path);
    g->gamma_max = g->cfg.gamma_max <= 0 ? 8 : g->cfg.gamma_max < SW_SESSION_GAMMA_LIMIT ? g->cfg.gamma_max
                                                                                       : SW_SESSION_GAMMA_LIMIT;
    sw_log(SW_LOG_INFO, "gateway: speculative decoding with draft %s (%d layers), up to %d tokens per round", path,
           (int) sw_model_hparams(g->draft)->n_layer, g->gamma_max);
    return 0;
}

sw_gateway_t *sw_gateway_new(const sw_gateway_config_t *cfg, char *err, size_t errlen)
{
    sw_gateway_t *g = calloc(1, sizeof *g);
    if (!g) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    g->cfg = *cfg;
    if (g->cfg.timeout_ms <= 0) g->cfg.timeout_ms = 30000;
    if (g->cfg.route_wait_ms <= 0) g->cfg.route_wait_ms = 5000;
    if (g->cfg.max_sessions <= 0) g->cfg.max_sessions = 64;
    if (sw_codec_config_parse(cfg->codec ? cfg->codec : "f32", &g->codec_cfg) != 0 || g->codec_cfg.delta) {
        sw_err(err, errlen, "unknown codec '%s' (f32, f16, bf16, q8_0, q4_0, optionally +zstd[N])", cfg->codec);
        goto fail;
    }
    sw_model_parts_t parts = {.layer_begin = 0, .layer_end = 0, .embed = true, .head = true};
    if (!(g->model = sw_model_load(cfg->model_path, &parts, err, errlen)))
        goto fail;
    g->hp = sw_model_hparams(g->model);
    if (!(g->tok = sw_tokenizer_from_gguf(sw_model_gguf(g->model), err, errlen)))
        goto fail;
    {
        const char *tpl;
        size_t tlen;
        char *t = sw_gguf_get_str(sw_model_gguf(g->model), "tokenizer.chat_template", &tpl, &tlen) == 0
                      ? strndup(tpl, tlen) : NULL;
        g->chat_format = sw_chat_detect(t);
        sw_log(SW_LOG_INFO, "gateway: chat format %s (%s)", sw_chat_format_name(g->chat_format),
               !t ? "the model has no chat template"
                  : g->chat_format == SW_CHAT_DEFAULT ? "its chat template is not one swisd recognizes"
                                                      : "from the model's chat template");
        free(t);
    }
    sw_model_identity(g->model, cfg->model_path, g->model_id, sizeof g->model_id, g->checksum, sizeof g->checksum);
    swisd__v1__model_ref__init(&g->ref);
    g->ref.id = g->model_id;
    g->ref.checksum = g->checksum;
    g->ref.n_layer = (uint32_t) g->hp->n_layer;
    g->ref.n_embd = (uint32_t) g->hp->n_embd;
    g->ref.n_vocab = (uint32_t) g->hp->n_vocab;
    g->credit_factor = sw_reputation_model_factor(g->hp->n_embd, g->hp->n_ff, g->hp->n_head, g->hp->n_head_kv);
    if (g->credit_factor < 0)
        g->credit_factor = 0; /* shapes the formula does not cover: work is recorded at 0 units */
    g->ex = sw_exec_new(cfg->threads > 0 ? cfg->threads : 1);
    g->tx = sw_codec_new(&g->codec_cfg, g->hp->n_embd, SW_WIRE_MAX_TOKENS);
    g->tx_cfg = g->codec_cfg;
    sw_codec_config_t any = {.dtype = SW_DTYPE_F32};
    g->rx = sw_codec_new(&any, g->hp->n_embd, SW_WIRE_MAX_TOKENS);
    g->hidden = malloc(sizeof(float) * (size_t) SW_SESSION_PREFILL_CHUNK * (size_t) g->hp->n_embd);
    g->recent = sw_recent_new(SW__GATEWAY_RECENT);
    g->ban_out = sw_ban_outbox_new();
    g->v_usable = malloc(sizeof *g->v_usable * SW_WIRE_MAX_STAGES);
    g->v_live = malloc(sizeof *g->v_live * SW_WIRE_MAX_STAGES);
    g->v_inbound = malloc(sizeof *g->v_inbound * SW_WIRE_MAX_STAGES);
    g->v_infos = malloc(sizeof *g->v_infos * SW_WIRE_MAX_STAGES);
    g->health = sw_health_new();
    g->probe_row = malloc(sizeof(float) * (size_t) g->hp->n_embd);
    g->probe_tx = sw_codec_new(&any, g->hp->n_embd, 1);
    if (getrandom(&g->rng, sizeof g->rng, 0) != (ssize_t) sizeof g->rng)
        g->rng = sw_now_ns() ^ ((uint64_t) getpid() << 32);
    g->tag_seed = sw__gateway_rand(g);
    if (cfg->identity)
        g->seal = sw_seal_peers_new(sw_identity_secret_key(cfg->identity));
    if ((cfg->identity && !g->seal) || !g->ex || !g->tx || !g->rx || !g->hidden || !g->health || !g->probe_row || !g->probe_tx || !g->recent ||
        !g->ban_out || !g->v_usable || !g->v_live || !g->v_inbound || !g->v_infos) {
        sw_err(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->identity && sw__audit_init(g, err, errlen) != 0) /* stages' commitments are checked, sessions audited */
        goto fail;
    {   /* probes carry the embedding of BOS (or token 0): any valid activation row does */
        const int32_t t0 = sw_tokenizer_bos(g->tok) >= 0 ? sw_tokenizer_bos(g->tok) : 0;
        if (sw_model_embed(g->model, &t0, 1, g->probe_row, err, errlen) != 0)
            goto fail;
    }
    if (cfg->draft_path && s_load_draft(g, cfg->draft_path, err, errlen) != 0)
        goto fail;
    sw_session_env_config_t ecfg = {.model = g->model, .tok = g->tok, .ex = g->ex, .draft = g->draft,
                                    .gamma_max = g->gamma_max, .timeout_ms = g->cfg.timeout_ms,
                                    .route_wait_ms = g->cfg.route_wait_ms, .compute_clock_ns = sw_now_ns};
    if (!(g->env = sw_session_env_new(&ecfg, err, errlen)))
        goto fail;
    if (cfg->trusted_layers > 0 || cfg->trusted_dir) {
        if (!cfg->identity || !cfg->trusted_dir) {
            sw_err(err, errlen, "--trusted-layers and --trusted-keys need keys (and --trusted-layers needs "
                   "--trusted-keys DIR)");
            goto fail;
        }
        if (!(g->trusted = sw_keyset_new(cfg->trusted_dir, true, "gateway trusted stages", err, errlen)))
            goto fail;
        sw_log(SW_LOG_INFO, "gateway: %zu operator stage key(s) in %s: trusted auditors%s", sw_keyset_size(g->trusted),
               cfg->trusted_dir, cfg->trusted_layers > 0 ? ", and the only ones for the first layers" : "");
    }
    if (cfg->rpc_allow_dir && !cfg->identity) {
        sw_err(err, errlen, "--rpc-allow needs keys (it cannot be used with --insecure)");
        goto fail;
    }
    /* with keys, a ZAP handler always: under --rpc-allow it refuses other keys; without, any key passes (the
     * open API) and the handler only tags each connection with its key (User-Id), which TokenRequest reads.
     * Before the CURVE server exists: libzmq asks ZAP about every handshake */
    if (cfg->identity) {
        char name[64];
        snprintf(name, sizeof name, "gateway %.8s rpc", sw_identity_id(cfg->identity));
        sw_broker_auth_config_t acfg = {.allow_dir = cfg->rpc_allow_dir, .log_name = name,
                                        .also_allow = sw_identity_public_key(cfg->identity)};
        if (!(g->rpc_auth = sw_broker_auth_new(&acfg, err, errlen)))
            goto fail;
    }
    g->rpc = zsock_new(ZMQ_ROUTER);
    if (!g->rpc)
        goto fail;
    sw_wire_socket_setup(g->rpc, 0, 10000);
    if (cfg->identity) { /* a CURVE server: clients dial tcp://HOST:PORT#KEY (any client key is accepted) */
        zcert_apply(sw_identity_cert(cfg->identity), g->rpc);
        zsock_set_curve_server(g->rpc, 1);
    }
    if (zsock_bind(g->rpc, "%s", cfg->rpc) < 0) {
        sw_err(err, errlen, "cannot bind the RPC endpoint '%s': %s", cfg->rpc, zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (g->rpc_auth && sw_broker_auth_watch(g->rpc_auth, g->rpc, err, errlen) != 0)
        goto fail;
    if (cfg->identity)
        snprintf(g->rpc_ep, sizeof g->rpc_ep, "%s#%s", zsock_endpoint(g->rpc), sw_identity_public_txt(cfg->identity));
    else
        snprintf(g->rpc_ep, sizeof g->rpc_ep, "%s", zsock_endpoint(g->rpc));
    sw_broker_client_config_t bcfg = {.endpoint = cfg->broker, .role = SWISD__V1__ROLE__ROLE_GATEWAY,
                                      .node_id = cfg->id, .identity = cfg->identity, .region = cfg->region,
                                      .display_name = cfg->display_name, .model = &g->ref,
                                      .heartbeat_ms = cfg->heartbeat_ms};
    if (!(g->bc = sw_broker_client_new(&bcfg, err, errlen)))
        goto fail;
    sw_log(SW_LOG_INFO, "gateway %.8s: model %s (%s), %d layers, codec %s, rpc %s", sw_broker_client_id(g->bc),
           g->model_id, g->checksum, (int) g->hp->n_layer, cfg->codec ? cfg->codec : "f32", g->rpc_ep);
    return g;
fail:
    sw_gateway_destroy(&g);
    return NULL;
}

void sw__gateway_kv_release(sw_gateway_t *g, const char *node, const char *session_id)
{
    Swisd__V1__KvRelease rel = SWISD__V1__KV_RELEASE__INIT;
    rel.session_id = (char *) session_id;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_KV_RELEASE;
    b.kv_release = &rel;
    sw_broker_client_send(g->bc, node, &b);
}

void sw__gateway_abort(sw_gateway_t *g, sw__gw_session_t *c)
{
    g->acts.n = 0;
    if (sw_session_abort(c->ss, &g->acts) == 0)
        for (int i = 0; i < g->acts.n; i++)
            if (g->acts.a[i].kind == SW_SESSION_RELEASE)
                sw__gateway_kv_release(g, g->acts.a[i].node, sw_session_id(c->ss));
    g->acts.n = 0;
}

static void s_session_free(sw__gw_session_t *c)
{
    zframe_destroy(&c->client);
    sw_session_destroy(&c->ss);
    free(c->restart.prompt);
    for (int i = 0; i < c->restart.n_stops; i++)
        free(c->restart.stops[i]);
    for (int i = 0; i < c->n_held; i++)
        free(c->held[i].text);
    free(c->held);
    for (int i = 0; i < c->n_commits; i++)
        sw_commit_free(&c->commits[i]);
    free(c->delivered);
    free(c);
}

void sw__gateway_drive(sw_gateway_t *g, sw__gw_session_t *c);

void sw_gateway_destroy(sw_gateway_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_gateway_t *g = *self_p;
    while (g->sessions) {
        sw__gw_session_t *c = g->sessions;
        g->sessions = c->next;
        if (g->bc) /* the stages free its KV caches now, not at their idle expiry */
            sw__gateway_abort(g, c);
        s_session_free(c);
    }
    sw__audit_free(g); /* its audit sessions' KV caches released while the broker link is up */
    if (g->dir)
        swisd__v1__body__free_unpacked(g->dir, NULL);
    sw_broker_client_destroy(&g->bc);
    zsock_destroy(&g->rpc);
    sw_broker_auth_destroy(&g->rpc_auth);
    sw_keyset_destroy(&g->trusted);
    sw_codec_destroy(&g->tx);
    sw_codec_destroy(&g->rx);
    sw_session_env_destroy(&g->env);
    sw_exec_destroy(&g->ex);
    sw_tokenizer_destroy(&g->tok);
    sw_model_destroy(&g->model);
    sw_model_destroy(&g->draft);
    free(g->hidden);
    free(g->probe_row);
    free(g->v_usable);
    free(g->v_live);
    free(g->v_inbound);
    free(g->v_infos);
    sw_recent_destroy(&g->recent);
    sw_ban_outbox_destroy(&g->ban_out);
    sw_codec_destroy(&g->probe_tx);
    sw_seal_peers_destroy(&g->seal);
    sw_health_destroy(&g->health);
    free(g);
    *self_p = NULL;
}

/* ---- planning ------------------------------------------------------------------- */

/* True when directory entry s is a stage of our model. */
static bool s_ours(const sw_gateway_t *g, const Swisd__V1__StageInfo *s)
{
    return s->model && s->model->checksum && !strcmp(s->model->checksum, g->checksum) && s->layers &&
           s->layers->end <= (uint32_t) g->hp->n_layer;
}

/* Stages of our model from the last directory, as planner input: with
 * `usable`, only those stage health lets us choose now (admitted, not on
 * probation, not backed off), each with the slower of its advertised and
 * measured speed; else every live one (for the coverage shown to users).
 * A draining stage is never usable, and live only while the stages of
 * `cover` (n_cover; NULL: none) do not hold all its layers: the sessions
 * through it stay there until another host can take them. */
int sw__gateway_stages(sw_gateway_t *g, sw_plan_stage_t *out, const Swisd__V1__StageInfo **infos, int max, bool usable,
                    const sw_plan_stage_t *cover, int n_cover)
{
    int n = 0;
    if (!g->dir)
        return 0;
    const uint64_t now = sw_now_ns();
    const Swisd__V1__DirectoryReply *d = g->dir->directory_reply;
    for (size_t i = 0; i < d->n_stages && n < max; i++) {
        const Swisd__V1__StageInfo *s = d->stages[i];
        if (!s_ours(g, s) || (usable && !sw_health_usable(g->health, s->node_id, now)))
            continue;
        /* the operator's word: a banned node is as good as gone; a drained one takes no new session */
        if (g->cfg.bans && (sw_bans_banned(g->cfg.bans, s->node_id) || (usable && sw_bans_drained(g->cfg.bans, s->node_id))))
            continue;
        /* a stage that drains itself (its Load says so) takes no new session, and the sessions routed
           through it move elsewhere at this directory (sw_route_all_live fails over): it keeps serving
           meanwhile, so no client sees an error (docs/protocol.md, Load.draining) */
        if (s->load && s->load->draining &&
            (usable || !cover || sw_plan_covers(cover, n_cover, (int32_t) s->layers->begin, (int32_t) s->layers->end)))
            continue;
        /* caught by an audit; an operator's audit stage takes audit work only */
        if (sw__audit_banned(g, s->node_id) || (s->caps && s->caps->audit))
            continue;
        /* the first layers only on trusted keys (their inputs give the prompt away) */
        if (g->trusted && (int) s->layers->begin < g->cfg.trusted_layers && !sw_keyset_contains(g->trusted, s->node_id))
            continue;
        if (infos)
            infos[n] = s;
        const float advertised = s->caps ? s->caps->ms_per_layer : 0;
        out[n++] = (sw_plan_stage_t){
            .node_id = s->node_id, .begin = (int32_t) s->layers->begin, .end = (int32_t) s->layers->end,
            .ms_per_layer = sw_health_ms_per_layer(g->health, s->node_id, advertised, NULL), .link_ms = s->rtt_ms,
            .busy = s->load ? s->load->busy : 0, .queued = s->load ? s->load->queued_requests : 0,
        };
    }
    return n;
}

/* The planner's view of the swarm now: the usable stages (with the codec
 * of the link into each: the stage's own announced choice when we can build
 * it, else ours) and every live stage of our model. Points into g (valid
 * until the next call) and g->dir (until the next directory). */
void sw__gateway_view(sw_gateway_t *g, sw_route_view_t *v)
{
    g->view_gen++;
    const int n = sw__gateway_stages(g, g->v_usable, g->v_infos, SW_WIRE_MAX_STAGES, true, NULL, 0);
    for (int i = 0; i < n; i++) {
        const Swisd__V1__Capabilities *caps = g->v_infos[i]->caps;
        g->v_inbound[i] = g->codec_cfg; /* the stage's own choice for its link wins */
        if (caps && caps->inbound_codec) {
            sw_codec_config_t want = {.dtype = (sw_dtype_t) caps->inbound_codec->dtype,
                                      .zstd_level = caps->inbound_codec->zstd_level};
            if (want.dtype != g->codec_cfg.dtype || want.zstd_level != g->codec_cfg.zstd_level) {
                sw_codec_t *probe = sw_codec_new(&want, g->hp->n_embd, 1);
                if (probe)
                    g->v_inbound[i] = want;
                sw_codec_destroy(&probe);
            }
        }
    }
    *v = (sw_route_view_t){.usable = g->v_usable, .inbound = g->v_inbound, .n_usable = n, .live = g->v_live,
                           .n_live = sw__gateway_stages(g, g->v_live, NULL, SW_WIRE_MAX_STAGES, false, g->v_usable, n),
                           .n_layer = g->hp->n_layer, .codec = g->codec_cfg};
}

/* ---- talking to clients ------------------------------------------------------------ */

/* Sends a reply to an RPC client without ever blocking: a client whose
 * queue is full (it does not read) loses the reply, which is counted and
 * logged at most once every 10 s. Returns true when it was queued. */
bool sw__gateway_rpc_send(sw_gateway_t *g, zframe_t *client, const Swisd__V1__Body *b)
{
    if (sw_wire_send(g->rpc, client, sw_gateway_id(g), "", 0, b) == 0)
        return true;
    g->rpc_drops++;
    const uint64_t now = sw_now_ns();
    if (now - g->drop_log_ns > 10000000000ull) {
        g->drop_log_ns = now;
        sw_log(SW_LOG_WARN, "gateway: an RPC client does not read its replies or is gone (%s); %llu replies dropped "
               "so far", zmq_strerror(zmq_errno()), (unsigned long long) g->rpc_drops);
    }
    return false;
}

void sw__gateway_remove(sw_gateway_t *g, sw__gw_session_t *c)
{
    for (sw__gw_session_t **pp = &g->sessions; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    g->n_sessions--;
    sw__audit_session_gone(g, c);
    s_session_free(c);
}

/* Appends text[0..len) to what c's client has been sent. Returns 0 or -1. */
static int s_delivered_add(sw__gw_session_t *c, const char *text, size_t len)
{
    if (c->n_delivered + len > c->cap_delivered) {
        size_t cap = c->cap_delivered ? 2 * c->cap_delivered : 256;
        while (cap < c->n_delivered + len)
            cap *= 2;
        char *p = realloc(c->delivered, cap);
        if (!p)
            return -1;
        c->delivered = p;
        c->cap_delivered = cap;
    }
    memcpy(c->delivered + c->n_delivered, text, len);
    c->n_delivered += len;
    return 0;
}

bool sw__gateway_emit(sw_gateway_t *g, sw__gw_session_t *c, uint32_t index, int32_t token, const char *text,
                      size_t len)
{
    if (c->replaying) { /* started again: the part the client has is compared, not sent again */
        const size_t had = c->n_delivered > c->replay_off ? c->n_delivered - c->replay_off : 0;
        const size_t same = len < had ? len : had;
        if (same && memcmp(c->delivered + c->replay_off, text, same)) {
            g->delivered_differs++;
            sw_log(SW_LOG_WARN, "gateway: session %.8s: text delivered before a stage on its route was caught "
                   "differs from the honest text (%llu such sessions)", sw_session_id(c->ss),
                   (unsigned long long) g->delivered_differs);
        }
        c->replay_off += len;
        if (same == len)
            return true;
        text += same;
        len -= same;
        c->replaying = false;
    }
    if (s_delivered_add(c, text, len) != 0)
        return false;
    Swisd__V1__TokenChunk ch = SWISD__V1__TOKEN_CHUNK__INIT;
    ch.index = index;
    ch.token_id = (uint32_t) token;
    ch.text.data = (uint8_t *) text;
    ch.text.len = len;
    Swisd__V1__GenerateReply r = SWISD__V1__GENERATE_REPLY__INIT;
    r.request_id = c->client_req;
    r.part_case = SWISD__V1__GENERATE_REPLY__PART_TOKEN;
    r.token = &ch;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_GENERATE_REPLY;
    b.generate_reply = &r;
    return sw__gateway_rpc_send(g, c->client, &b);
}

/* Sends the summary of a finished session and records it for the status. */
void sw__gateway_summary(sw_gateway_t *g, sw__gw_session_t *c, const char *reason)
{
    const uint64_t now = sw_now_ns();
    sw_session_stats_t st;
    sw_session_stats(c->ss, now, &st);
    Swisd__V1__GenerateSummary sum = SWISD__V1__GENERATE_SUMMARY__INIT;
    sum.prompt_tokens = st.prompt_tokens;
    sum.completion_tokens = st.completion_tokens;
    sum.stop_reason = (char *) reason;
    sum.time_to_first_token_ms = st.time_to_first_token_ms;
    sum.prefill_ms = st.prefill_ms;
    sum.decode_tokens_per_s = st.decode_tokens_per_s;
    sum.total_ms = st.total_ms;
    sum.acceptance_rate = st.acceptance_rate;
    sum.seed = st.seed;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        const sw_recent_sample_t x = {
            .end_unix_ms = (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u,
            .prompt_tokens = sum.prompt_tokens, .completion_tokens = sum.completion_tokens,
            .decode_tokens_per_s = sum.decode_tokens_per_s, .time_to_first_token_ms = sum.time_to_first_token_ms,
            .acceptance_rate = sum.acceptance_rate};
        sw_recent_add(g->recent, &x);
    }
    const sw_route_t *rt = sw_session_route(c->ss);
    char *route[SW_PLAN_MAX_HOPS];
    const int n_hops = sw_route_n_hops(rt);
    for (int i = 0; i < n_hops; i++)
        route[i] = (char *) sw_route_hop(rt, i)->id;
    sum.route = route;
    sum.n_route = (size_t) n_hops;
    Swisd__V1__GenerateReply r = SWISD__V1__GENERATE_REPLY__INIT;
    r.request_id = c->client_req;
    r.part_case = SWISD__V1__GENERATE_REPLY__PART_SUMMARY;
    r.summary = &sum;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_GENERATE_REPLY;
    b.generate_reply = &r;
    sw__gateway_rpc_send(g, c->client, &b);
    char via[SW_PLAN_MAX_HOPS * 18 + 1] = ""; /* the route's node ids, 16 bytes of each, comma-separated */
    for (int i = 0, at = 0; i < n_hops && at < (int) sizeof via - 18; i++)
        at += snprintf(via + at, sizeof via - (size_t) at, "%s%.16s", i ? "," : "", route[i]);
    sw_log(SW_LOG_INFO, "gateway: session %.8s done (%s): %d prompt + %d generated tokens, %.1f tokens/s, via %s",
           sw_session_id(c->ss), reason, (int) st.prompt_tokens, (int) st.completion_tokens,
           sum.decode_tokens_per_s, via);
}

/* ---- the chain -------------------------------------------------------------------- */

/* Sends a ForwardRequest to route[0] under `session_id` with request id
 * `request_id`: tokens [pos, pos + n_tok) as `act`, the reply encoded as
 * `reply_codec`, back to this gateway. Returns sw_broker_client_send's
 * result (-1: the queue to the broker is full). */
int sw__gateway_send_forward(sw_gateway_t *g, char *session_id, uint64_t request_id, Swisd__V1__Hop **route,
                             size_t n_route, uint32_t pos, uint32_t n_tok, Swisd__V1__Activation *act,
                             Swisd__V1__CodecConfig *reply_codec, uint8_t *digest)
{
    if (digest && sw_commit_digest(act->payload.data, act->payload.len, digest) != 0)
        return -3;
    Swisd__V1__ForwardRequest fr = SWISD__V1__FORWARD_REQUEST__INIT;
    fr.session_id = session_id;
    fr.request_id = request_id;
    fr.origin = (char *) sw_gateway_id(g);
    fr.route = route;
    fr.n_route = n_route;
    fr.pos = pos;
    fr.n_tok = n_tok;
    fr.activation = act;
    fr.deadline_ms = (uint32_t) g->cfg.timeout_ms;
    fr.reply_codec = reply_codec;
    uint8_t *sealed = NULL;
    Swisd__V1__Activation sealed_act;
    if (g->seal) { /* for route[0], whose key the caller put in the hop from the directory */
        const sw_seal_ctx_t ctx = {.dir = SW_SEAL_TO_STAGE, .session_id = session_id, .session_len = strlen(session_id),
                                   .request_id = request_id, .pos = pos, .n_rows = n_tok, .hop = 0};
        size_t n = 0;
        if (route[0]->public_key.len != SW_SEAL_KEY_BYTES ||
            sw_seal_peers_close(g->seal, route[0]->public_key.data, &ctx, act->payload.data, act->payload.len,
                                act->checksum, &sealed, &n) != 0)
            return -3;
        sealed_act = *act;
        sealed_act.payload.data = sealed;
        sealed_act.payload.len = n;
        sealed_act.checksum = 0; /* inside the box */
        fr.activation = &sealed_act;
        fr.origin_key.data = (uint8_t *) sw_identity_public_key(g->cfg.identity);
        fr.origin_key.len = SW_SEAL_KEY_BYTES;
    }
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_FORWARD_REQUEST;
    b.forward_request = &fr;
    const int rc = sw_broker_client_send(g->bc, route[0]->node_id, &b);
    free(sealed);
    return rc;
}

static void s_probe(sw_gateway_t *g, const Swisd__V1__StageInfo *st);
const Swisd__V1__StageInfo *sw__gateway_stage_info(const sw_gateway_t *g, const char *id);

/* Sends a STEP action: history rows [pos, pos + n_tok) embedded, encoded
 * for the link into the first hop, through the session's route. Returns 0,
 * -1 when the step cannot be made (embedding, codec), or -2 when the queue
 * to the broker is full. */
static int s_send_step(sw_gateway_t *g, sw__gw_session_t *c, const sw_session_action_t *a)
{
    char err[256];
    const sw_route_t *rt = sw_session_route(c->ss);
    const int n_hops = sw_route_n_hops(rt);
    if (n_hops < 1 || a->n_tok < 1 || a->n_tok > SW_SESSION_PREFILL_CHUNK ||
        sw_model_embed(g->model, sw_session_tokens(c->ss) + a->pos, a->n_tok, g->hidden, err, sizeof err) != 0)
        return -1;
    const sw_codec_config_t *c0 = &sw_route_hop(rt, 0)->codec;
    if (c0->dtype != g->tx_cfg.dtype || c0->zstd_level != g->tx_cfg.zstd_level) {
        sw_codec_t *tx = sw_codec_new(c0, g->hp->n_embd, SW_WIRE_MAX_TOKENS);
        if (!tx)
            return -1;
        sw_codec_destroy(&g->tx);
        g->tx = tx;
        g->tx_cfg = *c0;
    }
    sw_codec_header_t h;
    const void *payload;
    size_t len;
    if (sw_codec_encode(g->tx, g->hidden, a->n_tok, &h, &payload, &len, err, sizeof err) != 0)
        return -1;
    Swisd__V1__Activation act;
    sw_wire_activation_to_msg(&h, payload, len, &act);
    Swisd__V1__CodecConfig codec = SWISD__V1__CODEC_CONFIG__INIT, hop_codec[SW_PLAN_MAX_HOPS];
    codec.dtype = g->codec_cfg.dtype; /* replies come back on our own link */
    codec.zstd_level = g->codec_cfg.zstd_level;
    Swisd__V1__LayerRange lr[SW_PLAN_MAX_HOPS];
    Swisd__V1__Hop hops[SW_PLAN_MAX_HOPS], *route[SW_PLAN_MAX_HOPS];
    for (int i = 0; i < n_hops; i++) {
        const sw_route_hop_t *hp = sw_route_hop(rt, i);
        swisd__v1__layer_range__init(&lr[i]);
        lr[i].begin = (uint32_t) hp->begin;
        lr[i].end = (uint32_t) hp->end;
        swisd__v1__hop__init(&hops[i]);
        hops[i].node_id = (char *) hp->id;
        hops[i].layers = &lr[i];
        swisd__v1__codec_config__init(&hop_codec[i]);
        hop_codec[i].dtype = hp->codec.dtype;
        hop_codec[i].zstd_level = hp->codec.zstd_level;
        hops[i].codec = &hop_codec[i];
        if (g->seal) { /* each hop's key as the broker authenticated it (the directory) */
            const Swisd__V1__StageInfo *si = sw__gateway_stage_info(g, hp->id);
            if (!si || si->public_key.len != SW_SEAL_KEY_BYTES)
                return -1;
            hops[i].public_key = si->public_key;
        }
        route[i] = &hops[i];
    }
    c->sent_request = a->request_id;
    memcpy(c->sent_tokens, sw_session_tokens(c->ss) + a->pos, sizeof(int32_t) * (size_t) a->n_tok);
    const int rc = sw__gateway_send_forward(g, (char *) sw_session_id(c->ss), a->request_id, route, (size_t) n_hops,
                                            (uint32_t) a->pos, (uint32_t) a->n_tok, &act, &codec,
                                            g->audit ? c->sent_digest : NULL);
    return rc == -1 ? -2 : rc != 0 ? -1 : 0;
}


/* Holds TEXT action a of c (a copy of its bytes) until an audit verified the
 * rows it came from: the logits of completion token k are the output of row
 * n_prompt + k - 1. Returns 0, or -1 when out of memory or over the limit. */
static int s_hold(sw_gateway_t *g, sw__gw_session_t *c, const sw_session_action_t *a)
{
    (void) g;
    if (c->n_held == c->cap_held) {
        const int cap = c->cap_held ? 2 * c->cap_held : 64;
        sw__held_t *p = cap <= 65536 ? realloc(c->held, sizeof *p * (size_t) cap) : NULL;
        if (!p)
            return -1;
        c->held = p;
        c->cap_held = cap;
    }
    sw__held_t *h = &c->held[c->n_held];
    h->index = a->index;
    h->token = a->token;
    h->need_row = c->restart.n_prompt + (int64_t) a->index - 1;
    h->len = a->text_len;
    if (!(h->text = malloc(a->text_len ? a->text_len : 1)))
        return -1;
    memcpy(h->text, sw_session_text(c->ss, NULL) + a->text_off, a->text_len);
    c->n_held++;
    return 0;
}

/* Carries out the actions in g->acts that session c returned, and feeds it
 * the follow-up events they cause (a send that failed, a re-plan after
 * stage health changed, a client that is gone); removes c once it ended. */
void sw__gateway_drive(sw_gateway_t *g, sw__gw_session_t *c)
{
    sw_session_actions_t *acts = &g->acts;
    for (int round = 0; round < 8; round++) {
        enum { NONE, QUEUE_FULL, CANNOT_SEND, REPLAN, GONE } follow = NONE;
        const uint64_t now = sw_now_ns();
        for (int i = 0; i < acts->n; i++) {
            const sw_session_action_t *a = &acts->a[i];
            if (follow == GONE && a->kind != SW_SESSION_RELEASE) /* nobody to talk to, nothing more to compute */
                continue;
            switch (a->kind) {
            case SW_SESSION_STEP: {
                if (sw__audit_pace(g, c)) { /* a new key's first verdict comes first (sent by the audit tick) */
                    c->paced = true;
                    c->paced_step = *a;
                    break;
                }
                c->paced = false;
                const int rc = s_send_step(g, c, a);
                follow = rc == -2 ? QUEUE_FULL : rc != 0 ? CANNOT_SEND : follow;
                break;
            }
            case SW_SESSION_TEXT:
                if (sw__audit_must_hold(g, c)) { /* a hop not yet trusted: the text waits for its audit */
                    if (s_hold(g, c, a) != 0)
                        follow = GONE;
                } else if (!sw__gateway_emit(g, c, a->index, a->token, sw_session_text(c->ss, NULL) + a->text_off,
                                             a->text_len)) {
                    sw_log(SW_LOG_INFO, "gateway: client of session %.8s is gone; cancelling", sw_session_id(c->ss));
                    follow = GONE;
                }
                break;
            case SW_SESSION_FINISH:
                if (c->n_held) { /* after the held text */
                    c->finish_held = true;
                    snprintf(c->finish_reason, sizeof c->finish_reason, "%s", a->reason);
                } else {
                    sw__gateway_summary(g, c, a->reason);
                }
                break;
            case SW_SESSION_FAIL:
                sw_wire_send_error(g->rpc, c->client, sw_gateway_id(g), "", a->code, sw_session_id(c->ss),
                                   c->client_req, "%s", a->reason);
                break;
            case SW_SESSION_RELEASE:
                sw__gateway_kv_release(g, a->node, sw_session_id(c->ss));
                break;
            case SW_SESSION_STRIKE: {
                const int sec = sw_health_strike(g->health, a->node, now);
                sw_log(SW_LOG_INFO, "gateway: stage %.8s backed off for %d s (strike %d)", a->node, sec,
                       sw_health_strikes(g->health, a->node));
                break;
            }
            case SW_SESSION_SUSPECT: {
                if (sw_health_suspect(g->health, a->node, now))
                    sw_log(SW_LOG_INFO, "gateway: stage %.8s was on %s timed-out routes without completing a step; "
                           "backing it off (strike %d)", a->node, "two", sw_health_strikes(g->health, a->node));
                const Swisd__V1__StageInfo *info = sw__gateway_stage_info(g, a->node);
                if (info)
                    s_probe(g, info);
                break;
            }
            case SW_SESSION_ALIVE:
                sw_health_alive(g->health, a->node, now);
                break;
            case SW_SESSION_REPLAN:
                if (follow == NONE)
                    follow = REPLAN;
                break;
            }
        }
        acts->n = 0;
        if (follow == GONE) /* the RELEASEs of an end already went; else the abort's go next round */
            sw_session_abort(c->ss, acts);
        else if (sw_session_done(c->ss))
            break;
        else if (follow == QUEUE_FULL || follow == CANNOT_SEND)
            sw_session_on_send_failed(c->ss, follow == QUEUE_FULL, sw_now_ns(), acts);
        else if (follow == REPLAN) {
            sw_route_view_t v;
            sw__gateway_view(g, &v);
            sw_session_on_tick(c->ss, &v, sw_now_ns(), acts);
        }
        if (acts->n == 0)
            break;
    }
    acts->n = 0;
    if (sw_session_done(c->ss) && !c->n_held && !c->finish_held)
        sw__gateway_remove(g, c);
}

/* ---- stage health: probes ------------------------------------------------------- */

/* The directory entry of stage `id` (of our model), or NULL. */
const Swisd__V1__StageInfo *sw__gateway_stage_info(const sw_gateway_t *g, const char *id)
{
    if (!g->dir)
        return NULL;
    const Swisd__V1__DirectoryReply *d = g->dir->directory_reply;
    for (size_t i = 0; i < d->n_stages; i++)
        if (!strcmp(d->stages[i]->node_id, id) && s_ours(g, d->stages[i]))
            return d->stages[i];
    return NULL;
}

/* Sends stage `st` a probe when its health asks for one: a one-token forward
 * pass at position 0 over every layer it holds, under a session id of its
 * own (released when it answers). Admission, release from probation and the
 * measured speed all come from these answers. */
static void s_probe(sw_gateway_t *g, const Swisd__V1__StageInfo *st)
{
    sw_health_probe_t pr;
    if (!sw_health_probe_due(g->health, st->node_id, sw_now_ns(), sw__gateway_rand(g), &pr))
        return;
    char err[128];
    sw_codec_header_t h;
    const void *payload;
    size_t len;
    if (sw_codec_encode(g->probe_tx, g->probe_row, 1, &h, &payload, &len, err, sizeof err) != 0)
        return;
    Swisd__V1__Activation act;
    sw_wire_activation_to_msg(&h, payload, len, &act);
    Swisd__V1__CodecConfig f32 = SWISD__V1__CODEC_CONFIG__INIT; /* dtype 0: f32, both ways */
    Swisd__V1__LayerRange lr = SWISD__V1__LAYER_RANGE__INIT;
    lr.begin = st->layers->begin;
    lr.end = st->layers->end;
    Swisd__V1__Hop hop = SWISD__V1__HOP__INIT, *route[1] = {&hop};
    hop.node_id = st->node_id;
    hop.layers = &lr;
    hop.codec = &f32;
    hop.public_key = st->public_key; /* empty when insecure: sw__gateway_send_forward refuses to send unsealed with a key */
    /* a lost probe is sent again after the retry interval */
    sw__gateway_send_forward(g, pr.probe_id, sw__gateway_rand(g) | 1, route, 1, 0, 1, &act, &f32, NULL);
}

/* Starts every session that waits for a route (a stage may have become usable). */
static void s_kick(sw_gateway_t *g)
{
    sw_route_view_t v;
    uint64_t gen = 0;
    for (sw__gw_session_t *c = g->sessions, *next; c; c = next) {
        next = c->next;
        if (sw_session_in_flight(c->ss))
            continue;
        if (!gen || gen != g->view_gen) /* none yet, or another session's re-plan rebuilt it */
            sw__gateway_view(g, &v), gen = g->view_gen;
        g->acts.n = 0;
        sw_session_on_tick(c->ss, &v, sw_now_ns(), &g->acts);
        sw__gateway_drive(g, c);
    }
}

/* A probe's answer from `src`: a reply (code 0), or an Error the stage
 * raised. Only the probed stage itself can answer its probe. */
static void s_on_probe_reply(sw_gateway_t *g, const char *src, const char *probe_id, int code)
{
    const char *stage = sw_health_probe_stage(g->health, probe_id);
    if (!stage || strcmp(stage, src))
        return;
    const uint64_t now = sw_now_ns();
    if (code != 0 && code != SWISD__V1__ERROR_CODE__ERROR_OVERLOADED) {
        /* it refused a well-formed probe over the layers it announced */
        const int sec = sw_health_strike(g->health, stage, now);
        sw_log(SW_LOG_INFO, "gateway: stage %.8s refused a probe (%s); backing it off for %d s", stage,
               sw_wire_error_name(code), sec);
        return;
    }
    const Swisd__V1__StageInfo *info = sw__gateway_stage_info(g, stage);
    const int n_layers = info && code == 0 ? (int) (info->layers->end - info->layers->begin) : 0;
    const char *why_before = sw_health_why_not(g->health, stage, now);
    char id[SW_WIRE_MAX_ID + 1];
    snprintf(id, sizeof id, "%s", stage);
    sw_health_probe_answered(g->health, probe_id, n_layers, info ? info->rtt_ms : 0, now);
    if (code == 0)
        sw__gateway_kv_release(g, id, probe_id);
    if (info && info->caps) {
        bool lied = false;
        const float eff = sw_health_ms_per_layer(g->health, id, info->caps->ms_per_layer, &lied);
        if (lied)
            sw_log(SW_LOG_INFO, "gateway: stage %.8s advertises %.3f ms per layer, measured %.3f: planning with "
                   "the measured figure", id, info->caps->ms_per_layer, eff);
    }
    if (why_before && !sw_health_why_not(g->health, id, now)) {
        sw_log(SW_LOG_DEBUG, "gateway: stage %.8s answered its probe (was %s)", id, why_before);
        s_kick(g);
    }
}

static sw__gw_session_t *s_find(sw_gateway_t *g, const char *id)
{
    for (sw__gw_session_t *c = g->sessions; c; c = c->next)
        if (!strcmp(sw_session_id(c->ss), id))
            return c;
    return NULL;
}

/* Opens the sealed activation `a` of a reply from stage `src` (its key from
 * the directory) as hop `hop` of the route: session, request id, first
 * position and rows as the gateway sent them. Returns 0 with *opened (caller
 * frees), *len and h's checksum set; -1 when it does not open, counted
 * against src (the counter and a log line at most every 10 s). */
int sw__gateway_open_reply(sw_gateway_t *g, const char *src, const char *session_id, uint64_t request_id,
                        const Swisd__V1__Activation *a, uint32_t hop, uint32_t pos, uint32_t n_rows,
                        sw_codec_header_t *h, uint8_t **opened, size_t *len)
{
    const Swisd__V1__StageInfo *si = sw__gateway_stage_info(g, src);
    const sw_seal_ctx_t ctx = {.dir = SW_SEAL_TO_GATEWAY, .session_id = session_id, .session_len = strlen(session_id),
                               .request_id = request_id, .pos = pos, .n_rows = n_rows, .hop = hop};
    uint64_t checksum = 0;
    if (si && si->public_key.len == SW_SEAL_KEY_BYTES &&
        sw_seal_peers_open(g->seal, si->public_key.data, &ctx, a->payload.data, a->payload.len, opened, len,
                           &checksum) == 0) {
        h->checksum = checksum;
        return 0;
    }
    g->unsealed_replies++;
    int slot = -1;
    for (int i = 0; i < 16 && slot < 0; i++)
        if (g->unsealed_by[i].n && !strcmp(g->unsealed_by[i].id, src))
            slot = i;
    if (slot < 0) {
        slot = g->unsealed_next;
        g->unsealed_next = (g->unsealed_next + 1) % 16;
        snprintf(g->unsealed_by[slot].id, sizeof g->unsealed_by[slot].id, "%s", src);
        g->unsealed_by[slot].n = 0;
    }
    g->unsealed_by[slot].n++;
    sw_health_strike(g->health, src, sw_now_ns()); /* as a refused probe: backs the key's node off */
    const uint64_t now = sw_now_ns();
    if (!g->unsealed_log_ns || now - g->unsealed_log_ns >= 10000000000ull) {
        sw_log(SW_LOG_WARN, "gateway: reply for %.16s from stage %.16s does not open with its key: rejected "
               "(%llu unsealed replies so far)", session_id, src, (unsigned long long) g->unsealed_replies);
        g->unsealed_log_ns = now;
    }
    return -1;
}

/* Logs a failure to record reputation or credit, at most once every 10 s. */
static void s_credit_log(sw_gateway_t *g, const char *what, const char *err)
{
    const uint64_t now = sw_now_ns();
    if (g->credit_log_ns && now - g->credit_log_ns < 10000000000ull)
        return;
    g->credit_log_ns = now;
    sw_log(SW_LOG_WARN, "gateway: cannot record %s: %s", what, err);
}

/* Credits every hop of session c's route for a completed step of n_rows
 * tokens: layers x tokens x the model's factor each (sw_reputation.h),
 * pending until the audit window closes. */
static void s_credit_step(sw_gateway_t *g, sw__gw_session_t *c, int64_t n_rows)
{
    if (!g->cfg.reputation || n_rows < 1)
        return;
    const sw_route_t *rt = sw_session_route(c->ss);
    const double now = sw_state_db_unix_s();
    char err[256];
    for (int i = 0; i < sw_route_n_hops(rt); i++) {
        const sw_route_hop_t *hp = sw_route_hop(rt, i);
        const double units = (double) (hp->end - hp->begin) * (double) n_rows * g->credit_factor;
        if (sw_reputation_credit_work(g->cfg.reputation, hp->id, sw_session_id(c->ss), units, now, err, sizeof err))
            s_credit_log(g, "credit", err);
    }
}

static void s_on_reply(sw_gateway_t *g, const char *src, const Swisd__V1__ForwardReply *rep)
{
    if (!strncmp(rep->session_id, "probe-", 6)) {
        int code = SWISD__V1__ERROR_CODE__ERROR_UNSPECIFIED;
        const char *stage = sw_health_probe_stage(g->health, rep->session_id);
        if (g->seal && stage && !strcmp(stage, src)) { /* a probe answer counts only when it opens */
            sw_codec_header_t ph;
            uint8_t *opened = NULL;
            size_t len = 0;
            if (!rep->activation || sw__gateway_open_reply(g, src, rep->session_id, rep->request_id, rep->activation, 0, 0, 1,
                                                 &ph, &opened, &len) != 0)
                code = SWISD__V1__ERROR_CODE__ERROR_BAD_SEAL;
            free(opened);
        }
        return s_on_probe_reply(g, src, rep->session_id, code);
    }
    if (!strncmp(rep->session_id, "audit-", 6))
        return sw__audit_on_reply(g, src, rep);
    sw__gw_session_t *c = s_find(g, rep->session_id);
    int64_t n_rows = 0;
    if (!c || !sw_session_wants(c->ss, src, rep->request_id, &n_rows))
        return; /* stale, duplicate, cancelled or forged: ignore */
    const Swisd__V1__Activation *a = rep->activation;
    sw_codec_header_t h;
    sw_wire_activation_from_msg(a, &h);
    char err[256];
    err[0] = 0;
    g->acts.n = 0;
    const sw_route_t *rt = sw_session_route(c->ss);
    const int last = sw_route_n_hops(rt) - 1;
    uint8_t *opened = NULL;
    size_t len = a->payload.len;
    if (g->seal && sw__gateway_open_reply(g, src, rep->session_id, rep->request_id, a, last < 0 ? 0 : (uint32_t) last,
                                (uint32_t) sw_session_pending_pos(c->ss), (uint32_t) n_rows, &h, &opened, &len) != 0)
        snprintf(err, sizeof err, "reply not sealed by stage %.16s (does not open with its key)", src);
    else if (h.n_tok != (uint64_t) n_rows ||
             sw_codec_decode(g->rx, &h, opened ? opened : a->payload.data, len, g->hidden, err, sizeof err) != 0)
        ;
    else if (g->audit && sw__audit_check_reply(g, c, rep, n_rows, opened ? opened : a->payload.data, len, err,
                                               sizeof err) != 0)
        sw_log(SW_LOG_WARN, "gateway: session %.8s: a commitment does not hold: %s", rep->session_id, err);
    else
        err[0] = 0, len = SIZE_MAX;
    free(opened);
    if (len != SIZE_MAX) {
        sw_session_on_bad_reply(c->ss, src, rep->request_id, err[0] ? err : "bad activation", sw_now_ns(), &g->acts);
    } else {
        s_credit_step(g, c, n_rows); /* the route is the one that computed it: before the session moves on */
        sw_session_on_reply(c->ss, src, rep->request_id, g->hidden, n_rows, sw_now_ns(), &g->acts);
        sw__audit_after_step(g, c); /* the history now holds the step's accepted tokens */
    }
    sw__gateway_drive(g, c);
}

/* ---- requests ----------------------------------------------------------------------- */

/* NULL when the request's sampling parameters and stop strings are in
 * range, else why not (a static string: the client's error). */
static const char *s_check_sampling(const Swisd__V1__GenerateRequest *req, int32_t n_vocab)
{
    const Swisd__V1__SamplingParams *sp = req->sampling;
    if (req->n_stop > SW_SESSION_MAX_STOPS)
        return "at most 16 stop strings";
    for (size_t i = 0; i < req->n_stop; i++)
        if (strlen(req->stop[i]) > 256)
            return "a stop string is longer than 256 bytes";
    if (!sp)
        return NULL;
    /* rpc.proto: temperature <= 0 is greedy; top_k, top_p, min_p <= 0 are off */
    if (!isfinite(sp->temperature) || sp->temperature > 100)
        return "temperature must be a finite number at most 100";
    if (!isfinite(sp->top_p) || sp->top_p > 1)
        return "top_p must be at most 1";
    if (!isfinite(sp->min_p) || sp->min_p > 1)
        return "min_p must be at most 1";
    if (sp->top_k > n_vocab)
        return "top_k must not exceed the vocabulary size";
    if (!isfinite(sp->repeat_penalty) || sp->repeat_penalty < 0 || sp->repeat_penalty > 100)
        return "repeat_penalty must be from 0 to 100 (0 or 1: off)";
    return NULL;
}

static void s_on_generate(sw_gateway_t *g, zframe_t *client, const Swisd__V1__GenerateRequest *req)
{
    char err[256];
    const char *why = NULL;
    int code = SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    if (req->model && req->model[0] && strcmp(req->model, g->model_id))
        why = "this gateway serves another model";
    else if (req->max_tokens == 0)
        why = "max_tokens must be at least 1";
    else if ((why = s_check_sampling(req, g->hp->n_vocab)))
        ;
    else if (g->n_sessions >= g->cfg.max_sessions)
        why = "too many concurrent sessions", code = SWISD__V1__ERROR_CODE__ERROR_OVERLOADED;
    if (why) {
        sw_wire_send_error(g->rpc, client, sw_gateway_id(g), "", code, NULL, req->request_id, "%s", why);
        return;
    }
    const Swisd__V1__SamplingParams *sp = req->sampling;
    sw_sampler_params_t p = sw_sampler_default_params();
    p.temperature = sp ? sp->temperature : 0;
    p.top_k = sp ? sp->top_k : 0;
    p.top_p = sp && sp->top_p > 0 ? sp->top_p : 1.0f;
    p.min_p = sp ? sp->min_p : 0;
    p.repeat_penalty = sp && sp->repeat_penalty > 0 ? sp->repeat_penalty : 1.0f;
    if (sp && sp->optional_seed_case == SWISD__V1__SAMPLING_PARAMS__OPTIONAL_SEED_SEED) {
        p.seed = sp->seed;
    } else { /* none: a fresh random one (else every unseeded request samples alike), < 2^53 so JSON keeps it */
        if (getrandom(&p.seed, sizeof p.seed, GRND_NONBLOCK) != (ssize_t) sizeof p.seed)
            p.seed = sw__gateway_rand(g);
        p.seed &= (1ull << 53) - 1;
    } /* the seed goes to the session's sampler; the summary reports it */
    const size_t plen = req->prompt ? strlen(req->prompt) : 0;
    const bool bos = sw_tokenizer_add_bos(g->tok);
    /* a templated prompt (chat): its parts; else the plain prompt (validated: <= 4096 parts) */
    sw_tok_part_t parts[1], *pv = parts;
    size_t n_parts = 1;
    parts[0] = (sw_tok_part_t){.text = req->prompt ? req->prompt : "", .len = plen, .special = false};
    if (req->n_prompt_parts > 0) {
        n_parts = req->n_prompt_parts;
        pv = malloc(sizeof *pv * n_parts);
        for (size_t i = 0; pv && i < n_parts; i++)
            pv[i] = (sw_tok_part_t){.text = req->prompt_parts[i]->text, .len = strlen(req->prompt_parts[i]->text),
                                    .special = req->prompt_parts[i]->special};
    }
    const int64_t n = pv ? sw_tokenizer_encode_parts(g->tok, pv, n_parts, bos, NULL, 0) : -1;
    int32_t *prompt = n >= 0 ? malloc(sizeof(int32_t) * (size_t) (n > 0 ? n : 1)) : NULL;
    if (prompt)
        sw_tokenizer_encode_parts(g->tok, pv, n_parts, bos, prompt, n);
    if (pv != parts)
        free(pv);
    char id[33];
    sw_wire_new_id(id, sizeof id);
    const char *stops[SW_SESSION_MAX_STOPS];
    const int n_stops = req->n_stop < SW_SESSION_MAX_STOPS ? (int) req->n_stop : SW_SESSION_MAX_STOPS;
    for (int i = 0; i < n_stops; i++)
        stops[i] = req->stop[i];
    const int32_t max_tokens = req->max_tokens > INT32_MAX ? INT32_MAX : (int32_t) req->max_tokens;
    const sw_session_config_t scfg = {.id = id, .prompt = prompt, .n_prompt = n, .max_tokens = max_tokens,
                                      .sampling = p, .ignore_eos = sp && sp->ignore_eos, .stops = stops,
                                      .n_stops = n_stops, .rng_seed = sw__gateway_rand(g), .now_ns = sw_now_ns()};
    sw_session_t *ss = NULL;
    sw__gw_session_t *c = NULL;
    if (n < 0) {
        snprintf(err, sizeof err, "cannot accept the request (the prompt cannot be tokenized or out of memory)");
    } else if (!prompt) { /* never a silent drop */
        code = SWISD__V1__ERROR_CODE__ERROR_INTERNAL;
        snprintf(err, sizeof err, "cannot accept the request (out of memory)");
    } else if ((ss = sw_session_new(g->env, &scfg, &code, err, sizeof err)) &&
               (!(c = calloc(1, sizeof *c)) || !(c->client = zframe_dup(client)))) {
        code = SWISD__V1__ERROR_CODE__ERROR_INTERNAL;
        snprintf(err, sizeof err, "out of memory");
        sw_session_destroy(&ss);
        free(c);
        c = NULL;
    }
    free(prompt);
    if (!c) {
        sw_wire_send_error(g->rpc, client, sw_gateway_id(g), "", code, NULL, req->request_id, "%s", err);
        return;
    }
    c->ss = ss;
    c->client_req = req->request_id;
    /* how it started, to start it again if an audit catches a stage on its route */
    c->restart.prompt = malloc(sizeof(int32_t) * (size_t) (n > 0 ? n : 1));
    if (c->restart.prompt) /* the history starts with the prompt */
        memcpy(c->restart.prompt, sw_session_tokens(ss), sizeof(int32_t) * (size_t) n);
    c->restart.n_prompt = n;
    c->restart.max_tokens = max_tokens;
    c->restart.sampling = p;
    c->restart.ignore_eos = scfg.ignore_eos;
    for (int i = 0; i < n_stops; i++)
        if ((c->restart.stops[c->restart.n_stops] = strdup(stops[i] ? stops[i] : "")))
            c->restart.n_stops++;
    c->next = g->sessions;
    g->sessions = c;
    g->n_sessions++;
    sw_route_view_t v;
    sw__gateway_view(g, &v);
    g->acts.n = 0;
    sw_session_on_tick(ss, &v, sw_now_ns(), &g->acts);
    sw__gateway_drive(g, c);
}

static void s_on_rpc(sw_gateway_t *g)
{
    sw_wire_msg_t m;
    int code;
    char err[256];
    if (sw_wire_recv(g->rpc, true, &m, &code, err, sizeof err) != 0) {
        if (m.identity)
            sw_wire_send_error(g->rpc, m.identity, sw_gateway_id(g), "", code, NULL, 0, "%s", err);
        sw_wire_msg_free(&m);
        return;
    }
    const Swisd__V1__Body *b = sw_wire_body(&m, &code, err, sizeof err);
    if (!b) {
        sw_wire_send_error(g->rpc, m.identity, sw_gateway_id(g), "", code, NULL, 0, "%s", err);
        sw_wire_msg_free(&m);
        return;
    }
    switch (b->msg_case) {
    case SWISD__V1__BODY__MSG_GENERATE_REQUEST:
        s_on_generate(g, m.identity, b->generate_request);
        break;
    case SWISD__V1__BODY__MSG_LIST_MODELS_REQUEST:
        sw__gateway_on_list_models(g, m.identity);
        break;
    case SWISD__V1__BODY__MSG_SWARM_STATUS_REQUEST:
        sw__gateway_on_status(g, m.identity);
        break;
    case SWISD__V1__BODY__MSG_TOKEN_REQUEST:
        sw__gateway_on_token(g, &m);
        break;
    case SWISD__V1__BODY__MSG_CANCEL:
        for (sw__gw_session_t *c = g->sessions; c; c = c->next)
            if (zframe_eq(c->client, m.identity) && c->client_req == b->cancel->request_id) {
                g->acts.n = 0;
                sw_session_cancel(c->ss, &g->acts);
                sw__gateway_drive(g, c);
                break;
            }
        break;
    default:
        sw_wire_send_error(g->rpc, m.identity, sw_gateway_id(g), "", SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL,
                           0, "the gateway RPC does not serve %s", sw_wire_kind_name(b));
        break;
    }
    sw_wire_msg_free(&m);
}

/* An Error from node `src` (stamped by the broker: the sender cannot choose
 * it). The session decides whether it counts: only when it answers the step
 * in flight (same request id, which is random) and comes from a hop of the
 * route; the culprit is that hop, never a node the message names. */
static void s_on_error(sw_gateway_t *g, const char *src, const Swisd__V1__Error *e)
{
    if (e->session_id && !strncmp(e->session_id, "audit-", 6))
        return sw__audit_on_error(g, src, e);
    if (e->session_id && !strncmp(e->session_id, "probe-", 6))
        return s_on_probe_reply(g, src, e->session_id, e->code ? (int) e->code : SWISD__V1__ERROR_CODE__ERROR_INTERNAL);
    sw__gw_session_t *c = e->session_id && e->session_id[0] ? s_find(g, e->session_id) : NULL;
    if (!c) {
        const bool refused = e->code == SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST ||
                             e->code == SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME ||
                             e->code == SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED;
        if (refused && !strcmp(src, sw_broker_client_broker_id(g->bc))) /* e.g. a ban notice it would not take */
            sw_log(SW_LOG_WARN, "gateway: our broker refused a message of ours (%s): %.300s",
                   sw_wire_error_name(e->code), e->message ? e->message : "");
        else
            sw_log(SW_LOG_DEBUG, "gateway: ignored an error from %.8s (%s): not from a hop of a step in flight", src,
                   sw_wire_error_name(e->code));
        return;
    }
    g->acts.n = 0;
    sw_session_on_error(c->ss, src, e->request_id, e->code, e->message, sw_now_ns(), &g->acts);
    sw__gateway_drive(g, c);
}

/* Every session checks its route against the view now: a hop that left the
 * directory, or that the operator banned, fails over (sw_session_on_directory). */
static void s_recheck_routes(sw_gateway_t *g)
{
    sw_route_view_t v;
    uint64_t gen = 0;
    for (sw__gw_session_t *c = g->sessions, *next; c; c = next) {
        next = c->next;
        if (!gen || gen != g->view_gen) /* none yet, or another session's re-plan rebuilt it */
            sw__gateway_view(g, &v), gen = g->view_gen;
        g->acts.n = 0;
        sw_session_on_directory(c->ss, &v, sw_now_ns(), &g->acts);
        sw__gateway_drive(g, c);
    }
}

/* Logs each stage of our model that drains in directory `now` and did not in
 * `before` (NULL: none yet): its sessions move at this directory. */
static void s_log_draining(const sw_gateway_t *g, const Swisd__V1__Body *before, const Swisd__V1__Body *now)
{
    const Swisd__V1__DirectoryReply *d = now->directory_reply, *p = before ? before->directory_reply : NULL;
    for (size_t i = 0; i < d->n_stages; i++) {
        const Swisd__V1__StageInfo *s = d->stages[i];
        if (!s->load || !s->load->draining || !s_ours(g, s))
            continue;
        bool was = false;
        for (size_t j = 0; p && j < p->n_stages && !was; j++)
            was = p->stages[j]->load && p->stages[j]->load->draining && !strcmp(p->stages[j]->node_id, s->node_id);
        if (!was)
            sw_log(SW_LOG_INFO, "gateway: stage %.8s drains: no new session through it, and its sessions move "
                   "elsewhere once another host holds its layers", s->node_id);
    }
}

static void s_on_broker(sw_gateway_t *g)
{
    sw_wire_msg_t m;
    if (sw_broker_client_recv(g->bc, &m) != 1)
        return;
    const Swisd__V1__Body *b = m.body;
    switch (b->msg_case) {
    case SWISD__V1__BODY__MSG_DIRECTORY_REPLY: {
        const char *broker = sw_broker_client_broker_id(g->bc);
        if (!broker || strcmp(m.header->src, broker)) { /* only our broker speaks for the directory */
            sw_log(SW_LOG_DEBUG, "gateway: ignored a directory from %.8s, which is not our broker", m.header->src);
            break;
        }
        s_log_draining(g, g->dir, m.body);
        if (g->dir)
            swisd__v1__body__free_unpacked(g->dir, NULL);
        g->dir = m.body;
        m.body = NULL;
        {   /* probe the stages that are new, on probation, or due for a new measurement */
            const Swisd__V1__DirectoryReply *d = g->dir->directory_reply;
            for (size_t i = 0; i < d->n_stages; i++)
                if (s_ours(g, d->stages[i]) && !(g->cfg.bans && sw_bans_banned(g->cfg.bans, d->stages[i]->node_id)))
                    s_probe(g, d->stages[i]);
            char err[256]; /* the contributors' display names for the leaderboard (written once a minute each) */
            for (size_t i = 0; g->cfg.reputation && i < d->n_stages; i++)
                if (s_ours(g, d->stages[i]) &&
                    sw_reputation_seen(g->cfg.reputation, d->stages[i]->node_id, d->stages[i]->display_name,
                                       sw_state_db_unix_s(), err, sizeof err) != 0)
                    s_credit_log(g, "a stage seen", err);
        }
        s_recheck_routes(g);
        break;
    }
    case SWISD__V1__BODY__MSG_FORWARD_REPLY:
        s_on_reply(g, m.header->src, b->forward_reply);
        break;
    case SWISD__V1__BODY__MSG_ERROR:
        s_on_error(g, m.header->src, b->error);
        break;
    default:
        sw_broker_client_send_error(g->bc, m.header->src, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL, 0,
                                    "a gateway does not serve %s", sw_wire_kind_name(b));
        break;
    }
    sw_wire_msg_free(&m);
}

static void s_housekeeping(sw_gateway_t *g)
{
    const uint64_t now = sw_now_ns();
    char err[256];
    if (g->cfg.reputation && sw_reputation_tick(g->cfg.reputation, sw_state_db_unix_s(), err, sizeof err) < 0)
        s_credit_log(g, "credits", err);
    if (now >= g->next_dir_ns && sw_broker_client_registered(g->bc)) {
        Swisd__V1__DirectoryQuery q = SWISD__V1__DIRECTORY_QUERY__INIT;
        q.checksum = g->checksum;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_QUERY;
        b.directory_query = &q;
        sw_broker_client_send(g->bc, "", &b);
        g->next_dir_ns = now + (uint64_t) S_DIRECTORY_MS * 1000000ull;
    }
    sw_route_view_t v = {.n_layer = g->hp->n_layer};
    uint64_t gen = 0;
    for (sw__gw_session_t *c = g->sessions, *next; c; c = next) {
        next = c->next;
        if (!sw_session_in_flight(c->ss) && (!gen || gen != g->view_gen)) /* only a waiting session plans */
            sw__gateway_view(g, &v), gen = g->view_gen;
        g->acts.n = 0;
        sw_session_on_tick(c->ss, &v, now, &g->acts);
        sw__gateway_drive(g, c);
    }
}

int sw_gateway_run(sw_gateway_t *self, volatile int *stop)
{
    zsock_t *bs = sw_broker_client_sock(self->bc);
    zpoller_t *poller = zpoller_new(bs, self->rpc, NULL);
    zsock_t *zap = self->rpc_auth ? sw_broker_auth_sock(self->rpc_auth) : NULL;
    zsock_t *mon = self->rpc_auth ? sw_broker_auth_monitor_sock(self->rpc_auth) : NULL;
    if (zap)
        zpoller_add(poller, zap);
    if (mon)
        zpoller_add(poller, mon);
    while (!(stop && *stop) && !zsys_interrupted) {
        int timeout = sw_broker_client_timeout_ms(self->bc);
        void *which = zpoller_wait(poller, timeout < 100 ? timeout : 100);
        if (which == bs) {
            for (int i = 0; i < 256 && (zsock_events(bs) & ZMQ_POLLIN); i++)
                s_on_broker(self);
        } else if (which == self->rpc) {
            for (int i = 0; i < 256 && (zsock_events(self->rpc) & ZMQ_POLLIN); i++)
                s_on_rpc(self);
        } else if (zap && which == zap) {
            sw_broker_auth_handle(self->rpc_auth);
        } else if (mon && which == mon) {
            sw_broker_auth_handle_monitor(self->rpc_auth);
        } else if (zpoller_terminated(poller)) {
            break;
        }
        sw_broker_client_tick(self->bc);
        s_send_bans(self);
        if (self->cfg.bans && sw_bans_version(self->cfg.bans) != self->bans_seen) { /* the operator changed them */
            self->bans_seen = sw_bans_version(self->cfg.bans);
            if (self->dir && self->sessions) {
                sw_log(SW_LOG_INFO, "gateway: the operator's bans or drains changed; re-checking the routes of "
                       "%d sessions (a banned hop fails over as if it left the swarm)", self->n_sessions);
                s_recheck_routes(self);
            }
        }
        s_housekeeping(self);
        sw__audit_tick(self);
    }
    zpoller_destroy(&poller);
    return 0;
}
