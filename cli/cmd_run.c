/*  cmd_run.c: `swisd run`, single-process generation (the reference path).
 *
 *  stdout receives exactly the prompt followed by the generated text, as
 *  decoded; logs and timings go to stderr. With --tokens the prompt is a
 *  list of ids used as given; with --dump-logits the run writes its logits
 *  in the layout of the reference files (run_logits.h); with --split the
 *  layers run in separate model instances, each loading only its range, as
 *  a swarm's stages do (the embeddings and head in another, as the gateway).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sw_common.h"
#include "sw_model.h"
#include "sw_opt.h"
#include "sw_sampler.h"
#include "sw_tokenizer.h"
#include "run_logits.h"
#include "swisd_cli.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: swisd run -m MODEL.gguf (-p PROMPT | --tokens IDS) [-n N] [options]\n"
            "  -m, --model FILE        GGUF model\n"
            "  -p, --prompt TEXT       prompt (stdout starts with it)\n"
            "      --tokens IDS        prompt as token ids \"1,2,3\", used as given (no BOS added)\n"
            "      --dump-logits FILE  write the logits at every prompt position and greedy\n"
            "                          ids as JSON (reference layout; implies greedy decoding,\n"
            "                          no stop at end-of-sequence, -n 24 unless given)\n"
            "      --dump-all          with --dump-logits, also every logit of every position\n"
            "      --split L1,L2,...   run layers [0,L1), [L1,L2), ... in separate model\n"
            "                          instances, as swarm stages do\n"
            "  -n, --n-predict N       tokens to generate (default 128)\n"
            "  -t, --threads N         threads (default: online CPUs)\n"
            "      --temp T            temperature, 0 = greedy (default 0.8)\n"
            "      --top-k K           (default 40, 0 = off)\n"
            "      --top-p P           (default 0.95, 1 = off)\n"
            "      --min-p P           (default 0.05, 0 = off)\n"
            "      --repeat-penalty R  (default 1.0 = off)\n"
            "      --seed S            RNG seed (default 0)\n"
            "      --ctx N             context size (default: prompt + n, at most the model's)\n"
            "      --ignore-eos        keep generating past end-of-sequence\n"
            "      --no-bos            do not prepend BOS\n");
}

/* Writes the bytes a token decodes to onto stdout. */
static void s_emit(const sw_tokenizer_t *tok, int32_t prev, int32_t token)
{
    char buf[256];
    int n = sw_tokenizer_decode_token(tok, prev, token, buf, sizeof buf);
    if (n > 0) {
        if ((size_t) n > sizeof buf) {
            char *big = malloc((size_t) n);
            if (big && sw_tokenizer_decode_token(tok, prev, token, big, (size_t) n) == n)
                fwrite(big, 1, (size_t) n, stdout);
            free(big);
        } else {
            fwrite(buf, 1, (size_t) n, stdout);
        }
        fflush(stdout);
    }
}

#define SW_RUN_MAX_STAGES 64

/* One range of layers [a, b) with the model instance that holds it and its
 * KV cache (what one swarm stage has). */
typedef struct {
    sw_model_t *model; /* owned unless it is the run's own (unsplit) model */
    sw_kv_t *kv;       /* covers [a, b) */
    int32_t a, b;      /* layers */
} s_stage_t;

/* Without a split: one stage, the whole model. With boundaries L1 < L2 <
 * ... (inside (0, n_layer)): stages [0, L1), [L1, L2), ..., each a model
 * instance loading only its layers. Returns 0 or -1 (reason on stderr). */
static int s_stages_load(const char *path, sw_model_t *whole, const int32_t *split, int64_t n_split,
                         s_stage_t *stages, int *n_stages)
{
    const int32_t n_layer = sw_model_hparams(whole)->n_layer;
    if (!split) {
        stages[0] = (s_stage_t){.model = whole, .a = 0, .b = n_layer};
        *n_stages = 1;
        return 0;
    }
    if (n_split + 1 > SW_RUN_MAX_STAGES) {
        fprintf(stderr, "swisd run: --split: at most %d stages\n", SW_RUN_MAX_STAGES);
        return -1;
    }
    for (int64_t i = 0; i <= n_split; i++) {
        const int32_t a = i == 0 ? 0 : split[i - 1], b = i == n_split ? n_layer : split[i];
        if (b <= a || b > n_layer) {
            fprintf(stderr, "swisd run: --split: boundaries must increase inside (0, %d)\n", (int) n_layer);
            return -1;
        }
        char err[512];
        sw_model_parts_t parts = {.layer_begin = a, .layer_end = b, .embed = false, .head = false};
        stages[i] = (s_stage_t){.model = sw_model_load(path, &parts, err, sizeof err), .a = a, .b = b};
        if (!stages[i].model) {
            fprintf(stderr, "swisd run: %s: layers [%d, %d): %s\n", path, (int) a, (int) b, err);
            return -1;
        }
        *n_stages = (int) i + 1;
    }
    return 0;
}

