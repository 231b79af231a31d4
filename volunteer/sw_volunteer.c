/*  sw_volunteer.c: the volunteer's supervisor loop (see sw_volunteer.h). */
#include "sw_volunteer.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sw_bootstrap.h"
#include "sw_broker_client.h"
#include "sw_common.h"
#include "sw_gguf.h"
#include "sw_host_probe.h"
#include "sw_layer_choice.h"
#include "sw_model.h"
#include "sw_identity.h"
#include "sw_shard_fetch.h"

#define S_RESTART_MS 5000   /* a stage that exited on its own is started again after this */
#define S_RETRY_MS 10000    /* a start that failed (no broker, no directory) is tried again after this */
#define S_DIRECTORY_MS 3000 /* wait for the directory's answer */
#define S_HANDOVER_MS 3000  /* after a move, the new stage's time to register before the old one drains */

struct sw_volunteer_t {
    sw_volunteer_config_t cfg;
    char model_id[129], checksum[17];
    int32_t n_layer;
    uint64_t *layer_bytes;         /* (n_layer,) bytes of each block's tensors */
    sw_bootstrap_t *boot;          /* NULL with cfg.broker */
    char broker[400];              /* the broker in use */
    char region[33];
    pid_t child;                   /* the stage; 0 when none */
    bool draining;                 /* SIGTERM sent to the child */
    uint64_t drain_deadline_ns;    /* SIGKILL after this */
    uint64_t drain_sent_ns;        /* when the SIGTERM went */
    int32_t first, last;           /* layers the child serves, inclusive */
    /* by URL (no --model): the signed manifest and the cache */
    char manifest_src[1024];       /* URL or path of the manifest; "" with a local model */
    char signer[65];               /* the pinned Ed25519 key, 64 hex digits */
    char want_id[129];             /* the bootstrap's model id the manifest must name; "" when not given */
    char manifest_loaded_from[1024]; /* manifest_src of the manifest loaded now */
    sw_manifest_t *manifest;       /* the manifest in use; NULL with a local model */
    int hold_fd;                   /* sw_shards_hold while the stage serves from the cache; -1 when none */
    char serving_checksum[17];     /* the model version the child serves (manifest checksum) */
    sw_identity_t *query_identity; /* key of the directory queries (CACHE/volunteer-query.key): the node key
                                      is the stage's, and a broker takes one connection per node id */
    uint64_t next_recheck_ns;      /* when the swarm's needs and the manifest are looked at again */
    /* the stage being replaced after a move (new layers or a new version): drains, then its layers go */
    pid_t old_child;               /* 0 when none */
    int old_hold_fd;               /* its cache hold, released once it exited; -1 when none */
    int32_t old_first, old_last;   /* its layers */
    bool old_same_model;           /* same manifest version as now: trim its layers once it exited */
    bool old_termed;               /* SIGTERM sent */
    uint64_t old_term_ns;          /* SIGTERM at this time (the new stage's time to register) */
    uint64_t old_kill_ns;          /* SIGKILL after this */
};

/* ---- model --------------------------------------------------------------------------------- */

static int s_read_model(sw_volunteer_t *v, char *err, size_t errlen)
{
    sw_model_parts_t none = {.layer_begin = 0, .layer_end = 0, .embed = false, .head = false};
    char why[400];
    sw_model_t *m = sw_model_load(v->cfg.model_path, &none, why, sizeof why);
    if (!m)
        return sw_err(err, errlen, "model %s: %s", v->cfg.model_path, why);
    v->n_layer = sw_model_hparams(m)->n_layer;
    sw_model_identity(m, v->cfg.model_path, v->model_id, sizeof v->model_id, v->checksum, sizeof v->checksum);
    if (v->n_layer < 1 || v->n_layer > SW_LAYER_CHOICE_MAX_LAYERS || !(v->layer_bytes = calloc((size_t) v->n_layer, 8))) {
        sw_model_destroy(&m);
        return sw_err(err, errlen, "%s: %d layers", v->cfg.model_path, (int) v->n_layer);
    }
    const sw_gguf_t *g = sw_model_gguf(m);
    for (int64_t i = 0; i < sw_gguf_n_tensors(g); i++) {
        const sw_gguf_tensor_t *t = sw_gguf_tensor(g, i);
        int il, n = 0;
        if (sscanf(t->name, "blk.%d.%n", &il, &n) == 1 && n > 0 && il >= 0 && il < v->n_layer)
            v->layer_bytes[il] += t->nbytes;
    }
    sw_model_destroy(&m);
    return 0;
}

/* (Re)loads the manifest (pinned signer). On success the volunteer's model
 * id, checksum, layer count and per-layer bytes are the manifest's; a
 * manifest of another model id than the bootstrap's is refused. When it
 * cannot be read but an earlier one is loaded, that one stays (said). */
