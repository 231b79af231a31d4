/*  sw_gateway.c: the gateway (see sw_gateway.h). */
#include "sw_gateway.h"

#include <math.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "sw_broker_client.h"
#include "sw_codec.h"
#include "sw_chat.h"
#include "sw_common.h"
#include "sw_health.h"
#include "sw_model.h"
#include "sw_planner.h"
#include "sw_sampler.h"
#include "sw_spec.h"
#include "sw_tokenizer.h"
#include "sw_wire.h"

#define S_PREFILL_CHUNK 512     /* prompt tokens per forward request */
#define S_DIRECTORY_MS 1000     /* directory refresh period */
#define S_MAX_STOPS 16
#define S_GAMMA_LIMIT 16       /* most draft tokens per round */
#define S_MAX_RECOVERIES 8     /* failovers one session may go through ... */
#define S_RECOVERY_SPAN_MS 15000 /* ... unless they began less than this ago (a broker failover takes seconds) */
#define S_MAX_RECOVERIES_HARD 64 /* and never more than this */
#define S_PREFILL_FLOOR_MS 3000 /* least deadline of a prefill step */
#define S_MAX_AVOID 8          /* stages one session routes around after its steps timed out there */
#define S_OVERLOAD_WAIT_MS 250 /* first wait after an "overloaded" answer; doubles, at most 2 s */

typedef enum { S_WAIT_ROUTE, S_WAIT_REPLY } s_state_t;

typedef struct s_session {
    struct s_session *next;
    char id[33];                   /* session id on every stage */
    zframe_t *client;              /* the client's routing id */
    uint64_t client_req;           /* the client's request id */
    uint64_t req_id;               /* forward request in flight */
    s_state_t state;
    int32_t *tokens;               /* history: prompt then generated */
    int64_t n_tokens, n_prompt;
    int64_t n_sent;                /* tokens whose activations went through the chain */
    int32_t last_n;                /* rows in the step in flight */
    int32_t max_tokens, n_gen;
    bool ignore_eos;
    sw_sampler_t *sampler;
    char *stops[S_MAX_STOPS];
    int n_stops;
    char *text;                    /* completion text so far */
    size_t text_len, text_cap, text_sent;
    int n_hops;
    char hop_id[SW_PLAN_MAX_HOPS][SW_WIRE_MAX_ID + 1];
    int32_t hop_begin[SW_PLAN_MAX_HOPS], hop_end[SW_PLAN_MAX_HOPS];
    sw_codec_config_t hop_codec[SW_PLAN_MAX_HOPS]; /* codec of the link into each hop */
    uint64_t t_start, t_first, t_prefill, t_step, route_deadline;
    /* speculative decoding (with a draft model) */
    sw_kv_t *draft_kv;             /* the draft's cache; positions < draft_n match tokens */
    int32_t draft_n;
    int gamma;                     /* proposals in the round in flight (0: plain step) */
    int gamma_next;                /* proposals for the next round */
    float *q;                      /* (gamma, n_vocab) draft probabilities of the round */
    double accept_ema, round_ms_ema, draft_ms_ema;
    uint64_t proposed, accepted, rounds;
    /* failover */
    int64_t prefill_to;            /* tokens to (re)send before sampling: the prompt, or the history on replay */
    int recoveries;                /* failovers so far */
    uint64_t first_recovery_ns;    /* when the first one happened */
    double step_ms_ema;            /* decode step time, for the step deadline */
    uint64_t not_before_ns;        /* do not plan before (after an overload answer, or a stage left) */
    int overloads;                 /* "overloaded" answers in a row (the wait doubles) */
    double route_ms;               /* the planner's expected decode step time of the route, ms */
    char avoid[S_MAX_AVOID][SW_WIRE_MAX_ID + 1]; /* hops of this session's timed-out routes (ring) */
    int n_avoid;
    uint64_t seed;                 /* the sampler's seed (the request's, or drawn at random) */
} s_session_t;

#define S_RECENT 240 /* finished generations kept for the swarm status */

struct sw_gateway_t {
    sw_gateway_config_t cfg;
    Swisd__V1__GenerationSample recent[S_RECENT]; /* ring, oldest at recent_next when full */
    size_t recent_next, recent_n;
    uint64_t generations_total, tokens_total;
    int chat_format;           /* sw_chat_format_t of tokenizer.chat_template */
    sw_model_t *model;
    const sw_hparams_t *hp;
    sw_tokenizer_t *tok;
    sw_exec_t *ex;
    char model_id[129], checksum[17];
    Swisd__V1__ModelRef ref;
    sw_broker_client_t *bc;
    zsock_t *rpc;
    char rpc_ep[256];
    sw_codec_config_t codec_cfg;
    sw_codec_t *tx, *rx;
    sw_codec_config_t tx_cfg;      /* config g->tx was made with */
    Swisd__V1__Body *dir;          /* last DirectoryReply */
    uint64_t next_dir_ns;
    s_session_t *sessions;
    int n_sessions;
    float *hidden, *logits;        /* hidden (S_PREFILL_CHUNK rows); logits (S_GAMMA_LIMIT + 1 rows) */
    sw_model_t *draft;             /* speculative decoding; NULL when off */
    float *p, *work;               /* target probabilities (S_GAMMA_LIMIT + 1 rows), scratch row */
    float *dh;                     /* draft hidden, S_PREFILL_CHUNK rows */
    int gamma_max;
    sw_health_t *health;           /* admission, probation, back-off and measured speed of stages */
    uint64_t failovers;            /* sessions moved to another route */
    uint64_t rng;                  /* request ids and probe nonces (unguessable: seeded by getrandom) */
    uint64_t tag_seed;             /* keys the public tags of session ids */
    float *probe_row;              /* (1, n_embd) f32: the BOS embedding that probes carry */
    sw_codec_t *probe_tx;          /* f32 codec for probes */
    uint64_t rpc_drops;            /* replies to RPC clients dropped (their queue was full) */
    uint64_t drop_log_ns;          /* last log line about drops */
};

