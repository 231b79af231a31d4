/*  sw_stage.c: the stage (see sw_stage.h). */
#include "sw_stage.h"

#include <string.h>
#include <unistd.h>

#include "sw_broker_client.h"
#include "sw_codec.h"
#include "sw_common.h"
#include "sw_identity.h"
#include "sw_model.h"
#include "sw_rate.h"
#include "sw_seal_peers.h"
#include "sw_commit.h"
#include "sw_session_cache.h"
#include "sw_shard_cache.h"
#include "sw_wire.h"

#define S_MAX_DRAIN 64     /* messages taken per wake-up */
#define S_MAX_ENCODERS 8   /* distinct link codecs kept */

typedef struct {
    sw_wire_msg_t msg;                     /* owns the request */
    const Swisd__V1__ForwardRequest *fr;   /* = msg.body->forward_request */
    uint64_t recv_ns;
    float *hidden;                         /* (n_tok, n_embd) */
    float *test_in;                        /* (n_tok, n_embd) the rows received; only with cfg.test_hook */
    uint8_t in_digest[SW_COMMIT_DIGEST_BYTES]; /* of the payload received, opened (verify/sw_commit.h) */
    sw_session_t *sess;
    bool taken, failed;
} s_req_t;

typedef struct {
    sw_codec_config_t cfg;
    sw_codec_t *codec;
} s_encoder_t;

struct sw_stage_t {
    sw_stage_config_t cfg;
    sw_model_t *model;
    const sw_hparams_t *hp;
    char model_id[129], checksum[17];
    Swisd__V1__ModelRef ref;
    sw_broker_client_t *bc;
    sw_exec_t *ex;
    sw_session_cache_t *cache;
    sw_codec_t *rx;
    s_encoder_t enc[S_MAX_ENCODERS];
    int n_enc;
    float ms_per_layer;
    s_req_t queue[S_MAX_DRAIN];
    int n_queue;
    uint64_t busy_ns, busy_window_start;
    float busy;
    uint64_t served;
    char layers_text[32];  /* "a-b", inclusive */
    bool auto_layers;      /* --layers auto: also move to cover gaps later (rebalancing) */
    uint64_t next_rebalance_ns;
    int gap_seen;          /* consecutive directory replies showing a gap we could fill */
    uint64_t rng;          /* for the rebalancing jitter */
    sw_seal_peers_t *seal; /* with a key: activations are sealed end to end; NULL: --insecure */
    const uint8_t *pub;    /* our public key (borrowed from cfg.identity), or NULL */
    uint64_t bad_seals, bad_seals_logged, bad_seal_log_ns; /* bodies that did not open; log rate limit */
    sw_rate_t upload;      /* cfg.upload_kbps on activations sent */
    uint64_t bytes_sent;   /* activation messages sent, bytes with their framing (s_count_sent) */
    bool draining;         /* announced in Load.draining */
    uint64_t last_forward_ns; /* last ForwardRequest received */
};

const char *sw_stage_id(const sw_stage_t *self) { return sw_broker_client_id(self->bc); }

const char *sw_stage_layers(const sw_stage_t *self) { return self->layers_text; }

uint64_t sw_stage_bytes_sent(const sw_stage_t *self) { return self->bytes_sent; }

/* ---- setup ------------------------------------------------------------------ */

/* Times one decode token through the stage's blocks (after a warm-up). */
static float s_measure(sw_stage_t *st)
{
    const int32_t a = st->cfg.layer_begin, b = st->cfg.layer_end;
    sw_kv_t *kv = sw_kv_new(st->model, a, b, 8);
    float *h = calloc((size_t) st->hp->n_embd, sizeof(float));
    float ms = 0;
    if (kv && h) {
        char err[128];
        for (int i = 0; i < st->hp->n_embd; i++)
            h[i] = (float) ((i % 7) - 3) * 0.1f;
        uint64_t t0 = 0;
        for (int it = 0; it < 4; it++) {
            if (it == 1)
                t0 = sw_now_ns();
            sw_seq_t s = {.kv = kv, .pos = it, .n_tok = 1, .hidden = h};
            sw_model_forward(st->ex, st->model, a, b, &s, 1, err, sizeof err);
        }
        ms = (float) ((sw_now_ns() - t0) / 3e6 / (b - a));
    }
    free(h);
    sw_kv_destroy(&kv);
    return ms;
}

/* Bytes of the tensors of block il (for sizing --layers auto). */
static size_t s_layer_bytes(const sw_gguf_t *g, int32_t il)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "blk.%d.", (int) il);
    size_t n = 0;
    for (int64_t i = 0; i < sw_gguf_n_tensors(g); i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
        if (!strncmp(t->name, prefix, strlen(prefix)))
            n += t->nbytes;
    }
    return n;
}

/* --layers auto: ask the broker which layers are covered and take the least
 * covered window that fits in the memory offered. */