static int s_read_manifest(sw_volunteer_t *v, char *err, size_t errlen)
{
    char why[1024];
    sw_manifest_t *m = sw_manifest_load(v->manifest_src, v->signer, 30, why, sizeof why);
    if (!m)
        return sw_err(err, errlen, "manifest %s: %s", v->manifest_src, why);
    const int n = sw_manifest_n_layers(m);
    uint64_t *lb = NULL;
    if (v->want_id[0] && strcmp(v->want_id, sw_manifest_model_id(m))) {
        sw_err(err, errlen, "manifest %s is for model %s, the bootstrap list says %s", v->manifest_src,
               sw_manifest_model_id(m), v->want_id);
        goto fail;
    }
    if (n < 1 || n > SW_LAYER_CHOICE_MAX_LAYERS || !(lb = calloc((size_t) n, sizeof *lb))) {
        sw_err(err, errlen, "manifest %s: %d layers (1..%d served)", v->manifest_src, n, SW_LAYER_CHOICE_MAX_LAYERS);
        goto fail;
    }
    for (int i = 0; i < n; i++)
        lb[i] = sw_manifest_layer_bytes(m, i);
    if (v->manifest && !strcmp(sw_manifest_model_id(v->manifest), sw_manifest_model_id(m)) &&
        !strcmp(v->manifest_src, v->manifest_loaded_from) && sw_manifest_version(v->manifest) != sw_manifest_version(m))
        printf("swisd volunteer: the manifest moved from version %" PRId64 " to %" PRId64 " (%s)\n",
               sw_manifest_version(v->manifest), sw_manifest_version(m), sw_manifest_checksum(m));
    sw_manifest_destroy(&v->manifest);
    v->manifest = m;
    free(v->layer_bytes);
    v->layer_bytes = lb;
    v->n_layer = n;
    snprintf(v->model_id, sizeof v->model_id, "%s", sw_manifest_model_id(m));
    snprintf(v->checksum, sizeof v->checksum, "%s", sw_manifest_checksum(m));
    snprintf(v->manifest_loaded_from, sizeof v->manifest_loaded_from, "%s", v->manifest_src);
    return 0;
fail:
    sw_manifest_destroy(&m);
    return -1;
}

/* Fetches layers first..last of the manifest's model into the cache (only
 * their tensors and the header, each checked against the manifest) and holds
 * the cached copy (no eviction) until the stage stops. Returns 0 with path
 * set, or -1 with a reason (nothing is held then). */
static int s_fetch(sw_volunteer_t *v, char *path, size_t pathlen, char *err, size_t errlen)
{
    sw_shard_fetch_stats_t st = {0};
    /* the volunteer's cap is in kbit/s, the fetcher's in kB/s: round up, so a cap never becomes 0 (none) */
    const sw_shard_fetch_opts_t o = {.cache_dir = v->cfg.cache_dir, .max_disk_bytes = v->cfg.max_disk,
                                     .download_kbps = (uint32_t) (((uint64_t) v->cfg.download_kbps + 7) / 8),
                                     .stats = &st};
    uint64_t want = 0;
    for (int32_t l = v->first; l <= v->last; l++)
        want += v->layer_bytes[l];
    const uint64_t t0 = sw_now_ns();
    printf("swisd volunteer: fetching layers %d-%d of %s version %" PRId64 " (%" PRIu64 " bytes of layer tensors) "
           "from %s into %s\n", (int) v->first, (int) v->last, v->model_id, sw_manifest_version(v->manifest), want,
           sw_manifest_url(v->manifest), v->cfg.cache_dir);
    fflush(stdout);
    if (sw_shards_fetch(v->manifest, v->first, v->last, &o, path, pathlen, err, errlen) != 0)
        return -1;
    printf("swisd volunteer: fetched layers %d-%d of %s: %" PRIu64 " bytes received in %" PRIu64 " ranges, %" PRIu64
           " hash failures, %" PRIu64 " resumes, %" PRIu64 " bytes evicted, %.3f s (%s)\n", (int) v->first,
           (int) v->last, v->model_id, st.bytes_received, st.ranges, st.hash_failures, st.resumes, st.evicted_bytes,
           (double) (sw_now_ns() - t0) / 1e9, path);
    fflush(stdout);
    if (v->hold_fd >= 0)
        close(v->hold_fd);
    if ((v->hold_fd = sw_shards_hold(v->manifest, v->cfg.cache_dir, err, errlen)) < 0)
        return -1;
    return 0;
}

/* ---- the swarm's needs ---------------------------------------------------------------------- */

/* Asks the broker's directory for the stages of our model and chooses the
 * layers. Returns 0 with v->first/last set, or -1 with a reason. */