/* A 64-bit random number (splitmix64 over a getrandom seed). */
static uint64_t s_rand(sw_gateway_t *g)
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
    g->gamma_max = g->cfg.gamma_max > 0 ? (g->cfg.gamma_max < S_GAMMA_LIMIT ? g->cfg.gamma_max : S_GAMMA_LIMIT) : 8;
    g->p = malloc(sizeof(float) * (size_t) (S_GAMMA_LIMIT + 1) * (size_t) g->hp->n_vocab);
    g->work = malloc(sizeof(float) * (size_t) g->hp->n_vocab);
    g->dh = malloc(sizeof(float) * (size_t) S_PREFILL_CHUNK * (size_t) sw_model_hparams(g->draft)->n_embd);
    if (!g->p || !g->work || !g->dh)
        return sw_err(err, errlen, "out of memory");
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
    g->ex = sw_exec_new(cfg->threads > 0 ? cfg->threads : 1);
    g->tx = sw_codec_new(&g->codec_cfg, g->hp->n_embd, SW_WIRE_MAX_TOKENS);
    g->tx_cfg = g->codec_cfg;
    sw_codec_config_t any = {.dtype = SW_DTYPE_F32};
    g->rx = sw_codec_new(&any, g->hp->n_embd, SW_WIRE_MAX_TOKENS);
    g->hidden = malloc(sizeof(float) * (size_t) S_PREFILL_CHUNK * (size_t) g->hp->n_embd);
    g->logits = malloc(sizeof(float) * (size_t) (S_GAMMA_LIMIT + 1) * (size_t) g->hp->n_vocab);
    g->health = sw_health_new();
    g->probe_row = malloc(sizeof(float) * (size_t) g->hp->n_embd);
    g->probe_tx = sw_codec_new(&any, g->hp->n_embd, 1);
    if (getrandom(&g->rng, sizeof g->rng, 0) != (ssize_t) sizeof g->rng)
        g->rng = sw_now_ns() ^ ((uint64_t) getpid() << 32);
    g->tag_seed = s_rand(g);
    if (!g->ex || !g->tx || !g->rx || !g->hidden || !g->logits || !g->health || !g->probe_row || !g->probe_tx) {
        sw_err(err, errlen, "out of memory");
        goto fail;
    }
    {   /* probes carry the embedding of BOS (or token 0): any valid activation row does */
        const int32_t t0 = sw_tokenizer_bos(g->tok) >= 0 ? sw_tokenizer_bos(g->tok) : 0;
        if (sw_model_embed(g->model, &t0, 1, g->probe_row, err, errlen) != 0)
            goto fail;
    }
    if (cfg->draft_path && s_load_draft(g, cfg->draft_path, err, errlen) != 0)
        goto fail;
    g->rpc = zsock_new(ZMQ_ROUTER);
    if (!g->rpc)
        goto fail;
    sw_wire_socket_setup(g->rpc, 0, 10000);
    if (zsock_bind(g->rpc, "%s", cfg->rpc) < 0) {
        sw_err(err, errlen, "cannot bind the RPC endpoint '%s': %s", cfg->rpc, zmq_strerror(zmq_errno()));
        goto fail;
    }
    snprintf(g->rpc_ep, sizeof g->rpc_ep, "%s", zsock_endpoint(g->rpc));
    sw_broker_client_config_t bcfg = {.endpoint = cfg->broker, .role = SWISD__V1__ROLE__ROLE_GATEWAY,
                                      .node_id = cfg->id, .region = cfg->region, .model = &g->ref,
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

static void s_session_free(s_session_t *s)
{
    zframe_destroy(&s->client);
    sw_kv_destroy(&s->draft_kv);
    free(s->q);
    free(s->tokens);
    free(s->text);
    for (int i = 0; i < s->n_stops; i++)
        free(s->stops[i]);
    sw_sampler_destroy(&s->sampler);
    free(s);
}

static void s_release(sw_gateway_t *g, s_session_t *s);

void sw_gateway_destroy(sw_gateway_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_gateway_t *g = *self_p;
    while (g->sessions) {
        s_session_t *s = g->sessions;
        g->sessions = s->next;
        if (g->bc)
            s_release(g, s); /* the stages free its KV caches now, not at their idle expiry */
        s_session_free(s);
    }
    if (g->dir)
        swisd__v1__body__free_unpacked(g->dir, NULL);
    sw_broker_client_destroy(&g->bc);
    zsock_destroy(&g->rpc);
    sw_codec_destroy(&g->tx);
    sw_codec_destroy(&g->rx);
    sw_exec_destroy(&g->ex);
    sw_tokenizer_destroy(&g->tok);
    sw_model_destroy(&g->model);
    sw_model_destroy(&g->draft);
    free(g->p);
    free(g->work);
    free(g->dh);
    free(g->hidden);
    free(g->logits);
    free(g->probe_row);
    sw_codec_destroy(&g->probe_tx);
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
 * measured speed; else every live one (for the coverage shown to users). */
static int s_stages(sw_gateway_t *g, sw_plan_stage_t *out, const Swisd__V1__StageInfo **infos, int max, bool usable)
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

/* ---- talking to clients ------------------------------------------------------------ */

/* Sends a reply to an RPC client without ever blocking: a client whose
 * queue is full (it does not read) loses the reply, which is counted and
 * logged at most once every 10 s. Returns true when it was queued. */
static bool s_rpc_send(sw_gateway_t *g, zframe_t *client, const Swisd__V1__Body *b)
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

static bool s_to_client(sw_gateway_t *g, s_session_t *s, const Swisd__V1__Body *b)
{
    return s_rpc_send(g, s->client, b);
}

static void s_release(sw_gateway_t *g, s_session_t *s)
{
    Swisd__V1__KvRelease rel = SWISD__V1__KV_RELEASE__INIT;
    rel.session_id = s->id;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_KV_RELEASE;
    b.kv_release = &rel;
    for (int i = 0; i < s->n_hops; i++)
        sw_broker_client_send(g->bc, s->hop_id[i], &b);
}

static void s_remove(sw_gateway_t *g, s_session_t *s)
{
    s_release(g, s);
    for (s_session_t **pp = &g->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    g->n_sessions--;
    s_session_free(s);
}

static void s_fail(sw_gateway_t *g, s_session_t *s, int code, const char *fmt, const char *detail)
{
    sw_log(SW_LOG_INFO, "gateway: session %.8s failed: %s %s", s->id, sw_wire_error_name(code), detail);
    sw_wire_send_error(g->rpc, s->client, sw_gateway_id(g), "", code, s->id, s->client_req, fmt, detail);
    s_remove(g, s);
}

/* Streams text[text_sent, upto) with the token that produced it. */
static bool s_emit(sw_gateway_t *g, s_session_t *s, int32_t token, size_t upto)
{
    Swisd__V1__TokenChunk ch = SWISD__V1__TOKEN_CHUNK__INIT;
    ch.index = (uint32_t) (s->n_gen - 1);
    ch.token_id = (uint32_t) token;
    ch.text.data = (uint8_t *) s->text + s->text_sent;
    ch.text.len = upto > s->text_sent ? upto - s->text_sent : 0;
    s->text_sent = upto > s->text_sent ? upto : s->text_sent;
    Swisd__V1__GenerateReply r = SWISD__V1__GENERATE_REPLY__INIT;
    r.request_id = s->client_req;
    r.part_case = SWISD__V1__GENERATE_REPLY__PART_TOKEN;
    r.token = &ch;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_GENERATE_REPLY;
    b.generate_reply = &r;
    return s_to_client(g, s, &b);
}

static void s_finish(sw_gateway_t *g, s_session_t *s, const char *reason)
{
    const uint64_t now = sw_now_ns();
    Swisd__V1__GenerateSummary sum = SWISD__V1__GENERATE_SUMMARY__INIT;
    sum.prompt_tokens = (uint32_t) s->n_prompt;
    sum.completion_tokens = (uint32_t) s->n_gen;
    sum.stop_reason = (char *) reason;
    sum.time_to_first_token_ms = s->t_first ? (float) ((s->t_first - s->t_start) / 1e6) : 0;
    sum.prefill_ms = s->t_prefill ? (float) ((s->t_prefill - s->t_start) / 1e6) : 0;
    if (s->n_gen > 1 && s->t_first)
        sum.decode_tokens_per_s = (float) ((s->n_gen - 1) / ((now - s->t_first) / 1e9));
    sum.total_ms = (float) ((now - s->t_start) / 1e6);
    sum.acceptance_rate = s->proposed ? (float) ((double) s->accepted / (double) s->proposed) : 0;
    sum.seed = s->seed;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        Swisd__V1__GenerationSample *x = &g->recent[g->recent_next];
        swisd__v1__generation_sample__init(x);
        x->end_unix_ms = (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
        x->prompt_tokens = sum.prompt_tokens;
        x->completion_tokens = sum.completion_tokens;
        x->decode_tokens_per_s = sum.decode_tokens_per_s;
        x->time_to_first_token_ms = sum.time_to_first_token_ms;
        x->acceptance_rate = sum.acceptance_rate;
        g->recent_next = (g->recent_next + 1) % S_RECENT;
        if (g->recent_n < S_RECENT)
            g->recent_n++;
        g->generations_total++;
        g->tokens_total += sum.completion_tokens;
    }
    char *route[SW_PLAN_MAX_HOPS];
    for (int i = 0; i < s->n_hops; i++)
        route[i] = s->hop_id[i];
    sum.route = route;
    sum.n_route = (size_t) s->n_hops;
    Swisd__V1__GenerateReply r = SWISD__V1__GENERATE_REPLY__INIT;
    r.request_id = s->client_req;
    r.part_case = SWISD__V1__GENERATE_REPLY__PART_SUMMARY;
    r.summary = &sum;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_GENERATE_REPLY;
    b.generate_reply = &r;
    s_to_client(g, s, &b);
    sw_log(SW_LOG_INFO, "gateway: session %.8s done (%s): %d prompt + %d generated tokens, %.1f tokens/s",
           s->id, reason, (int) s->n_prompt, (int) s->n_gen, sum.decode_tokens_per_s);
    s_remove(g, s);
}

/* ---- the chain -------------------------------------------------------------------- */

static void s_overloaded(sw_gateway_t *g, s_session_t *s, const char *why);

/* Sends a ForwardRequest to route[0] under `session_id` with request id
 * `request_id`: tokens [pos, pos + n_tok) as `act`, the reply encoded as
 * `reply_codec`, back to this gateway. Returns sw_broker_client_send's
 * result (-1: the queue to the broker is full). */
static int s_send_forward(sw_gateway_t *g, char *session_id, uint64_t request_id, Swisd__V1__Hop **route,
                          size_t n_route, uint32_t pos, uint32_t n_tok, Swisd__V1__Activation *act,
                          Swisd__V1__CodecConfig *reply_codec)
{
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
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_FORWARD_REQUEST;
    b.forward_request = &fr;
    return sw_broker_client_send(g->bc, route[0]->node_id, &b);
}

/* Sends tokens [from, from + n) of the history through the chain. Returns 0,
 * -1 when the step cannot be made (embedding, codec), or -2 when the queue
 * to the broker is full. */
static int s_send_step(sw_gateway_t *g, s_session_t *s, int64_t from, int32_t n)
{
    char err[256];
    if (sw_model_embed(g->model, s->tokens + from, n, g->hidden, err, sizeof err) != 0)
        return -1;
    sw_codec_header_t h;
    const void *payload;
    size_t len;
    if (s->hop_codec[0].dtype != g->tx_cfg.dtype || s->hop_codec[0].zstd_level != g->tx_cfg.zstd_level) {
        sw_codec_t *tx = sw_codec_new(&s->hop_codec[0], g->hp->n_embd, SW_WIRE_MAX_TOKENS);
        if (!tx)
            return -1;
        sw_codec_destroy(&g->tx);
        g->tx = tx;
        g->tx_cfg = s->hop_codec[0];
    }
    if (sw_codec_encode(g->tx, g->hidden, n, &h, &payload, &len, err, sizeof err) != 0)
        return -1;
    Swisd__V1__Activation act;
    sw_wire_activation_to_msg(&h, payload, len, &act);
    Swisd__V1__CodecConfig codec = SWISD__V1__CODEC_CONFIG__INIT, hop_codec[SW_PLAN_MAX_HOPS];
    codec.dtype = g->codec_cfg.dtype; /* replies come back on our own link */
    codec.zstd_level = g->codec_cfg.zstd_level;
    Swisd__V1__LayerRange lr[SW_PLAN_MAX_HOPS];
    Swisd__V1__Hop hops[SW_PLAN_MAX_HOPS], *route[SW_PLAN_MAX_HOPS];
    for (int i = 0; i < s->n_hops; i++) {
        swisd__v1__layer_range__init(&lr[i]);
        lr[i].begin = (uint32_t) s->hop_begin[i];
        lr[i].end = (uint32_t) s->hop_end[i];
        swisd__v1__hop__init(&hops[i]);
        hops[i].node_id = s->hop_id[i];
        hops[i].layers = &lr[i];
        swisd__v1__codec_config__init(&hop_codec[i]);
        hop_codec[i].dtype = s->hop_codec[i].dtype;
        hop_codec[i].zstd_level = s->hop_codec[i].zstd_level;
        hops[i].codec = &hop_codec[i];
        route[i] = &hops[i];
    }
    s->req_id = s_rand(g) | 1; /* unguessable: an error must echo it to count */
    if (s_send_forward(g, s->id, s->req_id, route, (size_t) s->n_hops, (uint32_t) from, (uint32_t) n, &act,
                       &codec) != 0)
        return -2;
    s->state = S_WAIT_REPLY;
    s->t_step = sw_now_ns();
    s->n_sent = from + n;
    s->last_n = n;
    return 0;
}

/* s_send_step, and what a failure means: a full queue is overload (wait and
 * retry), anything else ends the session. */
static void s_step(sw_gateway_t *g, s_session_t *s, int64_t from, int32_t n)
{
    const int rc = s_send_step(g, s, from, n);
    if (rc == -2)
        s_overloaded(g, s, "the queue to the broker is full");
    else if (rc != 0)
        s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "cannot encode the step");
}

/* Plans the route and sends the first prompt chunk; keeps waiting while
 * the swarm does not cover every layer, until the route deadline. */
static void s_try_start(sw_gateway_t *g, s_session_t *s)
{
    const uint64_t now = sw_now_ns();
    if (now < s->not_before_ns) {
        if (now >= s->route_deadline && s->overloads > 0)
            s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "%s",
                   "the stages are at capacity; retry shortly");
        return;
    }
    static sw_plan_stage_t st[SW_WIRE_MAX_STAGES]; /* one thread: static keeps 200 KB off the stack */
    static const Swisd__V1__StageInfo *infos[SW_WIRE_MAX_STAGES];
    int n = s_stages(g, st, infos, SW_WIRE_MAX_STAGES, true);
    sw_plan_t plan;
    /* first around the stages of this session's timed-out routes, when the swarm allows */
    int n_clear = 0;
    for (int i = 0; i < n; i++) {
        bool avoided = false;
        for (int k = 0; k < s->n_avoid && k < S_MAX_AVOID && !avoided; k++)
            avoided = !strcmp(s->avoid[k], st[i].node_id);
        if (!avoided) {
            sw_plan_stage_t t = st[n_clear];
            const Swisd__V1__StageInfo *ti = infos[n_clear];
            st[n_clear] = st[i], infos[n_clear] = infos[i];
            st[i] = t, infos[i] = ti;
            n_clear++;
        }
    }
    if (n_clear < n && sw_plan(st, n_clear, g->hp->n_layer, &plan) == 0)
        ;
    else if (sw_plan(st, n, g->hp->n_layer, &plan) != 0) {
        if (now >= s->route_deadline) {
            char gaps[256], live_gaps[256];
            if (sw_plan_gaps(st, n, g->hp->n_layer, gaps, sizeof gaps) == 0)
                snprintf(gaps, sizeof gaps, "none (the chain would be too long)");
            static sw_plan_stage_t all[SW_WIRE_MAX_STAGES];
            const int n_all = s_stages(g, all, NULL, SW_WIRE_MAX_STAGES, false);
            if (s->overloads > 0)
                s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "%s",
                       "the stages are at capacity; retry shortly");
            else if (sw_plan_gaps(all, n_all, g->hp->n_layer, live_gaps, sizeof live_gaps) == 0 && n_all > n)
                s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE,
                       "the live stages for layers %s are backed off after failures or have not answered a probe "
                       "yet; retry shortly", gaps);
            else
                s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_NO_ROUTE, "no live stages for layers %s", gaps);
        }
        return;
    }
    s->n_hops = plan.n_hops;
    s->route_ms = plan.cost_ms;
    for (int i = 0; i < plan.n_hops; i++) {
        snprintf(s->hop_id[i], sizeof s->hop_id[i], "%s", st[plan.hops[i].stage].node_id);
        s->hop_begin[i] = plan.hops[i].begin;
        s->hop_end[i] = plan.hops[i].end;
        const Swisd__V1__Capabilities *caps = infos[plan.hops[i].stage]->caps;
        s->hop_codec[i] = g->codec_cfg; /* the stage's own choice for its link wins */
        if (caps && caps->inbound_codec) {
            sw_codec_config_t want = {.dtype = (sw_dtype_t) caps->inbound_codec->dtype,
                                      .zstd_level = caps->inbound_codec->zstd_level};
            sw_codec_t *probe = sw_codec_new(&want, g->hp->n_embd, 1);
            if (probe)
                s->hop_codec[i] = want;
            sw_codec_destroy(&probe);
        }
    }
    s->gamma = 0;
    int32_t chunk = s->prefill_to < S_PREFILL_CHUNK ? (int32_t) s->prefill_to : S_PREFILL_CHUNK;
    s_step(g, s, 0, chunk);
}