static int s_choose_layers(sw_stage_t *st, const char *checksum, char *err, size_t errlen)
{
    const sw_gguf_t *g = sw_model_gguf(st->model);
    const int32_t L = st->hp->n_layer;
    size_t mem = st->cfg.mem_bytes ? st->cfg.mem_bytes : (size_t) sysconf(_SC_PHYS_PAGES) * (size_t) sysconf(_SC_PAGESIZE);
    int32_t fit = 0;
    size_t used = 0;
    for (int32_t il = 0; il < L; il++) {
        size_t lb = s_layer_bytes(g, il);
        if (used + lb > mem)
            break;
        used += lb;
        fit++;
    }
    if (fit == 0)
        return sw_err(err, errlen, "not even one layer fits in %zu MiB", mem >> 20);
    int *cover = calloc((size_t) L, sizeof(int));
    if (!cover)
        return sw_err(err, errlen, "out of memory");
    sw_broker_client_config_t qc = {.endpoint = st->cfg.broker, .role = SWISD__V1__ROLE__ROLE_CLIENT, .identity = st->cfg.identity,
                                    .region = st->cfg.region};
    sw_broker_client_t *q = sw_broker_client_new(&qc, err, errlen);
    bool answered = false;
    if (q) {
        zpoller_t *p = zpoller_new(sw_broker_client_sock(q), NULL);
        const uint64_t deadline = sw_now_ns() + 3000000000ull;
        bool asked = false;
        while (!answered && sw_now_ns() < deadline && !zsys_interrupted) {
            if (sw_broker_client_registered(q) && !asked) {
                Swisd__V1__DirectoryQuery dq = SWISD__V1__DIRECTORY_QUERY__INIT;
                dq.checksum = (char *) checksum;
                Swisd__V1__Body b = SWISD__V1__BODY__INIT;
                b.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_QUERY;
                b.directory_query = &dq;
                sw_broker_client_send(q, "", &b);
                asked = true;
            }
            if (zpoller_wait(p, 100)) {
                sw_wire_msg_t m;
                if (sw_broker_client_recv(q, &m) == 1 && m.body->msg_case == SWISD__V1__BODY__MSG_DIRECTORY_REPLY) {
                    const Swisd__V1__DirectoryReply *r = m.body->directory_reply;
                    for (size_t i = 0; i < r->n_stages; i++)
                        for (uint32_t l = r->stages[i]->layers->begin; l < r->stages[i]->layers->end && l < (uint32_t) L; l++)
                            cover[l]++;
                    answered = true;
                }
                sw_wire_msg_free(&m);
            }
            sw_broker_client_tick(q);
        }
        zpoller_destroy(&p);
        sw_broker_client_destroy(&q);
    }
    int32_t best = 0;
    long best_sum = -1;
    for (int32_t s = 0; s + fit <= L; s++) {
        long sum = 0;
        for (int32_t l = s; l < s + fit; l++)
            sum += cover[l];
        if (best_sum < 0 || sum < best_sum) {
            best_sum = sum;
            best = s;
        }
    }
    free(cover);
    st->cfg.layer_begin = best;
    st->cfg.layer_end = best + fit;
    sw_log(SW_LOG_INFO, "stage: --layers auto chose %d-%d (%d of %d layers fit in %zu MiB; %s)", (int) best,
           (int) (best + fit - 1), (int) fit, (int) L, mem >> 20,
           answered ? "least covered by live stages" : "no directory answer, so from the start");
    return 0;
}

sw_stage_t *sw_stage_new(const sw_stage_config_t *cfg, char *err, size_t errlen)
{
    sw_stage_t *st = calloc(1, sizeof *st);
    if (!st) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    st->cfg = *cfg;
    if (st->cfg.max_batch_tokens <= 0)
        st->cfg.max_batch_tokens = 512;
    if (st->cfg.threads < 1)
        st->cfg.threads = 1;
    if (!(st->ex = sw_exec_new(st->cfg.threads)))
        goto oom;
    /* metadata only first: identity, shape, and (auto) the range */
    sw_model_parts_t none = {.layer_begin = 0, .layer_end = 0, .embed = false, .head = false};
    if (!(st->model = sw_model_load(cfg->model_path, &none, err, errlen)))
        goto fail;
    st->hp = sw_model_hparams(st->model);
    sw_model_identity(st->model, cfg->model_path, st->model_id, sizeof st->model_id, st->checksum, sizeof st->checksum);
    st->auto_layers = st->cfg.layer_begin < 0 || st->cfg.rebalance;
    st->rng = sw_now_ns() | 1;
    if (st->cfg.layer_begin < 0 && s_choose_layers(st, st->checksum, err, errlen) != 0)
        goto fail;
    if (st->cfg.layer_begin < 0 || st->cfg.layer_end > st->hp->n_layer || st->cfg.layer_begin >= st->cfg.layer_end) {
        sw_err(err, errlen, "layers %d-%d are outside the model's 0-%d", (int) st->cfg.layer_begin,
               (int) st->cfg.layer_end - 1, (int) st->hp->n_layer - 1);
        goto fail;
    }
    sw_model_destroy(&st->model);
    /* a sparse copy from `swisd fetch` (fetch/sw_shard_cache.h) must hold these layers: holes read as zeros */
    if (sw_shard_cache_has_layers(cfg->model_path, st->cfg.layer_begin, st->cfg.layer_end - 1, err, errlen) != 1)
        goto fail;
    sw_model_parts_t parts = {.layer_begin = st->cfg.layer_begin, .layer_end = st->cfg.layer_end};
    if (!(st->model = sw_model_load(cfg->model_path, &parts, err, errlen)))
        goto fail;
    st->hp = sw_model_hparams(st->model);
    st->cache = sw_session_cache_new(st->model, st->cfg.layer_begin, st->cfg.layer_end, st->hp->n_ctx_train,
                                     st->cfg.kv_mem_bytes, st->cfg.max_sessions);
    sw_codec_config_t f32 = {.dtype = SW_DTYPE_F32};
    st->rx = sw_codec_new(&f32, st->hp->n_embd, SW_WIRE_MAX_TOKENS);
    if (!st->cache || !st->rx)
        goto oom;
    if (cfg->identity) {
        st->pub = sw_identity_public_key(cfg->identity);
        if (!(st->seal = sw_seal_peers_new(sw_identity_secret_key(cfg->identity))))
            goto oom;
    }
    st->ms_per_layer = s_measure(st);
    snprintf(st->layers_text, sizeof st->layers_text, "%d-%d", (int) st->cfg.layer_begin, (int) st->cfg.layer_end - 1);

    swisd__v1__model_ref__init(&st->ref);
    st->ref.id = st->model_id;
    st->ref.checksum = st->checksum;
    st->ref.n_layer = (uint32_t) st->hp->n_layer;
    st->ref.n_embd = (uint32_t) st->hp->n_embd;
    st->ref.n_vocab = (uint32_t) st->hp->n_vocab;
    uint32_t codecs[] = {SW_DTYPE_F32, SW_DTYPE_F16, SW_DTYPE_BF16, SW_DTYPE_Q8_0, SW_DTYPE_Q4_0};
    Swisd__V1__Capabilities caps = SWISD__V1__CAPABILITIES__INIT;
    caps.memory_bytes = st->cfg.kv_mem_bytes;
    caps.threads = (uint32_t) st->cfg.threads;
    caps.ms_per_layer = st->ms_per_layer;
    caps.codecs = codecs;
    caps.n_codecs = sizeof codecs / sizeof codecs[0];
    caps.audit = cfg->audit;
    Swisd__V1__CodecConfig inbound = SWISD__V1__CODEC_CONFIG__INIT;
    if (cfg->codec) {
        sw_codec_config_t cc;
        if (sw_codec_config_parse(cfg->codec, &cc) != 0 || cc.delta) {
            sw_err(err, errlen, "unknown codec '%s' (f32, f16, bf16, q8_0, q4_0, optionally +zstd[N])", cfg->codec);
            goto fail;
        }
        inbound.dtype = cc.dtype;
        inbound.zstd_level = cc.zstd_level;
        caps.inbound_codec = &inbound;
    }
    sw_broker_client_config_t bcfg = {
        .endpoint = cfg->broker, .role = SWISD__V1__ROLE__ROLE_STAGE, .node_id = cfg->id, .identity = cfg->identity, .region = cfg->region,
        .display_name = cfg->display_name,
        .model = &st->ref, .layer_begin = (uint32_t) st->cfg.layer_begin, .layer_end = (uint32_t) st->cfg.layer_end,
        .caps = &caps, .heartbeat_ms = cfg->heartbeat_ms,
    };
    if (!(st->bc = sw_broker_client_new(&bcfg, err, errlen)))
        goto fail;
    sw_log(SW_LOG_INFO, "stage %.8s: model %s (%s), layers %d-%d of %d, %.3f ms per layer per token, %d threads",
           sw_broker_client_id(st->bc), st->model_id, st->checksum, (int) st->cfg.layer_begin,
           (int) st->cfg.layer_end - 1, (int) st->hp->n_layer, st->ms_per_layer, st->cfg.threads);
    st->busy_window_start = sw_now_ns();
    sw_rate_init(&st->upload, cfg->upload_kbps, st->busy_window_start);
    return st;
oom:
    sw_err(err, errlen, "out of memory");
fail:
    sw_stage_destroy(&st);
    return NULL;
}

