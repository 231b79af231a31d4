/*  liar_stage.c: a lying stage, for tests of audits (issue 12; docs/security.md).
 *  A test program, never installed: it runs the real stage (stage/sw_stage)
 *  on the honest model file, so it registers exactly as an honest
 *  swisd-stage for that file (its name, checksum and shapes), and changes
 *  the rows it sends on through the stage's test hook (sw_stage_config_t
 *  .test_hook), after its blocks ran and before the rows are encoded.
 *
 *  usage: liar_stage --lie MODE [--lie-rate P] [--lie-after N] [--lie-seed S]
 *                    --broker EP --model HONEST.gguf --layers A-B [--threads N] [--region R]
 *                    [--heartbeat-ms N] [--key PATH | --insecure [--id ID]] [--name NAME]
 *    MODE  none              honest (the control)
 *          noise             each output row replaced by Gaussian noise with the row's RMS
 *          identity          returns its input rows: its blocks skipped
 *          weights:FILE      rows computed with FILE's weights (another GGUF of the same shapes,
 *                            e.g. `swisd synth` or another seed)
 *          precision:FILE    rows computed with FILE, the same model at a lower precision (e.g. a
 *                            q4_0 copy from `swisd quantize`) while announcing HONEST's identity
 *    --lie-rate P    lie on each request with probability P (0..1, default 1), drawn from a
 *                    generator seeded by --lie-seed (default 1): the same seed, the same choices
 *    --lie-after N   honest for the first N forward requests (admission probes count), then lies
 *  With weights: and precision: the other model runs every request (its own KV cache per session
 *  stays consistent whatever is sent), and its rows replace the honest ones when it lies.
 *  Prints "liar_stage: ID serving layers A-B (lie MODE)" once registered-to-be (as swisd-stage's
 *  ready line), and at exit "liar_stage: N requests, M lies".
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_daemon.h"
#include "sw_daemon_keys.h"
#include "sw_model.h"
#include "sw_opt.h"
#include "sw_session_cache.h"
#include "sw_stage.h"

static volatile int s_stop = 0;

typedef enum { LIE_NONE, LIE_NOISE, LIE_IDENTITY, LIE_MODEL } lie_mode_t;

typedef struct {
    lie_mode_t mode;
    const char *mode_text;       /* as given */
    float rate;                  /* probability of lying on a request */
    uint64_t after;              /* honest requests first */
    uint64_t rng;                /* splitmix64 state */
    uint64_t requests, lies;
    sw_model_t *other;           /* LIE_MODEL: the weights lied with, layers of the stage only */
    sw_session_cache_t *cache;   /* LIE_MODEL: its KV caches, one per session */
    sw_exec_t *ex;               /* LIE_MODEL: its compute pool */
    float *buf;                  /* LIE_MODEL: (n_tok, n_embd) rows computed with `other` */
    size_t buf_len;              /* floats in buf */
} liar_t;