/* Longest k < len(stop) such that text ends with stop[0..k). */
static size_t s_partial_stop(const char *text, size_t len, const char *stop)
{
    size_t sl = strlen(stop), best = 0;
    for (size_t k = 1; k < sl && k <= len; k++)
        if (!memcmp(text + len - k, stop, k))
            best = k;
    return best;
}

/* A token the target chose: stream it. Returns 0 to go on, 1 when the
 * session ended (finished or failed; s is freed). */
static int s_accept_token(sw_gateway_t *g, s_session_t *s, int32_t token)
{
    if (!s->ignore_eos && sw_tokenizer_is_eog(g->tok, token)) {
        s_finish(g, s, "eos");
        return 1;
    }
    const int32_t prev = s->tokens[s->n_tokens - 1];
    s->tokens[s->n_tokens++] = token;
    s->n_gen++;
    char piece[256];
    int pl = sw_tokenizer_decode_token(g->tok, prev, token, piece, sizeof piece);
    pl = pl < 0 ? 0 : (pl > (int) sizeof piece ? (int) sizeof piece : pl);
    if (s->text_len + (size_t) pl + 1 > s->text_cap) {
        size_t cap = (s->text_cap + (size_t) pl + 1) * 2;
        char *t = realloc(s->text, cap);
        if (!t) {
            s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "out of memory");
            return 1;
        }
        s->text = t;
        s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, piece, (size_t) pl);
    s->text_len += (size_t) pl;
    s->text[s->text_len] = 0;
    size_t safe = s->text_len;
    for (int i = 0; i < s->n_stops; i++) {
        const char *hit = strstr(s->text + (s->text_sent > 256 ? s->text_sent - 256 : 0), s->stops[i]);
        if (hit) {
            s_emit(g, s, token, (size_t) (hit - s->text));
            s_finish(g, s, "stop");
            return 1;
        }
        size_t hold = s_partial_stop(s->text, s->text_len, s->stops[i]);
        if (s->text_len - hold < safe)
            safe = s->text_len - hold;
    }
    const bool last = s->n_gen >= s->max_tokens;
    if (!s_emit(g, s, token, last ? s->text_len : safe)) {
        sw_log(SW_LOG_INFO, "gateway: client of session %.8s is gone; cancelling", s->id);
        s_remove(g, s);
        return 1;
    }
    if (last) {
        s_finish(g, s, "length");
        return 1;
    }
    return 0;
}