/* hidden (n_tok, n_embd) through every stage in turn, tokens at positions
 * pos.. of the sequence. Returns 0 or -1 (reason in err). */
static int s_forward(sw_exec_t *ex, s_stage_t *stages, int n_stages, int32_t pos, int32_t n_tok, float *hidden,
                     char *err, size_t errlen)
{
    for (int i = 0; i < n_stages; i++) {
        sw_seq_t seq = {.kv = stages[i].kv, .pos = pos, .n_tok = n_tok, .hidden = hidden};
        if (sw_model_forward(ex, stages[i].model, stages[i].a, stages[i].b, &seq, 1, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int swisd_cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = NULL, *tokens_opt = NULL, *split_opt = NULL, *dump_path = NULL;
    int64_t n_predict = 128, n_threads = sw_opt_default_threads(), n_ctx_opt = 0;
    bool ignore_eos = false, no_bos = false, n_given = false, dump_all = false;
    sw_sampler_params_t sp = sw_sampler_default_params();
    enum { O_TEMP = 256, O_TOPK, O_TOPP, O_MINP, O_REP, O_SEED, O_CTX, O_IGNORE_EOS, O_NO_BOS, O_TOKENS, O_DUMP, O_DUMP_ALL, O_SPLIT };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"n-predict", required_argument, 0, 'n'}, {"threads", required_argument, 0, 't'},
        {"temp", required_argument, 0, O_TEMP}, {"top-k", required_argument, 0, O_TOPK},
        {"top-p", required_argument, 0, O_TOPP}, {"min-p", required_argument, 0, O_MINP},
        {"repeat-penalty", required_argument, 0, O_REP}, {"seed", required_argument, 0, O_SEED},
        {"ctx", required_argument, 0, O_CTX}, {"ignore-eos", no_argument, 0, O_IGNORE_EOS},
        {"no-bos", no_argument, 0, O_NO_BOS}, {"tokens", required_argument, 0, O_TOKENS},
        {"dump-logits", required_argument, 0, O_DUMP}, {"split", required_argument, 0, O_SPLIT},
        {"dump-all", no_argument, 0, O_DUMP_ALL},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    int c;
    int64_t iv;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': if (sw_opt_i64("-n", optarg, 0, 1 << 24, &n_predict)) return 2; n_given = true; break;
        case 't': if (sw_opt_i64("-t", optarg, 1, 256, &n_threads)) return 2; break;
        case O_TEMP: if (sw_opt_f32("--temp", optarg, 0.0f, 100.0f, &sp.temperature)) return 2; break;
        case O_TOPK: if (sw_opt_i64("--top-k", optarg, 0, 1 << 24, &iv)) return 2; sp.top_k = (int32_t) iv; break;
        case O_TOPP: if (sw_opt_f32("--top-p", optarg, 0.0f, 1.0f, &sp.top_p)) return 2; break;
        case O_MINP: if (sw_opt_f32("--min-p", optarg, 0.0f, 1.0f, &sp.min_p)) return 2; break;
        case O_REP: if (sw_opt_f32("--repeat-penalty", optarg, 0.01f, 100.0f, &sp.repeat_penalty)) return 2; break;
        case O_SEED: if (sw_opt_u64("--seed", optarg, &sp.seed)) return 2; break;
        case O_CTX: if (sw_opt_i64("--ctx", optarg, 1, 1 << 22, &n_ctx_opt)) return 2; break;
        case O_IGNORE_EOS: ignore_eos = true; break;
        case O_NO_BOS: no_bos = true; break;
        case O_TOKENS: tokens_opt = optarg; break;
        case O_DUMP: dump_path = optarg; break;
        case O_SPLIT: split_opt = optarg; break;
        case O_DUMP_ALL: dump_all = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (!model_path || !prompt == !tokens_opt || optind != argc) {
        if (prompt && tokens_opt)
            fprintf(stderr, "swisd run: give either -p or --tokens, not both\n");
        s_usage(stderr);
        return 2;
    }
    int32_t *given = NULL, *split = NULL;
    int64_t n_given_tok = 0, n_split = 0;
    if (tokens_opt && sw_opt_i32_list("--tokens", tokens_opt, 0, (1 << 24) - 1, 1 << 20, &given, &n_given_tok))
        return 2;
    if (split_opt && sw_opt_i32_list("--split", split_opt, 1, 1023, 1023, &split, &n_split)) {
        free(given);
        return 2;
    }
    if (dump_path) {
        ignore_eos = true;
        n_predict = n_given ? n_predict : 24;
    }

    int rc = 1;
    char err[512] = "";
    sw_model_t *model = NULL;
    sw_tokenizer_t *tok = NULL;
    sw_sampler_t *sampler = NULL;
    sw_exec_t *ex = NULL;
    run_logits_t *dump = NULL;
    s_stage_t stages[SW_RUN_MAX_STAGES] = {{0}};
    int n_stages = 0;
    int32_t *tokens = NULL;
    float *hidden = NULL, *logits = NULL;

    uint64_t t_load = sw_now_ns();
    /* with --split, this instance holds only the embeddings and the head */
    sw_model_parts_t parts = sw_model_parts_all();
    if (split)
        parts.layer_end = 0;
    if (!(model = sw_model_load(model_path, &parts, err, sizeof err))) {
        fprintf(stderr, "swisd run: %s: %s\n", model_path, err);
        goto done;
    }
    const sw_hparams_t *hp = sw_model_hparams(model);
    if (s_stages_load(model_path, model, split, n_split, stages, &n_stages) != 0)
        goto done;
    if (!(tok = sw_tokenizer_from_gguf(sw_model_gguf(model), err, sizeof err))) {
        fprintf(stderr, "swisd run: %s: tokenizer: %s\n", model_path, err);
        goto done;
    }
    if (sw_tokenizer_n_vocab(tok) != hp->n_vocab) {
        fprintf(stderr, "swisd run: tokenizer has %d tokens but the model's embedding has %d rows\n",
                (int) sw_tokenizer_n_vocab(tok), (int) hp->n_vocab);
        goto done;
    }
    int64_t n_prompt;
    if (given) {
        n_prompt = n_given_tok;
        if (!(tokens = malloc(sizeof(int32_t) * (size_t) (n_prompt + n_predict + 1)))) {
            fprintf(stderr, "swisd run: out of memory\n");
            goto done;
        }
        for (int64_t i = 0; i < n_prompt; i++) {
            if (given[i] >= hp->n_vocab) {
                fprintf(stderr, "swisd run: --tokens: id %d is outside the vocabulary [0, %d)\n", (int) given[i],
                        (int) hp->n_vocab);
                goto done;
            }
            tokens[i] = given[i];
        }
    } else {
        size_t plen = strlen(prompt);
        bool add_bos = !no_bos && sw_tokenizer_add_bos(tok);
        n_prompt = sw_tokenizer_encode(tok, prompt, plen, add_bos, NULL, 0);
        if (n_prompt < 0 || !(tokens = malloc(sizeof(int32_t) * (size_t) (n_prompt + n_predict + 1)))) {
            fprintf(stderr, "swisd run: cannot tokenize the prompt (out of memory)\n");
            goto done;
        }
        sw_tokenizer_encode(tok, prompt, plen, add_bos, tokens, n_prompt);
        if (n_prompt == 0) {
            fprintf(stderr, "swisd run: the prompt is empty and the model adds no BOS token; nothing to condition on\n");
            goto done;
        }
    }
    int64_t n_ctx = n_ctx_opt > 0 ? n_ctx_opt : n_prompt + n_predict;
    if (n_ctx < n_prompt + n_predict) {
        fprintf(stderr, "swisd run: --ctx %lld is smaller than prompt (%lld) + n (%lld)\n", (long long) n_ctx,
                (long long) n_prompt, (long long) n_predict);
        goto done;
    }
    if (n_ctx > hp->n_ctx_train)
        sw_log(SW_LOG_WARN, "context %lld exceeds the model's training context %d", (long long) n_ctx, hp->n_ctx_train);
    sp.repeat_last_n = sp.repeat_last_n > 0 ? sp.repeat_last_n : 64;
    if (!(sampler = sw_sampler_new(&sp, hp->n_vocab)) || !(ex = sw_exec_new((int) n_threads)) ||
        !(hidden = malloc(sizeof(float) * (size_t) (n_prompt * hp->n_embd))) ||
        !(logits = malloc(sizeof(float) * (size_t) hp->n_vocab)) || (dump_path && !(dump = run_logits_new(hp->n_vocab, dump_all)))) {
        fprintf(stderr, "swisd run: out of memory (context %lld)\n", (long long) n_ctx);
        goto done;
    }
    for (int i = 0; i < n_stages; i++)
        if (!(stages[i].kv = sw_kv_new(stages[i].model, stages[i].a, stages[i].b, (int32_t) n_ctx))) {
            fprintf(stderr, "swisd run: out of memory for the KV cache (context %lld)\n", (long long) n_ctx);
            goto done;
        }
    t_load = sw_now_ns() - t_load;

    if (given) {
        for (int64_t i = 0; i < n_prompt; i++)
            s_emit(tok, i > 0 ? tokens[i - 1] : -1, tokens[i]);
    } else {
        fwrite(prompt, 1, strlen(prompt), stdout);
        fflush(stdout);
    }

    /* prefill: all prompt tokens in one pass; logits of the last one only
     * (of every one with --dump-logits) */
    uint64_t t0 = sw_now_ns();
    if (sw_model_embed(model, tokens, n_prompt, hidden, err, sizeof err) ||
        s_forward(ex, stages, n_stages, 0, (int32_t) n_prompt, hidden, err, sizeof err)) {
        fprintf(stderr, "\nswisd run: prefill failed: %s\n", err);
        goto done;
    }
    for (int64_t i = dump ? 0 : n_prompt - 1; i < n_prompt; i++) {
        if (sw_model_head(ex, model, hidden + i * hp->n_embd, 1, logits, err, sizeof err)) {
            fprintf(stderr, "\nswisd run: prefill failed: %s\n", err);
            goto done;
        }
        if (dump && run_logits_position(dump, logits) != 0) {
            fprintf(stderr, "\nswisd run: --dump-logits: out of memory\n");
            goto done;
        }
    }
    uint64_t t_prefill = sw_now_ns() - t0;

    int64_t n_tokens = n_prompt, n_gen = 0, n_decoded = 0; /* n_decoded: single-token forward passes */
    uint64_t t1 = sw_now_ns();
    while (n_gen < n_predict) {
        int32_t next = dump ? run_logits_greedy(dump, logits) : sw_sampler_sample(sampler, logits, tokens, n_tokens);
        if (next < 0) {
            fprintf(stderr, "\nswisd run: the logits hold no finite value\n");
            goto done;
        }
        if (!ignore_eos && sw_tokenizer_is_eog(tok, next))
            break;
        s_emit(tok, tokens[n_tokens - 1], next);
        tokens[n_tokens++] = next;
        n_gen++;
        if (n_gen == n_predict)
            break;
        if (sw_model_embed(model, &next, 1, hidden, err, sizeof err) ||
            s_forward(ex, stages, n_stages, (int32_t) (n_tokens - 1), 1, hidden, err, sizeof err) ||
            sw_model_head(ex, model, hidden, 1, logits, err, sizeof err)) {
            fprintf(stderr, "\nswisd run: decode failed: %s\n", err);
            goto done;
        }
        n_decoded++;
    }
    uint64_t t_decode = sw_now_ns() - t1;
    sw_log(SW_LOG_INFO, "load %.1f ms | prefill %lld tokens in %.1f ms (%.2f tokens/s) | %lld tokens generated, decode %lld "
                        "forward passes in %.1f ms (%.2f tokens/s) | %lld threads, kernels %s",
           t_load / 1e6, (long long) n_prompt, t_prefill / 1e6, n_prompt / (t_prefill / 1e9), (long long) n_gen,
           (long long) n_decoded, t_decode / 1e6, n_decoded > 0 ? n_decoded / (t_decode / 1e9) : 0.0, (long long) n_threads, sw_matmul_kernel_name());
    if (dump) {
        const char *base = strrchr(model_path, '/') ? strrchr(model_path, '/') + 1 : model_path;
        if (run_logits_write(dump, dump_path, base, tokens, n_prompt) != 0)
            goto done;
    }
    rc = 0;
done:
    free(given);
    free(split);
    free(tokens);
    free(hidden);
    free(logits);
    run_logits_destroy(&dump);
    for (int i = 0; i < n_stages; i++) {
        sw_kv_destroy(&stages[i].kv);
        if (stages[i].model != model)
            sw_model_destroy(&stages[i].model);
    }
    sw_exec_destroy(&ex);
    sw_sampler_destroy(&sampler);
    sw_tokenizer_destroy(&tok);
    sw_model_destroy(&model);
    return rc;
}