void sw_stage_destroy(sw_stage_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_stage_t *st = *self_p;
    for (int i = 0; i < st->n_queue; i++) {
        sw_wire_msg_free(&st->queue[i].msg);
        free(st->queue[i].hidden);
        free(st->queue[i].test_in);
    }
    for (int i = 0; i < st->n_enc; i++)
        sw_codec_destroy(&st->enc[i].codec);
    sw_codec_destroy(&st->rx);
    sw_seal_peers_destroy(&st->seal);
    sw_broker_client_destroy(&st->bc);
    sw_session_cache_destroy(&st->cache);
    sw_model_destroy(&st->model);
    sw_exec_destroy(&st->ex);
    free(st);
    *self_p = NULL;
}

/* ---- serving ------------------------------------------------------------------ */

static sw_codec_t *s_encoder(sw_stage_t *st, const Swisd__V1__CodecConfig *c)
{
    sw_codec_config_t cfg = {.dtype = SW_DTYPE_F32, .zstd_level = 0, .delta = false};
    if (c) {
        cfg.dtype = (sw_dtype_t) c->dtype;
        cfg.zstd_level = c->zstd_level;
    }
    for (int i = 0; i < st->n_enc; i++)
        if (st->enc[i].cfg.dtype == cfg.dtype && st->enc[i].cfg.zstd_level == cfg.zstd_level)
            return st->enc[i].codec;
    sw_codec_t *codec = sw_codec_new(&cfg, st->hp->n_embd, SW_WIRE_MAX_TOKENS);
    if (!codec)
        return NULL;
    if (st->n_enc == S_MAX_ENCODERS) {
        sw_codec_destroy(&st->enc[0].codec);
        memmove(st->enc, st->enc + 1, sizeof st->enc[0] * (S_MAX_ENCODERS - 1));
        st->n_enc--;
    }
    st->enc[st->n_enc].cfg = cfg;
    st->enc[st->n_enc++].codec = codec;
    return codec;
}

static void s_fail(sw_stage_t *st, s_req_t *r, int code, const char *fmt, const char *detail)
{
    sw_broker_client_send_error(st->bc, r->fr->origin, code, r->fr->session_id, r->fr->request_id, fmt, detail);
    r->failed = true;
}

/* Refuses request r for a body that does not open (BAD_SEAL to its origin), and
 * logs it at most every 10 s with the count since the last line. */
static void s_bad_seal(sw_stage_t *st, s_req_t *r, const char *why)
{
    st->bad_seals++;
    const uint64_t now = sw_now_ns();
    if (now - st->bad_seal_log_ns >= 10000000000ull || !st->bad_seal_log_ns) {
        sw_log(SW_LOG_WARN, "stage: refused a forward body from %.16s for session %.16s: %s (%llu refused so far)",
               r->msg.header->src, r->fr->session_id, why, (unsigned long long) st->bad_seals);
        st->bad_seal_log_ns = now;
    }
    s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_BAD_SEAL, "%s", why);
}