/* The sampling distribution for the position after history[0..n). */
static int s_probs(s_session_t *s, const float *logits, int64_t n, float *probs)
{
    return sw_sampler_probs(s->sampler, logits, s->tokens, n, probs);
}

/* Runs the draft over tokens [draft_n, upto) and leaves the logits of the
 * last one in out. Returns 0 or -1. */
static int s_draft_feed(sw_gateway_t *g, s_session_t *s, int64_t upto, float *out)
{
    char err[256];
    const sw_hparams_t *dh = sw_model_hparams(g->draft);
    if (s->draft_n >= upto) { /* e.g. after a failover mid-round: recompute the last position */
        s->draft_n = (int32_t) upto - 1;
        sw_kv_truncate(s->draft_kv, s->draft_n);
    }
    while (s->draft_n < upto) {
        int32_t n = (int32_t) (upto - s->draft_n < S_PREFILL_CHUNK ? upto - s->draft_n : S_PREFILL_CHUNK);
        sw_seq_t sq = {.kv = s->draft_kv, .pos = s->draft_n, .n_tok = n, .hidden = g->dh};
        if (sw_model_embed(g->draft, s->tokens + s->draft_n, n, g->dh, err, sizeof err) ||
            sw_model_forward(g->ex, g->draft, 0, dh->n_layer, &sq, 1, err, sizeof err))
            return -1;
        s->draft_n += n;
        if (s->draft_n == upto &&
            sw_model_head(g->ex, g->draft, g->dh + (size_t) (n - 1) * dh->n_embd, 1, out, err, sizeof err))
            return -1;
    }
    return 0;
}