static int s_choose(sw_volunteer_t *v, uint64_t weights_cap, sw_layer_pick_t *pick_out, bool *mine_covered,
                    char *err, size_t errlen)
{
    const char *self_id = v->cfg.identity ? sw_identity_id(v->cfg.identity) : NULL;
    sw_broker_client_config_t qc = {.endpoint = v->broker, .role = SWISD__V1__ROLE__ROLE_CLIENT,
                                    .identity = v->query_identity ? v->query_identity : v->cfg.identity,
                                    .region = v->region[0] ? v->region : NULL};
    sw_broker_client_t *q = sw_broker_client_new(&qc, err, errlen);
    if (!q)
        return -1;
    zpoller_t *p = zpoller_new(sw_broker_client_sock(q), NULL);
    const uint64_t deadline = sw_now_ns() + (uint64_t) S_DIRECTORY_MS * 1000000ull;
    bool asked = false;
    int rc = sw_err(err, errlen, "the broker %s gave no directory within %d ms", v->broker, S_DIRECTORY_MS);
    while (p && sw_now_ns() < deadline && !zsys_interrupted) {
        if (sw_broker_client_registered(q) && !asked) {
            Swisd__V1__DirectoryQuery dq = SWISD__V1__DIRECTORY_QUERY__INIT;
            dq.checksum = v->checksum;
            Swisd__V1__Body b = SWISD__V1__BODY__INIT;
            b.msg_case = SWISD__V1__BODY__MSG_DIRECTORY_QUERY;
            b.directory_query = &dq;
            asked = sw_broker_client_send(q, "", &b) == 0;
        }
        if (zpoller_wait(p, 50)) {
            sw_wire_msg_t m;
            if (sw_broker_client_recv(q, &m) == 1 && m.body->msg_case == SWISD__V1__BODY__MSG_DIRECTORY_REPLY) {
                const Swisd__V1__DirectoryReply *r = m.body->directory_reply;
                sw_layer_host_t *hosts = calloc(r->n_stages + 1, sizeof *hosts);
                size_t n = 0;
                for (size_t i = 0; hosts && i < r->n_stages; i++) {
                    const Swisd__V1__StageInfo *s = r->stages[i];
                    /* a draining host is leaving: its layers count as uncovered */
                    if (!s->layers || !s->model || !s->model->checksum || strcmp(s->model->checksum, v->checksum) ||
                        (s->load && s->load->draining))
                        continue;
                    /* our own stage (same key, so same node id) does not count: the question is what the
                       swarm needs without us */
                    if (self_id && s->node_id && !strcmp(s->node_id, self_id))
                        continue;
                    if (s->layers->begin >= s->layers->end || s->layers->end > (uint32_t) v->n_layer) {
                        sw_log(SW_LOG_WARN, "volunteer: ignored stage %.16s: layers [%u, %u) do not fit %s's %d",
                               s->node_id ? s->node_id : "?", s->layers->begin, s->layers->end, v->model_id,
                               (int) v->n_layer);
                        continue;
                    }
                    hosts[n++] = (sw_layer_host_t){.begin = (int32_t) s->layers->begin, .end = (int32_t) s->layers->end,
                                                   .busy = s->load ? s->load->busy : 0};
                }
                sw_layer_pick_t pick;
                if (!hosts)
                    rc = sw_err(err, errlen, "out of memory");
                else if (sw_layer_choose(v->n_layer, v->layer_bytes, hosts, n, weights_cap, &pick) != 0)
                    rc = sw_err(err, errlen, "not even one layer of %s fits in %llu MiB", v->model_id,
                                (unsigned long long) (weights_cap >> 20));
                else {
                    *pick_out = pick;
                    /* do the others cover every layer we serve now? (then leaving them opens no gap) */
                    bool covered = v->child != 0;
                    for (int32_t l = v->first; covered && l <= v->last; l++) {
                        bool held = false;
                        for (size_t k = 0; k < n && !held; k++)
                            held = hosts[k].begin <= l && l < hosts[k].end;
                        covered = held;
                    }
                    *mine_covered = covered;
                    sw_log(SW_LOG_INFO, "volunteer: %zu other hosts of %s hold layers; would take %d-%d (%d of them "
                           "without a host)", n, v->model_id, (int) pick.begin, (int) pick.end - 1,
                           (int) pick.uncovered);
                    rc = 0;
                }
                free(hosts);
                sw_wire_msg_free(&m);
                break;
            }
            sw_wire_msg_free(&m);
        }
        sw_broker_client_tick(q);
    }
    zpoller_destroy(&p);
    sw_broker_client_destroy(&q);
    return rc;
}

/* Points v at bootstrap model i (its manifest, signer and id). */
static void s_use_model(sw_volunteer_t *v, size_t i)
{
    const sw_bootstrap_model_t *bm = sw_bootstrap_model(v->boot, i);
    snprintf(v->manifest_src, sizeof v->manifest_src, "%s", bm->manifest);
    snprintf(v->signer, sizeof v->signer, "%s", v->cfg.manifest_key ? v->cfg.manifest_key : bm->signer);
    snprintf(v->want_id, sizeof v->want_id, "%s", bm->id);
}

/* With several models in the bootstrap list (and no --manifest): the one the
 * swarm needs most, by the layers the volunteer would take of each: the most
 * without a host first; on a tie the first listed. Each candidate's manifest
 * is read (signature checked) and the directory asked for its stages; a
 * candidate that cannot be read or queried is skipped (said). Leaves v on
 * the chosen model with its manifest loaded; -1 when none can be served. */