/* Opens r's sealed activation (docs/security.md): from the gateway (hop 0, the
 * key in origin_key) or the previous stage (sender_key), each key bound to the
 * node id the broker authenticated as the sender. Returns 0 with *opened the
 * payload (caller frees, NULL when this stage runs without keys) and h's
 * checksum restored, or -1 after refusing r. */
static int s_open(sw_stage_t *st, s_req_t *r, sw_codec_header_t *h, uint8_t **opened, size_t *len)
{
    const Swisd__V1__ForwardRequest *fr = r->fr;
    const Swisd__V1__Hop *me = fr->route[0];
    *opened = NULL;
    if (!st->seal) {
        if (me->public_key.len) {
            s_bad_seal(st, r, "sealed body, but this stage runs without keys (--insecure)");
            return -1;
        }
        return 0;
    }
    const ProtobufCBinaryData *peer = fr->n_timings == 0 ? &fr->origin_key : &fr->sender_key;
    const char *why = NULL;
    if (me->public_key.len == 0)
        why = "unsealed activation (this stage only takes sealed ones)";
    else if (me->public_key.len != SW_SEAL_KEY_BYTES || memcmp(me->public_key.data, st->pub, SW_SEAL_KEY_BYTES))
        why = "activation sealed for another key";
    else if (fr->origin_key.len != SW_SEAL_KEY_BYTES || !sw_identity_id_matches(fr->origin, fr->origin_key.data))
        why = "origin key missing or not the origin's";
    else if (peer->len != SW_SEAL_KEY_BYTES || !sw_identity_id_matches(r->msg.header->src, peer->data))
        why = "sender key missing or not the sender's";
    if (!why) {
        const sw_seal_ctx_t ctx = {.dir = SW_SEAL_TO_STAGE, .session_id = fr->session_id,
                                   .session_len = strlen(fr->session_id), .request_id = fr->request_id,
                                   .pos = fr->pos, .n_rows = fr->n_tok, .hop = (uint32_t) fr->n_timings};
        uint64_t checksum = 0;
        if (sw_seal_peers_open(st->seal, peer->data, &ctx, fr->activation->payload.data,
                               fr->activation->payload.len, opened, len, &checksum) != 0)
            why = "the activation does not open (wrong key, tampered, replayed or reordered)";
        else
            h->checksum = checksum;
    }
    if (why) {
        s_bad_seal(st, r, why);
        return -1;
    }
    return 0;
}

/* Checks the request and prepares its session and input rows. */
static void s_prepare(sw_stage_t *st, s_req_t *r)
{
    const Swisd__V1__ForwardRequest *fr = r->fr;
    const Swisd__V1__Hop *me = fr->route[0];
    char err[256];
    if (strcmp(me->node_id, sw_broker_client_id(st->bc)) != 0)
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, "route[0] is %s, not this stage", me->node_id);
    if ((int32_t) me->layers->begin < st->cfg.layer_begin || (int32_t) me->layers->end > st->cfg.layer_end) {
        snprintf(err, sizeof err, "layers [%u, %u) are not all on this stage (it holds [%d, %d))", me->layers->begin,
                 me->layers->end, (int) st->cfg.layer_begin, (int) st->cfg.layer_end);
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, "%s", err);
    }
    if (fr->pos + fr->n_tok > (uint32_t) st->hp->n_ctx_train) {
        snprintf(err, sizeof err, "positions up to %u exceed the context of %d", fr->pos + fr->n_tok,
                 (int) st->hp->n_ctx_train);
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, "%s", err);
    }
    /* the activation first: nothing is kept for a request that does not decode (n_tok and
     * n_embd were checked against the limits and the model when the frame was read) */
    const Swisd__V1__Activation *a = fr->activation;
    if (a->n_embd != (uint32_t) st->hp->n_embd) {
        snprintf(err, sizeof err, "activation rows of %u, the model's are %d", a->n_embd, (int) st->hp->n_embd);
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, "%s", err);
    }
    sw_codec_header_t h;
    sw_wire_activation_from_msg(a, &h);
    const void *payload = a->payload.data;
    size_t payload_len = a->payload.len;
    uint8_t *opened = NULL;
    if (s_open(st, r, &h, &opened, &payload_len) != 0)
        return;
    if (opened)
        payload = opened;
    if (st->seal && sw_commit_digest(payload, payload_len, r->in_digest) != 0) {
        free(opened);
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "cannot hash the activation");
    }
    r->hidden = malloc(sizeof(float) * (size_t) fr->n_tok * (size_t) st->hp->n_embd);
    if (!r->hidden) {
        free(opened);
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "%s", "out of memory");
    }
    const int drc = sw_codec_decode(st->rx, &h, payload, payload_len, r->hidden, err, sizeof err);
    free(opened);
    if (drc != 0)
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_BAD_FRAME, "activation: %s", err);
    sw_session_t *s = sw_session_cache_find(st->cache, fr->session_id);
    if (s && strcmp(s->origin, fr->origin)) { /* a session belongs to the gateway that opened it */
        snprintf(err, sizeof err, "session %.16s belongs to another gateway", fr->session_id);
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_UNAUTHORIZED, "%s", err);
    }
    if (fr->pos == 0 && !s && (s = sw_session_cache_create(st->cache, fr->session_id)))
        snprintf(s->origin, sizeof s->origin, "%s", fr->origin);
    if (!s) {
        if (fr->pos == 0)
            return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_OVERLOADED, "%s",
                          "no room for another session's KV cache");
        snprintf(err, sizeof err, "session %s: cache holds 0 positions, request starts at %u", fr->session_id, fr->pos);
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_KV_MISSING, "%s", err);
    }
    if ((int32_t) fr->pos > sw_kv_n_past(s->kv)) {
        snprintf(err, sizeof err, "session %s: cache holds %d positions, request starts at %u", fr->session_id,
                 (int) sw_kv_n_past(s->kv), fr->pos);
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_KV_MISSING, "%s", err);
    }
    s->pinned = true;
    r->sess = s;
}