/* Sends the next decode step: plain (one token), or a speculative round of
 * gamma draft proposals verified in one pass. */
static void s_next_step(sw_gateway_t *g, s_session_t *s)
{
    s->gamma = 0;
    const int64_t room = (int64_t) g->hp->n_ctx_train - s->n_tokens;
    int gamma = s->gamma_next;
    if (gamma > s->max_tokens - s->n_gen - 1)
        gamma = s->max_tokens - s->n_gen - 1;
    if (gamma > room - 1)
        gamma = (int) (room - 1);
    if (g->draft && gamma > 0) {
        if (!s->draft_kv) {
            s->draft_kv = sw_kv_new(g->draft, 0, sw_model_hparams(g->draft)->n_layer, g->hp->n_ctx_train);
            s->q = malloc(sizeof(float) * (size_t) S_GAMMA_LIMIT * (size_t) g->hp->n_vocab);
        }
        const uint64_t t0 = sw_now_ns();
        float *dl = g->logits; /* the draft's logits, one row */
        int ok = s->draft_kv && s->q && s_draft_feed(g, s, s->n_tokens, dl) == 0;
        for (int i = 0; ok && i < gamma; i++) {
            float *qi = s->q + (size_t) i * g->hp->n_vocab;
            int32_t d = -1;
            ok = s_probs(s, dl, s->n_tokens + i, qi) == 0 && (d = sw_sampler_draw(s->sampler, qi, g->hp->n_vocab)) >= 0;
            if (ok) {
                s->tokens[s->n_tokens + i] = d; /* proposals sit after the history */
                if (i + 1 < gamma)
                    ok = s_draft_feed(g, s, s->n_tokens + i + 1, dl) == 0;
            }
        }
        if (ok) {
            const double ms = (sw_now_ns() - t0) / 1e6 / gamma;
            s->draft_ms_ema = s->rounds ? 0.8 * s->draft_ms_ema + 0.2 * ms : ms;
            s->gamma = gamma;
            s_step(g, s, s->n_tokens - 1, gamma + 1);
            return;
        }
        sw_log(SW_LOG_WARN, "gateway: session %.8s: the draft failed; continuing without it", s->id);
        s->gamma_next = 0;
    }
    s_step(g, s, s->n_tokens - 1, 1);
}

/* Verifies a speculative round whose target hidden states (gamma + 1 rows)
 * are in g->hidden, streams the tokens it yields and adapts gamma. */
static void s_on_round(sw_gateway_t *g, s_session_t *s)
{
    char err[256];
    const int gamma = s->gamma;
    const int32_t V = g->hp->n_vocab;
    const int64_t n0 = s->n_tokens;
    if (sw_model_head(g->ex, g->model, g->hidden, gamma + 1, g->logits, err, sizeof err) != 0)
        return s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "head: %s", err);
    for (int i = 0; i <= gamma; i++)
        if (s_probs(s, g->logits + (size_t) i * V, n0 + i, g->p + (size_t) i * V) != 0)
            return s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "the logits hold no finite value");
    int32_t out[S_GAMMA_LIMIT + 1];
    int k = sw_spec_verify(g->p, s->q, s->tokens + n0, gamma, V, g->work, s->sampler, out);
    if (k < 1)
        return s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "speculative verification failed");
    const int accepted = k - 1, evaluated = accepted + (k <= gamma ? 1 : 0);
    s->proposed += (uint64_t) evaluated;
    s->accepted += (uint64_t) accepted;
    s->rounds++;
    const double round_ms = (sw_now_ns() - s->t_step) / 1e6;
    s->round_ms_ema = s->rounds > 1 ? 0.8 * s->round_ms_ema + 0.2 * round_ms : round_ms;
    s->accept_ema = 0.8 * s->accept_ema + 0.2 * (double) accepted / (double) evaluated;
    s->gamma_next = sw_spec_choose_gamma(s->accept_ema, s->round_ms_ema, s->draft_ms_ema, g->gamma_max);
    /* the draft holds t_{n-1} and proposals 1..gamma-1; keep what was accepted */
    const int32_t keep = (int32_t) n0 + (accepted < gamma - 1 ? accepted : gamma - 1);
    if (s->draft_n > keep) {
        sw_kv_truncate(s->draft_kv, keep);
        s->draft_n = keep;
    }
    for (int i = 0; i < k; i++)
        if (s_accept_token(g, s, out[i]) != 0)
            return;
    s_next_step(g, s);
}
/* ---- stage health: probes ------------------------------------------------------- */

/* The directory entry of stage `id` (of our model), or NULL. */
static const Swisd__V1__StageInfo *s_stage_info(const sw_gateway_t *g, const char *id)
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
    if (!sw_health_probe_due(g->health, st->node_id, sw_now_ns(), s_rand(g), &pr))
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
    /* a lost probe is sent again after the retry interval */
    s_send_forward(g, pr.probe_id, s_rand(g) | 1, route, 1, 0, 1, &act, &f32);
}