static uint64_t s_next(liar_t *l)
{
    uint64_t z = (l->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in (0, 1) */
static double s_uniform(liar_t *l)
{
    return ((double) (s_next(l) >> 11) + 0.5) / 9007199254740992.0;
}

/* Standard normal (Box-Muller). */
static double s_gauss(liar_t *l)
{
    return sqrt(-2.0 * log(s_uniform(l))) * cos(6.283185307179586 * s_uniform(l));
}

/* The other model's rows for this request into l->buf (its own KV cache
 * for the session). Returns 0, or -1 when it cannot (cache evicted
 * underneath: then this request is answered honestly). */
static int s_other_rows(liar_t *l, const sw_stage_test_rows_t *r)
{
    const size_t n = (size_t) r->n_tok * (size_t) r->n_embd;
    if (n > l->buf_len) {
        float *b = realloc(l->buf, n * sizeof *b);
        if (!b)
            return -1;
        l->buf = b, l->buf_len = n;
    }
    sw_session_t *s = sw_session_cache_find(l->cache, r->session_id);
    if (!s && !(s = sw_session_cache_create(l->cache, r->session_id)))
        return -1;
    if (sw_kv_n_past(s->kv) < (int32_t) r->pos)
        return -1;
    memcpy(l->buf, r->in, n * sizeof *l->buf);
    sw_seq_t seq = {.kv = s->kv, .pos = (int32_t) r->pos, .n_tok = r->n_tok, .hidden = l->buf};
    char err[256];
    const int rc = sw_model_forward(l->ex, l->other, r->layer_a, r->layer_b, &seq, 1, err, sizeof err);
    if (rc != 0)
        sw_log(SW_LOG_WARN, "liar_stage: the other model failed: %s", err);
    if (!strncmp(r->session_id, "probe-", 6))
        sw_session_cache_release(l->cache, r->session_id); /* one step each */
    sw_session_cache_expire(l->cache, 600000);
    return rc;
}

static void s_hook(void *arg, const sw_stage_test_rows_t *r)
{
    liar_t *l = arg;
    l->requests++;
    const bool other_ok = l->mode == LIE_MODEL && s_other_rows(l, r) == 0;
    const bool lie = l->mode != LIE_NONE && l->requests > l->after && (l->rate >= 1.0f || s_uniform(l) < l->rate);
    if (!lie || (l->mode == LIE_MODEL && !other_ok))
        return;
    l->lies++;
    const size_t n = (size_t) r->n_tok * (size_t) r->n_embd;
    if (l->mode == LIE_IDENTITY) {
        memcpy(r->out, r->in, n * sizeof *r->out);
    } else if (l->mode == LIE_MODEL) {
        memcpy(r->out, l->buf, n * sizeof *r->out);
    } else { /* noise with each row's RMS */
        for (int32_t t = 0; t < r->n_tok; t++) {
            float *row = r->out + (size_t) t * (size_t) r->n_embd;
            double ss = 0;
            for (int32_t i = 0; i < r->n_embd; i++)
                ss += (double) row[i] * row[i];
            const double rms = sqrt(ss / r->n_embd);
            for (int32_t i = 0; i < r->n_embd; i++)
                row[i] = (float) (rms * s_gauss(l));
        }
    }
    sw_log(SW_LOG_DEBUG, "liar_stage: lied on request %llu (session %.16s, pos %u, %d rows)",
           (unsigned long long) l->requests, r->session_id, r->pos, (int) r->n_tok);
}

/* Loads FILE's layers [a, b) and checks its shapes against the honest file's. */
static int s_load_other(liar_t *l, const char *file, const char *honest, int32_t a, int32_t b, int threads)
{
    char err[512];
    sw_model_parts_t none = {.layer_begin = 0, .layer_end = 0};
    sw_model_t *h = sw_model_load(honest, &none, err, sizeof err);
    if (!h) {
        fprintf(stderr, "liar_stage: %s: %s\n", honest, err);
        return -1;
    }
    sw_model_parts_t parts = {.layer_begin = a, .layer_end = b};
    l->other = sw_model_load(file, &parts, err, sizeof err);
    if (!l->other) {
        fprintf(stderr, "liar_stage: %s: %s\n", file, err);
        sw_model_destroy(&h);
        return -1;
    }
    const sw_hparams_t *x = sw_model_hparams(h), *y = sw_model_hparams(l->other);
    const bool same = x->n_embd == y->n_embd && x->n_layer == y->n_layer && x->n_head == y->n_head &&
                      x->n_head_kv == y->n_head_kv && x->n_ff == y->n_ff && x->n_vocab == y->n_vocab;
    sw_model_destroy(&h);
    if (!same) {
        fprintf(stderr, "liar_stage: %s does not have the shapes of %s\n", file, honest);
        return -1;
    }
    l->cache = sw_session_cache_new(l->other, a, b, y->n_ctx_train, (size_t) 1 << 30, 256);
    l->ex = sw_exec_new(threads);
    return l->cache && l->ex ? 0 : -1;
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: liar_stage --lie none|noise|identity|weights:FILE|precision:FILE [--lie-rate P]\n"
                 "                  [--lie-after N] [--lie-seed S] --broker EP --model HONEST.gguf --layers A-B\n"
                 "                  [--threads N] [--region R] [--heartbeat-ms N] [--key PATH | --insecure [--id ID]]\n"
                 "                  [--name NAME]\n"
                 "A lying stage for tests (see the comment at the top of tests/liar_stage.c).\n");
}

int main(int argc, char **argv)
{
    if (sw_daemon_setup("stage", &s_stop) != 0)
        return 1;
    liar_t l = {.mode = LIE_NONE, .mode_text = "none", .rate = 1.0f, .rng = 1};
    const char *lie = NULL, *other = NULL;
    sw_stage_config_t cfg = {.layer_begin = -1, .threads = 1, .kv_mem_bytes = 1024ull << 20, .max_sessions = 256,
                             .idle_ms = 300000};
    static const struct option opts[] = {
        {"lie", required_argument, 0, 'L'},      {"lie-rate", required_argument, 0, 'R'},
        {"lie-after", required_argument, 0, 'A'}, {"lie-seed", required_argument, 0, 'S'},
        {"broker", required_argument, 0, 'b'},   {"model", required_argument, 0, 'm'},
        {"layers", required_argument, 0, 'l'},   {"threads", required_argument, 0, 't'},
        {"region", required_argument, 0, 'r'},   {"heartbeat-ms", required_argument, 0, 'H'},
        {"id", required_argument, 0, 'i'},       SW_DAEMON_KEY_OPTIONS,
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    sw_daemon_keys_t keys = {0};
    int c, bad = 0;
    uint64_t seed = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (sw_daemon_keys_option(&keys, c, optarg))
            continue;
        switch (c) {
        case 'L': lie = optarg; break;
        case 'R': bad |= sw_opt_f32("--lie-rate", optarg, 0.0f, 1.0f, &l.rate); break;
        case 'A': bad |= sw_opt_u64("--lie-after", optarg, &l.after); break;
        case 'S': bad |= sw_opt_u64("--lie-seed", optarg, &seed); break;
        case 'b': cfg.broker = optarg; break;
        case 'm': cfg.model_path = optarg; break;
        case 'l': {
            long a, b;
            char tail;
            if (sscanf(optarg, "%ld-%ld%c", &a, &b, &tail) != 2 || a < 0 || b < a || b > 100000) {
                fprintf(stderr, "liar_stage: --layers: expected A-B (inclusive)\n");
                return 2;
            }
            cfg.layer_begin = (int32_t) a, cfg.layer_end = (int32_t) b + 1;
            break;
        }
        case 't': bad |= sw_opt_int("--threads", optarg, 1, 256, &cfg.threads); break;
        case 'r': cfg.region = optarg; break;
        case 'H': bad |= sw_opt_int("--heartbeat-ms", optarg, 10, 60000, &cfg.heartbeat_ms); break;
        case 'i': cfg.id = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (bad || !lie || !cfg.broker || !cfg.model_path || cfg.layer_begin < 0 || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    l.rng = seed;
    l.mode_text = lie;
    if (!strcmp(lie, "none"))
        l.mode = LIE_NONE;
    else if (!strcmp(lie, "noise"))
        l.mode = LIE_NOISE;
    else if (!strcmp(lie, "identity"))
        l.mode = LIE_IDENTITY;
    else if (!strncmp(lie, "weights:", 8) || !strncmp(lie, "precision:", 10))
        l.mode = LIE_MODEL, other = strchr(lie, ':') + 1;
    else {
        fprintf(stderr, "liar_stage: --lie: none, noise, identity, weights:FILE or precision:FILE\n");
        return 2;
    }
    if (other && s_load_other(&l, other, cfg.model_path, cfg.layer_begin, cfg.layer_end, cfg.threads) != 0)
        return 1;
    bool failed = false;
    if (sw_daemon_keys_check_id(&keys, cfg.id))
        return 2;
    cfg.display_name = keys.name;
    sw_identity_t *identity = sw_daemon_keys_load(&keys, "stage", &failed);
    if (failed)
        return 1;
    cfg.identity = identity;
    cfg.test_hook = s_hook;
    cfg.test_hook_arg = &l;
    char err[512];
    sw_stage_t *st = sw_stage_new(&cfg, err, sizeof err);
    if (!st) {
        fprintf(stderr, "liar_stage: %s\n", err);
        sw_identity_destroy(&identity);
        return 1;
    }
    sw_log_set_node(sw_stage_id(st));
    printf("liar_stage: %s serving layers %s (lie %s, rate %g, after %llu)\n", sw_stage_id(st), sw_stage_layers(st),
           l.mode_text, (double) l.rate, (unsigned long long) l.after);
    fflush(stdout);
    sw_stage_run(st, &s_stop);
    printf("liar_stage: %llu requests, %llu lies\n", (unsigned long long) l.requests, (unsigned long long) l.lies);
    fflush(stdout);
    sw_stage_destroy(&st);
    sw_identity_destroy(&identity);
    sw_session_cache_destroy(&l.cache);
    sw_model_destroy(&l.other);
    sw_exec_destroy(&l.ex);
    free(l.buf);
    return 0;
}