static int s_choose_model(sw_volunteer_t *v, uint64_t weights_cap, char *err, size_t errlen)
{
    size_t n_cand = 0;
    for (size_t i = 0; v->boot && i < sw_bootstrap_n_models(v->boot); i++)
        n_cand += sw_bootstrap_model(v->boot, i)->manifest[0] && sw_bootstrap_model(v->boot, i)->signer[0];
    if (v->cfg.manifest || n_cand < 2)
        return 0;
    long best = -1;
    int32_t best_uncovered = -1;
    char why[1024];
    for (size_t i = 0; i < sw_bootstrap_n_models(v->boot); i++) {
        const sw_bootstrap_model_t *bm = sw_bootstrap_model(v->boot, i);
        if (!bm->manifest[0] || !bm->signer[0])
            continue;
        s_use_model(v, i);
        sw_layer_pick_t pick;
        bool covered;
        if (s_read_manifest(v, why, sizeof why) != 0 || s_choose(v, weights_cap, &pick, &covered, why, sizeof why)) {
            fprintf(stderr, "swisd volunteer: model %s skipped: %s\n", bm->id, why);
            continue;
        }
        printf("swisd volunteer: model %s (%s): would take layers %d-%d, %d of them without a host\n", bm->id,
               v->checksum, (int) pick.begin, (int) pick.end - 1, (int) pick.uncovered);
        if (pick.uncovered > best_uncovered)
            best = (long) i, best_uncovered = pick.uncovered;
    }
    if (best < 0)
        return sw_err(err, errlen, "none of the bootstrap list's %zu models can be served (their reasons above)",
                      n_cand);
    s_use_model(v, (size_t) best);
    if (s_read_manifest(v, err, errlen) != 0)
        return -1;
    printf("swisd volunteer: serving model %s, the one the swarm needs most\n", v->model_id);
    fflush(stdout);
    return 0;
}

/* ---- the stage process ---------------------------------------------------------------------- */

static int s_spawn(sw_volunteer_t *v, const char *model_file, char *err, size_t errlen)
{
    char layers[32], threads[16], kv[32], up[16], drain[16], hb[16];
    snprintf(layers, sizeof layers, "%d-%d", (int) v->first, (int) v->last);
    snprintf(threads, sizeof threads, "%d", v->cfg.threads);
    uint64_t kv_mib = (v->cfg.max_mem / 4) >> 20; /* a quarter of the cap for KV caches */
    snprintf(kv, sizeof kv, "%llu", (unsigned long long) (kv_mib < 16 ? 16 : kv_mib));
    snprintf(up, sizeof up, "%u", v->cfg.upload_kbps);
    snprintf(drain, sizeof drain, "%d", v->cfg.drain_s);
    snprintf(hb, sizeof hb, "%d", v->cfg.heartbeat_ms);
    const char *argv[32];
    int n = 0;
    argv[n++] = v->cfg.stage_exe;
    argv[n++] = "--broker", argv[n++] = v->broker;
    argv[n++] = "--model", argv[n++] = model_file;
    argv[n++] = "--layers", argv[n++] = layers;
    argv[n++] = "--threads", argv[n++] = threads;
    argv[n++] = "--kv-mem", argv[n++] = kv;
    argv[n++] = "--upload-kbps", argv[n++] = up;
    argv[n++] = "--drain-s", argv[n++] = drain;
    if (v->cfg.heartbeat_ms > 0)
        argv[n++] = "--heartbeat-ms", argv[n++] = hb;
    if (!v->cfg.fetch && !v->manifest) /* the whole model is here: the stage itself moves to cover a new gap */
        argv[n++] = "--rebalance";
    if (v->cfg.key_path)
        argv[n++] = "--key", argv[n++] = v->cfg.key_path;
    else
        argv[n++] = "--insecure";
    if (v->region[0])
        argv[n++] = "--region", argv[n++] = v->region;
    if (v->cfg.name)
        argv[n++] = "--name", argv[n++] = v->cfg.name;
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return sw_err(err, errlen, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* the stage goes when we go (a SIGKILLed volunteer leaves no orphan serving) */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        setpgid(0, 0); /* a terminal's Ctrl-C reaches the volunteer, which asks the stage itself */
        if (v->cfg.nice > 0)
            setpriority(PRIO_PROCESS, 0, v->cfg.nice);
        execv(v->cfg.stage_exe, (char *const *) argv);
        fprintf(stderr, "swisd volunteer: cannot run %s: %s\n", v->cfg.stage_exe, strerror(errno));
        _exit(127);
    }
    v->child = pid;
    v->draining = false;
    snprintf(v->serving_checksum, sizeof v->serving_checksum, "%s", v->checksum);
    v->next_recheck_ns = sw_now_ns() + (uint64_t) v->cfg.recheck_s * 1000000000ull;
    printf("swisd volunteer: serving layers %s of %s via %s (stage pid %d, %d threads, nice %d, upload cap %u kbit/s)\n",
           layers, v->model_id, v->broker, (int) pid, v->cfg.threads, v->cfg.nice, v->cfg.upload_kbps);
    fflush(stdout);
    return 0;
}