/* The step's commitment (verify/sw_commit.h), sealed for the origin: the
 * sketches of the rows leaving our last layer, the digests of the payload
 * received and of `payload` (what we send on, encoded, before sealing).
 * *out (caller frees) gets *out_len bytes. Returns 0 or -1. */
static int s_commit(sw_stage_t *st, const s_req_t *r, const void *payload, size_t len, uint8_t **out, size_t *out_len)
{
    const Swisd__V1__ForwardRequest *fr = r->fr;
    const Swisd__V1__Hop *me = fr->route[0];
    if (fr->origin_key.len != SW_SEAL_KEY_BYTES)
        return -1;
    sw_commit_t c = {.layer_begin = me->layers->begin, .layer_end = me->layers->end, .n_rows = fr->n_tok};
    memcpy(c.in_digest, r->in_digest, sizeof c.in_digest);
    if (sw_commit_digest(payload, len, c.out_digest) != 0 ||
        !(c.sketch = malloc(sizeof(float) * SW_SKETCH_K * (size_t) fr->n_tok)))
        return -1;
    sw_sketch_rows(r->hidden, (int32_t) fr->n_tok, (int32_t) st->hp->n_embd, me->layers->end, c.sketch);
    const sw_seal_ctx_t ctx = {.dir = SW_SEAL_COMMIT, .session_id = fr->session_id,
                               .session_len = strlen(fr->session_id), .request_id = fr->request_id, .pos = fr->pos,
                               .n_rows = fr->n_tok, .hop = (uint32_t) fr->n_timings};
    int rc = sw_commit_seal(st->seal, fr->origin_key.data, &ctx, &c, out, out_len);
    free(c.sketch);
    return rc;
}

/* Bytes one ZMTP 3.1 frame of `len` bytes takes on the wire (RFC 37/ZMTP:
 * a 2-byte header up to 255 bytes, else 9); with CURVE (RFC 26/CurveZMQ) the
 * frame travels inside a MESSAGE command: "\x07MESSAGE" (8), a nonce (8), the
 * box's MAC (16) and a flags byte (1) around the data. */
static size_t s_frame_bytes(size_t len, bool curve)
{
    const size_t payload = curve ? len + 33 : len;
    return payload + (payload <= 255 ? 2 : 9);
}

/* Counts an activation message sent to dst against the upload cap, as the
 * bytes it takes on the link to the broker: its header frame and body frame
 * as packed, each with its ZMTP (and CURVE) framing. */
static void s_count_sent(sw_stage_t *st, const char *dst, const Swisd__V1__Body *b)
{
    zframe_t *h = sw_wire_header_frame(sw_broker_client_id(st->bc), dst, 0);
    const bool curve = st->cfg.identity != NULL;
    const size_t n = s_frame_bytes(h ? zframe_size(h) : 0, curve) +
                     s_frame_bytes(swisd__v1__body__get_packed_size(b), curve);
    zframe_destroy(&h);
    st->bytes_sent += n;
    sw_rate_spend(&st->upload, n, sw_now_ns());
}