/* Starts every session that waits for a route (a stage may have become usable). */
static void s_kick(sw_gateway_t *g)
{
    for (s_session_t *s = g->sessions, *next; s; s = next) {
        next = s->next;
        if (s->state == S_WAIT_ROUTE)
            s_try_start(g, s);
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
    const Swisd__V1__StageInfo *info = s_stage_info(g, stage);
    const int n_layers = info && code == 0 ? (int) (info->layers->end - info->layers->begin) : 0;
    const char *why_before = sw_health_why_not(g->health, stage, now);
    char id[SW_WIRE_MAX_ID + 1];
    snprintf(id, sizeof id, "%s", stage);
    sw_health_probe_answered(g->health, probe_id, n_layers, info ? info->rtt_ms : 0, now);
    if (code == 0) {
        Swisd__V1__KvRelease rel = SWISD__V1__KV_RELEASE__INIT;
        rel.session_id = (char *) probe_id;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_KV_RELEASE;
        b.kv_release = &rel;
        sw_broker_client_send(g->bc, id, &b);
    }
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

static s_session_t *s_find(sw_gateway_t *g, const char *id)
{
    for (s_session_t *s = g->sessions; s; s = s->next)
        if (!strcmp(s->id, id))
            return s;
    return NULL;
}

static void s_on_reply(sw_gateway_t *g, const char *src, const Swisd__V1__ForwardReply *rep)
{
    if (!strncmp(rep->session_id, "probe-", 6))
        return s_on_probe_reply(g, src, rep->session_id, SWISD__V1__ERROR_CODE__ERROR_UNSPECIFIED);
    s_session_t *s = s_find(g, rep->session_id);
    /* the reply must answer the step in flight and come from the route's last hop (the
     * broker stamps src: no other node can pass for it) */
    if (!s || s->state != S_WAIT_REPLY || rep->request_id != s->req_id || s->n_hops < 1 ||
        strcmp(src, s->hop_id[s->n_hops - 1]))
        return; /* stale, duplicate, cancelled or forged: ignore */
    const Swisd__V1__Activation *a = rep->activation;
    sw_codec_header_t h;
    sw_wire_activation_from_msg(a, &h);
    char err[256];
    err[0] = 0;
    if (h.n_tok != (uint32_t) s->last_n ||
        sw_codec_decode(g->rx, &h, a->payload.data, a->payload.len, g->hidden, err, sizeof err) != 0)
        return s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME, "bad activation from the last stage: %s", err);
    const uint64_t t_reply = sw_now_ns();
    for (int i = 0; i < s->n_hops; i++)
        sw_health_alive(g->health, s->hop_id[i], t_reply);
    s->overloads = 0;
    if (s->n_sent < s->prefill_to) { /* more prompt (or history, on replay) to send */
        int64_t left = s->prefill_to - s->n_sent;
        s_step(g, s, s->n_sent, (int32_t) (left < S_PREFILL_CHUNK ? left : S_PREFILL_CHUNK));
        return;
    }
    if (s->t_prefill && s->last_n == 1) {
        const double ms = (sw_now_ns() - s->t_step) / 1e6;
        s->step_ms_ema = s->step_ms_ema > 0 ? 0.8 * s->step_ms_ema + 0.2 * ms : ms;
    }
    if (s->gamma > 0)
        return s_on_round(g, s);
    if (sw_model_head(g->ex, g->model, g->hidden + (size_t) (h.n_tok - 1) * g->hp->n_embd, 1, g->logits, err,
                      sizeof err) != 0)
        return s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "head: %s", err);
    const uint64_t now = sw_now_ns();
    if (!s->t_prefill)
        s->t_prefill = now;
    int32_t token = sw_sampler_sample(s->sampler, g->logits, s->tokens, s->n_tokens);
    if (token < 0)
        return s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "the logits hold no finite value");
    if (!s->t_first)
        s->t_first = now;
    if (s_accept_token(g, s, token) == 0)
        s_next_step(g, s);
}

/* ---- requests ----------------------------------------------------------------------- */

/* NULL when the request's sampling parameters and stop strings are in
 * range, else why not (a static string: the client's error). */
static const char *s_check_sampling(const Swisd__V1__GenerateRequest *req, int32_t n_vocab)
{
    const Swisd__V1__SamplingParams *sp = req->sampling;
    if (req->n_stop > S_MAX_STOPS)
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
    s_session_t *s = calloc(1, sizeof *s);
    if (!s)
        return;
    sw_wire_new_id(s->id, sizeof s->id);
    s->client = zframe_dup(client);
    s->client_req = req->request_id;
    s->max_tokens = (int32_t) req->max_tokens;
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
            p.seed = s_rand(g);
        p.seed &= (1ull << 53) - 1;
    }
    s->seed = p.seed;
    s->ignore_eos = sp && sp->ignore_eos;
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
    int64_t n = pv ? sw_tokenizer_encode_parts(g->tok, pv, n_parts, bos, NULL, 0) : -1;
    s->sampler = sw_sampler_new(&p, g->hp->n_vocab);
    s->tokens = n >= 0 ? malloc(sizeof(int32_t) * (size_t) (n + s->max_tokens + S_GAMMA_LIMIT + 2)) : NULL;
    if (!s->sampler || !s->tokens || n < 0) {
        snprintf(err, sizeof err, "cannot accept the request (bad sampling parameters or out of memory)");
    } else if (n == 0) {
        snprintf(err, sizeof err, "the prompt is empty and the model adds no BOS token");
    } else if (n + s->max_tokens > g->hp->n_ctx_train) {
        snprintf(err, sizeof err, "prompt (%lld tokens) + max_tokens (%d) exceeds the model's context of %d",
                 (long long) n, (int) s->max_tokens, (int) g->hp->n_ctx_train);
    } else {
        err[0] = 0;
    }
    for (size_t i = 0; i < req->n_stop && i < S_MAX_STOPS; i++)
        if (req->stop[i][0])
            s->stops[s->n_stops++] = strdup(req->stop[i]);
    if (!err[0])
        sw_tokenizer_encode_parts(g->tok, pv, n_parts, bos, s->tokens, n);
    if (pv != parts)
        free(pv);
    if (err[0]) {
        sw_wire_send_error(g->rpc, client, sw_gateway_id(g), "", SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL,
                           req->request_id, "%s", err);
        s_session_free(s);
        return;
    }
    s->n_tokens = s->n_prompt = s->prefill_to = n;
    s->t_start = sw_now_ns();
    s->route_deadline = s->t_start + (uint64_t) g->cfg.route_wait_ms * 1000000ull;
    s->state = S_WAIT_ROUTE;
    s->gamma_next = g->draft ? (g->gamma_max < 4 ? g->gamma_max : 4) : 0;
    s->accept_ema = 0.6; /* prior until rounds are measured */
    s->next = g->sessions;
    g->sessions = s;
    g->n_sessions++;
    s_try_start(g, s);
}

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

static void s_on_list_models(sw_gateway_t *g, zframe_t *client)
{
    static sw_plan_stage_t st[SW_WIRE_MAX_STAGES];
    int n = s_stages(g, st, NULL, SW_WIRE_MAX_STAGES, true);
    sw_plan_t plan;
    Swisd__V1__ModelInfo info = SWISD__V1__MODEL_INFO__INIT;
    info.model = &g->ref;
    info.servable = sw_plan(st, n, g->hp->n_layer, &plan) == 0;
    Swisd__V1__LayerRange gaps[64], *gp[64];
    n = s_stages(g, st, NULL, SW_WIRE_MAX_STAGES, false); /* gaps: layers no live stage holds */
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
    s_rpc_send(g, client, &b);
}