/* Broker, layers, weights, stage (not when *stop was set meanwhile). Returns
 * 0 or -1 with a reason. */
static int s_start(sw_volunteer_t *v, volatile int *stop, char *err, size_t errlen)
{
    if (v->boot) {
        int best = sw_bootstrap_pick(v->boot, v->cfg.identity, 3000, err, errlen);
        if (best < 0)
            return -1;
        const sw_bootstrap_broker_t *b = sw_bootstrap_broker(v->boot, (size_t) best);
        snprintf(v->broker, sizeof v->broker, "%s", b->endpoint);
        if (!v->cfg.region)
            snprintf(v->region, sizeof v->region, "%s", b->region);
        for (size_t i = 0; i < sw_bootstrap_n_brokers(v->boot); i++) {
            const sw_bootstrap_broker_t *o = sw_bootstrap_broker(v->boot, i);
            sw_log(SW_LOG_INFO, "volunteer: broker %s (%s): %s", o->endpoint, o->region[0] ? o->region : "-",
                   o->rtt_ms >= 0 ? "answered" : "no answer");
            if (o->rtt_ms >= 0)
                printf("swisd volunteer: broker %s answered in %.1f ms%s\n", o->endpoint, o->rtt_ms,
                       (int) i == best ? " (chosen)" : "");
            else
                printf("swisd volunteer: broker %s did not answer\n", o->endpoint);
        }
    }
    if (v->manifest_src[0]) { /* a new release since? (an unreadable manifest keeps the one loaded) */
        char why[1024];
        if (s_read_manifest(v, why, sizeof why) != 0)
            fprintf(stderr, "swisd volunteer: %s; keeping version %" PRId64 "\n", why,
                    sw_manifest_version(v->manifest));
    }
    const uint64_t kv = v->cfg.max_mem / 4;
    if (v->manifest && s_choose_model(v, v->cfg.max_mem - kv, err, errlen) != 0)
        return -1;
    sw_layer_pick_t pick;
    bool covered;
    if (s_choose(v, v->cfg.max_mem - kv, &pick, &covered, err, errlen) != 0)
        return -1;
    v->first = pick.begin;
    v->last = pick.end - 1;
    char path[4096];
    if (v->cfg.fetch) {
        if (v->cfg.fetch(v->cfg.fetch_arg, v->model_id, v->first, v->last, path, sizeof path, err, errlen) != 0)
            return -1;
    } else if (v->manifest) {
        if (s_fetch(v, path, sizeof path, err, errlen) != 0)
            return -1;
    } else {
        snprintf(path, sizeof path, "%s", v->cfg.model_path);
    }
    if (stop && *stop)
        return sw_err(err, errlen, "asked to stop");
    return s_spawn(v, path, err, errlen);
}

/* Asks the stage to drain (once); SIGKILL once its time is up. */
static void s_drain(sw_volunteer_t *v, const char *why)
{
    if (!v->child)
        return;
    const uint64_t now = sw_now_ns();
    if (!v->draining) {
        printf("swisd volunteer: draining the stage (%s)\n", why);
        fflush(stdout);
        kill(v->child, SIGTERM);
        v->draining = true;
        v->drain_sent_ns = now;
        v->drain_deadline_ns = now + (uint64_t) (v->cfg.drain_s + 10) * 1000000000ull;
    } else if (now >= v->drain_deadline_ns) {
        sw_log(SW_LOG_WARN, "volunteer: the stage did not exit %d s after its drain began; killing it",
               v->cfg.drain_s + 10);
        kill(v->child, SIGKILL);
        v->drain_deadline_ns = UINT64_MAX;
    }
}