/* Sends the result on: next hop, or the reply to the origin. */
static void s_send_on(sw_stage_t *st, s_req_t *r, float queue_ms, float compute_ms)
{
    const Swisd__V1__ForwardRequest *fr = r->fr;
    const bool last = fr->n_route == 1;
    if (st->cfg.test_hook && r->test_in) { /* TEST ONLY: the lying stage (sw_stage.h) */
        const sw_stage_test_rows_t rows = {fr->session_id, fr->pos, (int32_t) fr->n_tok, st->hp->n_embd,
                                           (int32_t) fr->route[0]->layers->begin,
                                           (int32_t) fr->route[0]->layers->end, r->test_in, r->hidden};
        st->cfg.test_hook(st->cfg.test_hook_arg, &rows);
    }
    sw_codec_t *enc = s_encoder(st, last ? fr->reply_codec : fr->route[1]->codec);
    char err[256];
    sw_codec_header_t h;
    const void *payload;
    size_t len;
    if (!enc || sw_codec_encode(enc, r->hidden, (int32_t) fr->n_tok, &h, &payload, &len, err, sizeof err) != 0)
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, "cannot encode the activation: %s",
                      enc ? err : "unsupported codec");
    uint8_t *sealed = NULL, *commitment = NULL;
    size_t commitment_len = 0;
    if (st->seal && s_commit(st, r, payload, len, &commitment, &commitment_len) != 0)
        return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "%s", "cannot make the step's commitment");
    if (st->seal) { /* for the next hop, or the origin at the last */
        const ProtobufCBinaryData *peer = last ? &fr->origin_key : &fr->route[1]->public_key;
        const sw_seal_ctx_t ctx = {.dir = last ? SW_SEAL_TO_GATEWAY : SW_SEAL_TO_STAGE, .session_id = fr->session_id,
                                   .session_len = strlen(fr->session_id), .request_id = fr->request_id,
                                   .pos = fr->pos, .n_rows = fr->n_tok,
                                   .hop = (uint32_t) fr->n_timings + (last ? 0u : 1u)};
        size_t n = 0;
        if (peer->len != SW_SEAL_KEY_BYTES ||
            sw_seal_peers_close(st->seal, peer->data, &ctx, payload, len, h.checksum, &sealed, &n) != 0) {
            free(commitment);
            return s_fail(st, r, SWISD__V1__ERROR_CODE__ERROR_BAD_SEAL, "%s",
                          "cannot seal for the next hop (its key is missing or invalid)");
        }
        payload = sealed;
        len = n;
        h.checksum = 0; /* inside the box */
    }
    Swisd__V1__Activation act;
    sw_wire_activation_to_msg(&h, payload, len, &act);
    Swisd__V1__HopTiming mine = SWISD__V1__HOP_TIMING__INIT;
    mine.node_id = (char *) sw_broker_client_id(st->bc);
    mine.queue_ms = queue_ms;
    mine.compute_ms = compute_ms;
    mine.commitment.data = commitment;
    mine.commitment.len = commitment_len;
    Swisd__V1__HopTiming *timings[SW_WIRE_MAX_ROUTE + 1];
    size_t n_t = fr->n_timings < SW_WIRE_MAX_ROUTE ? fr->n_timings : SW_WIRE_MAX_ROUTE;
    if (n_t)
        memcpy(timings, fr->timings, sizeof(timings[0]) * n_t);
    timings[n_t++] = &mine;
    Swisd__V1__Body b = SWISD__V1__BODY__INIT;
    int rc;
    if (last) {
        Swisd__V1__ForwardReply rep = SWISD__V1__FORWARD_REPLY__INIT;
        rep.session_id = fr->session_id;
        rep.request_id = fr->request_id;
        rep.activation = &act;
        rep.timings = timings;
        rep.n_timings = n_t;
        b.msg_case = SWISD__V1__BODY__MSG_FORWARD_REPLY;
        b.forward_reply = &rep;
        rc = sw_broker_client_send(st->bc, fr->origin, &b);
        s_count_sent(st, fr->origin, &b);
    } else {
        Swisd__V1__ForwardRequest next = *fr;
        next.base = (ProtobufCMessage) PROTOBUF_C_MESSAGE_INIT(&swisd__v1__forward_request__descriptor);
        next.route = fr->route + 1;
        next.n_route = fr->n_route - 1;
        next.activation = &act;
        next.timings = timings;
        next.n_timings = n_t;
        if (st->pub) {
            next.sender_key.data = (uint8_t *) st->pub;
            next.sender_key.len = SW_SEAL_KEY_BYTES;
        }
        b.msg_case = SWISD__V1__BODY__MSG_FORWARD_REQUEST;
        b.forward_request = &next;
        rc = sw_broker_client_send(st->bc, fr->route[1]->node_id, &b);
        s_count_sent(st, fr->route[1]->node_id, &b);
    }
    free(sealed);
    free(commitment);
    if (rc != 0)
        sw_log(SW_LOG_WARN, "stage: could not send session %.16s onward (broker queue full?)", fr->session_id);
}

/* Computes the queued requests: one batch per distinct layer range, at most
 * one request per session per batch, in arrival order. */
static void s_process(sw_stage_t *st)
{
    for (;;) {
        sw_seq_t seqs[S_MAX_DRAIN];
        s_req_t *batch[S_MAX_DRAIN];
        int n = 0, tokens = 0;
        uint32_t a = 0, bnd = 0;
        const char *seen[S_MAX_DRAIN];
        int n_seen = 0;
        for (int i = 0; i < st->n_queue; i++) {
            s_req_t *r = &st->queue[i];
            if (r->taken || r->failed)
                continue;
            bool blocked = false;
            for (int k = 0; k < n_seen; k++)
                blocked |= !strcmp(seen[k], r->fr->session_id);
            seen[n_seen++] = r->fr->session_id;
            const Swisd__V1__LayerRange *lr = r->fr->route[0]->layers;
            if (blocked || (n > 0 && (lr->begin != a || lr->end != bnd)) ||
                (n > 0 && tokens + (int) r->fr->n_tok > st->cfg.max_batch_tokens))
                continue;
            if (!r->hidden) { /* checked only now: an earlier request of its session may have run */
                s_prepare(st, r);
                if (r->failed)
                    continue;
            }
            a = lr->begin;
            bnd = lr->end;
            r->taken = true;
            batch[n] = r;
            seqs[n] = (sw_seq_t){.kv = r->sess->kv, .pos = (int32_t) r->fr->pos, .n_tok = (int32_t) r->fr->n_tok,
                                 .hidden = r->hidden};
            tokens += (int) r->fr->n_tok;
            n++;
        }
        if (n == 0)
            break;
        for (int i = 0; st->cfg.test_hook && i < n; i++) { /* TEST ONLY: the hook sees the rows received */
            const size_t bytes = sizeof(float) * (size_t) batch[i]->fr->n_tok * (size_t) st->hp->n_embd;
            if ((batch[i]->test_in = malloc(bytes)))
                memcpy(batch[i]->test_in, batch[i]->hidden, bytes);
        }
        const uint64_t t0 = sw_now_ns();
        char err[256];
        int rc = sw_model_forward(st->ex, st->model, (int32_t) a, (int32_t) bnd, seqs, n, err, sizeof err);
        const uint64_t t1 = sw_now_ns();
        st->busy_ns += t1 - t0;
        for (int i = 0; i < n; i++) {
            if (rc != 0)
                s_fail(st, batch[i], SWISD__V1__ERROR_CODE__ERROR_INTERNAL, "forward: %s", err);
            else
                s_send_on(st, batch[i], (float) ((t0 - batch[i]->recv_ns) / 1e6), (float) ((t1 - t0) / 1e6));
            st->served++;
        }
    }
    for (int i = 0; i < st->n_queue; i++) {
        sw_wire_msg_free(&st->queue[i].msg);
        free(st->queue[i].hidden);
        free(st->queue[i].test_in);
    }
    st->n_queue = 0;
    sw_session_cache_unpin_all(st->cache);
}