static void s_on_status(sw_gateway_t *g, zframe_t *client)
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
    for (s_session_t *s = g->sessions; s && n < 256; s = s->next, n++) {
        swisd__v1__session_status__init(&ss[n]);
        /* session ids are capabilities (they name KV caches on stages): never published;
         * the status shows a keyed hash instead, stable for the session's life */
        snprintf(tags[n], sizeof tags[n], "%016llx",
                 (unsigned long long) XXH3_64bits_withSeed(s->id, strlen(s->id), g->tag_seed));
        ss[n].session_id = tags[n];
        ss[n].request_id = s->client_req;
        ss[n].tokens = (uint32_t) s->n_gen;
        if (s->t_first && s->n_gen > 1)
            ss[n].tokens_per_s = (float) ((s->n_gen - 1) / ((now - s->t_first) / 1e9));
        ss[n].acceptance_rate = s->proposed ? (float) ((double) s->accepted / (double) s->proposed) : 0;
        ss[n].tokens_per_round_trip = s->rounds ? (float) ((double) (s->accepted + s->rounds) / (double) s->rounds) : 1;
        ss[n].gamma = (uint32_t) s->gamma_next;
        if (s->rounds && s->round_ms_ema > 0)
            ss[n].speedup = (float) (ss[n].tokens_per_round_trip * s->round_ms_ema /
                                     (s->round_ms_ema + s->gamma_next * s->draft_ms_ema));
        sp[n] = &ss[n];
    }
    r.sessions = sp;
    r.n_sessions = n;
    static sw_plan_stage_t st[SW_WIRE_MAX_STAGES];
    const int n_st = s_stages(g, st, NULL, SW_WIRE_MAX_STAGES, false);
    Swisd__V1__LayerRange gaps[64], *gp[64];
    r.n_gaps = s_gaps(g, st, n_st, gaps, gp, 64);
    r.gaps = gp;
    Swisd__V1__GenerationSample *recent[S_RECENT];
    for (size_t i = 0; i < g->recent_n; i++)
        recent[i] = &g->recent[(g->recent_next + S_RECENT - g->recent_n + i) % S_RECENT];
    r.recent = recent;
    r.n_recent = g->recent_n;
    r.generations_total = g->generations_total;
    r.tokens_generated_total = g->tokens_total;
    r.gateway_id = (char *) sw_gateway_id(g);
    r.region = g->cfg.region ? (char *) g->cfg.region : "default";
    r.model = &g->ref;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    b.msg_case = SWISD__V1__BODY__MSG_SWARM_STATUS_REPLY;
    b.swarm_status_reply = &r;
    s_rpc_send(g, client, &b);
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
        s_on_list_models(g, m.identity);
        break;
    case SWISD__V1__BODY__MSG_SWARM_STATUS_REQUEST:
        s_on_status(g, m.identity);
        break;
    case SWISD__V1__BODY__MSG_CANCEL:
        for (s_session_t *s = g->sessions; s; s = s->next)
            if (zframe_eq(s->client, m.identity) && s->client_req == b->cancel->request_id) {
                s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_CANCELLED, "%s", "cancelled by the client");
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

/* Puts the session back to waiting for a route: releases its caches on the
 * stages and arranges for the whole history to be replayed as a prefill. */
static void s_reset_route(sw_gateway_t *g, s_session_t *s)
{
    s_release(g, s);
    s->n_hops = 0;
    s->req_id = 0;                 /* replies still in flight are now stale */
    s->gamma = 0;
    s->prefill_to = s->n_tokens;   /* the accepted history; its last row gives the next token */
    s->n_sent = 0;
    s->state = S_WAIT_ROUTE;
}

/* A step failed (a stage error, a deadline, or a stage of the route left the
 * directory): `culprit` (a hop that raised the failure itself, or NULL) gets
 * a strike; with `suspect_route` (a deadline passed: which hop swallowed the
 * step is unknown) every hop goes on probation and is probed at once, so
 * the honest ones are usable again one round trip later. Then the session
 * starts over on a new route by replaying the whole history as a prefill.
 * The client only sees a pause; greedy output is unchanged because the
 * replayed positions give the same states. */
static void s_recover(sw_gateway_t *g, s_session_t *s, const char *culprit, bool suspect_route, const char *why)
{
    const uint64_t t_now = sw_now_ns();
    if (s->recoveries == 0)
        s->first_recovery_ns = t_now;
    if ((s->recoveries >= S_MAX_RECOVERIES &&
         t_now - s->first_recovery_ns >= (uint64_t) S_RECOVERY_SPAN_MS * 1000000ull) ||
        s->recoveries >= S_MAX_RECOVERIES_HARD) {
        char text[SW_WIRE_MAX_TEXT];
        snprintf(text, sizeof text, "gave up after %d failovers; last: %s", s->recoveries, why);
        return s_fail(g, s, SWISD__V1__ERROR_CODE__ERROR_UNREACHABLE, "%s", text);
    }
    s->recoveries++;
    g->failovers++;
    const uint64_t now = sw_now_ns();
    if (culprit && culprit[0]) {
        const int sec = sw_health_strike(g->health, culprit, now);
        sw_log(SW_LOG_INFO, "gateway: stage %.8s backed off for %d s (strike %d)", culprit, sec,
               sw_health_strikes(g->health, culprit));
    }
    sw_log(SW_LOG_INFO, "gateway: session %.8s: %s; replaying %lld tokens on a new route (failover %d)", s->id, why,
           (long long) s->n_tokens, s->recoveries);
    if (suspect_route) {
        for (int i = 0; i < s->n_hops; i++) {
            if (sw_health_suspect(g->health, s->hop_id[i], now))
                sw_log(SW_LOG_INFO, "gateway: stage %.8s was on %s timed-out routes without completing a step; "
                       "backing it off (strike %d)", s->hop_id[i], "two", sw_health_strikes(g->health, s->hop_id[i]));
            snprintf(s->avoid[s->n_avoid++ % S_MAX_AVOID], SW_WIRE_MAX_ID + 1, "%s", s->hop_id[i]);
        }
        for (int i = 0; i < s->n_hops; i++) {
            const Swisd__V1__StageInfo *info = s_stage_info(g, s->hop_id[i]);
            if (info)
                s_probe(g, info);
        }
    }
    s_reset_route(g, s);
    s->route_deadline = now + (uint64_t) g->cfg.route_wait_ms * 1000000ull;
    s->not_before_ns = 0;
    s_try_start(g, s);
}

/* A stage answered "overloaded" (no KV cache room, queue full) or the send
 * to the broker found its queue full. Overload is not failure: nobody is
 * backed off and no failover is counted; the session waits (250 ms, doubling
 * up to 2 s, with jitter) and plans again, and fails with OVERLOADED (HTTP
 * 503 with Retry-After) once the route wait has passed since the first such
 * answer. */