/* Reaps the stage when it exited. Returns true when it did (v->child = 0). */
static bool s_reap(sw_volunteer_t *v)
{
    int status;
    if (!v->child || waitpid(v->child, &status, WNOHANG) != v->child)
        return false;
    if (WIFEXITED(status))
        printf("swisd volunteer: the stage exited with status %d%s\n", WEXITSTATUS(status),
               v->draining ? " after draining" : "");
    else
        printf("swisd volunteer: the stage ended by signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    fflush(stdout);
    v->child = 0;
    if (v->hold_fd >= 0) { /* nothing serves from the cache now: it may be evicted */
        close(v->hold_fd);
        v->hold_fd = -1;
    }
    return true;
}

/* ---- moving while serving (fetched shards only) ------------------------------------------------ */

/* Looks at the manifest and the swarm's needs again. Moves when the manifest
 * has a new version, or when layers have no host and the others cover every
 * layer we serve: fetches the new range (the old stage keeps serving
 * meanwhile), starts a stage on it, and has the old one drain
 * S_HANDOVER_MS later (gateways move its sessions to the new one). */
static void s_recheck(sw_volunteer_t *v)
{
    char err[1024];
    if (s_read_manifest(v, err, sizeof err) != 0)
        fprintf(stderr, "swisd volunteer: re-check: %s; keeping version %" PRId64 "\n", err,
                sw_manifest_version(v->manifest));
    const bool new_version = strcmp(v->serving_checksum, v->checksum) != 0;
    sw_layer_pick_t pick;
    bool covered = false;
    const uint64_t kv = v->cfg.max_mem / 4;
    if (s_choose(v, v->cfg.max_mem - kv, &pick, &covered, err, sizeof err) != 0) {
        sw_log(SW_LOG_WARN, "volunteer: re-check: %s", err);
        return;
    }
    const bool same = pick.begin == v->first && pick.end - 1 == v->last;
    if (!new_version && (same || pick.uncovered == 0 || !covered))
        return;
    const pid_t old = v->child;
    const int old_fd = v->hold_fd;
    const int32_t of = v->first, ol = v->last;
    if (new_version)
        printf("swisd volunteer: moving to version %" PRId64 " of %s: layers %d-%d\n",
               sw_manifest_version(v->manifest), v->model_id, (int) pick.begin, (int) pick.end - 1);
    else
        printf("swisd volunteer: the swarm's needs changed: layers %d-%d lack a host (%d of them) and the others "
               "hold %d-%d: moving\n", (int) pick.begin, (int) pick.end - 1, (int) pick.uncovered, (int) of, (int) ol);
    fflush(stdout);
    v->first = pick.begin;
    v->last = pick.end - 1;
    v->hold_fd = -1;
    v->child = 0;
    char path[4096];
    if (s_fetch(v, path, sizeof path, err, sizeof err) != 0 || s_spawn(v, path, err, sizeof err) != 0) {
        fprintf(stderr, "swisd volunteer: cannot move: %s; staying on layers %d-%d\n", err, (int) of, (int) ol);
        if (v->hold_fd >= 0)
            close(v->hold_fd);
        v->child = old;
        v->hold_fd = old_fd;
        v->first = of;
        v->last = ol;
        v->next_recheck_ns = sw_now_ns() + (uint64_t) v->cfg.recheck_s * 1000000000ull;
        return;
    }
    v->old_child = old;
    v->old_hold_fd = old_fd;
    v->old_first = of;
    v->old_last = ol;
    v->old_same_model = !new_version;
    v->old_termed = false;
    v->old_term_ns = sw_now_ns() + (uint64_t) S_HANDOVER_MS * 1000000ull;
    v->old_kill_ns = UINT64_MAX;
}

/* The replaced stage: SIGTERM after the hand-over time (at once when
 * `now_too`), SIGKILL after its drain time-out; once it exited, releases its
 * hold and frees its layers' tensors (same version only). */
static void s_tend_old(sw_volunteer_t *v, bool now_too)
{
    if (!v->old_child)
        return;
    const uint64_t now = sw_now_ns();
    int status;
    if (waitpid(v->old_child, &status, WNOHANG) == v->old_child) {
        printf("swisd volunteer: the stage on layers %d-%d exited with status %d after draining\n",
               (int) v->old_first, (int) v->old_last, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        v->old_child = 0;
        if (v->old_hold_fd >= 0)
            close(v->old_hold_fd);
        v->old_hold_fd = -1;
        if (v->old_same_model && v->manifest) {
            char err[512];
            const sw_shard_fetch_opts_t o = {.cache_dir = v->cfg.cache_dir};
            const int64_t freed = sw_shards_trim(v->manifest, v->first, v->last, &o, err, sizeof err);
            if (freed < 0)
                fprintf(stderr, "swisd volunteer: trim: %s\n", err);
            else
                printf("swisd volunteer: freed %" PRId64 " bytes of layers outside %d-%d from the cache\n", freed,
                       (int) v->first, (int) v->last);
        }
        fflush(stdout);
        return;
    }
    if (!v->old_termed && (now_too || now >= v->old_term_ns)) {
        printf("swisd volunteer: draining the stage on layers %d-%d (moved)\n", (int) v->old_first,
               (int) v->old_last);
        fflush(stdout);
        kill(v->old_child, SIGTERM);
        v->old_termed = true;
        v->old_kill_ns = now + (uint64_t) (v->cfg.drain_s + 10) * 1000000000ull;
    } else if (v->old_termed && now >= v->old_kill_ns) {
        kill(v->old_child, SIGKILL);
        v->old_kill_ns = UINT64_MAX;
    }
}

/* ---- public ----------------------------------------------------------------------------------- */

sw_volunteer_t *sw_volunteer_new(const sw_volunteer_config_t *cfg, char *err, size_t errlen)
{
    if (!cfg->broker && !cfg->bootstrap) {
        sw_err(err, errlen, "no broker: give a bootstrap file or URL, or --broker");
        return NULL;
    }
    if (!cfg->stage_exe || access(cfg->stage_exe, X_OK) != 0) {
        sw_err(err, errlen, "swisd-stage not found (%s)", cfg->stage_exe ? cfg->stage_exe : "none");
        return NULL;
    }
    sw_volunteer_t *v = calloc(1, sizeof *v);
    if (!v) {
        sw_err(err, errlen, "out of memory");
        return NULL;
    }
    v->cfg = *cfg;
    v->hold_fd = -1;
    v->old_hold_fd = -1;
    if (v->cfg.recheck_s <= 0)
        v->cfg.recheck_s = 300;
    if (v->cfg.threads < 1)
        v->cfg.threads = 1;
    if (v->cfg.sample_ms <= 0)
        v->cfg.sample_ms = 1000;
    if (cfg->region)
        snprintf(v->region, sizeof v->region, "%s", cfg->region);
    if (cfg->broker)
        snprintf(v->broker, sizeof v->broker, "%s", cfg->broker);
    else if (!(v->boot = sw_bootstrap_load(cfg->bootstrap, 10, err, errlen)))
        goto fail;
    if (cfg->model_path) {
        if (s_read_model(v, err, errlen) != 0)
            goto fail;
        return v;
    }
    /* by URL: --manifest, else the bootstrap list's first model with a manifest and a signer */
    if (cfg->manifest) {
        snprintf(v->manifest_src, sizeof v->manifest_src, "%s", cfg->manifest);
        snprintf(v->signer, sizeof v->signer, "%s", cfg->manifest_key ? cfg->manifest_key : "");
    }
    for (size_t i = 0; !v->manifest_src[0] && v->boot && i < sw_bootstrap_n_models(v->boot); i++) {
        const sw_bootstrap_model_t *bm = sw_bootstrap_model(v->boot, i);
        if (!bm->manifest[0] || !bm->signer[0])
            continue;
        snprintf(v->manifest_src, sizeof v->manifest_src, "%s", bm->manifest);
        snprintf(v->signer, sizeof v->signer, "%s", cfg->manifest_key ? cfg->manifest_key : bm->signer);
        snprintf(v->want_id, sizeof v->want_id, "%s", bm->id);
    }
    if (!v->manifest_src[0]) {
        sw_err(err, errlen, "no model: give --model FILE, --manifest URL --manifest-key HEX, or a bootstrap list "
               "with a model's \"manifest\" and \"signer\" (docs/volunteer.md)");
        goto fail;
    }
    if (!v->signer[0]) {
        sw_err(err, errlen, "no pinned manifest key for %s: give --manifest-key HEX (swisd manifest --show-signer)",
               v->manifest_src);
        goto fail;
    }
    if (!cfg->cache_dir) {
        sw_err(err, errlen, "no cache folder for the model's shards");
        goto fail;
    }
    if (s_read_manifest(v, err, errlen) != 0)
        goto fail;
    if (cfg->identity) { /* for the re-checks while our stage is registered under the node key */
        char qpath[4096], why[512] = "";
        snprintf(qpath, sizeof qpath, "%s/volunteer-query.key", cfg->cache_dir);
        if (mkdir(cfg->cache_dir, 0700) != 0 && errno != EEXIST)
            snprintf(why, sizeof why, "%s", strerror(errno));
        else if (access(qpath, R_OK) == 0)
            v->query_identity = sw_identity_load(qpath, why, sizeof why);
        else
            v->query_identity = sw_identity_generate(qpath, true, why, sizeof why);
        if (!v->query_identity)
            fprintf(stderr, "swisd volunteer: no key for re-checks (%s: %s): the layers are chosen again only at "
                    "each start\n", qpath, why);
    }
    printf("swisd volunteer: model %s version %" PRId64 " (%d layers, %s), manifest %s signed by the pinned key\n",
           v->model_id, sw_manifest_version(v->manifest), (int) v->n_layer, v->checksum, v->manifest_src);
    fflush(stdout);
    return v;
fail:
    sw_volunteer_destroy(&v);
    return NULL;
}

void sw_volunteer_destroy(sw_volunteer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sw_volunteer_t *v = *self_p;
    if (v->old_child) {
        kill(v->old_child, SIGTERM);
        for (int i = 0; i < (v->cfg.drain_s + 10) * 10 && waitpid(v->old_child, NULL, WNOHANG) != v->old_child; i++)
            usleep(100000);
        kill(v->old_child, SIGKILL);
        waitpid(v->old_child, NULL, WNOHANG);
        v->old_child = 0;
    }
    if (v->old_hold_fd >= 0)
        close(v->old_hold_fd);
    if (v->child) {
        kill(v->child, SIGTERM);
        for (int i = 0; i < (v->cfg.drain_s + 10) * 10 && !s_reap(v); i++)
            usleep(100000);
        if (v->child) {
            kill(v->child, SIGKILL);
            waitpid(v->child, NULL, 0);
        }
    }
    if (v->hold_fd >= 0)
        close(v->hold_fd);
    sw_manifest_destroy(&v->manifest);
    sw_identity_destroy(&v->query_identity);
    sw_bootstrap_destroy(&v->boot);
    free(v->layer_bytes);
    free(v);
    *self_p = NULL;
}

static int s_minute_now(void)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    return tm.tm_hour * 60 + tm.tm_min;
}

int sw_volunteer_run(sw_volunteer_t *v, volatile int *stop)
{
    const long clk = sysconf(_SC_CLK_TCK);
    sw_cpu_snapshot_t prev;
    bool have_prev = sw_cpu_snapshot(NULL, 0, &prev) == 0;
    uint64_t next_start_ns = 0, above_ms = 0, below_ms = 0;
    bool owner_busy = false, started_once = false, told_hours = false, forced = false;
    char err[512];
    for (;;) {
        const uint64_t now = sw_now_ns();
        if (s_reap(v) && !v->draining) /* it ended on its own: start again, but not at once */
            next_start_ns = now + (uint64_t) S_RESTART_MS * 1000000ull;
        s_tend_old(v, stop && *stop);
        if (stop && *stop) {
            if (!v->child && !v->old_child)
                break;
            if (!v->child) {
                nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 100000000L}, NULL);
                continue;
            }
            s_drain(v, "asked to stop");
            /* asked twice: the stage stops at once too (its own rule: a second signal 1 s or more after the first) */
            if (zsys_interrupted && !forced && v->draining && now - v->drain_sent_ns >= 1100000000ull) {
                printf("swisd volunteer: asked again: stopping the stage now\n");
                fflush(stdout);
                kill(v->child, SIGTERM); /* its second signal, >= 1 s after the first */
                forced = true;
            }
        } else {
            /* the owner's load, other than ours (the stage's pid counted as ours) */
            sw_cpu_snapshot_t cur;
            const pid_t pids[1] = {v->child};
            if (sw_cpu_snapshot(pids, v->child ? 1 : 0, &cur) == 0) {
                if (have_prev && v->cfg.pause_load > 0) {
                    const double load = sw_owner_load_between(&prev, &cur, clk);
                    const uint64_t dt = (cur.at_ns - prev.at_ns) / 1000000;
                    above_ms = load > v->cfg.pause_load ? above_ms + dt : 0;
                    below_ms = load < v->cfg.pause_load / 2 ? below_ms + dt : 0;
                    if (!owner_busy && above_ms >= (uint64_t) v->cfg.pause_after_s * 1000) {
                        owner_busy = true;
                        printf("swisd volunteer: the machine's owner needs it (other processes' load %.2f > %.2f "
                               "for %d s): pausing\n", load, v->cfg.pause_load, v->cfg.pause_after_s);
                        fflush(stdout);
                    } else if (owner_busy && below_ms >= (uint64_t) v->cfg.resume_after_s * 1000) {
                        owner_busy = false;
                        printf("swisd volunteer: other processes' load %.2f stayed below %.2f for %d s: resuming\n",
                               load, v->cfg.pause_load / 2, v->cfg.resume_after_s);
                        fflush(stdout);
                    }
                }
                prev = cur;
                have_prev = true;
            }
            const int minute = s_minute_now();
            const bool in_hours = sw_schedule_contains(&v->cfg.schedule, minute);
            if (!in_hours && !v->child && !told_hours) {
                const int wait = sw_schedule_wait_min(&v->cfg.schedule, minute);
                printf("swisd volunteer: outside its schedule (%02d:%02d-%02d:%02d); serving again in %d h %02d min\n",
                       v->cfg.schedule.start_min / 60, v->cfg.schedule.start_min % 60, v->cfg.schedule.end_min / 60,
                       v->cfg.schedule.end_min % 60, wait / 60, wait % 60);
                fflush(stdout);
            }
            told_hours = !in_hours;
            if (v->child && !in_hours)
                s_drain(v, "outside its schedule");
            else if (v->child && owner_busy)
                s_drain(v, "the owner's load");
            else if (v->child && v->draining)
                s_drain(v, "");
            if (v->child && !v->draining && !v->old_child && v->manifest && (v->query_identity || !v->cfg.identity) &&
                now >= v->next_recheck_ns) {
                s_recheck(v);
                v->next_recheck_ns = sw_now_ns() + (uint64_t) v->cfg.recheck_s * 1000000000ull;
            }
            if (!v->child && in_hours && !owner_busy && now >= next_start_ns) {
                if (s_start(v, stop, err, sizeof err) != 0) {
                    fprintf(stderr, "swisd volunteer: cannot start yet: %s (again in %d s)\n", err, S_RETRY_MS / 1000);
                    next_start_ns = now + (uint64_t) S_RETRY_MS * 1000000ull;
                } else {
                    started_once = true;
                    next_start_ns = now + (uint64_t) S_RESTART_MS * 1000000ull; /* if it dies at once */
                }
            }
        }
        /* sleep one sample; a signal ends the sleep early (no SA_RESTART) */
        struct timespec ts = {.tv_sec = v->cfg.sample_ms / 1000, .tv_nsec = (long) (v->cfg.sample_ms % 1000) * 1000000L};
        if (stop && *stop)
            ts = (struct timespec){.tv_sec = 0, .tv_nsec = 100000000L};
        nanosleep(&ts, NULL);
    }
    printf("swisd volunteer: stopped%s\n", started_once ? " (the stage drained)" : "");
    fflush(stdout);
    return 0;
}