/* Loads layers [a, b) in place of the current ones: every session's cache is
 * dropped (their gateways fail over on KV_MISSING). Returns 0 or -1 (then
 * the old layers stay). */
static int s_move_layers(sw_stage_t *st, int32_t a, int32_t b)
{
    char err[256];
    if (sw_shard_cache_has_layers(st->cfg.model_path, a, b - 1, err, sizeof err) != 1) {
        sw_log(SW_LOG_WARN, "stage: not moving to layers %d-%d: %s", (int) a, (int) b - 1, err);
        return -1;
    }
    sw_model_parts_t parts = {.layer_begin = a, .layer_end = b};
    sw_model_t *m = sw_model_load(st->cfg.model_path, &parts, err, sizeof err);
    sw_session_cache_t *c = m ? sw_session_cache_new(m, a, b, sw_model_hparams(m)->n_ctx_train, st->cfg.kv_mem_bytes,
                                                     st->cfg.max_sessions)
                              : NULL;
    if (!m || !c) {
        sw_log(SW_LOG_WARN, "stage: cannot load layers %d-%d: %s", (int) a, (int) b - 1, m ? "out of memory" : err);
        sw_model_destroy(&m);
        return -1;
    }
    sw_session_cache_destroy(&st->cache);
    sw_model_destroy(&st->model);
    st->model = m;
    st->hp = sw_model_hparams(m);
    st->cache = c;
    st->cfg.layer_begin = a;
    st->cfg.layer_end = b;
    snprintf(st->layers_text, sizeof st->layers_text, "%d-%d", (int) a, (int) b - 1);
    sw_broker_client_set_layers(st->bc, (uint32_t) a, (uint32_t) b);
    return 0;
}

/* Rebalancing (--layers auto): when layers have no live stage, move to the
 * window of our size that covers the most of them, but only if every layer we
 * give up is held by another stage (moving must not open a new gap), and
 * only after two directory replies in a row show the gap (not a passing
 * expiry). */
static void s_rebalance(sw_stage_t *st, const Swisd__V1__DirectoryReply *d)
{
    const int32_t L = st->hp->n_layer, size = st->cfg.layer_end - st->cfg.layer_begin;
    int *cover = calloc((size_t) L, sizeof(int));
    if (!cover)
        return;
    for (size_t i = 0; i < d->n_stages; i++) {
        const Swisd__V1__StageInfo *s = d->stages[i];
        if (!strcmp(s->node_id, sw_broker_client_id(st->bc)) || !s->model || !s->model->checksum ||
            strcmp(s->model->checksum, st->checksum))
            continue;
        for (uint32_t l = s->layers->begin; l < s->layers->end && l < (uint32_t) L; l++)
            cover[l]++;
    }
    int32_t best = -1, best_gaps = 0;
    long best_sum = 0;
    for (int32_t w = 0; w + size <= L; w++) {
        int32_t gaps = 0;
        long sum = 0;
        bool safe = true;
        for (int32_t l = w; l < w + size; l++) {
            gaps += cover[l] == 0;
            sum += cover[l];
        }
        for (int32_t l = st->cfg.layer_begin; l < st->cfg.layer_end; l++)
            if ((l < w || l >= w + size) && cover[l] == 0)
                safe = false; /* we are its only host */
        int32_t now_gaps = 0;
        for (int32_t l = st->cfg.layer_begin; l < st->cfg.layer_end; l++)
            now_gaps += cover[l] == 0;
        if (safe && gaps > now_gaps && (best < 0 || gaps > best_gaps || (gaps == best_gaps && sum < best_sum))) {
            best = w;
            best_gaps = gaps;
            best_sum = sum;
        }
    }
    free(cover);
    if (best < 0 || best == st->cfg.layer_begin) {
        st->gap_seen = 0;
        return;
    }
    if (++st->gap_seen < 2)
        return;
    st->gap_seen = 0;
    sw_log(SW_LOG_INFO, "stage: rebalancing: layers %d-%d have no other host; moving from %s to %d-%d",
           (int) best, (int) (best + size - 1), st->layers_text, (int) best, (int) (best + size - 1));
    s_move_layers(st, best, best + size);
}

static void s_on_message(sw_stage_t *st, sw_wire_msg_t *m)
{
    const Swisd__V1__Body *b = m->body;
    switch (b->msg_case) {
    case SWISD__V1__BODY__MSG_FORWARD_REQUEST:
        if (st->n_queue == S_MAX_DRAIN)
            s_process(st);
        st->last_forward_ns = sw_now_ns();
        st->queue[st->n_queue] = (s_req_t){.msg = *m, .fr = b->forward_request, .recv_ns = st->last_forward_ns};
        st->n_queue++;
        memset(m, 0, sizeof *m); /* the queue owns it now */
        return;
    case SWISD__V1__BODY__MSG_KV_RELEASE: {
        s_process(st); /* keep the order of requests and releases */
        /* only the gateway that opened a session may drop it (the broker stamps src) */
        sw_session_t *s = sw_session_cache_find(st->cache, b->kv_release->session_id);
        if (s && !strcmp(s->origin, m->header->src))
            sw_session_cache_release(st->cache, b->kv_release->session_id);
        break;
    }
    case SWISD__V1__BODY__MSG_KV_TRUNCATE: {
        s_process(st);
        sw_session_t *s = sw_session_cache_find(st->cache, b->kv_truncate->session_id);
        if (s && !strcmp(s->origin, m->header->src) && (int32_t) b->kv_truncate->n_past <= sw_kv_n_past(s->kv))
            sw_kv_truncate(s->kv, (int32_t) b->kv_truncate->n_past);
        break;
    }
    case SWISD__V1__BODY__MSG_DIRECTORY_REPLY:
        if (st->auto_layers) {
            s_process(st); /* finish what is queued before any move */
            s_rebalance(st, b->directory_reply);
        }
        break;
    case SWISD__V1__BODY__MSG_ERROR:
        sw_log(SW_LOG_DEBUG, "stage: error from %.8s: %s: %s", m->header->src, sw_wire_error_name(b->error->code),
               b->error->message);
        break;
    default:
        sw_broker_client_send_error(st->bc, m->header->src, SWISD__V1__ERROR_CODE__ERROR_BAD_REQUEST, NULL, 0,
                                    "a stage does not serve %s", sw_wire_kind_name(b));
        break;
    }
    sw_wire_msg_free(m);
}