static void s_overloaded(sw_gateway_t *g, s_session_t *s, const char *why)
{
    const uint64_t now = sw_now_ns();
    if (s->overloads++ == 0)
        s->route_deadline = now + (uint64_t) g->cfg.route_wait_ms * 1000000ull;
    uint64_t wait_ms = (uint64_t) S_OVERLOAD_WAIT_MS << (s->overloads < 4 ? s->overloads - 1 : 3);
    if (wait_ms > 2000)
        wait_ms = 2000;
    wait_ms += s_rand(g) % (wait_ms / 2 + 1);
    sw_log(SW_LOG_DEBUG, "gateway: session %.8s: %s; waiting %llu ms", s->id, why, (unsigned long long) wait_ms);
    s_reset_route(g, s);
    s->not_before_ns = now + wait_ms * 1000000ull;
}

/* The step deadline, at most --timeout-ms: for decode steps (and replays) a
 * multiple of the measured step time plus 1 s, for the first prefill a
 * multiple of the planner's expected step time (from measured speeds) plus
 * 3 s; so a frozen or silent stage is noticed in seconds, not after the
 * whole time-out. */
static uint64_t s_deadline_ns(const sw_gateway_t *g, const s_session_t *s)
{
    double ms = g->cfg.timeout_ms, adaptive;
    if (s->t_prefill && s->step_ms_ema > 0) /* decode steps, and replays after the first prefill */
        adaptive = 10.0 * s->step_ms_ema * (1.0 + s->last_n / 8.0) + 1000.0;
    else /* the first prefill: from the route's expected step time (measured speeds, links) */
        adaptive = 10.0 * s->route_ms * (1.0 + s->last_n / 8.0) + S_PREFILL_FLOOR_MS;
    if (adaptive < ms)
        ms = adaptive;
    return (uint64_t) (ms * 1e6);
}

/* An Error from node `src` (stamped by the broker: the sender cannot choose
 * it). It counts only when it answers the step in flight of a session
 * (same request id, which is random) and comes from a hop of that session's
 * route; the culprit is that hop, never a node the message names. Overload
 * and a missing KV cache are not failures. */
static void s_on_error(sw_gateway_t *g, const char *src, const Swisd__V1__Error *e)
{
    if (e->session_id && !strncmp(e->session_id, "probe-", 6))
        return s_on_probe_reply(g, src, e->session_id, e->code ? (int) e->code : SWISD__V1__ERROR_CODE__ERROR_INTERNAL);
    s_session_t *s = e->session_id && e->session_id[0] ? s_find(g, e->session_id) : NULL;
    int hop = -1;
    for (int i = 0; s && i < s->n_hops && hop < 0; i++)
        if (!strcmp(s->hop_id[i], src))
            hop = i;
    if (!s || s->state != S_WAIT_REPLY || e->request_id != s->req_id || hop < 0) {
        sw_log(SW_LOG_DEBUG, "gateway: ignored an error from %.8s (%s): not from a hop of a step in flight", src,
               sw_wire_error_name(e->code));
        return;
    }
    char text[SW_WIRE_MAX_TEXT + 80];
    snprintf(text, sizeof text, "stage %.8s: %s: %s", src, sw_wire_error_name(e->code), e->message);
    switch (e->code) {
    case SWISD__V1__ERROR_CODE__ERROR_OVERLOADED:
        return s_overloaded(g, s, text);
    case SWISD__V1__ERROR_CODE__ERROR_KV_MISSING: /* evicted or restarted: replay, blame nobody */
        return s_recover(g, s, NULL, false, text);
    default: /* its own failure (or it disagrees with what it announced): strike it and fail over */
        return s_recover(g, s, src, false, text);
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
        if (g->dir)
            swisd__v1__body__free_unpacked(g->dir, NULL);
        g->dir = m.body;
        m.body = NULL;
        {   /* probe the stages that are new, on probation, or due for a new measurement */
            const Swisd__V1__DirectoryReply *d = g->dir->directory_reply;
            for (size_t i = 0; i < d->n_stages; i++)
                if (s_ours(g, d->stages[i]))
                    s_probe(g, d->stages[i]);
        }
        for (s_session_t *s = g->sessions, *next; s; s = next) {
            next = s->next;
            if (s->state == S_WAIT_ROUTE) {
                s_try_start(g, s);
                continue;
            }
            const Swisd__V1__DirectoryReply *d = g->dir->directory_reply;
            for (int h = 0; h < s->n_hops; h++) {
                bool live = false;
                for (size_t i = 0; i < d->n_stages && !live; i++)
                    live = !strcmp(d->stages[i]->node_id, s->hop_id[h]);
                if (!live) {
                    char why[128];
                    snprintf(why, sizeof why, "stage %.8s left the swarm", s->hop_id[h]);
                    s_recover(g, s, NULL, false, why);
                    break;
                }
            }
        }
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
    if (now >= g->next_dir_ns && sw_broker_client_registered(g->bc)) {
        Swisd__V1__DirectoryQuery q = SWISD__V1__DIRECTORY_QUERY__INIT;
        q.checksum = g->checksum;
        Swisd__V1__Body b = SWISD__V1__BODY__INIT;
        b.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_QUERY;
        b.directory_query = &q;
        sw_broker_client_send(g->bc, "", &b);
        g->next_dir_ns = now + (uint64_t) S_DIRECTORY_MS * 1000000ull;
    }
    for (s_session_t *s = g->sessions, *next; s; s = next) {
        next = s->next;
        if (s->state == S_WAIT_REPLY && now - s->t_step > s_deadline_ns(g, s)) {
            /* which hop is to blame is unknown: every hop goes on probation until it
             * answers a probe; re-plan and replay */
            s_recover(g, s, NULL, true, "no answer from the chain of stages in time");
        }
        else if (s->state == S_WAIT_ROUTE)
            s_try_start(g, s);
    }
}

int sw_gateway_run(sw_gateway_t *self, volatile int *stop)
{
    zsock_t *bs = sw_broker_client_sock(self->bc);
    zpoller_t *poller = zpoller_new(bs, self->rpc, NULL);
    while (!(stop && *stop) && !zsys_interrupted) {
        int timeout = sw_broker_client_timeout_ms(self->bc);
        void *which = zpoller_wait(poller, timeout < 100 ? timeout : 100);
        if (which == bs) {
            for (int i = 0; i < 256 && (zsock_events(bs) & ZMQ_POLLIN); i++)
                s_on_broker(self);
        } else if (which == self->rpc) {
            for (int i = 0; i < 256 && (zsock_events(self->rpc) & ZMQ_POLLIN); i++)
                s_on_rpc(self);
        } else if (zpoller_terminated(poller)) {
            break;
        }
        sw_broker_client_tick(self->bc);
        s_housekeeping(self);
    }
    zpoller_destroy(&poller);
    return 0;
}