/* Publishes the stage's load (and whether it drains) for the next heartbeat. */
static void s_publish_load(sw_stage_t *self)
{
    Swisd__V1__Load load = SWISD__V1__LOAD__INIT;
    load.active_sessions = (uint32_t) sw_session_cache_count(self->cache);
    load.queued_requests = (uint32_t) self->n_queue;
    load.kv_bytes = sw_session_cache_bytes(self->cache);
    load.busy = self->busy;
    load.draining = self->draining;
    sw_broker_client_set_load(self->bc, &load);
}

/* True when a drain that began at start_ns is over: nothing left to serve, or
 * the time-out passed. Sessions nobody released (a gateway that vanished)
 * end it too once no request came for 3 s. */
static bool s_drained(sw_stage_t *self, uint64_t now, uint64_t start_ns)
{
    if (now - start_ns >= (uint64_t) self->cfg.drain_ms * 1000000ull)
        return true;
    if (self->n_queue > 0)
        return false;
    const uint64_t quiet = now - (self->last_forward_ns > start_ns ? self->last_forward_ns : start_ns);
    return sw_session_cache_count(self->cache) == 0 || quiet >= 3000000000ull;
}

int sw_stage_run(sw_stage_t *self, volatile int *stop)
{
    zsock_t *sock = sw_broker_client_sock(self->bc);
    zpoller_t *poller = zpoller_new(sock, NULL);
    uint64_t next_house_ns = 0, drain_start_ns = 0;
    while (!zsys_interrupted) {
        if (stop && *stop && !drain_start_ns) {
            if (self->cfg.drain_ms <= 0)
                break;
            drain_start_ns = sw_now_ns();
            self->draining = true;
            s_publish_load(self);
            sw_broker_client_heartbeat_now(self->bc);
            sw_log(SW_LOG_INFO, "stage: draining: %d sessions to move elsewhere (at most %d ms)",
                   sw_session_cache_count(self->cache), self->cfg.drain_ms);
        }
        if (drain_start_ns && s_drained(self, sw_now_ns(), drain_start_ns)) {
            sw_log(SW_LOG_INFO, "stage: drained after %.1f s (%d sessions left)",
                   (double) (sw_now_ns() - drain_start_ns) / 1e9, sw_session_cache_count(self->cache));
            break;
        }
        int timeout = sw_broker_client_timeout_ms(self->bc);
        if (timeout > 250)
            timeout = 250;
        /* over the upload cap: serve nothing more until the debt is paid (the queue fills, then the
           socket buffers); registration traffic is still read while the queue has room */
        const uint64_t debt_ns = sw_rate_wait_ns(&self->upload, sw_now_ns());
        if (debt_ns && debt_ns / 1000000 + 1 < (uint64_t) timeout)
            timeout = (int) (debt_ns / 1000000) + 1;
        if (debt_ns && self->n_queue >= S_MAX_DRAIN) {
            zclock_sleep(timeout);
        } else {
            void *which = zpoller_wait(poller, timeout);
            if (which == sock) {
                for (int i = 0; i < S_MAX_DRAIN && (zsock_events(sock) & ZMQ_POLLIN) &&
                                (!debt_ns || self->n_queue < S_MAX_DRAIN);
                     i++) {
                    sw_wire_msg_t m;
                    if (sw_broker_client_recv(self->bc, &m) == 1)
                        s_on_message(self, &m);
                }
            } else if (zpoller_terminated(poller) && (zsys_interrupted || !(stop && *stop))) {
                break; /* a signal that is not the drain's, or the context ended */
            }
        }
        if (self->n_queue && sw_rate_wait_ns(&self->upload, sw_now_ns()) == 0)
            s_process(self);
        sw_broker_client_tick(self->bc);
        const uint64_t now = sw_now_ns();
        if (now >= next_house_ns) {
            int gone = sw_session_cache_expire(self->cache, (uint64_t) self->cfg.idle_ms);
            if (gone)
                sw_log(SW_LOG_INFO, "stage: dropped %d idle sessions", gone);
            const uint64_t window = now - self->busy_window_start;
            if (window >= 1000000000ull) {
                self->busy = (float) self->busy_ns / (float) window;
                self->busy_ns = 0;
                self->busy_window_start = now;
            }
            s_publish_load(self);
            next_house_ns = now + 500000000ull;
            if (self->auto_layers && !self->draining && now >= self->next_rebalance_ns &&
                sw_broker_client_registered(self->bc)) {
                Swisd__V1__DirectoryQuery q = SWISD__V1__DIRECTORY_QUERY__INIT;
                q.checksum = self->checksum;
                Swisd__V1__Body b = SWISD__V1__BODY__INIT;
                b.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_QUERY;
                b.directory_query = &q;
                sw_broker_client_send(self->bc, "", &b);
                /* 2-3 s with jitter, so auto stages do not all move at once */
                self->rng ^= self->rng << 13, self->rng ^= self->rng >> 7, self->rng ^= self->rng << 17;
                self->next_rebalance_ns = now + 2000000000ull + self->rng % 1000000000ull;
            }
        }
    }
    zpoller_destroy(&poller);
    return 0;
}
